package authz

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"regexp"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/leasegate/leasegate/authz/issuer"
	"github.com/leasegate/leasegate/internal/testclock"
	"github.com/leasegate/leasegate/leasecache"
	"github.com/leasegate/leasegate/policy"
)

// The engine tests drive authz.Engine end to end against httptest
// introspection issuers, with a controllable clock shared by the engine,
// the lease cache and the circuit breaker.

const (
	engIssuerName = "hydra"
	engIss        = "https://issuer.example.org/"
	engClientID   = "leasegate"
	engSecret     = "s3cret"
	engRealm      = "leasegate"
)

// newEngClock is the engine tests' clock, at a fixed start.
func newEngClock() *testclock.Clock {
	return testclock.New(time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC))
}

// engHeaders is a map-based Headers; names are lower-case, each value is one
// header field as the proxy received it.
type engHeaders map[string][]string

func (h engHeaders) Get(name string) (string, int) {
	v := h[name]
	if len(v) == 0 {
		return "", 0
	}
	return strings.Join(v, ","), len(v) // as the shipped readers join them
}

func (h engHeaders) UnderscoreName(match func(string) bool) string {
	for k := range h {
		if strings.IndexByte(k, '_') >= 0 && match(k) {
			return k
		}
	}
	return ""
}

func bearer(tok string) engHeaders { return engHeaders{"authorization": {"Bearer " + tok}} }

// engIssuerServer is an RFC 7662 introspection endpoint. Known tokens get
// their configured answer, others {"active": false}; a fault handler, when
// set, answers everything instead. It checks client_secret_basic.
type engIssuerServer struct {
	*httptest.Server
	calls atomic.Int64

	mu      sync.Mutex
	answers map[string]map[string]any
	fault   http.HandlerFunc
	hook    func(*http.Request) // runs before a normal answer (delays, gates)
}

func newEngIssuerServer(t testing.TB) *engIssuerServer {
	t.Helper()
	s := &engIssuerServer{answers: map[string]map[string]any{}}
	s.Server = httptest.NewServer(http.HandlerFunc(s.serve))
	t.Cleanup(s.Close)
	return s
}

