package forwardauth

import (
	"net/http"
	"strings"

	"github.com/leasegate/leasegate/authz"
)

// Header names of the proxy conventions, in canonical form.
const (
	hdrOriginalMethod  = "X-Original-Method"
	hdrOriginalURI     = "X-Original-Uri"
	hdrOriginalHost    = "X-Original-Host"
	hdrForwardedMethod = "X-Forwarded-Method"
	hdrForwardedURI    = "X-Forwarded-Uri"
	hdrForwardedHost   = "X-Forwarded-Host"
)

// convention says where the original request's method, URI and host are.
// Envoy's has no header names: the request itself is the original.
type convention struct {
	name              string
	method, uri, host string
}

var (
	envoyConvention     = convention{name: ModeEnvoy}
	nginxConvention     = convention{ModeNginx, hdrOriginalMethod, hdrOriginalURI, hdrOriginalHost}
	forwardedConvention = convention{ModeForwarded, hdrForwardedMethod, hdrForwardedURI, hdrForwardedHost}
)

// conventionFor applies the configured mode; auto looks at which headers
// are present (see ModeAuto for why that needs a trusted proxy).
func (h *Handler) conventionFor(hdr http.Header) convention {
	switch h.mode {
	case ModeNginx:
		return nginxConvention
	case ModeForwarded:
		return forwardedConvention
	case ModeAuto:
		switch {
		case len(hdr[hdrOriginalMethod]) > 0 || len(hdr[hdrOriginalURI]) > 0:
			return nginxConvention
		case len(hdr[hdrForwardedMethod]) > 0 || len(hdr[hdrForwardedURI]) > 0:
			return forwardedConvention
		}
	}
	return envoyConvention
}

// authzRequest recovers the original request; a non-empty problem (safe to
// show clients: it names headers, never echoes values) means 400.
func (h *Handler) authzRequest(r *http.Request, conv convention) (*authz.Request, string) {
	req := &authz.Request{Headers: headerView(r.Header)}
	if ids := r.Header.Values("X-Request-Id"); len(ids) == 1 {
		req.RequestID = ids[0] // the engine clips it where it logs it
	}
	if conv.name == ModeEnvoy {
		// The request is the original; X-Original-*/X-Forwarded-* are
		// ignored here because a client may have sent them.
		req.Method, req.Host = r.Method, r.Host
		p, problem := h.stripPrefix(r.RequestURI)
		if problem != "" {
			return nil, problem
		}
		req.Path = p
		return req, ""
	}

	m, problem := singleHeader(r.Header, conv.method)
	if problem != "" {
		return nil, problem
	}
	if strings.IndexByte(m, ',') >= 0 {
		return nil, "conflicting values in " + conv.method
	}
	if !isToken(m) {
		return nil, conv.method + " is not an HTTP method"
	}
	u, problem := singleHeader(r.Header, conv.uri)
	if problem != "" {
		return nil, problem
	}
	if u[0] != '/' || !isURIText(u) {
		return nil, conv.uri + " is not an origin-form request target"
	}
	// SPEC §4: "In the nginx and forwarded modes all three are required
	// (400 when one is missing): the auth subrequest's own Host names
	// leasegate, not the protected server." With it every absolute
	// Destination would look remote (a push needs only read access).
	host, problem := singleHeader(r.Header, conv.host)
	if problem != "" {
		return nil, problem
	}
	if strings.IndexByte(host, ',') >= 0 || !isURIText(host) {
		return nil, conv.host + " is not a single host"
	}
	req.Method, req.Path, req.Host = m, u, host
	return req, ""
}

// stripPrefix turns Envoy's path_prefix + original path back into the
// original path, query kept as received.
func (h *Handler) stripPrefix(target string) (string, string) {
	if h.prefix == "" {
		if target == "" || target[0] != '/' {
			return "", "request target is not an absolute path"
		}
		return target, ""
	}
	rest, ok := strings.CutPrefix(target, h.prefix)
	if !ok || rest == "" || rest[0] != '/' {
		return "", "request path does not start with the configured path prefix"
	}
	return rest, ""
}

func singleHeader(hdr http.Header, name string) (string, string) {
	switch v := hdr.Values(name); {
	case len(v) == 0:
		return "", "missing " + name + " header"
	case len(v) > 1:
		return "", "more than one " + name + " header"
	case v[0] == "":
		return "", "empty " + name + " header"
	default:
		return v[0], ""
	}
}

// isToken reports whether s is an RFC 9110 token (a method name).
func isToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' {
			continue
		}
		if !strings.ContainsRune("!#$%&'*+-.^_`|~", rune(c)) {
			return false
		}
	}
	return true
}

// isURIText rejects whitespace and control characters, which no request
// target or host carries; a list joined by a proxy ("/a, /b") has a space.
func isURIText(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c <= ' ' || c == 0x7f {
			return false
		}
	}
	return true
}

// headerView is authz.Headers over net/http's header map: lower-case names
// are canonicalized, and repeated fields are joined with "," the way Envoy
// joins them, with their count, so the engine can refuse two credentials.
type headerView http.Header

var _ authz.Headers = headerView(nil)

func (h headerView) Get(name string) (string, int) {
	v := http.Header(h).Values(name)
	switch len(v) {
	case 0:
		return "", 0
	case 1:
		return v[0], 1
	}
	return strings.Join(v, ","), len(v)
}

// UnderscoreName returns the first name with a "_" that satisfies match,
// or "" (authz.Headers).
func (h headerView) UnderscoreName(match func(string) bool) string {
	for k := range h {
		if strings.IndexByte(k, '_') >= 0 && match(k) {
			return k
		}
	}
	return ""
}
