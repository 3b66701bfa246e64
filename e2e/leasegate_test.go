package e2e

import (
	"encoding/json"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc/codes"

	"github.com/leasegate/leasegate/e2e/internal/leasegate"
)

// TestOpaqueLeaseTiers: one opaque Hydra token through the three tiers
// (read 3s, write 1s, critical 0). A read validates once and is then served
// from the lease; a write after the write window re-validates; every
// DELETE asks Hydra. /metrics must agree with what was sent.
func TestOpaqueLeaseTiers(t *testing.T) {
	t.Parallel()
	s := newStack(t, stackOptions{})
	tok := s.token(t)
	m0 := s.metrics(t)
	calls0 := s.introspections()

	// 1. First GET: a miss, validated at Hydra once.
	get := leasegate.Request{Method: "GET", Path: "/data/run1/file.root", Token: tok}
	res := s.expect(t, get, expectation{allowed: true, lease: "miss", tier: "read", calls: 1})
	validated := time.Now() // the lease's validated_at is before this

	t.Run("upstream identity headers", func(t *testing.T) {
		want := map[string]string{
			"x-auth-subject":   s.oauth.ID, // client_credentials: sub is the client
			"x-auth-client-id": s.oauth.ID,
			"x-auth-issuer":    s.hydra.Issuer(),
		}
		for k, v := range want {
			if res.Headers[k] != v {
				t.Errorf("upstream header %s = %q, want %q", k, res.Headers[k], v)
			}
		}
		if sc := res.Headers["x-auth-scope"]; !strings.Contains(sc, "read") {
			t.Errorf("x-auth-scope = %q, want the granted scopes", sc)
		}
	})

	// 2. More reads inside the read window, in both header shapes Envoy
	// uses: answered from the lease, Hydra not asked.
	for _, r := range []leasegate.Request{
		{Method: "GET", Path: "/data/run1/file.root", Token: tok},
		{Method: "HEAD", Path: "/data/run1/", Token: tok, HeaderMap: true},
		{Method: "PROPFIND", Path: "/data/", Token: tok, Headers: map[string]string{"depth": "1"}},
	} {
		s.expect(t, r, expectation{allowed: true, lease: "hit", tier: "read", calls: 0})
	}
	// A write inside the write window (1s) is a hit too.
	if since := time.Since(validated); since < 700*time.Millisecond {
		s.expect(t, leasegate.Request{Method: "PUT", Path: "/data/run1/new", Token: tok},
			expectation{allowed: true, lease: "hit", tier: "write", calls: 0})
	} else {
		t.Fatalf("machine too slow: %v passed before the in-window PUT", since)
	}

	// 3. After the write window closes, a write re-validates: 1 call.
	time.Sleep(time.Until(validated.Add(time.Second + 100*time.Millisecond)))
	s.expect(t, leasegate.Request{Method: "PUT", Path: "/data/run1/new", Token: tok, HeaderMap: true},
		expectation{allowed: true, lease: "miss", tier: "write", calls: 1})

	// 4. Every DELETE (window 0) asks Hydra.
	for i := range 3 {
		s.expect(t, leasegate.Request{Method: "DELETE", Path: "/data/run1/old", Token: tok, HeaderMap: i == 1},
			expectation{allowed: true, lease: "miss", tier: "critical", calls: 1})
	}
	// The DELETEs refreshed the lease: a read is a hit again.
	s.expect(t, get, expectation{allowed: true, lease: "hit", tier: "read", calls: 0})

	// 5. No token: 401 with a Bearer challenge, no issuer call.
	nt := s.expect(t, leasegate.Request{Method: "GET", Path: "/data/x"},
		expectation{allowed: false, status: http.StatusUnauthorized, tier: "read", calls: 0})
	if nt.Code != codes.Unauthenticated || bearerChallenge(nt) != `Bearer realm="`+realm+`"` {
		t.Errorf("no token: code %v, www-authenticate %q", nt.Code, bearerChallenge(nt))
	}

	if got := s.introspections() - calls0; got != 5 {
		t.Errorf("introspections at Hydra = %d, want 5 (1 GET miss + 1 PUT + 3 DELETE)", got)
	}

	t.Run("metrics agree", func(t *testing.T) {
		m := s.metrics(t)
		for _, c := range []struct {
			name   string
			labels map[string]string
			want   float64
		}{
			{"leasegate_decisions_total", map[string]string{"tier": "read", "decision": "allow", "lease": "miss"}, 1},
			{"leasegate_decisions_total", map[string]string{"tier": "read", "decision": "allow", "lease": "hit"}, 4},
			{"leasegate_decisions_total", map[string]string{"tier": "write", "decision": "allow", "lease": "hit"}, 1},
			{"leasegate_decisions_total", map[string]string{"tier": "write", "decision": "allow", "lease": "miss"}, 1},
			{"leasegate_decisions_total", map[string]string{"tier": "critical", "decision": "allow", "lease": "miss"}, 3},
			{"leasegate_decisions_total", map[string]string{"tier": "read", "decision": "deny", "lease": "none"}, 1},
			{"leasegate_decisions_total", map[string]string{"decision": "unavailable"}, 0},
			{"leasegate_decisions_total", nil, 11},
			{"leasegate_issuer_requests_total", map[string]string{"issuer": issuerName, "outcome": "active"}, 5},
			{"leasegate_issuer_requests_total", map[string]string{"issuer": issuerName, "outcome": "error"}, 0},
			{"leasegate_check_duration_seconds_count", map[string]string{"tier": "read", "lease": "hit"}, 4},
			{"leasegate_issuer_request_duration_seconds_count", map[string]string{"issuer": issuerName}, 5},
		} {
			if got := m.Delta(m0, c.name, c.labels); got != c.want {
				t.Errorf("%s%v increased by %v, want %v", c.name, c.labels, got, c.want)
			}
		}
		if n := m.Sum("leasegate_leases", nil); n < 1 {
			t.Errorf("leasegate_leases = %v, want ≥ 1", n)
		}
	})
}

