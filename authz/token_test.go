package authz

import (
	"net/http"
	"strings"
	"testing"

	"github.com/leasegate/leasegate/leasecache"
	"github.com/leasegate/leasegate/policy"
)

func TestExtractToken(t *testing.T) {
	tests := []struct {
		name        string
		value       string
		n           int
		wantToken   string
		wantProblem tokenProblem
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
			tok, problem := extractToken(tt.value, tt.n)
			if tok != tt.wantToken || problem != tt.wantProblem {
				t.Fatalf("extractToken(%.40q, %d) = (%.40q, %q), want (%.40q, %q)", tt.value, tt.n, tok, problem, tt.wantToken, tt.wantProblem)
			}
		})
	}
}

// TestEngineTokenDecisions checks the full Decision the engine gives for
// each kind of Authorization header (SPEC §3), before any issuer call.
func TestEngineTokenDecisions(t *testing.T) {
	invalidRequest := func(desc string) Decision {
		return Decision{
			Status:      http.StatusBadRequest,
			Error:       ErrCodeInvalidRequest,
			Description: desc,
			Challenge:   `Bearer realm="leasegate", error="invalid_request", error_description="` + desc + `"`,
			Reason:      ReasonMalformed,
			Tier:        policy.TierRead,
			Lease:       LeaseNone,
		}
	}
	noToken := Decision{
		Status:    http.StatusUnauthorized,
		Challenge: `Bearer realm="leasegate"`,
		Reason:    ReasonNoToken,
		Tier:      policy.TierRead,
		Lease:     LeaseNone,
	}
	tests := []struct {
		name    string
		headers engHeaders
		want    Decision
		body    string
	}{
		{"no Authorization", engHeaders{}, noToken, `{"error":"unauthorized"}`},
		{"Basic", engHeaders{"authorization": {"Basic dXNlcjpwYXNz"}}, noToken, `{"error":"unauthorized"}`},
		{"Bearer alone", engHeaders{"authorization": {"Bearer"}}, invalidRequest("empty bearer token"),
			`{"error":"invalid_request","error_description":"empty bearer token"}`},
		{"Bearer and a space", engHeaders{"authorization": {"Bearer "}}, invalidRequest("empty bearer token"), ""},
		{"over 16 KiB", engHeaders{"authorization": {"Bearer " + strings.Repeat("A", MaxBearerTokenBytes+1)}}, invalidRequest("bearer token too large"), ""},
		{"space inside", engHeaders{"authorization": {"Bearer ab cd"}}, invalidRequest("bearer token has characters outside b64token"), ""},
		{"double quote", engHeaders{"authorization": {`Bearer ab"cd`}}, invalidRequest("bearer token has characters outside b64token"), ""},
		{"non-ASCII", engHeaders{"authorization": {"Bearer abcé"}}, invalidRequest("bearer token has characters outside b64token"), ""},
		{"NUL", engHeaders{"authorization": {"Bearer ab\x00cd"}}, invalidRequest("bearer token has characters outside b64token"), ""},
		{"padding not at the end", engHeaders{"authorization": {"Bearer ab=cd"}}, invalidRequest("bearer token has characters outside b64token"), ""},
		{"joined by Envoy", engHeaders{"authorization": {"Bearer abc,Bearer def"}}, invalidRequest("more than one credential"), ""},
		{"Basic and Bearer joined by Envoy", engHeaders{"authorization": {"Basic dXNlcg==,Bearer abc"}}, invalidRequest("more than one credential"), ""},
		{"two fields", engHeaders{"authorization": {"Bearer abc", "Bearer def"}}, invalidRequest("more than one Authorization header"), ""},
	}
	env := newEngEnv(t, engOpts{})
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := env.eng.Check(t.Context(), &Request{Method: "GET", Path: "/f", Headers: tt.headers})
			assertDecision(t, d, tt.want)
			if tt.body != "" && string(d.Body()) != tt.body {
				t.Fatalf("body = %s, want %s", d.Body(), tt.body)
			}
		})
	}
	if env.calls() != 0 {
		t.Fatalf("issuer calls = %d, want 0", env.calls())
	}

	t.Run("padding at the end is a token", func(t *testing.T) {
		const tok = "abcd=="
		env.iss.setAnswer(tok, env.active(nil))
		d := env.check("GET", "/f", tok)
		if !d.Allow || d.TokenID != leasecache.KeyOf(tok).Prefix() {
			t.Fatalf("decision = %+v, want allow", d)
		}
	})
	t.Run("scheme case does not change the lease key", func(t *testing.T) {
		const tok = "case-token"
		env.iss.setAnswer(tok, env.active(nil))
		before := env.calls()
		for _, h := range []string{"Bearer " + tok, "bearer " + tok, "BEARER   " + tok} {
			d := env.eng.Check(t.Context(), &Request{Method: "GET", Path: "/f", Headers: engHeaders{"authorization": {h}}})
			if !d.Allow {
				t.Fatalf("%q: %+v", h, d)
			}
		}
		if env.calls() != before+1 {
			t.Fatalf("issuer calls %d → %d, want one validation for one token", before, env.calls())
		}
	})
}
