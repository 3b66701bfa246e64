package authz

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/leasegate/leasegate/leasecache"
	"github.com/leasegate/leasegate/policy"
)

// The token lifetime policy (SPEC §2) through the engine: a token is
// accepted only while now < min(exp, iat + limit), the limit being the
// smallest of the global one, the issuer's and every matching route's;
// the lease hit path and a fresh answer are judged by one rule.

// lifetimeOpts varies newLifetimeEnv: pol changes the policy config (the
// default tiers, lease.max 10m), issuer the issuer.
type lifetimeOpts struct {
	pol    func(*policy.Config)
	issuer func(*IssuerConfig)
}

func lifetimePolicy(t testing.TB, mod func(*policy.Config)) func(*Config) {
	t.Helper()
	pc := policy.Config{Tiers: policy.DefaultTiers(), LeaseMax: 10 * time.Minute}
	if mod != nil {
		mod(&pc)
	}
	pol, err := policy.New(pc)
	if err != nil {
		t.Fatal(err)
	}
	return func(c *Config) { c.Policy = pol }
}

func newLifetimeEnv(t testing.TB, o lifetimeOpts) *engEnv {
	t.Helper()
	return newEngEnv(t, engOpts{issuer: o.issuer, config: lifetimePolicy(t, o.pol)})
}

// issued is an introspection answer for a token issued at iat (zero: no
// iat member) that expires at exp.
func (env *engEnv) issued(iat, exp time.Time) map[string]any {
	return env.active(func(a map[string]any) {
		a["exp"] = exp.Unix()
		if !iat.IsZero() {
			a["iat"] = iat.Unix()
		}
	})
}

// wantLifetimeDenial checks d is the lifetime policy's 401 saying desc.
func wantLifetimeDenial(t *testing.T, what string, d Decision, desc string) {
	t.Helper()
	if d.Allow || d.Status != http.StatusUnauthorized || d.Reason != ReasonLifetime || d.Error != ErrCodeInvalidToken ||
		!strings.Contains(d.Description, desc) || !strings.Contains(d.Challenge, `error_description="`+d.Description+`"`) {
		t.Fatalf("%s: %+v; want 401 invalid_token (lifetime) saying %q", what, d, desc)
	}
	if d.Identity != (Identity{}) || d.Headers != nil {
		t.Fatalf("%s: a denial carries identity %+v, headers %v", what, d.Identity, d.Headers)
	}
}

// TestEngineLifetimeLeaseHit: a lease hit at iat + limit is refused from
// the lease, the issuer not asked; once the window closes the issuer is
// asked as for any miss, its answer refused by the same rule, and the
// fresh lease refuses the hits that follow.
func TestEngineLifetimeLeaseHit(t *testing.T) {
	const tok = "opaque-lifetime"
	env := newLifetimeEnv(t, lifetimeOpts{pol: func(c *policy.Config) { c.MaxTokenLifetime = time.Hour }})
	iat := env.clock.Now()
	env.iss.setAnswer(tok, env.issued(iat, iat.Add(24*time.Hour)))
	step := func(at time.Duration, method string, calls int64, lease LeaseOutcome) Decision {
		t.Helper()
		env.clock.Set(iat.Add(at))
		d := env.check(method, "/f", tok)
		if env.calls() != calls || d.Lease != lease {
			t.Fatalf("%s at iat+%v: lease %s, %d issuer calls; want %s, %d (%+v)", method, at, d.Lease, env.calls(), lease, calls, d)
		}
		return d
	}
	if d := step(0, "GET", 1, LeaseMiss); !d.Allow {
		t.Fatalf("young token refused: %+v", d)
	}
	// A window-0 DELETE validates afresh 30s before the limit: the read
	// window (60s) is then open across iat + limit.
	if d := step(time.Hour-30*time.Second, "DELETE", 2, LeaseMiss); !d.Allow {
		t.Fatalf("DELETE before the limit: %+v", d)
	}
	if d := step(time.Hour-time.Nanosecond, "GET", 2, LeaseHit); !d.Allow {
		t.Fatalf("hit 1ns before iat+limit refused: %+v", d)
	}
	wantLifetimeDenial(t, "hit exactly at iat+limit", step(time.Hour, "GET", 2, LeaseHit), "token older than the lifetime policy allows (global: 1h)")
	wantLifetimeDenial(t, "HEAD hit after the limit", step(time.Hour+29*time.Second, "HEAD", 2, LeaseHit), "older than")
	// Read window closed (validated at iat+59m30s): the issuer is asked,
	// and its answer is old too.
	wantLifetimeDenial(t, "miss after the window", step(time.Hour+30*time.Second, "GET", 3, LeaseMiss), "older than")
	wantLifetimeDenial(t, "hit on the fresh lease", step(time.Hour+31*time.Second, "GET", 3, LeaseHit), "older than")
	wantLifetimeDenial(t, "window-0 DELETE", step(time.Hour+32*time.Second, "DELETE", 4, LeaseMiss), "older than")
	if got := env.decisions("read", "deny", "hit"); got != 3 {
		t.Errorf("decisions{read,deny,hit} = %v, want 3", got)
	}
}

