package issuer

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwa"
)

func TestJWTKeyRotation(t *testing.T) {
	k1 := newTestKey(t, jwa.ES256, "k1", 0)
	k2 := newTestKey(t, jwa.ES256, "k2", 0)
	k3 := newTestKey(t, jwa.EdDSA, "k3", 0)
	issuer := newFakeJWKSIssuer(t, k1)
	env := newJWTEnv(t, issuer, func(c *JWTConfig) { c.MinRefetchInterval = 30 * time.Second })
	waitReady(t, env.v)
	ctx := context.Background()
	if _, err := env.v.Verify(ctx, k1.sign(t, env.claims(nil), nil)); err != nil {
		t.Fatal(err)
	}

	// The issuer rotates: the unknown kid triggers one refresh, then passes.
	issuer.setKeys(k2)
	if _, err := env.v.Verify(ctx, k2.sign(t, env.claims(nil), nil)); err != nil {
		t.Fatalf("after rotation to k2: %v", err)
	}
	if n := issuer.jwksFetches.Load(); n != 2 {
		t.Fatalf("JWKS fetches = %d, want 2 (start + one refresh)", n)
	}
	// The old key is gone from the refreshed set.
	if _, err := env.v.Verify(ctx, k1.sign(t, env.claims(nil), nil)); reasonOf(err) != "unknown signing key" {
		t.Fatalf("k1 after rotation: %v, want unknown signing key", err)
	}

	// A second rotation within MinRefetchInterval is not fetched yet...
	issuer.setKeys(k2, k3)
	if _, err := env.v.Verify(ctx, k3.sign(t, env.claims(nil), nil)); reasonOf(err) != "unknown signing key" {
		t.Fatalf("k3 within the refetch interval: %v, want unknown signing key", err)
	}
	if n := issuer.jwksFetches.Load(); n != 2 {
		t.Fatalf("JWKS fetches = %d, want still 2 inside the interval", n)
	}
	// ...and is once the interval has passed.
	env.clock.Advance(31 * time.Second)
	if _, err := env.v.Verify(ctx, k3.sign(t, env.claims(nil), nil)); err != nil {
		t.Fatalf("k3 after the interval: %v", err)
	}
	if n := issuer.jwksFetches.Load(); n != 3 {
		t.Fatalf("JWKS fetches = %d, want 3", n)
	}
}

func TestJWTRefetchLimiterClockStepBack(t *testing.T) {
	// A wall clock stepping back must not hold on-demand JWKS fetches off
	// for the size of the step (rotated keys refused for an hour).
	k1 := newTestKey(t, jwa.ES256, "k1", 0)
	k2 := newTestKey(t, jwa.ES256, "k2", 0)
	k3 := newTestKey(t, jwa.ES256, "k3", 0)
	issuer := newFakeJWKSIssuer(t, k1)
	env := newJWTEnv(t, issuer, func(c *JWTConfig) { c.MinRefetchInterval = 30 * time.Second })
	waitReady(t, env.v)
	ctx := context.Background()
	issuer.setKeys(k1, k2)
	if _, err := env.v.Verify(ctx, k2.sign(t, env.claims(nil), nil)); err != nil {
		t.Fatalf("k2: %v", err)
	}
	env.clock.Advance(-time.Hour)
	issuer.setKeys(k1, k2, k3)
	env.clock.Advance(31 * time.Second) // the interval has passed since the step
	if _, err := env.v.Verify(ctx, k3.sign(t, env.claims(nil), nil)); err != nil {
		t.Fatalf("k3 after a step back and the refetch interval: %v", err)
	}
}

func TestJWTUnknownKidFlood(t *testing.T) {
	known := newTestKey(t, jwa.ES256, "known", 0)
	stranger := newTestKey(t, jwa.ES256, "", 0)
	issuer := newFakeJWKSIssuer(t, known)
	env := newJWTEnv(t, issuer, func(c *JWTConfig) { c.MinRefetchInterval = time.Hour })
	waitReady(t, env.v)
	before := issuer.jwksFetches.Load()

	var wg sync.WaitGroup
	errs := make([]error, 100)
	for i := range errs {
		token := testKey{alg: jwa.ES256, kid: fmt.Sprintf("unknown-%d", i), priv: stranger.priv}.sign(t, env.claims(nil), nil)
		wg.Go(func() {
			_, errs[i] = env.v.Verify(context.Background(), token)
		})
	}
	wg.Wait()
	for i, err := range errs {
		if reasonOf(err) != "unknown signing key" {
			t.Fatalf("token %d: %v, want unknown signing key", i, err)
		}
	}
	if extra := issuer.jwksFetches.Load() - before; extra > 1 {
		t.Fatalf("100 unknown kids caused %d JWKS fetches, want at most 1", extra)
	}
	// Known keys keep working without fetching.
	if _, err := env.v.Verify(context.Background(), known.sign(t, env.claims(nil), nil)); err != nil {
		t.Fatal(err)
	}
	if extra := issuer.jwksFetches.Load() - before; extra > 1 {
		t.Fatalf("JWKS fetches after the flood = %d extra, want at most 1", extra)
	}
}

