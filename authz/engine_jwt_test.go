package authz

import (
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwa"

	"github.com/leasegate/leasegate/authz/issuer"
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
		ic.JWT = issuer.JWTConfig{JWKSURI: jwks.URL + "/jwks", MinRefetchInterval: time.Hour}
		if mod != nil {
			mod(ic)
		}
	}
	env := newEngEnv(t, o)
	waitReady(t, env.eng.byName[engIssuerName].JWT)
	return &engJWT{engEnv: env, key: key, jwks: jwks}
}

// token signs claims valid at the engine's clock for the test audience,
// changed by mod; hdr adds protected header members.
func (j *engJWT) token(t *testing.T, mod func(map[string]any), hdr map[string]any) string {
	t.Helper()
	return j.key.sign(t, j.claims(mod), hdr)
}

func (j *engJWT) claims(mod func(map[string]any)) map[string]any {
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
	return c
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

func TestEngineOnlyAccessTokensPass(t *testing.T) {
	// SPEC §2: "Only access tokens pass": refused as invalid_token (401)
	// and remembered as a negative lease, window-0 tiers included.
	assertRefusedThenNegative := func(t *testing.T, env *engEnv, tok string, calls func() int64) {
		t.Helper()
		d := env.check("DELETE", "/f", tok)
		if d.Allow || d.Status != http.StatusUnauthorized || d.Error != ErrCodeInvalidToken ||
			d.Reason != ReasonNotAccessToken || d.Description != "token is not an access token" {
			t.Fatalf("decision = %+v, want 401 invalid_token not_access_token", d)
		}
		before := calls()
		for _, m := range []string{"DELETE", "GET"} {
			if d := env.check(m, "/f", tok); d.Allow || d.Lease != LeaseNegative || d.Status != http.StatusUnauthorized {
				t.Fatalf("%s after the refusal = %+v, want a negative lease", m, d)
			}
		}
		if calls() != before {
			t.Fatalf("issuer asked again (%d → %d) despite the negative lease", before, calls())
		}
		if got := env.issuerRequests("invalid"); got != 1 {
			t.Fatalf("issuer_requests{invalid} = %v, want 1", got)
		}
	}
	// Answers as ORY Hydra v2.3.0 writes them (oauth2/handler.go,
	// introspectOAuth2Token): token_type always "Bearer", token_use
	// fosite's "access_token" or "refresh_token".
	hydra := func(env *engEnv, use string) map[string]any {
		now := env.clock.Now()
		return map[string]any{
			"active": true, "client_id": "cli-1", "scope": "openid offline_access storage.read:/atlas",
			"exp": now.Add(30 * 24 * time.Hour).Unix(), "iat": now.Unix(), "nbf": now.Unix(),
			"sub": "alice", "aud": []string{}, "iss": engIss,
			"token_type": "Bearer", "token_use": use,
		}
	}
	t.Run("Hydra refresh token, introspection", func(t *testing.T) {
		env := newEngEnv(t, engOpts{})
		const tok = "ory_rt_refresh-token"
		env.iss.setAnswer(tok, hydra(env, "refresh_token"))
		assertRefusedThenNegative(t, env, tok, env.calls)
	})
	t.Run("Hydra access token, introspection", func(t *testing.T) {
		env := newEngEnv(t, engOpts{})
		const tok = "ory_at_access-token"
		env.iss.setAnswer(tok, hydra(env, "access_token"))
		if d := env.check("DELETE", "/f", tok); !d.Allow {
			t.Fatalf("decision = %+v, want allow", d)
		}
	})
	t.Run("refresh token, jwt+introspection", func(t *testing.T) {
		jw := newEngJWT(t, ModeJWTIntrospection, engOpts{})
		tok := jw.token(t, nil, nil)
		jw.iss.setAnswer(tok, hydra(jw.engEnv, "refresh_token"))
		assertRefusedThenNegative(t, jw.engEnv, tok, jw.introspectCalls)
	})
	t.Run("ID token, jwt", func(t *testing.T) {
		jw := newEngJWT(t, ModeJWT, engOpts{})
		tok := jw.token(t, func(c map[string]any) { c["at_hash"], c["auth_time"] = "x1", jw.clock.Now().Unix() }, nil)
		assertRefusedThenNegative(t, jw.engEnv, tok, func() int64 { return jw.jwks.jwksFetches.Load() })
	})
	t.Run("Keycloak refresh token typ claim, jwt", func(t *testing.T) {
		jw := newEngJWT(t, ModeJWT, engOpts{})
		tok := jw.token(t, func(c map[string]any) { c["typ"] = "Refresh" }, nil)
		assertRefusedThenNegative(t, jw.engEnv, tok, func() int64 { return jw.jwks.jwksFetches.Load() })
	})
}

func TestEngineAudienceOneRule(t *testing.T) {
	// SPEC §2: "accept_wlcg_any_audience: true additionally accepts
	// https://wlcg.cern.ch/jwt/v1/any, wherever the audience is checked".
	// One rule for every mode; the server sets the flag as JWT.AcceptWLCGAny.
	auds := []struct {
		name    string
		aud     any // nil: no aud
		ours    bool
		wlcgAny bool
	}{
		{name: "ours", aud: []string{"https://x.example", testAudience}, ours: true},
		{name: "WLCG any", aud: issuer.WLCGAnyAudience, wlcgAny: true},
		{name: "WLCG any among others", aud: []string{"https://x.example", issuer.WLCGAnyAudience}, wlcgAny: true},
		{name: "foreign", aud: "https://other.example"},
		{name: "none"},
	}
	for _, mode := range []Mode{ModeIntrospection, ModeJWT, ModeJWTIntrospection} {
		for _, flag := range []bool{false, true} {
			for _, a := range auds {
				t.Run(string(mode)+"/accept_wlcg_any="+map[bool]string{false: "false", true: "true"}[flag]+"/"+a.name, func(t *testing.T) {
					setAud := func(c map[string]any) {
						delete(c, "aud")
						if a.aud != nil {
							c["aud"] = a.aud
						}
					}
					var env *engEnv
					var tok string
					if mode == ModeIntrospection {
						env = newEngEnv(t, engOpts{issuer: func(ic *IssuerConfig) {
							ic.Audiences = []string{testAudience}
							ic.JWT.AcceptWLCGAny = flag
						}})
						tok = "opaque-aud"
						env.iss.setAnswer(tok, env.active(setAud))
					} else {
						jw := newEngJWT(t, mode, engOpts{issuer: func(ic *IssuerConfig) { ic.JWT.AcceptWLCGAny = flag }})
						env, tok = jw.engEnv, jw.token(t, setAud, nil)
						env.iss.setAnswer(tok, env.active(setAud))
					}
					want := a.ours || (flag && a.wlcgAny)
					d := env.check("GET", "/f", tok)
					if d.Allow != want {
						t.Fatalf("decision = %+v, want allow %v", d, want)
					}
					if !want && (d.Status != http.StatusUnauthorized || d.Reason != ReasonAudience || d.Description != "audience not accepted") {
						t.Fatalf("decision = %+v, want 401 audience", d)
					}
					if !want && mode == ModeJWTIntrospection && env.calls() != 0 {
						t.Fatalf("introspection calls = %d: a wrong audience is refused before the issuer is asked", env.calls())
					}
				})
			}
		}
	}
	t.Run("IssuerConfig.AcceptWLCGAny, introspection", func(t *testing.T) {
		env := newEngEnv(t, engOpts{issuer: func(ic *IssuerConfig) {
			ic.Audiences, ic.AcceptWLCGAny = []string{testAudience}, true
		}})
		env.iss.setAnswer("opaque-wlcg", env.active(func(a map[string]any) { a["aud"] = issuer.WLCGAnyAudience }))
		if d := env.check("GET", "/f", "opaque-wlcg"); !d.Allow {
			t.Fatalf("decision = %+v, want allow", d)
		}
	})
}

func TestEngineNbfRuleIsOneForJWTAndIntrospection(t *testing.T) {
	// The same judgement of nbf in the future (clock_skew, 60s by
	// default, tolerated): a JWT verified locally and an introspection
	// answer carrying the same value get the same decision. (An iat in
	// the future is the lifetime policy's: TestEngineLifetimeFutureIat.)
	for _, claim := range []string{"nbf"} {
		for _, off := range []time.Duration{-time.Hour, 0, 30 * time.Second, 59 * time.Second, 2 * time.Minute, time.Hour} {
			t.Run(claim+" "+off.String(), func(t *testing.T) {
				jw := newEngJWT(t, ModeJWT, engOpts{})
				v := jw.clock.Now().Add(off).Unix()
				dj := jw.check("GET", "/f", jw.token(t, func(c map[string]any) { c[claim] = v }, nil))

				in := newEngEnv(t, engOpts{})
				in.iss.setAnswer("opaque-"+claim, in.active(func(a map[string]any) { a[claim] = v }))
				di := in.check("GET", "/f", "opaque-"+claim)

				if dj.Allow != di.Allow || dj.Status != di.Status {
					t.Fatalf("%s %+s: jwt %v %d %s %q, introspection %v %d %s %q", claim, off,
						dj.Allow, dj.Status, dj.Reason, dj.Description, di.Allow, di.Status, di.Reason, di.Description)
				}
				if wantAllow := off < time.Minute; dj.Allow != wantAllow {
					t.Fatalf("%s %+s: allow = %v, want %v (%+v)", claim, off, dj.Allow, wantAllow, dj)
				}
			})
		}
	}
}