// TestEngineLifetimeMinimum: route vs issuer vs global, the smallest set
// applies and is the one named.
func TestEngineLifetimeMinimum(t *testing.T) {
	tests := []struct {
		name           string
		global, issuer time.Duration
		route          time.Duration // on /short/
		// at is how long after iat each path is first refused, and by whom.
		shortAt, dataAt     time.Duration
		shortDesc, dataDesc string
	}{
		{name: "route below issuer below global", global: 3 * time.Hour, issuer: 2 * time.Hour, route: time.Hour,
			shortAt: time.Hour, shortDesc: "route /short/: 1h", dataAt: 2 * time.Hour, dataDesc: "issuer hydra: 2h"},
		{name: "global below issuer and route", global: 30 * time.Minute, issuer: 2 * time.Hour, route: time.Hour,
			shortAt: 30 * time.Minute, shortDesc: "global: 30m", dataAt: 30 * time.Minute, dataDesc: "global: 30m"},
		{name: "issuer only", issuer: 45 * time.Minute,
			shortAt: 45 * time.Minute, shortDesc: "issuer hydra: 45m", dataAt: 45 * time.Minute, dataDesc: "issuer hydra: 45m"},
		{name: "route only", route: 20 * time.Minute,
			shortAt: 20 * time.Minute, shortDesc: "route /short/: 20m"},
		{name: "a tie names the broader setting", global: time.Hour, issuer: time.Hour, route: time.Hour,
			shortAt: time.Hour, shortDesc: "global: 1h", dataAt: time.Hour, dataDesc: "global: 1h"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			const tok = "opaque-minimum"
			env := newLifetimeEnv(t, lifetimeOpts{
				pol: func(c *policy.Config) {
					c.MaxTokenLifetime = tc.global
					c.Routes = []policy.RouteConfig{{Prefix: "/short/", MaxTokenLifetime: tc.route}}
				},
				issuer: func(ic *IssuerConfig) { ic.MaxTokenLifetime = tc.issuer },
			})
			iat := env.clock.Now()
			env.iss.setAnswer(tok, env.issued(iat, iat.Add(24*time.Hour)))
			// judge is each path's decision at iat+at, on a lease validated
			// 1s earlier (a window-0 DELETE elsewhere), as a read hit.
			judge := func(path string, at time.Duration) Decision {
				env.clock.Set(iat.Add(at - time.Second))
				env.check("DELETE", "/elsewhere", tok)
				env.clock.Set(iat.Add(at))
				d := env.check("GET", path, tok)
				if d.Lease != LeaseHit {
					t.Fatalf("GET %s at iat+%v: lease %s, want hit", path, at, d.Lease)
				}
				return d
			}
			for _, p := range []struct {
				path string
				at   time.Duration
				desc string
			}{{"/short/f", tc.shortAt, tc.shortDesc}, {"/data/f", tc.dataAt, tc.dataDesc}} {
				if p.at == 0 {
					if d := judge(p.path, 23*time.Hour); !d.Allow {
						t.Errorf("GET %s without a limit, 23h old: %+v", p.path, d)
					}
					continue
				}
				if d := judge(p.path, p.at-time.Second); !d.Allow {
					t.Errorf("GET %s 1s before its limit: %+v", p.path, d)
				}
				wantLifetimeDenial(t, "GET "+p.path+" at its limit", judge(p.path, p.at), "token older than the lifetime policy allows ("+p.desc+")")
			}
		})
	}
}

