package server

// HTTP mode (SPEC §4): the engine's decision answered over plain HTTP for
// proxies whose external-auth call is itself an HTTP request: Envoy's
// ext_authz http_service, nginx auth_request, Traefik ForwardAuth and Caddy
// forward_auth. The proxies differ only in where the original method, URI
// and host travel; the decision, statuses, challenges and bodies are the
// same as on the gRPC path.

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"

	"github.com/leasegate/leasegate/authz"
)

// Checker is what HTTP mode needs from the engine.
type Checker interface {
	Check(ctx context.Context, r *authz.Request) authz.Decision
}

var _ Checker = (*authz.Engine)(nil)

// HTTP mode conventions (listen.http_mode).
const (
	// HTTPModeEnvoy: Envoy's http_service repeats the original method and
	// sends PathPrefix + the original path and query as the request target.
	HTTPModeEnvoy = "envoy"
	// HTTPModeNginx: nginx auth_request; the original request travels in
	// X-Original-Method, X-Original-URI and X-Original-Host, all three
	// required (SPEC §4).
	HTTPModeNginx = "nginx"
	// HTTPModeForwarded: Traefik ForwardAuth and Caddy forward_auth;
	// X-Forwarded-Method, X-Forwarded-Uri and X-Forwarded-Host, all three
	// required.
	HTTPModeForwarded = "forwarded"
	// HTTPModeAuto picks nginx when X-Original-Method or X-Original-URI is
	// present, else forwarded when X-Forwarded-Method or X-Forwarded-Uri is,
	// else envoy; a convention so chosen needs all three of its headers.
	// Only safe when the proxy in front always overwrites (or always drops)
	// all of those headers: otherwise a client chooses the convention and
	// the method the tier is picked by.
	HTTPModeAuto = "auto"
)

// DefaultHTTPPathPrefix is the Envoy http_service path_prefix stripped in
// envoy mode when HTTPModeConfig.PathPrefix is empty.
const DefaultHTTPPathPrefix = "/authz"

// HTTPModeConfig configures NewHTTPModeHandler.
type HTTPModeConfig struct {
	Mode string // envoy (default when empty) | nginx | forwarded | auto
	// PathPrefix is Envoy's http_service path_prefix, stripped in envoy
	// mode: "" means DefaultHTTPPathPrefix, "/" means no prefix. A request
	// target that does not start with it is refused (400).
	PathPrefix string
	// Realm is put in the challenge of the 400s this handler gives itself
	// (malformed proxy headers); the engine's own denials carry its realm.
	Realm string
	// Engine returns the current engine (swapped on reload); called once per
	// request. A nil Checker fails closed with 503.
	Engine func() Checker
	Logger *slog.Logger
}

// Header names of the proxy conventions, in canonical form.
const (
	hdrOriginalMethod  = "X-Original-Method"
	hdrOriginalURI     = "X-Original-Uri"
	hdrOriginalHost    = "X-Original-Host"
	hdrForwardedMethod = "X-Forwarded-Method"
	hdrForwardedURI    = "X-Forwarded-Uri"
	hdrForwardedHost   = "X-Forwarded-Host"
	// hdrEnvoyRemove asks Envoy's http_service client to drop request
	// headers before the upstream sees them (the HTTP form of
	// OkHttpResponse.headers_to_remove).
	hdrEnvoyRemove = "X-Envoy-Auth-Headers-To-Remove"
)

// convention says where the original request's method, URI and host are.
// Envoy's has no header names: the request itself is the original.
type convention struct {
	name              string
	method, uri, host string
}

var (
	envoyConvention     = convention{name: HTTPModeEnvoy}
	nginxConvention     = convention{HTTPModeNginx, hdrOriginalMethod, hdrOriginalURI, hdrOriginalHost}
	forwardedConvention = convention{HTTPModeForwarded, hdrForwardedMethod, hdrForwardedURI, hdrForwardedHost}
)

type httpModeHandler struct {
	mode   string
	prefix string // "" for none
	realm  string
	engine func() Checker
	log    *slog.Logger
}

// NewHTTPModeHandler returns the handler of the listen.http listener. Every
// request to it is an authorization check (there is no health path here:
// health lives on the admin listener). It never reads request bodies.
//
// Allow is exactly 200 with an empty body and the upstream identity headers
// (empty values included, so the proxy overwrites what a client sent).
// Denials carry the engine's status (400, 401, 403, 503), WWW-Authenticate,
// Retry-After on 503 and the JSON error body of SPEC §3. Missing, repeated or
// conflicting convention headers are a 400 invalid_request, never a guess;
// a panic while deciding is a 503, never an allow.
func NewHTTPModeHandler(cfg HTTPModeConfig) (http.Handler, error) {
	h := &httpModeHandler{mode: cfg.Mode, realm: cfg.Realm, engine: cfg.Engine, log: cfg.Logger}
	if h.mode == "" {
		h.mode = HTTPModeEnvoy
	}
	switch h.mode {
	case HTTPModeEnvoy, HTTPModeNginx, HTTPModeForwarded, HTTPModeAuto:
	default:
		return nil, fmt.Errorf("http mode %q is not one of envoy, nginx, forwarded, auto", h.mode)
	}
	if h.engine == nil {
		return nil, errors.New("http mode: Engine is required")
	}
	switch p := cfg.PathPrefix; {
	case p == "":
		h.prefix = DefaultHTTPPathPrefix
	case p == "/":
		h.prefix = ""
	case p[0] != '/' || strings.ContainsAny(p, "?#") || !isURIText(p):
		return nil, fmt.Errorf("http mode: path prefix %q must be an absolute path without query or fragment", p)
	default:
		h.prefix = p
	}
	if h.log == nil {
		h.log = slog.Default()
	}
	return h, nil
}

