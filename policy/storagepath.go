package policy

import (
	"errors"
	"fmt"
	"strings"
)

// Target is a Destination or Source value as ParseTarget reads it: the host
// it names and its path, normalised as Normalize normalises a request's. The
// zero Target stands for no such header (AddTargets ignores it).
type Target struct {
	host    string // NormalizeHost's form; "" for an absolute path
	path    string // as Request.Path
	literal string // as Request.LiteralPath
}

// ParseTarget reads a Destination or Source value; an error means 400
// invalid_request. The engine applies it to every request (SPEC §5 refuses
// such a value with 400 whatever the route), and AuthorizeStorage reads
// targets with the same parser.
//
// SPEC §5: "Destination and Source are single absolute URIs or absolute
// paths; one with a fragment (#), userinfo, or an unparseable authority is
// refused with 400." A backend drops a fragment, so "/a#/../b" would be
// checked as /b and executed on /a. A network-path reference ("//host/…")
// is refused as ambiguous, and so is a value that reads as two targets
// joined by ',' (Envoy's headers map joins repeated fields that way). For
// an already clean, lower-case value it does not allocate.
func ParseTarget(v string) (Target, error) {
	v = strings.Trim(v, " \t")
	if v == "" {
		return Target{}, errors.New("empty")
	}
	for i := 0; i < len(v); i++ {
		switch c := v[i]; {
		case c <= ' ' || c == 0x7f:
			return Target{}, errors.New("whitespace or a control character")
		case c == '#':
			return Target{}, errors.New("a fragment")
		case c == ',' && startsTarget(v[i+1:]):
			return Target{}, errors.New("two values joined by ','")
		}
	}
	if strings.HasPrefix(v, "//") {
		return Target{}, errors.New("network-path reference")
	}
	var t Target
	rawPath := v
	if v[0] != '/' {
		i := strings.Index(v, "://")
		if i <= 0 || !isScheme(v[:i]) {
			return Target{}, errors.New("neither an absolute URI nor an absolute path")
		}
		rest := v[i+3:]
		end := strings.IndexAny(rest, "/?")
		if end < 0 {
			end = len(rest)
		}
		authority := rest[:end]
		if strings.IndexByte(authority, '@') >= 0 {
			return Target{}, errors.New("userinfo")
		}
		if authority == "" {
			return Target{}, errors.New("empty authority")
		}
		h, err := NormalizeHost(authority)
		if err != nil {
			return Target{}, fmt.Errorf("unparseable authority: %w", err)
		}
		t.host = h
		rawPath = rest[end:]
		if rawPath == "" || rawPath[0] == '?' {
			rawPath = "/" + rawPath
		}
	}
	var err error
	if t.path, t.literal, err = normalizePath(rawPath); err != nil {
		return Target{}, err
	}
	return t, nil
}

// startsTarget reports whether s (after optional whitespace) begins like a
// Destination or Source value: an absolute path or "scheme://".
func startsTarget(s string) bool {
	s = strings.TrimLeft(s, " \t")
	if strings.HasPrefix(s, "/") {
		return true
	}
	// Scan only the scheme-like run, so many commas stay linear.
	n := 0
	for n < len(s) && isSchemeChar(s[n], n) {
		n++
	}
	return n > 0 && strings.HasPrefix(s[n:], "://")
}

func isScheme(s string) bool {
	for i := 0; i < len(s); i++ {
		if !isSchemeChar(s[i], i) {
			return false
		}
	}
	return s != ""
}

// isSchemeChar: RFC 3986 scheme = ALPHA *( ALPHA / DIGIT / "+" / "-" / "." ).
func isSchemeChar(c byte, i int) bool {
	switch {
	case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z':
		return true
	case i > 0 && ('0' <= c && c <= '9' || c == '+' || c == '-' || c == '.'):
		return true
	}
	return false
}

// namesHost reports whether t points at the server that received the
// request (SPEC §5, see namesThisServer); a path-only target always does.
func (t Target) namesHost(reqHost string, local, more []string) bool {
	return t.host == "" || namesThisServer(t.host, reqHost, local, more)
}