func TestJWTUnknownKidWhileJWKSDown(t *testing.T) {
	k1 := newTestKey(t, jwa.ES256, "k1", 0)
	k2 := newTestKey(t, jwa.ES256, "k2", 0)
	issuer := newFakeJWKSIssuer(t, k1)
	env := newJWTEnv(t, issuer, nil)
	waitReady(t, env.v)
	ctx := context.Background()

	issuer.setKeys(k1, k2)
	issuer.down.Store(true)
	// The one caller whose refresh failed gets no verdict...
	_, err := env.v.Verify(ctx, k2.sign(t, env.claims(nil), nil))
	if !errors.Is(err, ErrIssuerUnavailable) || errors.Is(err, ErrInvalidToken) {
		t.Fatalf("unknown kid with the JWKS down: %v, want only ErrIssuerUnavailable", err)
	}
	// ...later ones inside the interval are refused from the cache, and
	// known keys keep working from it.
	if _, err := env.v.Verify(ctx, k2.sign(t, env.claims(nil), nil)); reasonOf(err) != "unknown signing key" {
		t.Fatalf("second unknown kid inside the interval: %v, want unknown signing key", err)
	}
	if _, err := env.v.Verify(ctx, k1.sign(t, env.claims(nil), nil)); err != nil {
		t.Fatalf("cached key while the JWKS is down: %v", err)
	}

	issuer.down.Store(false)
	env.clock.Advance(env.cfg.MinRefetchInterval)
	if _, err := env.v.Verify(ctx, k2.sign(t, env.claims(nil), nil)); err != nil {
		t.Fatalf("k2 once the JWKS is back: %v", err)
	}
}

func TestJWTIssuerDownAtStart(t *testing.T) {
	tests := []struct {
		name      string
		discovery bool
	}{
		{name: "jwks_uri configured"},
		{name: "OIDC discovery", discovery: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			k := newTestKey(t, jwa.EdDSA, "ed", 0)
			issuer := newFakeJWKSIssuer(t, k)
			issuer.down.Store(true)
			env := newJWTEnv(t, issuer, func(c *JWTConfig) {
				if tc.discovery {
					c.JWKSURI = ""
				}
			})
			if env.v.Ready() {
				t.Fatal("Ready with the issuer down")
			}
			token := k.sign(t, env.claims(nil), nil)
			_, err := env.v.Verify(context.Background(), token)
			if !errors.Is(err, ErrIssuerUnavailable) || errors.Is(err, ErrInvalidToken) {
				t.Fatalf("Verify with JWKS down: %v, want only ErrIssuerUnavailable", err)
			}
			if !strings.Contains(err.Error(), "no signing keys available") {
				t.Errorf("error %q does not say why", err)
			}

			issuer.down.Store(false)
			env.clock.Advance(env.cfg.MinRefetchInterval + time.Second)
			token = k.sign(t, env.claims(nil), nil)
			if _, err := env.v.Verify(context.Background(), token); err != nil {
				t.Fatalf("Verify once the issuer is up: %v", err)
			}
			if !env.v.Ready() {
				t.Error("not Ready after a successful fetch")
			}
		})
	}
}

func TestJWTDiscovery(t *testing.T) {
	k := newTestKey(t, jwa.RS256, "rsa", 0)
	t.Run("jwks_uri from the discovery document", func(t *testing.T) {
		issuer := newFakeJWKSIssuer(t, k)
		env := newJWTEnv(t, issuer, func(c *JWTConfig) { c.JWKSURI = "" })
		waitReady(t, env.v)
		for range 3 {
			if _, err := env.v.Verify(context.Background(), k.sign(t, env.claims(nil), nil)); err != nil {
				t.Fatal(err)
			}
		}
		if n := issuer.discoveryFetches.Load(); n != 1 {
			t.Errorf("discovery fetched %d times, want 1", n)
		}
	})
	t.Run("discovery issuer mismatch", func(t *testing.T) {
		issuer := newFakeJWKSIssuer(t, k)
		issuer.discoveryIssuer = "https://evil.example.org/"
		env := newJWTEnv(t, issuer, func(c *JWTConfig) { c.JWKSURI = "" })
		_, err := env.v.Verify(context.Background(), k.sign(t, env.claims(nil), nil))
		if !errors.Is(err, ErrIssuerUnavailable) || !strings.Contains(err.Error(), "does not match") {
			t.Fatalf("error = %v, want issuer unavailable: discovery issuer does not match", err)
		}
		if n := issuer.jwksFetches.Load(); n != 0 {
			t.Errorf("JWKS fetched %d times from an untrusted discovery document", n)
		}
	})
}

func TestJWTJWKSContents(t *testing.T) {
	es := newTestKey(t, jwa.ES256, "ec", 0)
	esJSON, err := json.Marshal(es.pub)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		jwks    string
		kid     string
		wantMsg string // "" = accepted
	}{
		{
			name: "symmetric key in the JWKS is never used",
			jwks: `{"keys":[{"kty":"oct","kid":"ec","k":"c2VjcmV0"}]}`, kid: "ec",
			wantMsg: "unknown signing key",
		},
		{
			name: "encryption key is not a signer",
			jwks: `{"keys":[` + strings.Replace(string(esJSON), `{`, `{"use":"enc",`, 1) + `]}`, kid: "ec",
			wantMsg: "unknown signing key",
		},
		{
			name: "an unparseable key does not hide the others",
			jwks: `{"keys":[{"kty":"AKP","kid":"pq","alg":"ML-DSA-44","pub":"AAAA"},` + string(esJSON) + `]}`, kid: "ec",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			issuer := newFakeJWKSIssuer(t)
			issuer.rawJWKS = []byte(tc.jwks)
			env := newJWTEnv(t, issuer, nil)
			waitReady(t, env.v)
			_, err := env.v.Verify(context.Background(), es.sign(t, env.claims(nil), nil))
			if tc.wantMsg == "" {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				return
			}
			if reasonOf(err) != tc.wantMsg {
				t.Fatalf("error = %v, want %q", err, tc.wantMsg)
			}
		})
	}
}