func (h *httpModeHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	conv := h.conventionFor(r.Header)
	defer func() {
		v := recover()
		if v == nil {
			return
		}
		if v == http.ErrAbortHandler {
			panic(v)
		}
		h.log.LogAttrs(r.Context(), slog.LevelError, "http mode: panic while deciding; answered 503", authz.PanicAttrs(v)...)
		// Drop whatever was staged (identity headers of an allow in the
		// making) and fail closed.
		clear(w.Header())
		d := authz.Unavailable("internal error")
		writeDecision(w, conv, &d)
	}()

	req, problem := h.authzRequest(r, conv)
	if problem != "" {
		h.log.LogAttrs(r.Context(), slog.LevelInfo, "denied",
			slog.String("reason", string(authz.ReasonMalformed)), slog.Int("status", http.StatusBadRequest),
			slog.String("http_mode", conv.name), slog.String("description", problem))
		d := authz.InvalidRequest(h.realm, problem)
		writeDecision(w, conv, &d)
		return
	}
	eng := h.engine()
	if eng == nil {
		d := authz.Unavailable("not ready")
		writeDecision(w, conv, &d)
		return
	}
	d := eng.Check(r.Context(), req)
	if d.Allow {
		if bad := d.UnpassableHeader(); bad != "" {
			// net/http would turn CR and LF into spaces (and a backend may
			// trim them): an identity is passed exactly or not at all, as
			// on the gRPC path.
			h.log.LogAttrs(r.Context(), slog.LevelWarn, "identity cannot be passed upstream",
				slog.String("header", bad), slog.String("issuer", d.Issuer), slog.String("token_id", d.TokenID))
			d.RefuseIdentity(h.realm)
		}
	}
	if d.Allow {
		for name := range r.Header {
			if d.UnderscoreTwin(name) != "" {
				// The proxy overwrites X-Auth-Subject, not X_Auth_Subject,
				// and a backend may read the one as the other.
				h.log.LogAttrs(r.Context(), slog.LevelInfo, "denied: underscore spelling of an identity header",
					slog.String("header", name), slog.String("issuer", d.Issuer), slog.String("token_id", d.TokenID))
				d.RefuseUnderscoreTwin(h.realm)
				break
			}
		}
	}
	writeDecision(w, conv, &d)
}

// conventionFor applies the configured mode; auto looks at which headers
// are present (see HTTPModeAuto for why that needs a trusted proxy).
func (h *httpModeHandler) conventionFor(hdr http.Header) convention {
	switch h.mode {
	case HTTPModeNginx:
		return nginxConvention
	case HTTPModeForwarded:
		return forwardedConvention
	case HTTPModeAuto:
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
func (h *httpModeHandler) authzRequest(r *http.Request, conv convention) (*authz.Request, string) {
	req := &authz.Request{Headers: headerView(r.Header)}
	if ids := r.Header.Values("X-Request-Id"); len(ids) == 1 {
		req.RequestID = ids[0] // the engine clips it where it logs it
	}
	if conv.name == HTTPModeEnvoy {
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
func (h *httpModeHandler) stripPrefix(target string) (string, string) {
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

// writeDecision renders d. Allow is exactly 200: Envoy's http_service takes
// anything else, 204 included, as a denial.
func writeDecision(w http.ResponseWriter, conv convention, d *authz.Decision) {
	hdr := w.Header()
	hdr.Set("Cache-Control", "no-store")
	if d.Allow {
		for _, x := range d.Headers {
			if x.Name != "" {
				hdr[http.CanonicalHeaderKey(x.Name)] = []string{x.Value}
			}
		}
		if d.StripAuthorization && conv.name == HTTPModeEnvoy {
			hdr.Set(hdrEnvoyRemove, "authorization")
		}
		w.WriteHeader(http.StatusOK)
		return
	}
	if d.Status < 400 || d.Status > 599 {
		// A denial without a denial status is a bug upstream of here:
		// fail closed as unavailable, never as something a proxy allows.
		d.Status = http.StatusServiceUnavailable
	}
	if d.Challenge != "" {
		hdr.Set("WWW-Authenticate", d.Challenge)
	}
	if d.Status == http.StatusServiceUnavailable {
		hdr.Set("Retry-After", d.RetryAfterSeconds())
	}
	hdr.Set("Content-Type", "application/json")
	hdr.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(d.Status)
	_, _ = w.Write(d.Body())
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