func (s *engIssuerServer) serve(w http.ResponseWriter, r *http.Request) {
	s.calls.Add(1)
	s.mu.Lock()
	fault, hook := s.fault, s.hook
	s.mu.Unlock()
	if fault != nil {
		fault(w, r)
		return
	}
	if hook != nil {
		hook(r)
	}
	if id, secret, ok := r.BasicAuth(); !ok || id != engClientID || secret != engSecret {
		http.Error(w, `{"error":"invalid_client"}`, http.StatusUnauthorized)
		return
	}
	if err := r.ParseForm(); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	s.mu.Lock()
	ans, ok := s.answers[r.PostForm.Get("token")]
	s.mu.Unlock()
	if !ok {
		ans = map[string]any{"active": false}
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(ans)
}

func (s *engIssuerServer) setAnswer(tok string, ans map[string]any) {
	s.mu.Lock()
	s.answers[tok] = ans
	s.mu.Unlock()
}

func (s *engIssuerServer) setHook(h func(*http.Request)) {
	s.mu.Lock()
	s.hook = h
	s.mu.Unlock()
}

func (s *engIssuerServer) setFault(h http.HandlerFunc) {
	s.mu.Lock()
	s.fault = h
	s.mu.Unlock()
}

// lockedBuffer collects log output written from several goroutines.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// engOpts varies the test engine; zero values give the default tiers, no
// routes, one introspection issuer that is default_for_opaque.
type engOpts struct {
	tiers  []policy.TierConfig
	routes []policy.RouteConfig
	issuer func(*IssuerConfig)
	config func(*Config)
}

type engEnv struct {
	clock   *testclock.Clock
	cache   *leasecache.Cache
	eng     *Engine
	iss     *engIssuerServer
	reg     *prometheus.Registry
	metrics *Metrics
	logs    *lockedBuffer
}

func newEngEnv(t testing.TB, o engOpts) *engEnv {
	t.Helper()
	env := &engEnv{clock: newEngClock(), iss: newEngIssuerServer(t), reg: prometheus.NewRegistry(), logs: &lockedBuffer{}}
	tiers := o.tiers
	if tiers == nil {
		tiers = policy.DefaultTiers()
	}
	pol, err := policy.New(policy.Config{Tiers: tiers, LeaseMax: 10 * time.Minute, Routes: o.routes})
	if err != nil {
		t.Fatal(err)
	}
	env.cache, err = leasecache.New(leasecache.Config{MaxMemoryMB: 8, NegativeTTL: 10 * time.Second, MaxAge: 10 * time.Minute, Now: env.clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = env.cache.Close() })
	if env.metrics, err = NewMetrics(env.reg); err != nil {
		t.Fatal(err)
	}
	ic := IssuerConfig{
		Name:             engIssuerName,
		Issuer:           engIss,
		Mode:             ModeIntrospection,
		DefaultForOpaque: true,
		Introspection: issuer.IntrospectionConfig{
			Endpoint:     env.iss.URL + "/introspect",
			ClientID:     engClientID,
			ClientSecret: engSecret,
			Timeout:      2 * time.Second,
		},
		// Out of the way unless a test is about the breaker.
		BreakerFailures: 1000,
		BreakerOpenFor:  5 * time.Second,
	}
	if o.issuer != nil {
		o.issuer(&ic)
	}
	cfg := Config{
		Realm:    engRealm,
		Policy:   pol,
		Cache:    env.cache,
		Issuers:  []IssuerConfig{ic},
		Upstream: UpstreamHeaderNames{Subject: "x-auth-subject", ClientID: "x-auth-client-id", Scope: "x-auth-scope", Issuer: "x-auth-issuer"},
		Now:      env.clock.Now,
		Logger:   slogJSON(env.logs),
		Metrics:  env.metrics,
	}
	if o.config != nil {
		o.config(&cfg)
	}
	env.eng, err = New(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(env.eng.Close)
	return env
}

// active is an introspection answer for a good token, expiring in an hour.
func (env *engEnv) active(mod func(map[string]any)) map[string]any {
	a := map[string]any{
		"active":    true,
		"iss":       engIss,
		"sub":       "alice",
		"client_id": "cli-1",
		"scope":     "openid storage.read:/atlas",
		"exp":       env.clock.Now().Add(time.Hour).Unix(),
	}
	if mod != nil {
		mod(a)
	}
	return a
}

func (env *engEnv) check(method, path, tok string) Decision {
	return env.eng.Check(context.Background(), &Request{Method: method, Path: path, Host: "storage.example.org", Headers: bearer(tok)})
}

func (env *engEnv) calls() int64 { return env.iss.calls.Load() }

func (env *engEnv) decisions(tier, decision, lease string) float64 {
	return env.counter("leasegate_decisions_total", "tier", tier, "decision", decision, "lease", lease)
}

func (env *engEnv) issuerRequests(outcome string) float64 {
	return env.counter("leasegate_issuer_requests_total", "issuer", engIssuerName, "outcome", outcome)
}

// eventually polls cond until it holds or 5s pass.
func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// leaseStep is one request in a lease-tier scenario: advance the clock by
// at, send method, then expect the issuer call count and lease outcome.
type leaseStep struct {
	at        time.Duration // since the previous step
	method    string
	wantCalls int64 // cumulative issuer calls after the step
	wantLease LeaseOutcome
	wantAllow bool
}

func runLeaseSteps(t *testing.T, env *engEnv, tok string, steps []leaseStep) {
	t.Helper()
	start := env.clock.Now()
	for i, s := range steps {
		env.clock.Advance(s.at)
		d := env.check(s.method, "/f", tok)
		el := env.clock.Now().Sub(start)
		if d.Lease != s.wantLease || env.calls() != s.wantCalls || d.Allow != s.wantAllow {
			t.Fatalf("step %d (%s at +%s): lease=%s calls=%d allow=%v (reason %s); want lease=%s calls=%d allow=%v",
				i, s.method, el, d.Lease, env.calls(), d.Allow, d.Reason, s.wantLease, s.wantCalls, s.wantAllow)
		}
	}
}

func TestEngineLeaseTiers(t *testing.T) {
	const tok = "opaque-token-tiers"
	tests := []struct {
		name  string
		exp   time.Duration // token lifetime from the start; 0: one hour
		steps []leaseStep
	}{
		{
			name: "read window, write window, critical always",
			steps: []leaseStep{
				{0, "GET", 1, LeaseMiss, true},
				{30 * time.Second, "GET", 1, LeaseHit, true},
				{0, "HEAD", 1, LeaseHit, true},
				// write window (5s) closed long ago: a fresh validation at +30s
				{0, "PUT", 2, LeaseMiss, true},
				{4 * time.Second, "PUT", 2, LeaseHit, true},
				{time.Second, "PUT", 3, LeaseMiss, true}, // exactly +5s after the last validation
				// window 0: every DELETE is validated, even right after another
				{0, "DELETE", 4, LeaseMiss, true},
				{0, "DELETE", 5, LeaseMiss, true},
				{0, "FOOBAR", 6, LeaseMiss, true}, // unlisted method: default tier critical
				// last validation at +35s: the read window runs to +95s
				{59 * time.Second, "GET", 6, LeaseHit, true},
				{time.Second, "GET", 7, LeaseMiss, true},
			},
		},
		{
			name: "a hit never restarts the clock",
			steps: func() []leaseStep {
				s := []leaseStep{{0, "GET", 1, LeaseMiss, true}}
				for range 59 {
					s = append(s, leaseStep{time.Second, "GET", 1, LeaseHit, true})
				}
				return append(s, leaseStep{time.Second, "GET", 2, LeaseMiss, true})
			}(),
		},
		{
			name: "a fresh validation restarts every tier",
			steps: []leaseStep{
				{0, "GET", 1, LeaseMiss, true},
				{50 * time.Second, "DELETE", 2, LeaseMiss, true},
				{4 * time.Second, "PUT", 2, LeaseHit, true},  // write window counts from the DELETE
				{50 * time.Second, "GET", 2, LeaseHit, true}, // +104s: read window counts from +50s
				{6 * time.Second, "GET", 3, LeaseMiss, true},
			},
		},
		{
			name: "never served past exp",
			exp:  20 * time.Second,
			steps: []leaseStep{
				{0, "GET", 1, LeaseMiss, true},
				{19*time.Second + 999*time.Millisecond, "GET", 1, LeaseHit, true},
				// At exp the lease is gone; the issuer still (wrongly) says
				// active with the same exp: the engine refuses it itself.
				{time.Millisecond, "GET", 2, LeaseMiss, false},
				{time.Second, "GET", 2, LeaseNegative, false},
			},
		},
		{
			name: "inactive token: negative lease for every tier, then one call",
			exp:  -1, // the issuer does not know the token
			steps: []leaseStep{
				{0, "GET", 1, LeaseMiss, false},
				{time.Second, "GET", 1, LeaseNegative, false},
				{time.Second, "PUT", 1, LeaseNegative, false},
				{time.Second, "DELETE", 1, LeaseNegative, false},
				{6*time.Second + 999*time.Millisecond, "DELETE", 1, LeaseNegative, false},
				{time.Millisecond, "DELETE", 2, LeaseMiss, false}, // negative_ttl (10s) is over
				{0, "GET", 2, LeaseNegative, false},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := newEngEnv(t, engOpts{})
			switch {
			case tt.exp == 0:
				env.iss.setAnswer(tok, env.active(nil))
			case tt.exp > 0:
				env.iss.setAnswer(tok, env.active(func(a map[string]any) { a["exp"] = env.clock.Now().Add(tt.exp).Unix() }))
			}
			runLeaseSteps(t, env, tok, tt.steps)
		})
	}
}

func TestEngineDenialDecisions(t *testing.T) {
	// The exact decision for token verdicts, including the negative lease
	// that follows.
	tests := []struct {
		name       string
		answer     map[string]any
		audiences  []string
		wantReason Reason
		wantDesc   string
	}{
		{"inactive", map[string]any{"active": false}, nil, ReasonInactive, "token is not active"},
		{"expired by exp", map[string]any{"active": true, "exp": 1}, nil, ReasonExpired, "token expired"},
		{"iss mismatch in the answer", map[string]any{"active": true, "iss": "https://evil.example/"}, nil, ReasonInvalidToken, "token issuer not accepted"},
		{"audience not accepted", map[string]any{"active": true, "aud": []string{"https://other.example"}}, []string{"https://storage.example.org"}, ReasonAudience, "audience not accepted"},
		{"no audience when audiences are configured", map[string]any{"active": true}, []string{"https://storage.example.org"}, ReasonAudience, "audience not accepted"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := newEngEnv(t, engOpts{issuer: func(ic *IssuerConfig) { ic.Audiences = tt.audiences }})
			const tok = "opaque-denied"
			env.iss.setAnswer(tok, tt.answer)
			d := env.check("GET", "/f", tok)
			want := Decision{
				Status:      http.StatusUnauthorized,
				Error:       ErrCodeInvalidToken,
				Description: tt.wantDesc,
				Challenge:   `Bearer realm="leasegate", error="invalid_token", error_description="` + tt.wantDesc + `"`,
				Reason:      tt.wantReason,
				Tier:        policy.TierRead,
				Lease:       LeaseMiss,
				Issuer:      engIssuerName,
				TokenID:     leasecache.KeyOf(tok).Prefix(),
			}
			assertDecision(t, d, want)
			if env.calls() != 1 {
				t.Fatalf("issuer calls = %d, want 1", env.calls())
			}
			// Negative lease: even a window-0 request does not reach the issuer.
			env.clock.Advance(9 * time.Second)
			d = env.check("DELETE", "/f", tok)
			if d.Allow || d.Lease != LeaseNegative || d.Status != 401 || d.Error != ErrCodeInvalidToken || env.calls() != 1 {
				t.Fatalf("after denial: %+v, calls %d; want a negative-lease 401 without an issuer call", d, env.calls())
			}
		})
	}
	t.Run("audience accepted", func(t *testing.T) {
		env := newEngEnv(t, engOpts{issuer: func(ic *IssuerConfig) { ic.Audiences = []string{"a", "https://storage.example.org"} }})
		env.iss.setAnswer("opaque-aud", env.active(func(a map[string]any) { a["aud"] = []string{"x", "https://storage.example.org"} }))
		if d := env.check("GET", "/f", "opaque-aud"); !d.Allow {
			t.Fatalf("decision = %+v, want allow", d)
		}
	})
}

func assertDecision(t *testing.T, got, want Decision) {
	t.Helper()
	if got.Allow != want.Allow || got.Status != want.Status || got.Error != want.Error ||
		got.Description != want.Description || got.Scope != want.Scope || got.Challenge != want.Challenge ||
		got.Reason != want.Reason || got.Tier != want.Tier || got.Lease != want.Lease ||
		got.Issuer != want.Issuer || got.TokenID != want.TokenID || got.Identity != want.Identity {
		t.Fatalf("decision\n got %+v\nwant %+v", got, want)
	}
	if !got.Allow && (len(got.Headers) != 0 || got.Identity != (Identity{})) {
		t.Fatalf("denial carries identity: %+v", got)
	}
}

// waitInValidate waits until n goroutines are parked in Engine.validate, i.e.
// have joined the in-flight issuer call.
func waitInValidate(t *testing.T, n int) {
	t.Helper()
	buf := make([]byte, 8<<20)
	eventually(t, "callers to join the flight", func() bool {
		stacks := string(buf[:runtime.Stack(buf, true)])
		got := 0
		for _, g := range strings.Split(stacks, "\n\n") {
			if strings.Contains(g, "authz.(*Engine).validate(") && strings.Contains(g, "[select") {
				got++
			}
		}
		return got >= n
	})
}

func TestEngineCoalescing(t *testing.T) {
	const n = 200
	env := newEngEnv(t, engOpts{})
	const tok = "opaque-coalesce"
	env.iss.setAnswer(tok, env.active(nil))
	release := make(chan struct{})
	env.iss.setHook(func(*http.Request) { <-release })

	decisions := make([]Decision, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { decisions[i] = env.check("GET", "/f", tok) })
	}
	waitInValidate(t, n)
	close(release)
	wg.Wait()

	if got := env.calls(); got != 1 {
		t.Fatalf("issuer calls = %d, want 1", got)
	}
	for i, d := range decisions {
		if !d.Allow || d.Lease != LeaseMiss || d.Identity.Subject != "alice" || d.Reason != ReasonAllowed {
			t.Fatalf("decision %d = %+v, want the shared allow", i, d)
		}
	}
	if got := env.counter("leasegate_coalesced_total"); got != n-1 {
		t.Fatalf("leasegate_coalesced_total = %v, want %d", got, n-1)
	}
	if got := env.decisions("read", "allow", "miss"); got != n {
		t.Fatalf("decisions{read,allow,miss} = %v, want %d", got, n)
	}
	if got := env.issuerRequests("active"); got != 1 {
		t.Fatalf("issuer_requests{active} = %v, want 1", got)
	}
}

