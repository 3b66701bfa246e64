package trust

import (
	"testing"
	"time"

	"github.com/leasegate/leasegate/authz/issuer"
)

// TestValidateIssuerLifetime: an issuer's max_token_lifetime is 0 (none)
// or at least a second, and the checks name its key.
func TestValidateIssuerLifetime(t *testing.T) {
	tests := []struct {
		name string
		max  time.Duration
		bad  bool
	}{
		{"off", 0, false},
		{"an hour", time.Hour, false},
		{"one second", time.Second, false},
		{"negative", -time.Minute, true},
		{"below a second", 999 * time.Millisecond, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ic := IssuerConfig{
				Name: "intro", Issuer: "https://intro.example/", Mode: ModeIntrospection, DefaultForOpaque: true,
				Introspection:    issuer.IntrospectionConfig{Endpoint: "http://127.0.0.1:1/introspect", Auth: issuer.AuthNone},
				MaxTokenLifetime: tc.max,
			}
			ps := ValidateIssuers([]IssuerConfig{ic})
			switch {
			case !tc.bad && len(ps) > 0:
				t.Fatalf("refused: %v", ps)
			case tc.bad && (len(ps) != 1 || ps[0].Field != "max_token_lifetime" || ps[0].Issuer != 0):
				t.Fatalf("problems %v, want one at issuers[0].max_token_lifetime", ps)
			}
		})
	}
}