// TestEngineLifetimeNoIat: under a policy a token without iat is refused,
// saying so; without one it passes as before. A route-only policy refuses
// it on that route alone: the refusal leaves the lease for the others.
func TestEngineLifetimeNoIat(t *testing.T) {
	const tok = "opaque-no-iat"
	t.Run("global policy", func(t *testing.T) {
		env := newLifetimeEnv(t, lifetimeOpts{pol: func(c *policy.Config) { c.MaxTokenLifetime = 12 * time.Hour }})
		env.iss.setAnswer(tok, env.issued(time.Time{}, env.clock.Now().Add(time.Hour)))
		wantLifetimeDenial(t, "first GET", env.check("GET", "/f", tok), "token has no iat, which the lifetime policy (global: 12h) requires")
		// The lease knows the issuer gave no iat: the next request is
		// refused from it, without asking the issuer again.
		for i := range 3 {
			d := env.check("GET", "/f", tok)
			wantLifetimeDenial(t, "GET from the lease", d, "no iat")
			if d.Lease != LeaseHit || env.calls() != 1 {
				t.Fatalf("GET %d from the lease: lease %s, %d calls; want a hit and the one issuer call", i, d.Lease, env.calls())
			}
		}
	})
	t.Run("a lease that does not say", func(t *testing.T) {
		// As a replica that kept no iat would have stored it: validated again.
		env := newLifetimeEnv(t, lifetimeOpts{pol: func(c *policy.Config) { c.MaxTokenLifetime = 12 * time.Hour }})
		env.iss.setAnswer(tok, env.issued(time.Time{}, env.clock.Now().Add(time.Hour)))
		now := env.clock.Now()
		l := leasecache.Lease{ValidatedAt: now, Expiry: now.Add(time.Hour), Subject: "alice", Issuer: engIssuerName, Gen: env.cache.Generation()}
		if err := env.cache.Store(leasecache.KeyOf(tok), l); err != nil {
			t.Fatal(err)
		}
		d := env.check("GET", "/f", tok)
		wantLifetimeDenial(t, "GET", d, "no iat")
		if d.Lease != LeaseMiss || env.calls() != 1 {
			t.Errorf("GET: lease %s, %d calls; want a miss and an issuer call", d.Lease, env.calls())
		}
	})
	t.Run("no policy", func(t *testing.T) {
		env := newLifetimeEnv(t, lifetimeOpts{})
		env.iss.setAnswer(tok, env.issued(time.Time{}, env.clock.Now().Add(time.Hour)))
		if d := env.check("GET", "/f", tok); !d.Allow {
			t.Fatalf("GET: %+v", d)
		}
		if d := env.check("GET", "/f", tok); !d.Allow || d.Lease != LeaseHit {
			t.Fatalf("second GET: %+v, want a hit", d)
		}
	})
	t.Run("route policy", func(t *testing.T) {
		env := newLifetimeEnv(t, lifetimeOpts{pol: func(c *policy.Config) {
			c.Routes = []policy.RouteConfig{{Prefix: "/short/", MaxTokenLifetime: time.Hour}}
		}})
		env.iss.setAnswer(tok, env.issued(time.Time{}, env.clock.Now().Add(time.Hour)))
		if d := env.check("GET", "/data/f", tok); !d.Allow {
			t.Fatalf("GET /data/: %+v", d)
		}
		wantLifetimeDenial(t, "GET /short/", env.check("GET", "/short/f", tok), "token has no iat, which the lifetime policy (route /short/: 1h) requires")
		if d := env.check("GET", "/data/f", tok); !d.Allow || d.Lease != LeaseHit {
			t.Fatalf("GET /data/ after the refusal: %+v, want a hit", d)
		}
	})
}

