package e2e

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/leasegate/leasegate/e2e/internal/hydra"
	"github.com/leasegate/leasegate/e2e/internal/leasegate"
)

// The token lifetime policy (SPEC §2) against real Hydra: Hydra mints
// access tokens for an hour (its default) and leasegate accepts them for
// far less. SPEC §2 says the token is refused once now ≥ iat + limit and
// that "the lease window is capped by the same limit"; it does not say
// whether the issuer is asked again. leasegate judges a lease by the iat
// it recorded, so a read inside its window is refused from the lease with
// no issuer call (iat never changes: no answer could accept the token
// again), while a window-0 request, or one after the window closed, is
// validated with the issuer as always and refused on its answer.

// lifetimeTiers give the reads a window longer than every limit below,
// so the refusals at iat + limit are lease hits.
func lifetimeTiers() map[string]leasegate.Tier {
	return leasegate.StandardTiers(30*time.Second, time.Second, 0, 0)
}

// newLifetimeStack is newStack with mod applied to leasegate's config.
func newLifetimeStack(t *testing.T, jwt bool, mode string, mod func(*leasegate.Config)) *stack {
	t.Helper()
	bin := leasegateBin(t)
	ctx := testCtx(t, time.Minute)
	s := newIssuerSide(t, ctx, jwt)
	s.cfg = s.baseConfig(s.issuerConfig(mode, 0, nil), lifetimeTiers())
	mod(&s.cfg)
	s.leasegate = s.startLeasegate(t, ctx, bin, s.cfg, nil)
	var err error
	if s.client, err = leasegate.Dial(s.leasegate.GRPCAddr()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.client.Close() })
	return s
}

// hydraTimes are a token's iat and exp as Hydra's introspection tells
// them (asked directly, not through the counting proxy).
func hydraTimes(t *testing.T, s *stack, tok string) (iat, exp time.Time) {
	t.Helper()
	ans, err := s.hydra.Introspect(testCtx(t, 10*time.Second), tok)
	if err != nil {
		t.Fatal(err)
	}
	return claimTime(t, ans, "iat"), claimTime(t, ans, "exp")
}

func claimTime(t *testing.T, claims map[string]any, name string) time.Time {
	t.Helper()
	v, ok := claims[name].(float64)
	if !ok {
		t.Fatalf("Hydra's %s is %v, not a number", name, claims[name])
	}
	return time.Unix(int64(v), 0)
}

// refusal is the first refused answer of probeUntilRefused.
type refusal struct {
	res   leasegate.Result
	late  time.Duration // from the deadline to the refused answer's arrival
	calls int64         // introspections while probing
	tries int
}

