package authz

import (
	"net/http"
	"strings"
	"testing"

	"github.com/leasegate/leasegate/authz/request"
	"github.com/leasegate/leasegate/leasecache"
	"github.com/leasegate/leasegate/policy"
)

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
		{"over 16 KiB", engHeaders{"authorization": {"Bearer " + strings.Repeat("A", request.MaxBearerTokenBytes+1)}}, invalidRequest("bearer token too large"), ""},
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