func TestEngineShortDeadlineStillFillsLease(t *testing.T) {
	env := newEngEnv(t, engOpts{})
	const tok = "opaque-slow"
	env.iss.setAnswer(tok, env.active(nil))
	answered := make(chan struct{})
	env.iss.setHook(func(*http.Request) {
		time.Sleep(300 * time.Millisecond)
		close(answered) // the answer is written right after
	})

	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	start := time.Now()
	d := env.eng.Check(ctx, &Request{Method: "GET", Path: "/f", Headers: bearer(tok)})
	took := time.Since(start)
	if d.Allow || d.Status != http.StatusServiceUnavailable || d.RetryAfter < time.Second || d.Reason != ReasonCanceled {
		t.Fatalf("decision = %+v, want 503 canceled with Retry-After", d)
	}
	if took > 150*time.Millisecond {
		t.Fatalf("caller waited %s, want about its 50ms deadline", took)
	}

	<-answered
	key := leasecache.KeyOf(tok)
	eventually(t, "the lease to be filled", func() bool {
		_, o := env.cache.Lookup(key, time.Minute)
		return o == leasecache.Hit
	})
	d = env.check("GET", "/f", tok)
	if !d.Allow || d.Lease != LeaseHit || env.calls() != 1 {
		t.Fatalf("next check = %+v, calls %d; want a hit without a new call", d, env.calls())
	}
}

