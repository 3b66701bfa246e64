package issuer

import (
	"encoding/base64"
	"strings"
	"testing"
)

func TestPeekIssuer(t *testing.T) {
	enc := func(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }
	hdr := enc(`{"alg":"RS256","kid":"k"}`)
	tests := []struct {
		name    string
		token   string
		wantIss string
		wantOK  bool
	}{
		{name: "JWT", token: hdr + "." + enc(`{"iss":"https://issuer/","sub":"a"}`) + ".sig", wantIss: "https://issuer/", wantOK: true},
		{name: "JWT with empty signature", token: hdr + "." + enc(`{"iss":"x"}`) + ".", wantIss: "x", wantOK: true},
		{name: "JWT without iss", token: hdr + "." + enc(`{"sub":"a"}`) + ".sig", wantOK: true},
		{name: "JWT with numeric iss", token: hdr + "." + enc(`{"iss":5}`) + ".sig", wantOK: true},
		{name: "Hydra opaque token", token: testOpaqueToken},
		{name: "opaque without dots", token: "2YotnFZFEjr1zCsicMWpAA"},
		{name: "empty", token: ""},
		{name: "two dots, not base64", token: "a!b.c@d.e"},
		{name: "two dots, base64 but not JSON", token: enc("hello") + "." + enc("world") + ".sig"},
		{name: "header without alg", token: enc(`{"typ":"JWT"}`) + "." + enc(`{"iss":"x"}`) + ".sig"},
		{name: "payload an array", token: hdr + "." + enc(`["iss"]`) + ".sig"},
		{name: "JWE (five parts)", token: hdr + ".a.b.c.d"},
		{name: "padded base64", token: hdr + "." + base64.URLEncoding.EncodeToString([]byte(`{"iss":"x"}`)) + ".sig"},
		{name: "oversized", token: hdr + "." + enc(`{"iss":"x","pad":"`+strings.Repeat("p", maxJWSBytes)+`"}`) + ".sig"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			iss, ok := PeekIssuer(tc.token)
			if iss != tc.wantIss || ok != tc.wantOK {
				t.Errorf("PeekIssuer = %q, %v; want %q, %v", iss, ok, tc.wantIss, tc.wantOK)
			}
		})
	}
}
