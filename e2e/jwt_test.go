package e2e

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/leasegate/leasegate/e2e/internal/hydra"
	"github.com/leasegate/leasegate/e2e/internal/leasegate"
)

// TestJWTMode: Hydra issues JWT access tokens; leasegate runs
// jwt+introspection against Hydra's JWKS. A genuine token is verified
// locally and then introspected (lease-gated); a token with an altered
// signature is refused without any issuer traffic; after Hydra rotates its
// signing key, a token with the new kid is accepted after one JWKS refetch.
func TestJWTMode(t *testing.T) {
	t.Parallel()
	s := newStack(t, stackOptions{JWT: true, Mode: "jwt+introspection"})
	ctx := testCtx(t, time.Minute)

	tok := s.token(t)
	hdr, claims, err := hydra.ParseUnverified(tok)
	if err != nil {
		t.Fatalf("Hydra did not issue a JWT: %v", err)
	}
	if claims["iss"] != s.hydra.Issuer() {
		t.Fatalf("iss %v, want %s", claims["iss"], s.hydra.Issuer())
	}
	kid1, _ := hdr["kid"].(string)
	t.Logf("JWT typ=%v alg=%v kid=%s", hdr["typ"], hdr["alg"], kid1)
	m0 := s.metrics(t)
	jwks0 := s.jwksFetches()

	t.Run("genuine token", func(t *testing.T) {
		res := s.expect(t, leasegate.Request{Method: "GET", Path: "/data/j", Token: tok}, expectation{allowed: true, lease: "miss", calls: 1})
		if res.Headers["x-auth-subject"] != s.oauth.ID || res.Headers["x-auth-issuer"] != s.hydra.Issuer() {
			t.Errorf("identity headers %v", res.Headers)
		}
		s.expect(t, leasegate.Request{Method: "GET", Path: "/data/j", Token: tok}, expectation{allowed: true, lease: "hit", calls: 0})
	})

	t.Run("altered signature refused without issuer traffic", func(t *testing.T) {
		forged := alterSignature(t, tok)
		jwks := s.jwksFetches()
		for _, method := range []string{"GET", "DELETE"} {
			res := s.expect(t, leasegate.Request{Method: method, Path: "/data/j", Token: forged},
				expectation{status: http.StatusUnauthorized, calls: 0})
			if !strings.Contains(bearerChallenge(res), `error="invalid_token"`) {
				t.Errorf("%s forged: www-authenticate %q", method, bearerChallenge(res))
			}
		}
		if got := s.jwksFetches() - jwks; got != 0 {
			t.Errorf("forged token caused %d JWKS fetches, want 0 (its kid is known)", got)
		}
		m := s.metrics(t)
		if got := m.Delta(m0, "leasegate_issuer_requests_total", map[string]string{"outcome": "invalid"}); got != 1 {
			t.Errorf("issuer_requests_total{outcome=invalid} increased by %v, want 1 (then a negative lease)", got)
		}
	})

	t.Run("key rotation", func(t *testing.T) {
		kid2, err := s.hydra.RotateKeys(ctx)
		if err != nil {
			t.Fatal(err)
		}
		tok2 := s.token(t)
		hdr2, _, err := hydra.ParseUnverified(tok2)
		if err != nil || hdr2["kid"] != kid2 {
			t.Fatalf("token after rotation has kid %v (err %v), want %s", hdr2["kid"], err, kid2)
		}
		jwks := s.jwksFetches()
		s.expect(t, leasegate.Request{Method: "GET", Path: "/data/j", Token: tok2}, expectation{allowed: true, lease: "miss", calls: 1})
		if got := s.jwksFetches() - jwks; got != 1 {
			t.Errorf("unknown kid caused %d JWKS fetches, want exactly 1", got)
		}
		s.expect(t, leasegate.Request{Method: "DELETE", Path: "/data/j", Token: tok2}, expectation{allowed: true, lease: "miss", calls: 1})
		t.Logf("JWKS fetches at Hydra: %d since the first check, %d in all", s.jwksFetches()-jwks0, s.jwksFetches())
	})
}

// alterSignature changes the first character of the JWS signature, which
// keeps it valid base64url but breaks the signature.
func alterSignature(t *testing.T, tok string) string {
	t.Helper()
	i := strings.LastIndexByte(tok, '.')
	if i < 0 || i+1 >= len(tok) {
		t.Fatalf("not a JWS")
	}
	c := byte('A')
	if tok[i+1] == 'A' {
		c = 'B'
	}
	return tok[:i+1] + string(c) + tok[i+2:]
}