func TestEngineIssuerFaults(t *testing.T) {
	tests := []struct {
		name    string
		handler http.HandlerFunc // nil: the issuer's normal handler
		issuer  func(*IssuerConfig)
	}{
		{name: "500", handler: func(w http.ResponseWriter, _ *http.Request) {
			http.Error(w, "boom", http.StatusInternalServerError)
		}},
		{name: "503 with Retry-After", handler: func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Retry-After", "7")
			w.WriteHeader(http.StatusServiceUnavailable)
		}},
		{name: "HTML error page with 200", handler: func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Content-Type", "text/html")
			_, _ = w.Write([]byte("<html><body>Login required</body></html>"))
		}},
		{name: `active as the string "true"`, handler: func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			_, _ = w.Write([]byte(`{"active":"true","sub":"alice"}`))
		}},
		{name: "timeout", issuer: func(ic *IssuerConfig) { ic.Introspection.Timeout = 100 * time.Millisecond },
			handler: func(w http.ResponseWriter, r *http.Request) {
				// Reading the body lets the server notice the client hang up.
				_, _ = io.Copy(io.Discard, r.Body)
				select {
				case <-r.Context().Done():
				case <-time.After(2 * time.Second):
				}
			}},
		{name: "huge body", handler: func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			_, _ = w.Write([]byte(`{"active":true,"sub":"` + strings.Repeat("a", 2<<20) + `"}`))
		}},
		{name: "401 from issuer (wrong client secret)", issuer: func(ic *IssuerConfig) { ic.Introspection.ClientSecret = "wrong" }},
		{name: "redirect", handler: func(w http.ResponseWriter, r *http.Request) {
			http.Redirect(w, r, "https://elsewhere.example/introspect", http.StatusFound)
		}},
		{name: "connection refused", issuer: func(ic *IssuerConfig) { ic.Introspection.Endpoint = "http://127.0.0.1:1/introspect" }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := newEngEnv(t, engOpts{issuer: tt.issuer})
			const tok = "opaque-fault"
			env.iss.setAnswer(tok, env.active(nil))
			if tt.handler != nil {
				env.iss.setFault(tt.handler)
			}
			d := env.check("GET", "/f", tok)
			if d.Allow || d.Status != http.StatusServiceUnavailable || d.RetryAfter < time.Second ||
				d.Reason != ReasonIssuerUnavailable || d.Error != "" || d.Challenge != "" || d.Identity != (Identity{}) || d.Headers != nil {
				t.Fatalf("decision = %+v, want 503 issuer_unavailable with Retry-After", d)
			}
			if got := env.issuerRequests("error"); got != 1 {
				t.Fatalf("issuer_requests{outcome=error} = %v, want 1", got)
			}
			if got := env.decisions("read", "unavailable", "miss"); got != 1 {
				t.Fatalf("decisions{read,unavailable,miss} = %v, want 1", got)
			}
			// A fault is not a verdict: no negative lease, the next request asks again.
			before := env.calls()
			_ = env.check("GET", "/f", tok)
			if tt.name != "connection refused" && env.calls() != before+1 {
				t.Fatalf("issuer calls %d → %d: a fault must not be cached", before, env.calls())
			}
		})
	}
	t.Run("Retry-After from the issuer is passed on", func(t *testing.T) {
		env := newEngEnv(t, engOpts{})
		env.iss.setFault(func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Retry-After", "7")
			w.WriteHeader(http.StatusServiceUnavailable)
		})
		if d := env.check("GET", "/f", "opaque-x"); d.RetryAfter != 7*time.Second || d.RetryAfterSeconds() != "7" {
			t.Fatalf("RetryAfter = %s, want 7s", d.RetryAfter)
		}
	})
}

