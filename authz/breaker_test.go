package authz

import (
	"net/http"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwa"
)

// TestEngineCircuitBreaker is the breaker as the engine uses it, against an
// httptest issuer and the fake clock.
func TestEngineCircuitBreaker(t *testing.T) {
	const tok = "opaque-breaker"
	fail := func(w http.ResponseWriter, _ *http.Request) { http.Error(w, "down", http.StatusInternalServerError) }

	t.Run("opens after N faults, one probe after OpenFor", func(t *testing.T) {
		env := newEngEnv(t, engOpts{issuer: func(ic *IssuerConfig) { ic.BreakerFailures, ic.BreakerOpenFor = 3, 30*time.Second }})
		env.iss.setAnswer(tok, env.active(nil))
		env.iss.setFault(fail)
		for i := range 3 {
			if d := env.check("GET", "/f", tok); d.Status != 503 || env.calls() != int64(i+1) {
				t.Fatalf("fault %d: %+v, calls %d", i, d, env.calls())
			}
		}
		for range 5 {
			d := env.check("GET", "/f", tok)
			if d.Allow || d.Status != 503 || d.RetryAfter != 30*time.Second || env.calls() != 3 {
				t.Fatalf("open circuit: %+v, calls %d; want 503 with Retry-After 30s and no call", d, env.calls())
			}
		}
		if got := env.issuerRequests("circuit_open"); got != 5 {
			t.Fatalf("issuer_requests{circuit_open} = %v, want 5", got)
		}
		env.clock.Advance(20 * time.Second)
		if d := env.check("GET", "/f", tok); d.RetryAfter != 10*time.Second || env.calls() != 3 {
			t.Fatalf("still open: %+v, calls %d; want Retry-After 10s", d, env.calls())
		}
		// Half-open: the probe fails and the circuit reopens.
		env.clock.Advance(10 * time.Second)
		if d := env.check("GET", "/f", tok); d.Status != 503 || env.calls() != 4 {
			t.Fatalf("failed probe: %+v, calls %d", d, env.calls())
		}
		if d := env.check("GET", "/f", tok); d.Status != 503 || env.calls() != 4 || d.RetryAfter != 30*time.Second {
			t.Fatalf("reopened: %+v, calls %d", d, env.calls())
		}
		// The probe succeeds: closed.
		env.clock.Advance(30 * time.Second)
		env.iss.setFault(nil)
		if d := env.check("GET", "/f", tok); !d.Allow || env.calls() != 5 {
			t.Fatalf("good probe: %+v, calls %d", d, env.calls())
		}
		if d := env.check("DELETE", "/f", tok); !d.Allow || env.calls() != 6 {
			t.Fatalf("closed: %+v, calls %d", d, env.calls())
		}
		// Closed means the count starts over: two faults do not open it.
		env.iss.setFault(fail)
		_ = env.check("DELETE", "/f", tok)
		_ = env.check("DELETE", "/f", tok)
		env.iss.setFault(nil)
		if d := env.check("DELETE", "/f", tok); !d.Allow || env.calls() != 9 {
			t.Fatalf("after two faults: %+v, calls %d; want closed", d, env.calls())
		}
	})
	t.Run("a token verdict is not a fault", func(t *testing.T) {
		env := newEngEnv(t, engOpts{issuer: func(ic *IssuerConfig) { ic.BreakerFailures, ic.BreakerOpenFor = 2, 30*time.Second }})
		for i := range 5 {
			if d := env.check("GET", "/f", "unknown-token-"+string(rune('a'+i))); d.Status != 401 {
				t.Fatalf("inactive token %d: %+v", i, d)
			}
		}
		if env.calls() != 5 {
			t.Fatalf("issuer calls = %d, want 5 (inactive answers must not open the circuit)", env.calls())
		}
	})
	t.Run("429 with Retry-After 30 keeps it open 30s", func(t *testing.T) {
		env := newEngEnv(t, engOpts{issuer: func(ic *IssuerConfig) { ic.BreakerFailures, ic.BreakerOpenFor = 1, 5*time.Second }})
		env.iss.setAnswer(tok, env.active(nil))
		env.iss.setFault(func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Retry-After", "30")
			w.WriteHeader(http.StatusTooManyRequests)
		})
		if d := env.check("GET", "/f", tok); d.Status != 503 || d.RetryAfter != 30*time.Second {
			t.Fatalf("429: %+v, want 503 with Retry-After 30s", d)
		}
		env.iss.setFault(nil)
		env.clock.Advance(29 * time.Second)
		if d := env.check("GET", "/f", tok); d.Status != 503 || env.calls() != 1 || d.RetryAfter != time.Second {
			t.Fatalf("at +29s: %+v, calls %d; want still open", d, env.calls())
		}
		env.clock.Advance(time.Second)
		if d := env.check("GET", "/f", tok); !d.Allow || env.calls() != 2 {
			t.Fatalf("at +30s: %+v, calls %d; want the probe to pass", d, env.calls())
		}
	})
}

