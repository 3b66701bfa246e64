package request

import "strings"

// MaxBearerTokenBytes bounds the bearer token a request may carry in
// Authorization; a longer one is a malformed request (400). Real access
// tokens are a few KiB at most.
const MaxBearerTokenBytes = 16 << 10

// TokenProblem explains why a request's credentials are unusable; "" with a
// token means fine, "" without one means no credentials at all.
type TokenProblem string

// BearerToken reads the bearer token from Authorization values (RFC 6750
// §2.1). n is how many Authorization fields the request carried.
func BearerToken(value string, n int) (string, TokenProblem) {
	if n == 0 || value == "" {
		return "", ""
	}
	if n > 1 {
		return "", "more than one Authorization header"
	}
	const scheme = "bearer"
	if len(value) < len(scheme) || !strings.EqualFold(value[:len(scheme)], scheme) {
		if joinedBearer(value) {
			// "Basic …,Bearer …": Envoy joined two Authorization fields.
			return "", "more than one credential"
		}
		// Another scheme (Basic, Negotiate…): no bearer credentials (RFC 6750 §3.1).
		return "", ""
	}
	rest := value[len(scheme):]
	if rest == "" {
		return "", "empty bearer token"
	}
	if rest[0] != ' ' {
		return "", "" // e.g. "Bearerfoo": not our scheme
	}
	tok := strings.TrimLeft(rest, " ")
	switch {
	case tok == "":
		return "", "empty bearer token"
	case len(tok) > MaxBearerTokenBytes:
		return "", "bearer token too large"
	}
	if i := strings.IndexByte(tok, ','); i >= 0 {
		return "", "more than one credential"
	}
	if !isB64Token(tok) {
		return "", "bearer token has characters outside b64token"
	}
	return tok, ""
}

// isB64Token: 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="
func isB64Token(s string) bool {
	i := 0
	for ; i < len(s); i++ {
		c := s[i]
		if 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' {
			continue
		}
		switch c {
		case '-', '.', '_', '~', '+', '/':
			continue
		}
		break
	}
	if i == 0 {
		return false
	}
	for ; i < len(s); i++ {
		if s[i] != '=' {
			return false
		}
	}
	return true
}

// joinedBearer reports whether a comma-joined value carries a Bearer
// credential after its first element.
func joinedBearer(v string) bool {
	for {
		i := strings.IndexByte(v, ',')
		if i < 0 {
			return false
		}
		v = strings.TrimLeft(v[i+1:], " \t")
		if len(v) > len("bearer") && strings.EqualFold(v[:len("bearer")], "bearer") && v[len("bearer")] == ' ' {
			return true
		}
	}
}