func TestEngineStaleIfError(t *testing.T) {
	tiers := policy.DefaultTiers()
	tiers[0].StaleIfError = 5 * time.Minute
	fail := func(w http.ResponseWriter, _ *http.Request) { http.Error(w, "down", http.StatusBadGateway) }
	const tok = "opaque-stale"

	t.Run("read tier serves stale while the issuer fails, up to stale_if_error", func(t *testing.T) {
		env := newEngEnv(t, engOpts{tiers: tiers})
		env.iss.setAnswer(tok, env.active(nil))
		if d := env.check("GET", "/f", tok); !d.Allow || d.Lease != LeaseMiss {
			t.Fatalf("first GET = %+v", d)
		}
		env.clock.Advance(2 * time.Minute)
		env.iss.setFault(fail)
		d := env.check("GET", "/f", tok)
		if !d.Allow || d.Lease != LeaseStale || d.Reason != ReasonStale || d.Identity.Subject != "alice" || env.calls() != 2 {
			t.Fatalf("GET at +2m = %+v, calls %d; want a stale allow after one issuer attempt", d, env.calls())
		}
		if got := env.decisions("read", "allow", "stale"); got != 1 {
			t.Fatalf("decisions{read,allow,stale} = %v, want 1", got)
		}
		// A stale allowance does not move validated_at.
		env.clock.Advance(2*time.Minute + 59*time.Second)
		if d := env.check("HEAD", "/f", tok); !d.Allow || d.Lease != LeaseStale {
			t.Fatalf("HEAD at +4m59s = %+v, want stale allow", d)
		}
		env.clock.Advance(time.Second)
		if d := env.check("GET", "/f", tok); d.Allow || d.Status != 503 || d.Reason != ReasonIssuerUnavailable {
			t.Fatalf("GET at +5m = %+v, want 503", d)
		}
		// Write tier has no stale_if_error.
		if d := env.check("PUT", "/f", tok); d.Allow || d.Status != 503 {
			t.Fatalf("PUT = %+v, want 503", d)
		}
	})
	t.Run("window-0 tier gets 503 even with a fresh lease", func(t *testing.T) {
		env := newEngEnv(t, engOpts{tiers: tiers})
		env.iss.setAnswer(tok, env.active(nil))
		if d := env.check("GET", "/f", tok); !d.Allow {
			t.Fatalf("first GET = %+v", d)
		}
		env.iss.setFault(fail)
		if d := env.check("DELETE", "/f", tok); d.Allow || d.Status != 503 || d.RetryAfter < time.Second {
			t.Fatalf("DELETE = %+v, want 503", d)
		}
		if d := env.check("GET", "/f", tok); !d.Allow || d.Lease != LeaseHit {
			t.Fatalf("GET inside the window = %+v, want hit", d)
		}
	})
	t.Run("route window 0 gets no stale allowance", func(t *testing.T) {
		zero := time.Duration(0)
		env := newEngEnv(t, engOpts{tiers: tiers, routes: []policy.RouteConfig{{Prefix: "/admin/", Window: &zero}}})
		env.iss.setAnswer(tok, env.active(nil))
		if d := env.check("GET", "/admin/x", tok); !d.Allow || d.Lease != LeaseMiss {
			t.Fatalf("first GET = %+v", d)
		}
		if d := env.check("GET", "/admin/x", tok); !d.Allow || d.Lease != LeaseMiss || env.calls() != 2 {
			t.Fatalf("second GET = %+v, calls %d; want a fresh validation (window 0)", d, env.calls())
		}
		env.iss.setFault(fail)
		if d := env.check("GET", "/admin/x", tok); d.Allow || d.Status != 503 {
			t.Fatalf("GET on a window-0 route while the issuer fails = %+v, want 503", d)
		}
		if d := env.check("GET", "/other", tok); !d.Allow || d.Lease != LeaseHit {
			t.Fatalf("GET elsewhere = %+v, want a hit", d)
		}
	})
	t.Run("stale never past exp", func(t *testing.T) {
		env := newEngEnv(t, engOpts{tiers: tiers})
		env.iss.setAnswer(tok, env.active(func(a map[string]any) { a["exp"] = env.clock.Now().Add(90 * time.Second).Unix() }))
		_ = env.check("GET", "/f", tok)
		env.iss.setFault(fail)
		env.clock.Advance(80 * time.Second)
		if d := env.check("GET", "/f", tok); !d.Allow || d.Lease != LeaseStale {
			t.Fatalf("GET at +80s = %+v, want stale", d)
		}
		env.clock.Advance(10 * time.Second)
		if d := env.check("GET", "/f", tok); d.Allow {
			t.Fatalf("GET at exp = %+v, want no allow", d)
		}
	})
}

// unsignedJWT is a JWT-shaped token with the given iss; its signature is
// garbage, which must not matter when the issuer is refused first.
func unsignedJWT(t testing.TB, iss string) string {
	t.Helper()
	enc := func(v any) string {
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		return base64.RawURLEncoding.EncodeToString(b)
	}
	return enc(map[string]any{"alg": "RS256", "typ": "JWT"}) + "." + enc(map[string]any{"iss": iss, "sub": "mallory", "exp": 4102444800}) + ".c2lnbmF0dXJl"
}

func TestEngineIssuerSelection(t *testing.T) {
	tests := []struct {
		name       string
		opaque     bool // the issuer is default_for_opaque
		token      func(t *testing.T) string
		wantReason Reason
	}{
		{"JWT from an unknown issuer", true, func(t *testing.T) string { return unsignedJWT(t, "https://unknown.example/") }, ReasonUnknownIssuer},
		{"JWT without iss", true, func(t *testing.T) string { return unsignedJWT(t, "") }, ReasonUnknownIssuer},
		{"opaque token, no default_for_opaque issuer", false, func(*testing.T) string { return "opaque-nobody" }, ReasonUnknownIssuer},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := newEngEnv(t, engOpts{issuer: func(ic *IssuerConfig) { ic.DefaultForOpaque = tt.opaque }})
			tok := tt.token(t)
			env.iss.setAnswer(tok, env.active(nil)) // would be allowed if it ever got there
			d := env.check("GET", "/f", tok)
			assertDecision(t, d, Decision{
				Status:      http.StatusUnauthorized,
				Error:       ErrCodeInvalidToken,
				Description: "token issuer is not accepted",
				Challenge:   `Bearer realm="leasegate", error="invalid_token", error_description="token issuer is not accepted"`,
				Reason:      tt.wantReason,
				Tier:        policy.TierRead,
				Lease:       LeaseMiss,
				TokenID:     leasecache.KeyOf(tok).Prefix(),
			})
			if env.calls() != 0 {
				t.Fatalf("issuer calls = %d, want 0", env.calls())
			}
		})
	}
	t.Run("JWT with a configured iss goes to that issuer", func(t *testing.T) {
		env := newEngEnv(t, engOpts{issuer: func(ic *IssuerConfig) { ic.DefaultForOpaque = false }})
		tok := unsignedJWT(t, engIss)
		env.iss.setAnswer(tok, env.active(nil))
		if d := env.check("GET", "/f", tok); !d.Allow || env.calls() != 1 || d.Identity.Issuer != engIss {
			t.Fatalf("decision = %+v, calls %d", d, env.calls())
		}
	})
}

