package policy

import (
	"errors"
	"fmt"
	"strings"
)

// ErrInvalidPath is wrapped by every error NormalizePath returns: the request
// must be refused with 400 invalid_request, never matched against scopes.
var ErrInvalidPath = errors.New("invalid request path")

// NormalizePath turns a raw request path (as received, possibly with a query)
// into the path the storage rules match against:
//
//   - the query ("?…") is dropped;
//   - the path must start with '/';
//   - it is percent-decoded exactly once: "%252F" becomes the three literal
//     characters "%2F" inside a segment name and is never decoded again;
//   - an encoded '/' ("%2F"), an encoded or literal '\' and NUL are refused,
//     as is an invalid escape ("%zz", a truncated "%2");
//   - a segment whose text before a ';' is empty, "." or "..", such as "..;x",
//     is refused: Tomcat and Jetty drop path parameters before resolving dot
//     segments, so such a segment would climb out on the backend but not here;
//   - empty and "." segments are dropped, ".." removes the previous segment
//     and is clamped at the root;
//   - a trailing '/' is kept (it names a collection), and so is the one implied
//     by a final "." or ".." (RFC 3986 §5.2.4).
//
// The result always starts with '/', has no "//" and no "." or ".." segment.
func NormalizePath(raw string) (string, error) {
	if i := strings.IndexByte(raw, '?'); i >= 0 {
		raw = raw[:i]
	}
	if raw == "" || raw[0] != '/' {
		return "", fmt.Errorf("%w: must start with '/'", ErrInvalidPath)
	}
	dec, err := decodeOnce(raw)
	if err != nil {
		return "", err
	}
	return resolveDots(dec)
}

// decodeOnce percent-decodes s a single time, refusing the escapes that would
// change the path's structure after our check ('/', '\', NUL).
func decodeOnce(s string) (string, error) {
	if strings.IndexByte(s, '%') < 0 {
		if strings.IndexByte(s, '\\') >= 0 || strings.IndexByte(s, 0) >= 0 {
			return "", fmt.Errorf("%w: contains '\\' or NUL", ErrInvalidPath)
		}
		return s, nil
	}
	b := make([]byte, 0, len(s))
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c == '%' {
			if i+2 >= len(s) || !isHex(s[i+1]) || !isHex(s[i+2]) {
				return "", fmt.Errorf("%w: invalid percent-escape at byte %d", ErrInvalidPath, i)
			}
			c = unhex(s[i+1])<<4 | unhex(s[i+2])
			if c == '/' {
				return "", fmt.Errorf("%w: encoded '/' at byte %d", ErrInvalidPath, i)
			}
			i += 2
		}
		if c == '\\' || c == 0 {
			return "", fmt.Errorf("%w: contains '\\' or NUL", ErrInvalidPath)
		}
		b = append(b, c)
	}
	return string(b), nil
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

func unhex(c byte) byte {
	switch {
	case c <= '9':
		return c - '0'
	case c >= 'a':
		return c - 'a' + 10
	default:
		return c - 'A' + 10
	}
}

// resolveDots collapses "//", drops "." and resolves ".." in a decoded path
// that starts with '/'. It returns p itself when nothing changes, so the
// common clean path does not allocate.
func resolveDots(p string) (string, error) {
	dirty := false
	n := 0
	for i := 1; i <= len(p); {
		end := segmentEnd(p, i)
		seg := p[i:end]
		if k := strings.IndexByte(seg, ';'); k >= 0 {
			if pre := seg[:k]; pre == "" || pre == "." || pre == ".." {
				return "", fmt.Errorf("%w: path parameter on an empty or dot segment", ErrInvalidPath)
			}
		}
		if (seg == "" && end < len(p)) || seg == "." || seg == ".." {
			dirty = true
		}
		n++
		i = end + 1
	}
	if !dirty {
		return p, nil
	}
	segs := make([]string, 0, n)
	trailing := false
	for i := 1; i <= len(p); {
		end := segmentEnd(p, i)
		seg := p[i:end]
		last := end == len(p)
		switch seg {
		case "", ".":
		case "..":
			if len(segs) > 0 {
				segs = segs[:len(segs)-1]
			}
		default:
			segs = append(segs, seg)
		}
		if last {
			trailing = seg == "" || seg == "." || seg == ".."
		}
		i = end + 1
	}
	if len(segs) == 0 {
		return "/", nil
	}
	var sb strings.Builder
	sb.Grow(len(p))
	for _, s := range segs {
		sb.WriteByte('/')
		sb.WriteString(s)
	}
	if trailing {
		sb.WriteByte('/')
	}
	return sb.String(), nil
}

