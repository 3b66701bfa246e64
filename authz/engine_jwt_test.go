package authz

import (
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwa"
)

// engJWT is an engine whose issuer verifies JWTs locally (mode jwt or
// jwt+introspection) against an httptest JWKS; in jwt+introspection the
// engine's httptest introspection endpoint answers for the same tokens.
type engJWT struct {
	*engEnv
	key  testKey
	jwks *fakeJWKSIssuer
}

func newEngJWT(t *testing.T, mode Mode, o engOpts) *engJWT {
	t.Helper()
	key := newTestKey(t, jwa.ES256, "ec-1", 0)
	jwks := newFakeJWKSIssuer(t, key)
	mod := o.issuer
	o.issuer = func(ic *IssuerConfig) {
		ic.Mode = mode
		ic.DefaultForOpaque = false
		ic.Audiences = []string{testAudience}
		ic.JWT = JWTConfig{JWKSURI: jwks.URL + "/jwks", MinRefetchInterval: time.Hour}
		if mod != nil {
			mod(ic)
		}
	}
	env := newEngEnv(t, o)
	waitReady(t, env.eng.byName[engIssuerName].jwt)
	return &engJWT{engEnv: env, key: key, jwks: jwks}
}

// token signs claims valid at the engine's clock for the test audience,
// changed by mod; hdr adds protected header members.
func (j *engJWT) token(t *testing.T, mod func(map[string]any), hdr map[string]any) string {
	t.Helper()
	now := j.clock.Now()
	c := map[string]any{
		"iss":       engIss,
		"sub":       "alice",
		"aud":       testAudience,
		"exp":       now.Add(time.Hour).Unix(),
		"iat":       now.Unix(),
		"scope":     "openid storage.read:/atlas",
		"client_id": "cli-1",
	}
	if mod != nil {
		mod(c)
	}
	return j.key.sign(t, c, hdr)
}

// introspectCalls counts calls to the introspection endpoint only.
func (j *engJWT) introspectCalls() int64 { return j.calls() }

func TestEngineExpRuleIsOneForJWTAndIntrospection(t *testing.T) {
	// Two paths, one rule: a JWT verified locally and an introspection
	// answer with the same exp get the same decision (accepted only while
	// now < exp; clock_skew does not extend exp).
	for _, off := range []time.Duration{-2 * time.Minute, -30 * time.Second, -time.Second, 0, time.Second, time.Hour} {
		t.Run(off.String(), func(t *testing.T) {
			jw := newEngJWT(t, ModeJWT, engOpts{})
			exp := jw.clock.Now().Add(off).Unix()
			dj := jw.check("GET", "/f", jw.token(t, func(c map[string]any) { c["exp"] = exp }, nil))

			in := newEngEnv(t, engOpts{})
			in.iss.setAnswer("opaque-exp", in.active(func(a map[string]any) { a["exp"] = exp }))
			di := in.check("GET", "/f", "opaque-exp")

			if dj.Allow != di.Allow || dj.Status != di.Status || dj.Reason != di.Reason || dj.Description != di.Description {
				t.Fatalf("exp %+s: jwt %v %d %s %q, introspection %v %d %s %q",
					off, dj.Allow, dj.Status, dj.Reason, dj.Description, di.Allow, di.Status, di.Reason, di.Description)
			}
			if wantAllow := off > 0; dj.Allow != wantAllow {
				t.Fatalf("exp %+s: allow = %v, want %v (%+v)", off, dj.Allow, wantAllow, dj)
			}
		})
	}
}

func TestEngineExpiredJWTIsRefusedLocally(t *testing.T) {
	// jwt+introspection: a JWT past its exp, even within clock_skew, is
	// refused without asking the issuer.
	jw := newEngJWT(t, ModeJWTIntrospection, engOpts{})
	tok := jw.token(t, func(c map[string]any) { c["exp"] = jw.clock.Now().Add(-30 * time.Second).Unix() }, nil)
	jw.iss.setAnswer(tok, jw.active(nil)) // the issuer would (wrongly) say active
	d := jw.check("GET", "/f", tok)
	if d.Allow || d.Status != http.StatusUnauthorized || d.Reason != ReasonExpired || jw.introspectCalls() != 0 {
		t.Fatalf("decision = %+v, introspection calls %d; want 401 expired without a call", d, jw.introspectCalls())
	}
}

func TestEngineFarFutureExp(t *testing.T) {
	// SPEC §1: "Any exp a token can carry works, including the far-future
	// "never" values some issuers use (e.g. 9999999999)": the lease hits.
	for _, exp := range []string{"9999999999", "253402300799", "1e13", "1e400"} {
		t.Run("introspection "+exp, func(t *testing.T) {
			env := newEngEnv(t, engOpts{})
			const tok = "opaque-never-expires"
			env.iss.setAnswer(tok, env.active(func(a map[string]any) { a["exp"] = json.RawMessage(exp) }))
			runLeaseSteps(t, env, tok, []leaseStep{
				{0, "GET", 1, LeaseMiss, true},
				{30 * time.Second, "GET", 1, LeaseHit, true},
				{0, "PUT", 2, LeaseMiss, true},
				{time.Second, "PUT", 2, LeaseHit, true},
			})
		})
	}
	t.Run("jwt 9999999999", func(t *testing.T) {
		jw := newEngJWT(t, ModeJWTIntrospection, engOpts{})
		tok := jw.token(t, func(c map[string]any) { c["exp"] = 9999999999 }, nil)
		jw.iss.setAnswer(tok, jw.active(func(a map[string]any) { a["exp"] = 9999999999 }))
		runLeaseSteps(t, jw.engEnv, tok, []leaseStep{
			{0, "GET", 1, LeaseMiss, true},
			{30 * time.Second, "GET", 1, LeaseHit, true},
		})
	})
	t.Run("negative exp is expired, not an issuer fault", func(t *testing.T) {
		env := newEngEnv(t, engOpts{})
		const tok = "opaque-negative-exp"
		env.iss.setAnswer(tok, env.active(func(a map[string]any) { a["exp"] = -5 }))
		d := env.check("GET", "/f", tok)
		if d.Allow || d.Status != http.StatusUnauthorized || d.Reason != ReasonExpired {
			t.Fatalf("decision = %+v, want 401 expired", d)
		}
	})
}