func TestEngineBreakerCountsIssuerCallsOnly(t *testing.T) {
	// SPEC §2: "The circuit breaker counts issuer calls only. A token
	// refused locally (forged, expired, wrong audience) neither resets nor
	// trips it, and is refused with 401 even while the breaker is open."
	fail := func(w http.ResponseWriter, _ *http.Request) { http.Error(w, "down", http.StatusInternalServerError) }
	breaker3 := engOpts{issuer: func(ic *IssuerConfig) { ic.BreakerFailures, ic.BreakerOpenFor = 3, 30*time.Second }}
	locallyRefused := func(t *testing.T, jw *engJWT) map[string]string {
		forger := newTestKey(t, jwa.ES256, "ec-1", 0) // the right kid, another key
		return map[string]string{
			"forged":         forger.sign(t, jw.claims(nil), nil),
			"expired":        jw.token(t, func(c map[string]any) { c["exp"] = jw.clock.Now().Add(-time.Minute).Unix() }, nil),
			"wrong audience": jw.token(t, func(c map[string]any) { c["aud"] = "https://other.example" }, nil),
			"refresh token":  jw.token(t, func(c map[string]any) { c["typ"] = "Refresh" }, nil),
		}
	}

	t.Run("a flood of forged tokens does not keep a failing issuer's breaker closed", func(t *testing.T) {
		jw := newEngJWT(t, ModeJWTIntrospection, breaker3)
		good := jw.token(t, nil, nil)
		jw.iss.setFault(fail)
		for i := range 3 {
			if d := jw.check("DELETE", "/f", good); d.Status != http.StatusServiceUnavailable {
				t.Fatalf("fault %d: %+v", i, d)
			}
			for name, tok := range locallyRefused(t, jw) { // fresh tokens: no negative lease helps
				if d := jw.check("DELETE", "/f", tok); d.Status != http.StatusUnauthorized || d.Lease != LeaseMiss {
					t.Fatalf("%s token after fault %d: %+v, want a 401 validated afresh", name, i, d)
				}
			}
		}
		if jw.calls() != 3 {
			t.Fatalf("introspection calls = %d, want 3 (locally refused tokens never reach the issuer)", jw.calls())
		}
		d := jw.check("DELETE", "/f", good)
		if d.Status != http.StatusServiceUnavailable || d.RetryAfter != 30*time.Second || jw.calls() != 3 {
			t.Fatalf("after 3 faults: %+v, calls %d; want the breaker open (503, Retry-After 30s, no call)", d, jw.calls())
		}
	})

	t.Run("while the breaker is open, locally refused tokens get 401", func(t *testing.T) {
		jw := newEngJWT(t, ModeJWTIntrospection, breaker3)
		good := jw.token(t, nil, nil)
		jw.iss.setFault(fail)
		for range 3 {
			_ = jw.check("DELETE", "/f", good)
		}
		if d := jw.check("DELETE", "/f", good); d.Status != http.StatusServiceUnavailable || jw.calls() != 3 {
			t.Fatalf("breaker not open: %+v, calls %d", d, jw.calls())
		}
		for name, tok := range locallyRefused(t, jw) {
			d := jw.check("GET", "/f", tok)
			if d.Allow || d.Status != http.StatusUnauthorized || d.Error != ErrCodeInvalidToken {
				t.Errorf("%s token while open: %+v, want 401 invalid_token", name, d)
			}
		}
		if got := jw.issuerRequests("circuit_open"); got != 1 {
			t.Fatalf("issuer_requests{circuit_open} = %v, want 1 (only the good token was an issuer call)", got)
		}
	})

	t.Run("a JWKS fault does not open the breaker for tokens whose keys are known", func(t *testing.T) {
		jw := newEngJWT(t, ModeJWT, engOpts{issuer: func(ic *IssuerConfig) { ic.BreakerFailures, ic.BreakerOpenFor = 1, 30*time.Second }})
		jw.jwks.down.Store(true)
		stranger := newTestKey(t, jwa.ES256, "unknown-kid", 0)
		if d := jw.check("GET", "/f", stranger.sign(t, jw.claims(nil), nil)); d.Status != http.StatusServiceUnavailable {
			t.Fatalf("unknown kid while the JWKS is down: %+v, want 503", d)
		}
		if d := jw.check("GET", "/f", jw.token(t, nil, nil)); !d.Allow {
			t.Fatalf("a token with a known key after a JWKS fault: %+v, want allow", d)
		}
	})
}