func TestEngineStorageRoute(t *testing.T) {
	env := newEngEnv(t, engOpts{
		routes: []policy.RouteConfig{{Prefix: "/data/", Require: policy.ProfileWLCG}},
		issuer: func(ic *IssuerConfig) { ic.BasePath = "/data" },
	})
	const tok = "opaque-storage"
	env.iss.setAnswer(tok, env.active(func(a map[string]any) { a["scope"] = "storage.read:/atlas" }))
	deny := func(desc, scope string) Decision {
		return Decision{
			Status:      http.StatusForbidden,
			Error:       ErrCodeInsufficientScope,
			Description: desc,
			Scope:       scope,
			Challenge:   `Bearer realm="leasegate", error="insufficient_scope", error_description="` + desc + `", scope="` + scope + `"`,
			Reason:      ReasonScope,
			Issuer:      engIssuerName,
			TokenID:     leasecache.KeyOf(tok).Prefix(),
		}
	}
	steps := []struct {
		method, path string
		want         Decision // Tier and Lease filled below
		tier         string
		lease        LeaseOutcome
	}{
		{"GET", "/data/atlas/f", Decision{Allow: true, Status: 200, Reason: ReasonAllowed, Issuer: engIssuerName}, "read", LeaseMiss},
		{"GET", "/data/atlasx/f", deny("token scopes do not cover this operation and path", "storage.read:/atlasx/f"), "read", LeaseHit},
		{"GET", "/data/atlas/../atlasx/f", deny("token scopes do not cover this operation and path", "storage.read:/atlasx/f"), "read", LeaseHit},
		{"PUT", "/data/atlas/f", deny("token scopes do not cover this operation and path", "storage.modify:/atlas/f"), "write", LeaseHit},
		{"GET", "/data/atlas/sub/g", Decision{Allow: true, Status: 200, Reason: ReasonAllowed, Issuer: engIssuerName}, "read", LeaseHit},
		{"GET", "/elsewhere", Decision{Allow: true, Status: 200, Reason: ReasonAllowed, Issuer: engIssuerName}, "read", LeaseHit},
	}
	for _, s := range steps {
		t.Run(s.method+" "+s.path, func(t *testing.T) {
			d := env.check(s.method, s.path, tok)
			want := s.want
			want.Tier, want.Lease, want.TokenID = s.tier, s.lease, leasecache.KeyOf(tok).Prefix()
			if want.Allow {
				want.Identity = Identity{Subject: "alice", ClientID: "cli-1", Scope: "storage.read:/atlas", Issuer: engIss}
			}
			assertDecision(t, d, want)
		})
	}
	if env.calls() != 1 {
		t.Fatalf("issuer calls = %d, want 1: scopes are re-evaluated on hits without the issuer", env.calls())
	}
}

func TestEngineUpstreamHeaders(t *testing.T) {
	env := newEngEnv(t, engOpts{config: func(c *Config) {
		c.Upstream = UpstreamHeaderNames{Subject: "x-sub", ClientID: "x-cid", Scope: "x-scope", Issuer: "x-iss"}
		c.StripAuthorization = true
	}})
	const tok = "opaque-upstream"
	env.iss.setAnswer(tok, env.active(func(a map[string]any) { delete(a, "client_id") }))
	want := []Header{{"x-sub", "alice"}, {"x-cid", ""}, {"x-scope", "openid storage.read:/atlas"}, {"x-iss", engIss}}
	for _, lease := range []LeaseOutcome{LeaseMiss, LeaseHit} {
		t.Run(string(lease), func(t *testing.T) {
			d := env.check("GET", "/f", tok)
			if !d.Allow || d.Lease != lease {
				t.Fatalf("decision = %+v, want allow on a %s", d, lease)
			}
			if len(d.Headers) != len(want) {
				t.Fatalf("headers = %v, want %v", d.Headers, want)
			}
			for i := range want {
				if d.Headers[i] != want[i] {
					t.Fatalf("headers = %v, want %v", d.Headers, want)
				}
			}
			if d.Identity != (Identity{Subject: "alice", Scope: "openid storage.read:/atlas", Issuer: engIss}) {
				t.Fatalf("identity = %+v", d.Identity)
			}
			if !d.StripAuthorization {
				t.Fatal("StripAuthorization not passed through")
			}
		})
	}
}

func TestEngineRevoke(t *testing.T) {
	env := newEngEnv(t, engOpts{})
	const tok = "opaque-revoke"
	env.iss.setAnswer(tok, env.active(nil))
	runLeaseSteps(t, env, tok, []leaseStep{{0, "GET", 1, LeaseMiss, true}, {time.Second, "GET", 1, LeaseHit, true}})

	if !env.eng.Revoke(leasecache.KeyOf(tok)) {
		t.Fatal("Revoke reported nothing evicted")
	}
	runLeaseSteps(t, env, tok, []leaseStep{{time.Second, "GET", 2, LeaseMiss, true}, {time.Second, "GET", 2, LeaseHit, true}})

	env.clock.Advance(time.Second)
	for _, by := range []string{engIssuerName, engIss} {
		if err := env.eng.RevokeSubject(by, "alice"); err != nil {
			t.Fatalf("RevokeSubject(%q): %v", by, err)
		}
	}
	runLeaseSteps(t, env, tok, []leaseStep{{time.Second, "GET", 3, LeaseMiss, true}, {time.Second, "GET", 3, LeaseHit, true}})

	// Another subject's revocation leaves the lease alone.
	if err := env.eng.RevokeSubject(engIssuerName, "bob"); err != nil {
		t.Fatal(err)
	}
	runLeaseSteps(t, env, tok, []leaseStep{{time.Second, "GET", 3, LeaseHit, true}})
	if err := env.eng.RevokeSubject("nobody", "alice"); err == nil {
		t.Fatal("RevokeSubject with an unknown issuer: no error")
	}
	// Revoking a token forgets its negative lease too.
	env.iss.setAnswer(tok, map[string]any{"active": false})
	runLeaseSteps(t, env, tok, []leaseStep{{0, "DELETE", 4, LeaseMiss, false}, {0, "GET", 4, LeaseNegative, false}})
	env.eng.Revoke(leasecache.KeyOf(tok))
	runLeaseSteps(t, env, tok, []leaseStep{{0, "GET", 5, LeaseMiss, false}})
}

