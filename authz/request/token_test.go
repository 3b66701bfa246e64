package request

import (
	"strings"
	"testing"
)

func TestExtractToken(t *testing.T) {
	tests := []struct {
		name        string
		value       string
		n           int
		wantToken   string
		wantProblem TokenProblem
	}{
		{name: "no header", value: "", n: 0},
		{name: "empty header", value: "", n: 1},
		{name: "Bearer", value: "Bearer abc", n: 1, wantToken: "abc"},
		{name: "lower-case scheme", value: "bearer abc", n: 1, wantToken: "abc"},
		{name: "upper-case scheme", value: "BEARER abc", n: 1, wantToken: "abc"},
		{name: "mixed-case scheme", value: "bEaReR abc", n: 1, wantToken: "abc"},
		{name: "several spaces", value: "Bearer    abc", n: 1, wantToken: "abc"},
		{name: "every b64token character", value: "Bearer aZ09-._~+/==", n: 1, wantToken: "aZ09-._~+/=="},
		{name: "JWT", value: "Bearer eyJhbGciOiJSUzI1NiJ9.eyJpc3MiOiJ4In0.c2ln", n: 1, wantToken: "eyJhbGciOiJSUzI1NiJ9.eyJpc3MiOiJ4In0.c2ln"},
		{name: "exactly 16 KiB", value: "Bearer " + strings.Repeat("a", MaxBearerTokenBytes), n: 1, wantToken: strings.Repeat("a", MaxBearerTokenBytes)},

		{name: "Basic", value: "Basic dXNlcjpwYXNz", n: 1},
		{name: "Negotiate", value: "Negotiate YIIB", n: 1},
		{name: "scheme glued to the token", value: "Bearerabc", n: 1},
		{name: "tab after the scheme", value: "Bearer\tabc", n: 1},
		{name: "short other scheme", value: "Bear", n: 1},

		{name: "Bearer alone", value: "Bearer", n: 1, wantProblem: "empty bearer token"},
		{name: "Bearer and a space", value: "Bearer ", n: 1, wantProblem: "empty bearer token"},
		{name: "Bearer and spaces", value: "Bearer    ", n: 1, wantProblem: "empty bearer token"},
		{name: "over 16 KiB", value: "Bearer " + strings.Repeat("a", MaxBearerTokenBytes+1), n: 1, wantProblem: "bearer token too large"},
		{name: "space inside", value: "Bearer ab cd", n: 1, wantProblem: "bearer token has characters outside b64token"},
		{name: "trailing space", value: "Bearer abcd ", n: 1, wantProblem: "bearer token has characters outside b64token"},
		{name: "double quote", value: `Bearer ab"cd`, n: 1, wantProblem: "bearer token has characters outside b64token"},
		{name: "quoted token", value: `Bearer "abcd"`, n: 1, wantProblem: "bearer token has characters outside b64token"},
		{name: "non-ASCII", value: "Bearer abcé", n: 1, wantProblem: "bearer token has characters outside b64token"},
		{name: "NUL", value: "Bearer ab\x00cd", n: 1, wantProblem: "bearer token has characters outside b64token"},
		{name: "CR LF", value: "Bearer ab\r\ncd", n: 1, wantProblem: "bearer token has characters outside b64token"},
		{name: "semicolon", value: "Bearer ab;cd", n: 1, wantProblem: "bearer token has characters outside b64token"},
		{name: "= inside", value: "Bearer ab=cd", n: 1, wantProblem: "bearer token has characters outside b64token"},
		{name: "= only", value: "Bearer ==", n: 1, wantProblem: "bearer token has characters outside b64token"},
		{name: "= first", value: "Bearer =abc", n: 1, wantProblem: "bearer token has characters outside b64token"},

		{name: "two bearer credentials joined", value: "Bearer abc,Bearer def", n: 1, wantProblem: "more than one credential"},
		{name: "two bearer credentials joined with a space", value: "Bearer abc, Bearer def", n: 1, wantProblem: "more than one credential"},
		{name: "bearer then basic joined", value: "Bearer abc,Basic dXNlcg==", n: 1, wantProblem: "more than one credential"},
		{name: "basic then bearer joined", value: "Basic dXNlcg==,Bearer abc", n: 1, wantProblem: "more than one credential"},
		{name: "basic then bearer joined with a space", value: "Basic dXNlcg==, bearer abc", n: 1, wantProblem: "more than one credential"},
		{name: "two Authorization fields", value: "Bearer abc", n: 2, wantProblem: "more than one Authorization header"},
		{name: "two Authorization fields, other scheme", value: "Basic dXNlcg==", n: 2, wantProblem: "more than one Authorization header"},
		// A Digest credential has commas of its own; without a Bearer
		// element it is just another scheme.
		{name: "Digest with params", value: `Digest username="u", realm="r", nonce="n"`, n: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tok, problem := BearerToken(tt.value, tt.n)
			if tok != tt.wantToken || problem != tt.wantProblem {
				t.Fatalf("BearerToken(%.40q, %d) = (%.40q, %q), want (%.40q, %q)", tt.value, tt.n, tok, problem, tt.wantToken, tt.wantProblem)
			}
		})
	}
}

// FuzzExtractToken checks the Authorization parser alone: a token comes out
// only from a single "Bearer <b64token>" credential, whole and bounded.
func FuzzExtractToken(f *testing.F) {
	for _, s := range []string{
		"Bearer abc", "bearer  abc==", "Basic dXNlcg==", "Bearer", "Bearer ", "Bearer a,Bearer b",
		"Basic x, Bearer y", "Bearer a b", "Bearer \x00", "Bearer é", `Digest a="b", c="d"`, "Bearer ==",
	} {
		f.Add(s, uint8(1))
	}
	f.Fuzz(func(t *testing.T, value string, n uint8) {
		tok, problem := BearerToken(value, int(n))
		if tok != "" && problem != "" {
			t.Fatalf("both a token and a problem: %q, %q", tok, problem)
		}
		if tok == "" {
			return
		}
		if n != 1 {
			t.Fatalf("token from %d Authorization fields", n)
		}
		if len(tok) > MaxBearerTokenBytes || !isB64Token(tok) || strings.ContainsAny(tok, ", \t") {
			t.Fatalf("token %q is not one bounded b64token", tok)
		}
		if !strings.EqualFold(value[:7], "bearer ") || !strings.HasSuffix(value, tok) || strings.TrimLeft(value[7:], " ") != tok {
			t.Fatalf("token %q is not the whole credential of %q", tok, value)
		}
	})
}