// TestEngineLifetimeFutureIat: clock_skew on the issuer's side. An
// introspection answer's iat up to clock_skew ahead of our clock is the
// issuer's clock running ahead; beyond it the token is refused.
func TestEngineLifetimeFutureIat(t *testing.T) {
	tests := []struct {
		name  string
		skew  time.Duration // issuer clock_skew; 0: the 60s default
		ahead time.Duration
		limit time.Duration
		allow bool
	}{
		{name: "at the default skew", ahead: 60 * time.Second, limit: time.Hour, allow: true},
		{name: "1s past the default skew", ahead: 61 * time.Second, limit: time.Hour},
		{name: "within a configured 10s", skew: 10 * time.Second, ahead: 10 * time.Second, limit: time.Hour, allow: true},
		{name: "past a configured 10s", skew: 10 * time.Second, ahead: 30 * time.Second, limit: time.Hour},
		{name: "no policy: not judged", ahead: time.Hour, allow: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			const tok = "opaque-future"
			env := newLifetimeEnv(t, lifetimeOpts{
				pol:    func(c *policy.Config) { c.MaxTokenLifetime = tc.limit },
				issuer: func(ic *IssuerConfig) { ic.JWT.ClockSkew = tc.skew },
			})
			now := env.clock.Now()
			env.iss.setAnswer(tok, env.issued(now.Add(tc.ahead), now.Add(24*time.Hour)))
			d := env.check("GET", "/f", tok)
			if tc.allow {
				if !d.Allow {
					t.Fatalf("refused: %+v", d)
				}
				return
			}
			wantLifetimeDenial(t, "GET", d, "token issued in the future")
		})
	}
}

// TestEngineRefuseLongLived: lease.refuse_long_lived refuses a token
// minted for longer than its limit from its first request, hit or not;
// off, the same token is accepted until iat + limit.
func TestEngineRefuseLongLived(t *testing.T) {
	tests := []struct {
		name     string
		refuse   bool
		lifetime time.Duration // exp − iat
		noExp    bool
		allow    bool
	}{
		{name: "on: over the limit", refuse: true, lifetime: time.Hour + time.Second},
		{name: "on: exactly the limit", refuse: true, lifetime: time.Hour, allow: true},
		{name: "on: no exp", refuse: true, noExp: true},
		{name: "off: over the limit", lifetime: 24 * time.Hour, allow: true},
		{name: "off: no exp", noExp: true, allow: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			const tok = "opaque-long"
			env := newLifetimeEnv(t, lifetimeOpts{issuer: func(ic *IssuerConfig) { ic.MaxTokenLifetime = time.Hour },
				pol: func(c *policy.Config) { c.RefuseLongLived = tc.refuse }})
			iat := env.clock.Now()
			ans := env.issued(iat, iat.Add(tc.lifetime))
			if tc.noExp {
				delete(ans, "exp")
			}
			env.iss.setAnswer(tok, ans)
			for i, lease := range []LeaseOutcome{LeaseMiss, LeaseHit} {
				d := env.check("GET", "/f", tok)
				if d.Lease != lease || env.calls() != 1 {
					t.Fatalf("GET %d: lease %s, %d calls; want %s, 1", i, d.Lease, env.calls(), lease)
				}
				if tc.allow {
					if !d.Allow {
						t.Fatalf("GET %d refused: %+v", i, d)
					}
					continue
				}
				wantLifetimeDenial(t, "GET", d, "token lifetime is longer than the lifetime policy allows (issuer hydra: 1h)")
			}
			if !tc.allow {
				return
			}
			// Off (or within the limit): refused once iat + limit passes.
			env.clock.Set(iat.Add(time.Hour))
			d := env.check("DELETE", "/f", tok) // a fresh validation
			if tc.lifetime == time.Hour {
				// exp is iat + limit: the exp rule refuses first.
				if d.Allow || d.Reason != ReasonExpired {
					t.Fatalf("DELETE at exp: %+v, want the exp rule's refusal", d)
				}
				return
			}
			wantLifetimeDenial(t, "DELETE at iat+limit", d, "token older than the lifetime policy allows")
		})
	}
}