func TestEngineRevokeDuringValidation(t *testing.T) {
	// An admin revoke that lands while the token's validation is in flight
	// must not be undone when that (older) answer arrives.
	for _, bySubject := range []bool{false, true} {
		name := map[bool]string{false: "token", true: "subject"}[bySubject]
		t.Run(name, func(t *testing.T) {
			env := newEngEnv(t, engOpts{})
			const tok = "opaque-revoke-race"
			env.iss.setAnswer(tok, env.active(nil))
			inCall, release := make(chan struct{}), make(chan struct{})
			env.iss.setHook(func(*http.Request) { close(inCall); <-release })
			done := make(chan Decision)
			go func() { done <- env.check("GET", "/f", tok) }()
			<-inCall
			if bySubject {
				if err := env.eng.RevokeSubject(engIssuerName, "alice"); err != nil {
					t.Fatal(err)
				}
			} else {
				env.eng.Revoke(leasecache.KeyOf(tok))
			}
			env.iss.setHook(nil)
			close(release)
			<-done
			env.clock.Advance(time.Second)
			if d := env.check("GET", "/f", tok); d.Lease != LeaseMiss || env.calls() != 2 {
				t.Fatalf("after the revoke: %+v, calls %d; want a fresh validation", d, env.calls())
			}
		})
	}
}

func TestEngineCanceled(t *testing.T) {
	env := newEngEnv(t, engOpts{})
	const tok = "opaque-cancel"
	env.iss.setAnswer(tok, env.active(nil))
	if d := env.check("GET", "/f", tok); !d.Allow {
		t.Fatalf("warm-up: %+v", d)
	}
	t.Run("before the check, even with a warm lease", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		d := env.eng.Check(ctx, &Request{Method: "GET", Path: "/f", Headers: bearer(tok)})
		if d.Allow || d.Status != 503 || d.Reason != ReasonCanceled || d.RetryAfter < time.Second || d.Headers != nil {
			t.Fatalf("decision = %+v, want 503 canceled", d)
		}
	})
	t.Run("while waiting for the issuer", func(t *testing.T) {
		block := make(chan struct{})
		defer close(block)
		env.iss.setFault(func(http.ResponseWriter, *http.Request) { <-block })
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan Decision)
		go func() { done <- env.eng.Check(ctx, &Request{Method: "DELETE", Path: "/f", Headers: bearer(tok)}) }()
		eventually(t, "the issuer call", func() bool { return env.calls() == 2 })
		cancel()
		d := <-done
		if d.Allow || d.Status != 503 || d.Reason != ReasonCanceled {
			t.Fatalf("decision = %+v, want 503 canceled", d)
		}
	})
}

func TestEngineMalformedRequest(t *testing.T) {
	env := newEngEnv(t, engOpts{})
	for _, r := range []*Request{nil, {Path: "/f", Headers: bearer("x")}} {
		d := env.eng.Check(context.Background(), r)
		if d.Allow || d.Status != 400 || d.Error != ErrCodeInvalidRequest || d.Reason != ReasonMalformed {
			t.Fatalf("Check(%+v) = %+v, want 400 invalid_request", r, d)
		}
	}
	// No Headers at all is no token.
	if d := env.eng.Check(context.Background(), &Request{Method: "GET", Path: "/f"}); d.Status != 401 || d.Reason != ReasonNoToken {
		t.Fatalf("no headers: %+v", d)
	}
	if env.calls() != 0 {
		t.Fatalf("issuer calls = %d, want 0", env.calls())
	}
}

func TestEngineTierHint(t *testing.T) {
	env := newEngEnv(t, engOpts{})
	const tok = "opaque-hint"
	env.iss.setAnswer(tok, env.active(nil))
	check := func(method, hint string) Decision {
		return env.eng.Check(context.Background(), &Request{Method: method, Path: "/f", TierHint: hint, Headers: bearer(tok)})
	}
	if d := check("GET", ""); d.Lease != LeaseMiss || d.Tier != "read" {
		t.Fatalf("warm-up: %+v", d)
	}
	if d := check("GET", "critical"); d.Lease != LeaseMiss || d.Tier != "critical" || env.calls() != 2 {
		t.Fatalf("GET with hint critical: %+v calls %d", d, env.calls())
	}
	if d := check("DELETE", "read"); d.Lease != LeaseHit || d.Tier != "read" || env.calls() != 2 {
		t.Fatalf("DELETE with hint read: %+v calls %d", d, env.calls())
	}
	if d := check("GET", "no-such-tier"); d.Lease != LeaseMiss || d.Tier != "critical" {
		t.Fatalf("unknown hint must use the strictest tier: %+v", d)
	}
}

func TestEngineMetrics(t *testing.T) {
	env := newEngEnv(t, engOpts{})
	env.iss.setAnswer("good", env.active(nil))
	env.eng.Check(context.Background(), &Request{Method: "GET", Path: "/f"}) // no token
	env.check("GET", "/f", "good")                                           // miss allow
	env.check("GET", "/f", "good")                                           // hit allow
	env.check("HEAD", "/f", "good")                                          // hit allow
	env.check("DELETE", "/f", "good")                                        // miss allow
	env.check("PUT", "/f", "bad")                                            // miss deny (inactive)
	env.check("GET", "/f", "bad")                                            // negative deny
	env.check("GET", "/f", "bad,bad")                                        // malformed
	env.iss.setFault(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(500) })
	env.check("DELETE", "/f", "good") // miss unavailable

	want := map[[3]string]float64{
		{"read", "deny", "none"}:            2,
		{"read", "allow", "miss"}:           1,
		{"read", "allow", "hit"}:            2,
		{"critical", "allow", "miss"}:       1,
		{"write", "deny", "miss"}:           1,
		{"read", "deny", "negative"}:        1,
		{"critical", "unavailable", "miss"}: 1,
	}
	if got := env.seriesCount("leasegate_decisions_total"); got != len(want) {
		t.Fatalf("decision series = %d, want %d", got, len(want))
	}
	for l, n := range want {
		if got := env.decisions(l[0], l[1], l[2]); got != n {
			t.Errorf("decisions%v = %v, want %v", l, got, n)
		}
	}
	for outcome, n := range map[string]float64{"active": 2, "inactive": 1, "error": 1} {
		if got := env.issuerRequests(outcome); got != n {
			t.Errorf("issuer_requests{%s} = %v, want %v", outcome, got, n)
		}
	}
	if got := env.seriesCount("leasegate_issuer_request_duration_seconds"); got != 1 {
		t.Errorf("issuer duration series = %d, want 1", got)
	}
	if got := env.seriesCount("leasegate_check_duration_seconds"); got != 6 {
		t.Errorf("check duration series = %d, want 6", got)
	}
	// The registry exposes the names SPEC §6 lists.
	mfs, err := env.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]bool{}
	for _, mf := range mfs {
		names[mf.GetName()] = true
	}
	for _, n := range []string{"leasegate_decisions_total", "leasegate_issuer_requests_total", "leasegate_issuer_request_duration_seconds", "leasegate_check_duration_seconds"} {
		if !names[n] {
			t.Errorf("metric %s not exposed", n)
		}
	}
	// A second NewMetrics on the same registry (engine rebuilt on reload)
	// is not an error, and counts into the series the registry exports.
	again, err := NewMetrics(env.reg)
	if err != nil {
		t.Fatalf("NewMetrics again: %v", err)
	}
	before := decisionsCounted(t, env.reg, "probe-tier")
	again.Decision(t.Context(), "probe-tier", "allow", "hit", time.Millisecond)
	if after := decisionsCounted(t, env.reg, "probe-tier"); after != before+1 {
		t.Fatalf("a decision counted by the second Metrics: registry shows %v, want %v", after, before+1)
	}
}