// TestRevocationAtHydra: a token revoked at Hydra keeps working for reads
// only until the read window closes, and is refused at once for DELETE;
// the measured lag stays within the bound leasegate reports at GET /config.
// An admin revoke sends the next read to Hydra.
func TestRevocationAtHydra(t *testing.T) {
	t.Parallel()
	s := newStack(t, stackOptions{})
	ctx := testCtx(t, time.Minute)
	bound, err := s.leasegate.RevocationBound(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if bound.Window != 3*time.Second {
		t.Fatalf("GET /config revocation bound %v, want the read window 3s", bound.Window)
	}
	if bound.AdminRevoke != "immediate" {
		t.Errorf("revocation_bound.admin_revoke = %q, want immediate", bound.AdminRevoke)
	}

	t.Run("reads pass until the read window closes", func(t *testing.T) {
		tok := s.token(t)
		t0 := time.Now() // validated_at is after this
		s.expect(t, leasegate.Request{Method: "GET", Path: "/data/a", Token: tok}, expectation{allowed: true, lease: "miss", calls: 1})

		revokedAt := time.Now()
		if err := s.hydra.Revoke(ctx, s.oauth, tok); err != nil {
			t.Fatal(err)
		}
		if ans, err := s.hydra.Introspect(ctx, tok); err != nil || ans["active"] != false {
			t.Fatalf("Hydra still calls the revoked token active: %v %v", ans, err)
		}
		// Still allowed from the lease right after the revocation.
		s.expect(t, leasegate.Request{Method: "GET", Path: "/data/a", Token: tok}, expectation{allowed: true, lease: "hit", calls: 0})

		const poll = 50 * time.Millisecond
		var lastAllowedSent time.Time
		var refused leasegate.Result
		deadline := t0.Add(bound.Window + 3*time.Second)
		for {
			sent := time.Now()
			before := s.introspections()
			res := s.check(t, leasegate.Request{Method: "GET", Path: "/data/a", Token: tok})
			if !res.Allowed() {
				refused = res
				if calls := s.introspections() - before; calls != 1 {
					t.Errorf("the refusing read made %d introspections, want 1", calls)
				}
				break
			}
			lastAllowedSent = sent
			if sent.After(deadline) {
				t.Fatalf("revoked token still allowed %v after the revocation", time.Since(revokedAt))
			}
			time.Sleep(poll)
		}
		refusedAt := time.Now()
		lag := lastAllowedSent.Sub(revokedAt)
		t.Logf("revoked token: last read allowed %v after the revocation, refused %v after it (bound %v)",
			lag.Round(time.Millisecond), refusedAt.Sub(revokedAt).Round(time.Millisecond), bound.Window)
		if lag > bound.Window {
			t.Errorf("revoked token served %v after revocation, more than the reported bound %v", lag, bound.Window)
		}
		if refusedAt.Sub(revokedAt) > bound.Window+time.Second {
			t.Errorf("refusal came %v after revocation, want ≤ bound %v + poll slack", refusedAt.Sub(revokedAt), bound.Window)
		}
		if refusedAt.Before(t0.Add(3 * time.Second)) {
			t.Errorf("read refused %v after validation, before the 3s read window closed", refusedAt.Sub(t0))
		}
		if refused.HTTPStatus != http.StatusUnauthorized || refused.Code != codes.Unauthenticated ||
			!strings.Contains(bearerChallenge(refused), `error="invalid_token"`) {
			t.Errorf("refusal: %v www-authenticate %q", refused, bearerChallenge(refused))
		}
		var body struct {
			Error       string `json:"error"`
			Description string `json:"error_description"`
		}
		if err := json.Unmarshal([]byte(refused.Body), &body); err != nil || body.Error != "invalid_token" ||
			refused.Headers["content-type"] != "application/json" {
			t.Errorf("refusal body %q (content-type %q), want JSON with error invalid_token", refused.Body, refused.Headers["content-type"])
		}
		if strings.Contains(refused.Body, tok) || strings.Contains(bearerChallenge(refused), tok) {
			t.Errorf("the refusal echoes the token")
		}
		// Now a negative lease: refused without asking Hydra again.
		s.expect(t, leasegate.Request{Method: "GET", Path: "/data/a", Token: tok},
			expectation{status: http.StatusUnauthorized, lease: "negative", calls: 0})
	})

	t.Run("delete refused at once", func(t *testing.T) {
		tok := s.token(t)
		s.expect(t, leasegate.Request{Method: "GET", Path: "/data/b", Token: tok}, expectation{allowed: true, lease: "miss", calls: 1})
		if err := s.hydra.Revoke(ctx, s.oauth, tok); err != nil {
			t.Fatal(err)
		}
		s.expect(t, leasegate.Request{Method: "DELETE", Path: "/data/b", Token: tok},
			expectation{status: http.StatusUnauthorized, lease: "miss", tier: "critical", calls: 1})
		// The inactive answer removed the lease for every tier.
		s.expect(t, leasegate.Request{Method: "GET", Path: "/data/b", Token: tok},
			expectation{status: http.StatusUnauthorized, lease: "negative", calls: 0})
	})

	t.Run("admin revoke", func(t *testing.T) {
		tok := s.token(t)
		s.expect(t, leasegate.Request{Method: "GET", Path: "/data/c", Token: tok}, expectation{allowed: true, lease: "miss", calls: 1})
		s.expect(t, leasegate.Request{Method: "GET", Path: "/data/c", Token: tok}, expectation{allowed: true, lease: "hit", calls: 0})
		found, err := s.leasegate.AdminRevoke(ctx, tok, "")
		if err != nil || !found {
			t.Fatalf("POST /revoke: found=%v err=%v", found, err)
		}
		// The token is still active at Hydra: the next read re-validates.
		s.expect(t, leasegate.Request{Method: "GET", Path: "/data/c", Token: tok}, expectation{allowed: true, lease: "miss", calls: 1})
	})
}

// TestCoalescing: 100 concurrent Checks with one fresh token make exactly
// one introspection; the other 99 wait for it.
func TestCoalescing(t *testing.T) {
	t.Parallel()
	// The gate holds the one issuer call until every check has been sent
	// and had time to reach leasegate, so all of them find it in flight
	// whatever the machine's speed. The issuer timeout leaves room for that.
	s := newStack(t, stackOptions{Timeout: 10 * time.Second})
	tok := s.token(t)
	m0 := s.metrics(t)
	calls0 := s.introspections()
	release := s.gate.Hold()
	defer release()

	const n = 100
	start := make(chan struct{})
	var sent atomic.Int32
	results := make(chan leasegate.Result, n)
	errs := make(chan error, n)
	ctx := testCtx(t, 30*time.Second)
	for range n {
		go func() {
			<-start
			sent.Add(1)
			res, err := s.client.Check(ctx, leasegate.Request{Method: "GET", Path: "/data/hot", Token: tok})
			if err != nil {
				errs <- err
				return
			}
			results <- res
		}()
	}
	close(start)
	for deadline := time.Now().Add(5 * time.Second); sent.Load() < n && time.Now().Before(deadline); {
		time.Sleep(10 * time.Millisecond)
	}
	time.Sleep(750 * time.Millisecond)
	if got := s.introspections() - calls0; got != 0 {
		t.Errorf("%d introspections reached Hydra while the gate held them", got)
	}
	release()

	allowed := 0
	for range n {
		select {
		case err := <-errs:
			t.Errorf("Check: %v", err)
		case res := <-results:
			if res.Allowed() {
				allowed++
			} else {
				t.Errorf("refused: %v %s", res, res.Body)
			}
		}
	}
	if allowed != n {
		t.Errorf("%d of %d allowed", allowed, n)
	}
	if got := s.introspections() - calls0; got != 1 {
		t.Errorf("%d introspections at Hydra for %d concurrent checks, want 1", got, n)
	}
	m := s.metrics(t)
	if got := m.Delta(m0, "leasegate_coalesced_total", nil); got != n-1 {
		t.Errorf("leasegate_coalesced_total increased by %v, want %d", got, n-1)
	}
	if got := m.Delta(m0, "leasegate_issuer_requests_total", map[string]string{"outcome": "active"}); got != 1 {
		t.Errorf("leasegate_issuer_requests_total{outcome=active} increased by %v, want 1", got)
	}
	if got := m.Delta(m0, "leasegate_decisions_total", map[string]string{"tier": "read", "decision": "allow", "lease": "miss"}); got != n {
		t.Errorf("read allow decisions with lease miss increased by %v, want %d", got, n)
	}
}

// TestIssuerDown: with the issuer hanging, answering 503, or stopped, a
// DELETE fails closed with 503 + Retry-After within the issuer timeout,
// while a read within stale_if_error is served from the old lease and
// counted as stale.
func TestIssuerDown(t *testing.T) {
	t.Parallel()
	const timeout = 500 * time.Millisecond
	s := newStack(t, stackOptions{
		Tiers:   leasegate.StandardTiers(time.Second, time.Second, 0, 30*time.Second),
		Timeout: timeout,
	})
	ctx := testCtx(t, time.Minute)
	bound, err := s.leasegate.RevocationBound(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if bound.WithStaleIfError != 30*time.Second {
		t.Errorf("revocation bound with stale_if_error = %v, want 30s", bound.WithStaleIfError)
	}
	tok := s.token(t)
	m0 := s.metrics(t)
	s.expect(t, leasegate.Request{Method: "GET", Path: "/data/d", Token: tok}, expectation{allowed: true, lease: "miss", calls: 1})
	validated := time.Now()

	unavailable := func(t *testing.T, res leasegate.Result, maxLatency time.Duration) {
		t.Helper()
		if res.Allowed() || res.HTTPStatus != http.StatusServiceUnavailable || res.Code != codes.Unavailable {
			t.Errorf("want 503 UNAVAILABLE, got %v %s", res, res.Body)
		}
		if ra := res.Headers["retry-after"]; ra == "" || strings.Trim(ra, "0123456789") != "" || ra == "0" {
			t.Errorf("retry-after = %q, want a positive number of seconds", ra)
		}
		if _, ok := res.Headers["www-authenticate"]; ok {
			t.Errorf("503 carries www-authenticate %q; SPEC §3 says none", res.Headers["www-authenticate"])
		}
		if res.Latency > maxLatency {
			t.Errorf("503 took %v, want ≤ %v", res.Latency, maxLatency)
		}
	}
	stale := func(t *testing.T) {
		t.Helper()
		res := s.check(t, leasegate.Request{Method: "GET", Path: "/data/d", Token: tok})
		if !res.Allowed() || res.Lease() != "stale" {
			t.Errorf("read within stale_if_error: %v %s, want allowed with lease stale", res, res.Body)
		}
	}

	t.Run("issuer hangs", func(t *testing.T) {
		s.gate.SetHang(true)
		defer s.gate.SetHang(false)
		res := s.check(t, leasegate.Request{Method: "DELETE", Path: "/data/d", Token: tok})
		unavailable(t, res, timeout+time.Second)
		if res.Latency < timeout-50*time.Millisecond {
			t.Errorf("503 after %v, before the %v issuer timeout: was the issuer really asked?", res.Latency, timeout)
		}
		t.Logf("DELETE with a hanging issuer: 503 after %v (timeout %v)", res.Latency.Round(time.Millisecond), timeout)
		// The read window (1s) is over: the read needs the issuer, which
		// hangs, and falls back to the 30s stale allowance.
		time.Sleep(time.Until(validated.Add(time.Second + 50*time.Millisecond)))
		stale(t)
	})

	t.Run("issuer answers 503", func(t *testing.T) {
		s.admin.FailWith(http.StatusServiceUnavailable)
		defer s.admin.FailWith(0)
		unavailable(t, s.check(t, leasegate.Request{Method: "DELETE", Path: "/data/d", Token: tok}), time.Second)
		stale(t)
	})

	t.Run("hydra stopped", func(t *testing.T) {
		if err := s.hydra.Stop(); err != nil {
			t.Fatal(err)
		}
		unavailable(t, s.check(t, leasegate.Request{Method: "DELETE", Path: "/data/d", Token: tok}), time.Second)
		stale(t)
		// A token leasegate never validated has nothing stale to fall back on.
		unavailable(t, s.check(t, leasegate.Request{Method: "GET", Path: "/data/d", Token: "ory_at_neverseen.abc"}), time.Second)
	})

	m := s.metrics(t)
	if got := m.Delta(m0, "leasegate_decisions_total", map[string]string{"tier": "read", "decision": "allow", "lease": "stale"}); got != 3 {
		t.Errorf("stale read decisions increased by %v, want 3", got)
	}
	if got := m.Delta(m0, "leasegate_decisions_total", map[string]string{"decision": "unavailable"}); got != 4 {
		t.Errorf("unavailable decisions increased by %v, want 4", got)
	}
	failed := m.Delta(m0, "leasegate_issuer_requests_total", map[string]string{"outcome": "error"}) +
		m.Delta(m0, "leasegate_issuer_requests_total", map[string]string{"outcome": "circuit_open"})
	if failed < 6 {
		t.Errorf("issuer requests with outcome error or circuit_open increased by %v, want ≥ 6", failed)
	}
}
