package policy

import (
	"errors"
	"fmt"
	"strings"
)

// ErrInvalidPath is wrapped by every error Normalize (and ParseTarget, for a
// Destination or Source path) returns for a path: the request must be
// refused with 400 invalid_request, never matched against routes or scopes.
var ErrInvalidPath = errors.New("invalid request path")

// Request is one HTTP request as the route rules and the storage rules see
// it. Only Normalize makes one, so both read the same path and host (SPEC §1:
// "one and the same normalised request"). The zero Request matches no route
// prefix and is refused by storage.Authorize.
type Request struct {
	method  string
	host    string // NormalizeHost's form; "" when the request named none
	path    string // decoded once, dot segments resolved, ";params" dropped, no query
	literal string // path with its ";params" kept; the same string when it had none
}

// Method is the request method, case-sensitive as HTTP defines it.
func (r Request) Method() string { return r.method }

// Host is the request's host in NormalizeHost's form ("" when none).
func (r Request) Host() string { return r.host }

// Path is the normalised path routes match and storage scopes must cover:
// decoded once, "//" collapsed, "." and ".." resolved and clamped at the
// root, every segment's ";parameters" dropped, no query. It starts with '/'.
func (r Request) Path() string { return r.path }

// LiteralPath is Path with each segment's ";parameters" kept: what a backend
// that does not drop them (XRootD, nginx) serves. It equals Path when the
// request has no ';'.
func (r Request) LiteralPath() string { return r.literal }

// Normalize reads a request's method, host (Host or :authority) and raw
// request target (path and query as received, not decoded) into the
// Request that Classify and storage.Authorize take. An error wraps
// ErrInvalidPath or ErrInvalidHost and means 400 invalid_request, before any
// route is chosen (SPEC §1). For an already clean, lower-case request it
// does not allocate.
func Normalize(method, host, target string) (Request, error) {
	h, err := NormalizeHost(host)
	if err != nil {
		return Request{}, err
	}
	p, lit, err := normalizePath(target)
	if err != nil {
		return Request{}, err
	}
	return Request{method: method, host: h, path: p, literal: lit}, nil
}

// normalizePath is Normalize's path rule, shared with Destination and
// Source paths:
//
//   - a raw '#' or NUL anywhere is refused: neither may appear in a request
//     target (RFC 9112 §3.2), and nginx would route on the part before '#';
//   - the query ("?…") is dropped; the path must start with '/';
//   - it is percent-decoded exactly once: "%252F" becomes the three literal
//     characters "%2F" inside a segment name and is never decoded again;
//   - an encoded '/' ("%2F"), an encoded or raw '\' and an encoded NUL are
//     refused, as is an invalid escape ("%zz", a truncated "%2");
//   - a segment's ";parameters" (from the first ';', raw or decoded: some
//     servlet containers decode before they split) are dropped for the
//     clean path and kept for the literal one;
//   - a segment whose text before a ';' is empty, "." or "..", such as
//     "..;x", is refused: Tomcat drops the parameter before resolving dot
//     segments, so such a segment would climb out on the backend but not on
//     a literal-name backend;
//   - empty and "." segments are dropped, ".." removes the previous segment
//     and is clamped at the root;
//   - a trailing '/' is kept (it names a collection), and so is the one
//     implied by a final "." or ".." (RFC 3986 §5.2.4).
//
// Both results start with '/', have no "//" and no "." or ".." segment, and
// have the same segments but for their parameters.
func normalizePath(raw string) (clean, literal string, err error) {
	if p, ok := cleanTarget(raw); ok {
		return p, p, nil
	}
	return normalizeSlow(raw)
}

// normalizeSlow is normalizePath without cleanTarget's shortcut; the two
// must agree (FuzzNormalizePath).
func normalizeSlow(raw string) (clean, literal string, err error) {
	if strings.ContainsAny(raw, "#\x00") {
		return "", "", fmt.Errorf("%w: contains a raw '#' or NUL", ErrInvalidPath)
	}
	if i := strings.IndexByte(raw, '?'); i >= 0 {
		raw = raw[:i]
	}
	if raw == "" || raw[0] != '/' {
		return "", "", fmt.Errorf("%w: must start with '/'", ErrInvalidPath)
	}
	dec, err := DecodeOnce(raw)
	if err != nil {
		return "", "", err
	}
	return resolvePath(dec)
}