// TestEngineLifetimeJWT: in the jwt modes iat comes from the signed token;
// jwt mode judges without any issuer call, and jwt+introspection takes
// the JWT's iat when the answer has none, the earlier when both do.
func TestEngineLifetimeJWT(t *testing.T) {
	policyHour := lifetimePolicy(t, func(c *policy.Config) { c.MaxTokenLifetime = time.Hour })
	t.Run("jwt", func(t *testing.T) {
		jw := newEngJWT(t, ModeJWT, engOpts{config: policyHour})
		iat := jw.clock.Now()
		tok := jw.token(t, func(c map[string]any) { c["exp"] = iat.Add(24 * time.Hour).Unix() }, nil)
		if d := jw.check("GET", "/f", tok); !d.Allow {
			t.Fatalf("young JWT: %+v", d)
		}
		jw.clock.Set(iat.Add(time.Hour - time.Second))
		if d := jw.check("DELETE", "/f", tok); !d.Allow {
			t.Fatalf("JWT 1s before the limit: %+v", d)
		}
		jw.clock.Set(iat.Add(time.Hour))
		wantLifetimeDenial(t, "hit at iat+limit", jw.check("GET", "/f", tok), "older than")
		wantLifetimeDenial(t, "fresh verification at iat+limit", jw.check("DELETE", "/f", tok), "older than")
		noIat := jw.token(t, func(c map[string]any) { delete(c, "iat") }, nil)
		wantLifetimeDenial(t, "JWT without iat", jw.check("GET", "/f", noIat), "token has no iat")
		if jw.introspectCalls() != 0 {
			t.Errorf("jwt mode made %d introspection calls", jw.introspectCalls())
		}
	})
	t.Run("jwt+introspection", func(t *testing.T) {
		for _, tc := range []struct {
			name      string
			answerIat time.Duration // from the JWT's iat; -1: none in the answer
			refusedAt time.Duration // after the JWT's iat
		}{
			{"answer without iat: the JWT's", -1, time.Hour},
			{"answer's iat earlier: the answer's", 0, 50 * time.Minute},
		} {
			t.Run(tc.name, func(t *testing.T) {
				jw := newEngJWT(t, ModeJWTIntrospection, engOpts{config: policyHour})
				iat := jw.clock.Now()
				tok := jw.token(t, func(c map[string]any) { c["exp"] = iat.Add(24 * time.Hour).Unix() }, nil)
				ans := jw.active(func(a map[string]any) { a["aud"] = testAudience; a["exp"] = iat.Add(24 * time.Hour).Unix() })
				if tc.answerIat == 0 {
					ans["iat"] = iat.Add(-10 * time.Minute).Unix()
				}
				jw.iss.setAnswer(tok, ans)
				jw.clock.Set(iat.Add(tc.refusedAt - time.Second))
				if d := jw.check("DELETE", "/f", tok); !d.Allow {
					t.Fatalf("1s before the limit: %+v", d)
				}
				jw.clock.Set(iat.Add(tc.refusedAt))
				wantLifetimeDenial(t, "at the limit", jw.check("DELETE", "/f", tok), "older than")
			})
		}
	})
}