// decisionsCounted sums leasegate_decisions_total for tier in reg.
func decisionsCounted(t *testing.T, reg *prometheus.Registry, tier string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var n float64
	for _, mf := range mfs {
		if mf.GetName() != "leasegate_decisions_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "tier" && l.GetValue() == tier {
					n += m.GetCounter().GetValue()
				}
			}
		}
	}
	return n
}

var tokenIDField = regexp.MustCompile(`"token_id":"([0-9a-f]*)"`)

func TestEngineLogsNeverCarryTheToken(t *testing.T) {
	tests := []struct {
		name  string
		tok   string
		setup func(env *engEnv, tok string)
	}{
		{"allow", "opaque-LOGSECRET-allow-0123456789", func(env *engEnv, tok string) { env.iss.setAnswer(tok, env.active(nil)) }},
		{"inactive", "opaque-LOGSECRET-inactive-0123456789", nil},
		{"issuer fault", "opaque-LOGSECRET-fault-0123456789", func(env *engEnv, _ string) {
			env.iss.setFault(func(w http.ResponseWriter, _ *http.Request) { http.Error(w, "error page", 500) })
		}},
		{"issuer rejects our credentials", "opaque-LOGSECRET-creds-0123456789", func(env *engEnv, _ string) {
			env.iss.setFault(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(401) })
		}},
		{"scope denial", "opaque-LOGSECRET-scope-0123456789", func(env *engEnv, tok string) {
			env.iss.setAnswer(tok, env.active(func(a map[string]any) { a["scope"] = "storage.read:/atlas" }))
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := newEngEnv(t, engOpts{
				routes: []policy.RouteConfig{{Prefix: "/data/", Require: policy.ProfileWLCG}},
				issuer: func(ic *IssuerConfig) { ic.BasePath = "/data" },
			})
			if tt.setup != nil {
				tt.setup(env, tt.tok)
			}
			env.check("GET", "/data/cms/f", tt.tok)
			env.check("GET", "/data/atlas/f", tt.tok)
			env.check("DELETE", "/data/atlas/f", tt.tok)
			out := env.logs.String()
			if strings.Contains(out, "LOGSECRET") {
				t.Fatalf("log carries the token:\n%s", out)
			}
			ids := tokenIDField.FindAllStringSubmatch(out, -1)
			if len(ids) < 3 {
				t.Fatalf("want a token_id on every decision line, got %d in:\n%s", len(ids), out)
			}
			want := leasecache.KeyOf(tt.tok).Prefix()
			for _, m := range ids {
				if m[1] != want || len(m[1]) != 8 {
					t.Fatalf("token_id %q, want %q", m[1], want)
				}
			}
			for line := range strings.SplitSeq(strings.TrimSpace(out), "\n") {
				if !json.Valid([]byte(line)) {
					t.Fatalf("not a JSON log line: %s", line)
				}
			}
		})
	}
	t.Run("malformed header", func(t *testing.T) {
		env := newEngEnv(t, engOpts{})
		env.eng.Check(context.Background(), &Request{Method: "GET", Path: "/", Headers: engHeaders{"authorization": {`Bearer LOGSECRET"x`}}})
		env.eng.Check(context.Background(), &Request{Method: "GET", Path: "/", Headers: engHeaders{"authorization": {"Bearer LOGSECRETa,Bearer LOGSECRETb"}}})
		out := env.logs.String()
		if strings.Contains(out, "LOGSECRET") || !strings.Contains(out, `"reason":"malformed_request"`) {
			t.Fatalf("log:\n%s", out)
		}
	})
}

func slogJSON(w io.Writer) *slog.Logger {
	return slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// counter sums the counter family's series on env's registry whose labels
// include the name/value pairs kv; 0 when none.
func (env *engEnv) counter(family string, kv ...string) float64 {
	var v float64
	for _, m := range env.family(family) {
		if labelsMatch(m, kv) {
			v += m.GetCounter().GetValue()
		}
	}
	return v
}

// seriesCount is how many series env's registry has in family.
func (env *engEnv) seriesCount(family string) int { return len(env.family(family)) }

func (env *engEnv) family(name string) []*dto.Metric {
	mfs, err := env.reg.Gather()
	if err != nil {
		panic(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			return mf.GetMetric()
		}
	}
	return nil
}

func labelsMatch(m *dto.Metric, kv []string) bool {
	for i := 0; i+1 < len(kv); i += 2 {
		found := false
		for _, lp := range m.GetLabel() {
			if lp.GetName() == kv[i] && lp.GetValue() == kv[i+1] {
				found = true
			}
		}
		if !found {
			return false
		}
	}
	return true
}