// cleanTarget is normalizePath's single pass for the common request whose
// path is already in normal form: nothing to decode, resolve or drop.
func cleanTarget(raw string) (string, bool) {
	if raw == "" || raw[0] != '/' {
		return "", false
	}
	for i := 0; i < len(raw); i++ {
		switch raw[i] {
		case '%', ';', '\\', '#', 0:
			return "", false
		case '?':
			// Two IndexByte scans: ContainsAny builds its byte set per call.
			if rest := raw[i:]; strings.IndexByte(rest, '#') >= 0 || strings.IndexByte(rest, 0) >= 0 {
				return "", false
			}
			return raw[:i], true
		case '/':
			if i+1 < len(raw) {
				switch raw[i+1] {
				case '/':
					return "", false
				case '.':
					// "/." or "/.." as a whole segment
					rest := raw[i+2:]
					if rest == "" || rest[0] == '/' || rest[0] == '?' ||
						rest[0] == '.' && (len(rest) == 1 || rest[1] == '/' || rest[1] == '?') {
						return "", false
					}
				}
			}
		}
	}
	return raw, true
}

// DecodeOnce percent-decodes s a single time, refusing the escapes that would
// change the path's structure after our check ('/', '\', NUL); an error
// wraps ErrInvalidPath. Normalize decodes request paths with it, and storage
// scope paths are decoded with it too, so both read an escape alike.
func DecodeOnce(s string) (string, error) {
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

// resolvePath collapses "//", drops "." and resolves ".." in a decoded path
// that starts with '/', once without and once with ";parameters". It returns
// p itself for both when nothing changes, so the common clean path does not
// allocate.
func resolvePath(p string) (clean, literal string, err error) {
	dirty, params := false, false
	for i := 1; i <= len(p); {
		end := segmentEnd(p, i)
		seg := p[i:end]
		if k := strings.IndexByte(seg, ';'); k >= 0 {
			if pre := seg[:k]; pre == "" || pre == "." || pre == ".." {
				return "", "", fmt.Errorf("%w: path parameter on an empty or dot segment", ErrInvalidPath)
			}
			params = true
		}
		if (seg == "" && end < len(p)) || seg == "." || seg == ".." {
			dirty = true
		}
		i = end + 1
	}
	if !dirty && !params {
		return p, p, nil
	}
	literal = p
	if dirty {
		literal = joinSegments(p, true)
	}
	if !params {
		return literal, literal, nil
	}
	return joinSegments(p, false), literal, nil
}

// joinSegments rebuilds p with dot segments resolved, each segment with or
// without its ";parameters". resolvePath has refused parameters on empty and
// dot segments, so dropping them never makes a segment empty.
func joinSegments(p string, keepParams bool) string {
	segs := make([]string, 0, strings.Count(p, "/"))
	trailing := false
	for i := 1; i <= len(p); {
		end := segmentEnd(p, i)
		seg := p[i:end]
		switch seg {
		case "", ".":
		case "..":
			if len(segs) > 0 {
				segs = segs[:len(segs)-1]
			}
		default:
			if k := strings.IndexByte(seg, ';'); k >= 0 && !keepParams {
				seg = seg[:k]
			}
			segs = append(segs, seg)
		}
		if end == len(p) {
			trailing = seg == "" || seg == "." || seg == ".."
		}
		i = end + 1
	}
	if len(segs) == 0 {
		return "/"
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
	return sb.String()
}

// segmentEnd returns the index of the '/' ending the segment that starts at i,
// or len(p).
func segmentEnd(p string, i int) int {
	if j := strings.IndexByte(p[i:], '/'); j >= 0 {
		return i + j
	}
	return len(p)
}

// ValidatePrefix reports whether a route prefix is usable: an absolute path
// written decoded and normalised (no %-escape, ';', '?', '#', '\', NUL,
// "//", "." or ".." segment), since it is compared with Request.Path as is.
// Config validation should call it; New does.
func ValidatePrefix(prefix string) error {
	if prefix == "" || prefix[0] != '/' {
		return fmt.Errorf("prefix %q must start with /", prefix)
	}
	if strings.ContainsAny(prefix, "%;?#\\\x00") {
		return fmt.Errorf("prefix %q must be written decoded, without '%%', ';', '?', '#', '\\' or NUL (request paths are decoded and lose their ;parameters before matching)", prefix)
	}
	for i := 1; i < len(prefix); {
		end := segmentEnd(prefix, i)
		if seg := prefix[i:end]; (seg == "" && end < len(prefix)) || seg == "." || seg == ".." {
			return fmt.Errorf("prefix %q is not normalised (\"//\", \".\" or \"..\")", prefix)
		}
		i = end + 1
	}
	return nil
}