// TestEngineLifetimeHitAgreesWithFresh: the fast path and a fresh
// validation give one answer at every instant around the deadline (STYLE:
// two paths that must agree). One engine answers from a lease validated
// 30s earlier, another asks the issuer at that instant.
func TestEngineLifetimeHitAgreesWithFresh(t *testing.T) {
	policies := map[string]func(*policy.Config){
		"global 1h":         func(c *policy.Config) { c.MaxTokenLifetime = time.Hour },
		"route 1h":          func(c *policy.Config) { c.Routes = []policy.RouteConfig{{Prefix: "/", MaxTokenLifetime: time.Hour}} },
		"refuse long-lived": func(c *policy.Config) { c.MaxTokenLifetime, c.RefuseLongLived = time.Hour, true },
		"none":              nil,
	}
	type token struct {
		name     string
		iat, exp time.Duration // from the start; iat -1: none
	}
	tokens := []token{{"exp late", 0, 24 * time.Hour}, {"exp at the limit", 0, time.Hour}, {"exp first", 0, 40 * time.Minute},
		{"no iat", -1, 2 * time.Hour}, {"iat 50s ahead", 50 * time.Second, 24 * time.Hour}}
	offsets := []time.Duration{-time.Second, -time.Nanosecond, 0, time.Nanosecond, time.Second, 30 * time.Second}
	for pname, pmod := range policies {
		// One engine of each kind per policy; every case has a token of
		// its own, and each clock is set absolutely for it.
		hit, fresh := newLifetimeEnv(t, lifetimeOpts{pol: pmod}), newLifetimeEnv(t, lifetimeOpts{pol: pmod})
		start := hit.clock.Now()
		for ti, tk := range tokens {
			for _, at := range []time.Duration{40 * time.Minute, time.Hour, time.Hour + 50*time.Second} {
				for _, off := range offsets {
					now := at + off
					tok := fmt.Sprintf("opaque-diff-%d-%d", ti, now)
					var iat time.Time
					if tk.iat >= 0 {
						iat = start.Add(tk.iat)
					}
					for _, env := range []*engEnv{hit, fresh} {
						env.iss.setAnswer(tok, env.issued(iat, start.Add(tk.exp)))
					}
					hit.clock.Set(start.Add(now - 30*time.Second))
					hit.check("DELETE", "/f", tok)
					hit.clock.Set(start.Add(now))
					dh := hit.check("GET", "/f", tok)
					fresh.clock.Set(start.Add(now))
					df := fresh.check("GET", "/f", tok)
					if df.Lease != LeaseMiss {
						t.Fatalf("fresh engine: lease %s", df.Lease)
					}
					if dh.Allow != df.Allow || dh.Reason != df.Reason || dh.Description != df.Description {
						t.Errorf("%s, token %s, at start+%v: lease %s says allow=%v %s %q; fresh says allow=%v %s %q",
							pname, tk.name, now, dh.Lease, dh.Allow, dh.Reason, dh.Description, df.Allow, df.Reason, df.Description)
					}
				}
			}
		}
	}
}

// TestEngineLifetimeStale: stale_if_error never serves past the lifetime
// deadline: the issuer down, an old lease is refused, not allowed stale.
func TestEngineLifetimeStale(t *testing.T) {
	const tok = "opaque-stale-life"
	env := newLifetimeEnv(t, lifetimeOpts{pol: func(c *policy.Config) {
		c.Tiers[0].StaleIfError = 5 * time.Minute
		c.MaxTokenLifetime = time.Hour
	}})
	iat := env.clock.Now()
	env.iss.setAnswer(tok, env.issued(iat, iat.Add(24*time.Hour)))
	env.clock.Set(iat.Add(56 * time.Minute))
	if d := env.check("GET", "/f", tok); !d.Allow {
		t.Fatalf("GET: %+v", d)
	}
	env.iss.setFault(func(w http.ResponseWriter, _ *http.Request) { http.Error(w, "down", http.StatusBadGateway) })
	env.clock.Set(iat.Add(59 * time.Minute))
	if d := env.check("GET", "/f", tok); !d.Allow || d.Lease != LeaseStale {
		t.Fatalf("GET before the limit, issuer down: %+v, want a stale allow", d)
	}
	env.clock.Set(iat.Add(time.Hour))
	d := env.check("GET", "/f", tok)
	wantLifetimeDenial(t, "GET at the limit, issuer down", d, "older than")
	if d.Lease != LeaseStale {
		t.Errorf("lease %s, want stale (judged on the stale lease)", d.Lease)
	}
}