// segmentEnd returns the index of the '/' ending the segment that starts at i,
// or len(p).
func segmentEnd(p string, i int) int {
	if j := strings.IndexByte(p[i:], '/'); j >= 0 {
		return i + j
	}
	return len(p)
}

// webdavTarget is a parsed Destination header.
type webdavTarget struct {
	scheme    string // lower case; "" for an absolute path
	authority string // "" for an absolute path
	rawPath   string // not yet decoded
}

// parseTarget accepts what WebDAV clients send in Destination: an absolute
// http(s)-style URI or an absolute path. A network-path reference ("//host/…")
// and userinfo are refused as ambiguous.
func parseTarget(v string) (webdavTarget, error) {
	v = strings.TrimSpace(v)
	if v == "" {
		return webdavTarget{}, errors.New("empty")
	}
	if strings.HasPrefix(v, "//") {
		return webdavTarget{}, errors.New("network-path reference")
	}
	if v[0] == '/' {
		return webdavTarget{rawPath: v}, nil
	}
	i := strings.Index(v, "://")
	if i <= 0 || !isScheme(v[:i]) {
		return webdavTarget{}, errors.New("neither an absolute URI nor an absolute path")
	}
	t := webdavTarget{scheme: strings.ToLower(v[:i])}
	rest := v[i+3:]
	end := strings.IndexAny(rest, "/?#")
	if end < 0 {
		end = len(rest)
	}
	t.authority = rest[:end]
	rest = rest[end:]
	if j := strings.IndexByte(rest, '#'); j >= 0 {
		rest = rest[:j]
	}
	if t.authority == "" || strings.ContainsAny(t.authority, "@%\\") {
		return webdavTarget{}, errors.New("bad authority")
	}
	if rest == "" || rest[0] == '?' {
		rest = "/" + rest
	}
	t.rawPath = rest
	return t, nil
}

func isScheme(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z':
		case i > 0 && ('0' <= c && c <= '9' || c == '+' || c == '-' || c == '.'):
		default:
			return false
		}
	}
	return s != ""
}

// namesHost reports whether t points at the server that received the request
// (whose Host/authority is reqHost). It errs towards "yes": a local target is
// checked against the token's write scopes, a remote one is not, so an
// unknown request host or a port that one side leaves implicit counts as the
// same server.
func (t webdavTarget) namesHost(reqHost string) bool {
	if t.authority == "" || reqHost == "" {
		return true
	}
	h1, p1 := splitAuthority(t.authority)
	if p1 == "" {
		p1 = defaultPort(t.scheme)
	}
	h2, p2 := splitAuthority(reqHost)
	if !strings.EqualFold(h1, h2) {
		return false
	}
	return p1 == "" || p2 == "" || p1 == p2
}

// splitAuthority splits "host[:port]" or "[v6]:port"; the host loses a
// trailing dot and the port its leading zeros.
func splitAuthority(a string) (host, port string) {
	host = a
	if strings.HasPrefix(a, "[") {
		if end := strings.IndexByte(a, ']'); end > 0 {
			host = a[:end+1]
			if rest := a[end+1:]; strings.HasPrefix(rest, ":") {
				port = rest[1:]
			}
		}
	} else if i := strings.LastIndexByte(a, ':'); i >= 0 {
		host, port = a[:i], a[i+1:]
	}
	host = strings.TrimSuffix(host, ".")
	if port != "" {
		port = strings.TrimLeft(port, "0")
		if port == "" {
			port = "0"
		}
	}
	return host, port
}

func defaultPort(scheme string) string {
	switch scheme {
	case "http", "dav":
		return "80"
	case "https", "davs":
		return "443"
	}
	return ""
}