// probeUntilRefused sends r every 10ms from just before deadline until it
// is refused. Each answer is checked against the deadline on this
// machine's clock, which leasegate shares: an allow must have been sent
// before it, a refusal must have arrived after it.
func probeUntilRefused(t *testing.T, s *stack, r leasegate.Request, deadline time.Time) refusal {
	t.Helper()
	time.Sleep(time.Until(deadline.Add(-300 * time.Millisecond)))
	calls0 := s.introspections()
	for tries := 1; ; tries++ {
		sent := time.Now()
		res := s.check(t, r)
		got := time.Now()
		switch {
		case res.Allowed() && !sent.Before(deadline):
			t.Fatalf("%s %s allowed %v after the deadline", r.Method, r.Path, sent.Sub(deadline))
		case !res.Allowed() && got.Before(deadline):
			t.Fatalf("%s %s refused %v before the deadline: %v %s", r.Method, r.Path, deadline.Sub(got), res, res.Body)
		case !res.Allowed():
			return refusal{res: res, late: got.Sub(deadline), calls: s.introspections() - calls0, tries: tries}
		case got.After(deadline.Add(2 * time.Second)):
			t.Fatalf("%s %s still allowed 2s after the deadline", r.Method, r.Path)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// wantLifetimeRefusal checks a 401 invalid_token whose error_description
// is desc, in the challenge and the body.
func wantLifetimeRefusal(t *testing.T, what string, res leasegate.Result, desc string) {
	t.Helper()
	ch := bearerChallenge(res)
	if res.HTTPStatus != http.StatusUnauthorized || !strings.Contains(ch, `error="invalid_token"`) ||
		!strings.Contains(ch, `error_description="`+desc+`"`) || !strings.Contains(res.Body, desc) {
		t.Errorf("%s: %v, challenge %q, body %s; want 401 invalid_token %q", what, res, ch, res.Body, desc)
	}
}

// TestLifetimePolicyHydraIntrospection: opaque Hydra tokens, minted for
// 1h, under issuer max_token_lifetime 4s and route /fast/ 2s. Accepted,
// then refused at iat + 2s on /fast/ and iat + 4s elsewhere, each from
// the lease with Hydra not asked; a window-0 DELETE asks Hydra, which
// still vouches for the token, and is refused on its answer.
func TestLifetimePolicyHydraIntrospection(t *testing.T) {
	t.Parallel()
	s := newLifetimeStack(t, false, "introspection", func(c *leasegate.Config) {
		c.Issuers[0].MaxTokenLifetime = leasegate.Duration(4 * time.Second)
		c.Routes = []leasegate.Route{{Prefix: "/fast/", MaxTokenLifetime: leasegate.Duration(2 * time.Second)}}
	})
	tok := s.token(t)
	iat, exp := hydraTimes(t, s, tok)
	t.Logf("Hydra minted the token for %v (iat %s)", exp.Sub(iat), iat.Format(time.RFC3339))
	if exp.Sub(iat) < 50*time.Minute {
		t.Fatalf("Hydra's token lifespan is %v, want its 1h default", exp.Sub(iat))
	}
	m0 := s.metrics(t)
	data := leasegate.Request{Method: "GET", Path: "/data/f", Token: tok}
	fast := leasegate.Request{Method: "GET", Path: "/fast/f", Token: tok}
	s.expect(t, data, expectation{allowed: true, lease: "miss", calls: 1})
	s.expect(t, fast, expectation{allowed: true, lease: "hit", calls: 0})

	r := probeUntilRefused(t, s, fast, iat.Add(2*time.Second))
	t.Logf("/fast/ refused %v after iat+2s (%d probes, %d introspections)", r.late, r.tries, r.calls)
	wantLifetimeRefusal(t, "/fast/ at iat+2s", r.res, "token older than the lifetime policy allows (route /fast/: 2s)")
	if r.res.Lease() != "hit" || r.calls != 0 {
		t.Errorf("/fast/ refusal: lease %q, %d introspections; want a hit, Hydra not asked", r.res.Lease(), r.calls)
	}
	s.expect(t, data, expectation{allowed: true, lease: "hit", calls: 0})

	r = probeUntilRefused(t, s, data, iat.Add(4*time.Second))
	t.Logf("/data/ refused %v after iat+4s (%d probes, %d introspections)", r.late, r.tries, r.calls)
	wantLifetimeRefusal(t, "/data/ at iat+4s", r.res, "token older than the lifetime policy allows (issuer hydra: 4s)")
	if r.res.Lease() != "hit" || r.calls != 0 {
		t.Errorf("/data/ refusal: lease %q, %d introspections; want a hit, Hydra not asked", r.res.Lease(), r.calls)
	}
	res := s.expect(t, leasegate.Request{Method: "DELETE", Path: "/data/f", Token: tok},
		expectation{status: http.StatusUnauthorized, lease: "miss", calls: 1})
	wantLifetimeRefusal(t, "window-0 DELETE", res, "token older than the lifetime policy allows (issuer hydra: 4s)")
	if ans, err := s.hydra.Introspect(testCtx(t, 10*time.Second), tok); err != nil || ans["active"] != true {
		t.Errorf("Hydra's own view of the token: %v, %v; want still active", ans, err)
	}
	m := s.metrics(t)
	if got := m.Delta(m0, "leasegate_decisions_total", map[string]string{"decision": "deny", "lease": "hit"}); got < 2 {
		t.Errorf("leasegate_decisions_total{decision=deny,lease=hit} rose by %v, want at least 2", got)
	}
}

// TestLifetimePolicyHydraRefuseLongLived: with refuse_long_lived and an
// issuer limit of 10s, Hydra's 1h token is refused from its first request
// (Hydra asked once, for its iat and exp; the next request refused from
// the lease). A client whose tokens Hydra mints for 5s passes, until exp.
func TestLifetimePolicyHydraRefuseLongLived(t *testing.T) {
	t.Parallel()
	s := newLifetimeStack(t, false, "introspection", func(c *leasegate.Config) {
		c.Issuers[0].MaxTokenLifetime = leasegate.Duration(10 * time.Second)
		c.Lease.RefuseLongLived = true
	})
	long := s.token(t)
	get := leasegate.Request{Method: "GET", Path: "/data/f", Token: long}
	desc := "token lifetime is longer than the lifetime policy allows (issuer hydra: 10s)"
	wantLifetimeRefusal(t, "1h token, first GET", s.expect(t, get, expectation{status: http.StatusUnauthorized, lease: "miss", calls: 1}), desc)
	wantLifetimeRefusal(t, "1h token, second GET", s.expect(t, get, expectation{status: http.StatusUnauthorized, lease: "hit", calls: 0}), desc)

	ctx := testCtx(t, 30*time.Second)
	c, err := s.hydra.CreateClient(ctx, hydra.ClientOptions{
		Name: "leasegate-e2e-short", Scopes: []string{"read"}, Audience: []string{audStorage}, AccessTokenLifespan: 5 * time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	short, err := s.hydra.Token(ctx, c, []string{"read"}, []string{audStorage})
	if err != nil {
		t.Fatal(err)
	}
	s.mu.Lock()
	s.issued = append(s.issued, issuedToken{"5s access token", short})
	s.mu.Unlock()
	iat, exp := hydraTimes(t, s, short)
	if exp.Sub(iat) != 5*time.Second {
		t.Fatalf("Hydra minted the short token for %v, want 5s", exp.Sub(iat))
	}
	get.Token = short
	s.expect(t, get, expectation{allowed: true, lease: "miss", calls: 1})
	r := probeUntilRefused(t, s, get, exp)
	t.Logf("5s token refused %v after its exp (%d probes, %d introspections): %s", r.late, r.tries, r.calls, r.res.Body)
	if r.calls != 1 {
		t.Errorf("at exp: %d introspections, want 1 (past exp the lease is gone; Hydra says inactive)", r.calls)
	}
}

// TestLifetimePolicyHydraJWT: Hydra's JWT access tokens, verified locally
// (mode jwt, no introspection at all), under an issuer limit of 3s: iat
// comes from the signed token, and the refusal needs no issuer traffic.
func TestLifetimePolicyHydraJWT(t *testing.T) {
	t.Parallel()
	s := newLifetimeStack(t, true, "jwt", func(c *leasegate.Config) {
		c.Issuers[0].MaxTokenLifetime = leasegate.Duration(3 * time.Second)
	})
	tok := s.token(t)
	_, claims, err := hydra.ParseUnverified(tok)
	if err != nil {
		t.Fatalf("Hydra did not issue a JWT: %v", err)
	}
	iat, exp := claimTime(t, claims, "iat"), claimTime(t, claims, "exp")
	t.Logf("Hydra signed the JWT for %v", exp.Sub(iat))
	get := leasegate.Request{Method: "GET", Path: "/data/f", Token: tok}
	s.expect(t, get, expectation{allowed: true, lease: "miss", calls: 0})
	jwks := s.jwksFetches()
	r := probeUntilRefused(t, s, get, iat.Add(3*time.Second))
	t.Logf("JWT refused %v after iat+3s (%d probes)", r.late, r.tries)
	want := "token older than the lifetime policy allows (issuer hydra: 3s)"
	wantLifetimeRefusal(t, "JWT at iat+3s", r.res, want)
	if r.res.Lease() != "hit" || r.calls != 0 {
		t.Errorf("JWT refusal: lease %q, %d introspections; want a hit", r.res.Lease(), r.calls)
	}
	res := s.expect(t, leasegate.Request{Method: "DELETE", Path: "/data/f", Token: tok}, expectation{status: http.StatusUnauthorized, lease: "miss", calls: 0})
	wantLifetimeRefusal(t, "window-0 DELETE, verified locally", res, want)
	if got := s.jwksFetches() - jwks; got != 0 {
		t.Errorf("%d JWKS fetches while refusing, want 0", got)
	}
}
