// Package headertext owns what text may go into a header leasegate writes:
// the RFC 6750 challenge of a denial, the rules for claim values turned
// into upstream identity headers, and which request header names a
// backend would take for an identity header. Pure functions, no I/O.
package headertext

import (
	"strings"
	"unicode/utf8"
)

// MaxValueBytes bounds an upstream header's name and value: Envoy's limit for a HeaderValue key or value (protoc-gen-validate rule on
// config.core.v3.HeaderValue), applied to HTTP mode too.
const MaxValueBytes = 16 << 10

// Challenge builds an RFC 6750 §3 WWW-Authenticate value: the Bearer
// scheme, then realm, error, error_description and scope, each only when
// set (§3 makes realm optional too). Every value goes through quoteSafe, so
// nothing can end the quoted string or the header.
func Challenge(realm, code, desc, scope string) string {
	var b strings.Builder
	b.Grow(len("Bearer realm=\"\", error=\"\", error_description=\"\", scope=\"\"") + len(realm) + len(code) + len(desc) + len(scope))
	b.WriteString("Bearer")
	sep := " "
	for _, a := range [...]struct{ name, value string }{
		{"realm", realm}, {"error", code}, {"error_description", desc}, {"scope", scope},
	} {
		if a.value == "" {
			continue
		}
		b.WriteString(sep)
		b.WriteString(a.name)
		b.WriteString(`="`)
		b.WriteString(quoteSafe(a.value))
		b.WriteByte('"')
		sep = ", "
	}
	return b.String()
}

// quoteSafe keeps a value inside RFC 6750's allowed set for quoted
// attributes (%x20-21 / %x23-5B / %x5D-7E): each byte outside it (a quote,
// a backslash, a control, every byte of a non-ASCII character) becomes "?".
func quoteSafe(s string) string {
	ok := true
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c > 0x7e || c == '"' || c == '\\' {
			ok = false
			break
		}
	}
	if ok {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if c := s[i]; c >= 0x20 && c <= 0x7e && c != '"' && c != '\\' {
			b.WriteByte(c)
		} else {
			b.WriteByte('?')
		}
	}
	return b.String()
}

// What may be passed upstream. Two rules, checked at two points:
//
//   - ClaimSafe, in the engine, on every claim value it turns into an
//     identity header: no control character but tab, no DEL, at most
//     MaxValueBytes. A claim that fails it is a 401 of the engine's.
//   - Passable, through authz.Decision.UnpassableHeader in each adapter,
//     on the decision it is about to render, names included and whatever
//     Checker made it: no NUL, CR or LF, at most MaxValueBytes, valid
//     UTF-8 (a proto3 string must be). A decision that fails it is
//     refused with authz.Decision.RefuseIdentity.

// ClaimSafe reports whether the engine may put claim value v in an
// identity header.
func ClaimSafe(v string) bool {
	if len(v) > MaxValueBytes {
		return false
	}
	for i := 0; i < len(v); i++ {
		if c := v[i]; c < 0x20 && c != '\t' || c == 0x7f {
			return false
		}
	}
	return true
}

// Passable reports whether s can be carried unchanged by a proxy as a
// header name or value: no NUL, CR or LF, at most MaxValueBytes, UTF-8.
func Passable(s string) bool {
	if len(s) > MaxValueBytes {
		return false
	}
	// UTF-8 is checked only for text that has a non-ASCII byte.
	if len(s) < 8 {
		var high byte
		for i := 0; i < len(s); i++ {
			c := s[i]
			if c == 0 || c == '\r' || c == '\n' {
				return false
			}
			high |= c
		}
		return high < 0x80 || utf8.ValidString(s)
	}
	// Whole words, then the last eight bytes (they may overlap the words
	// before them: each test is about some byte, so seeing one twice is
	// harmless).
	var brk, high uint64
	for i := 0; i+8 <= len(s); i += 8 {
		w := word(s[i:])
		brk |= breaks(w)
		high |= w & highs
	}
	w := word(s[len(s)-8:])
	brk |= breaks(w)
	high |= w & highs
	return brk == 0 && (high == 0 || utf8.ValidString(s))
}

// UnderscoreTwins reports whether a and b are the same name to a backend
// that folds "_" into "-" and ignores ASCII case, yet not the same name to
// a proxy (which ignores case only): equal under that folding, with "_"
// against "-" somewhere.
func UnderscoreTwins(a, b string) bool {
	if len(a) != len(b) {
		return false
	}
	lower := func(c byte) byte {
		if 'A' <= c && c <= 'Z' {
			return c + 'a' - 'A'
		}
		return c
	}
	twin := false
	for i := 0; i < len(a); i++ {
		x, y := lower(a[i]), lower(b[i])
		switch {
		case x == y:
		case x == '_' && y == '-' || x == '-' && y == '_':
			twin = true
		default:
			return false
		}
	}
	return twin
}
