// Package e2e drives the built leasegate binary as a black box against a
// real ORY Hydra (see internal/hydra), with Envoy-shaped ext_authz v3
// requests (internal/leasegate), counting every call leasegate makes to the issuer.
//
// Run: cd e2e && go test -race -count=1 ./...   (LEASEGATE_BIN names the
// binary; without it the tests build one from the checkout). Tests skip
// when Hydra or leasegate are unavailable, and fail instead when
// LEASEGATE_E2E_REQUIRE=1.
package e2e

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/leasegate/leasegate/e2e/internal/hydra"
	"github.com/leasegate/leasegate/e2e/internal/leasegate"
)

const (
	audStorage = "https://storage.example.org"
	issuerName = "hydra"
	realm      = "leasegate-e2e"
	// requireEnv makes a missing Hydra or leasegate binary a failure.
	requireEnv = "LEASEGATE_E2E_REQUIRE"
)

var (
	binOnce sync.Once
	binPath string
	binErr  error
	binDir  string // holds a leasegate built by the tests, removed by TestMain
)

func TestMain(m *testing.M) {
	code := m.Run()
	if binDir != "" {
		os.RemoveAll(binDir)
	}
	os.Exit(code)
}

// missing skips (or, with LEASEGATE_E2E_REQUIRE set, fails) a test whose
// tools are not there.
func missing(t *testing.T, what string, err error) {
	t.Helper()
	if os.Getenv(requireEnv) == "" {
		t.Skipf("skipping: %s unavailable: %v (set %s=1 to fail instead)", what, err, requireEnv)
	}
	t.Fatalf("%s unavailable (%s is set): %v", what, requireEnv, err)
}

// leasegateBin returns the binary under test: $LEASEGATE_BIN, or one built
// once from this checkout.
func leasegateBin(t *testing.T) string {
	t.Helper()
	binOnce.Do(func() {
		if os.Getenv(leasegate.EnvBinary) == "" {
			if binDir, binErr = os.MkdirTemp("", "leasegate-e2e-bin-"); binErr != nil {
				return
			}
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		binPath, binErr = leasegate.Binary(ctx, binDir)
	})
	if binErr != nil {
		missing(t, "leasegate binary", binErr)
	}
	return binPath
}

func hydraBin(t *testing.T) string {
	t.Helper()
	p, err := hydra.Binary()
	if err != nil {
		if errors.Is(err, hydra.ErrBinaryMissing) {
			missing(t, "ORY Hydra", err)
		}
		t.Fatalf("hydra.Binary: %v", err)
	}
	return p
}

func testCtx(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// stackOptions describes one Hydra + leasegate set-up.
type stackOptions struct {
	JWT  bool   // Hydra issues JWT access tokens
	Mode string // leasegate issuer mode; default introspection
	// Tiers; default read 3s, write 1s, critical 0.
	Tiers map[string]leasegate.Tier
	// Timeout is the introspection timeout; default 2s (leasegate's).
	Timeout time.Duration
	Breaker *leasegate.Breaker
	// Env is extra environment for leasegate (OTEL_*).
	Env []string
}

// stack is Hydra, the issuer-side proxies and leasegate, started for one
// test and stopped at its cleanup. Introspection goes
// leasegate → gate → counting proxy → Hydra admin, so a test can count the
// calls that reached Hydra and make the issuer slow or hang.
type stack struct {
	hydra     *hydra.Server
	admin     *hydra.CountingProxy // counts introspections
	public    *hydra.CountingProxy // counts JWKS fetches (JWT modes)
	gate      *gate
	leasegate *leasegate.Process
	client    *leasegate.Client
	oauth     hydra.Client // a client_credentials client registered in Hydra
	cfg       leasegate.Config

	mu     sync.Mutex
	issued []issuedToken // every token handed out, to check leasegate never logs one

	codeMu sync.Mutex   // held while the code client is created
	code   hydra.Client // authorization-code client, created by the first codeTokens
}

// issuedToken is a token a test was given, and what kind it is.
type issuedToken struct{ kind, tok string }

func defaultTiers() map[string]leasegate.Tier {
	return leasegate.StandardTiers(3*time.Second, time.Second, 0, 0)
}

func newStack(t *testing.T, o stackOptions) *stack {
	t.Helper()
	bin := leasegateBin(t)
	ctx := testCtx(t, time.Minute)
	s := newIssuerSide(t, ctx, o.JWT)
	tiers := o.Tiers
	if tiers == nil {
		tiers = defaultTiers()
	}
	s.cfg = s.baseConfig(s.issuerConfig(o.Mode, o.Timeout, o.Breaker), tiers)
	s.leasegate = s.startLeasegate(t, ctx, bin, s.cfg, o.Env)
	var err error
	if s.client, err = leasegate.Dial(s.leasegate.GRPCAddr()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.client.Close() })
	return s
}

// newIssuerSide starts Hydra (JWT access tokens when jwt), the counting
// proxies and the gate in front of it, and registers the
// client_credentials client; everything is stopped at t's cleanup.
func newIssuerSide(t *testing.T, ctx context.Context, jwt bool) *stack {
	t.Helper()
	hbin := hydraBin(t)
	h, err := hydra.Start(ctx, hydra.Options{Binary: hbin, JWT: jwt})
	if err != nil {
		t.Fatalf("start hydra: %v", err)
	}
	s := &stack{hydra: h}
	t.Cleanup(func() {
		if err := h.Stop(); err != nil {
			t.Errorf("stop hydra: %v", err)
		}
		if t.Failed() {
			t.Logf("hydra log tail:\n%s", tailString(h.Logs(), 4096))
		}
	})
	if s.admin, err = hydra.NewCountingProxy(h.AdminURL()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.admin.Close() })
	if s.public, err = hydra.NewCountingProxy(h.PublicURL()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.public.Close() })
	s.gate = newGate(t, s.admin.URL())

	if s.oauth, err = h.CreateClient(ctx, hydra.ClientOptions{
		Name:     "leasegate-e2e",
		Scopes:   []string{"read", "write"},
		Audience: []string{audStorage},
	}); err != nil {
		t.Fatalf("create hydra client: %v", err)
	}
	return s
}

// issuerConfig is the issuers[] entry for s's Hydra in mode (default
// introspection), introspecting through the gate.
func (s *stack) issuerConfig(mode string, timeout time.Duration, breaker *leasegate.Breaker) leasegate.Issuer {
	mode = cmp.Or(mode, "introspection")
	iss := leasegate.Issuer{
		Name:             issuerName,
		Issuer:           s.hydra.Issuer(), // Hydra's iss: no trailing slash
		Mode:             mode,
		DefaultForOpaque: mode == "introspection", // a jwt mode cannot take opaque tokens
		Audiences:        []string{audStorage},
		CircuitBreaker:   breaker,
	}
	if mode != "jwt" {
		iss.Introspection = &leasegate.Introspection{
			Endpoint: s.gate.URL() + hydra.IntrospectPath,
			Auth:     "none", // Hydra's admin port takes no client auth
			Timeout:  leasegate.Duration(timeout),
		}
	}
	if mode != "introspection" {
		iss.JWKSURI = s.public.URL() + hydra.JWKSPath
	}
	return iss
}

// baseConfig is the e2e configuration around one issuer.
func (s *stack) baseConfig(iss leasegate.Issuer, tiers map[string]leasegate.Tier) leasegate.Config {
	return leasegate.Config{
		Realm:       realm,
		Issuers:     []leasegate.Issuer{iss},
		Tiers:       tiers,
		DefaultTier: "critical",
		Lease:       leasegate.Lease{Max: leasegate.Duration(time.Minute), NegativeTTL: leasegate.Duration(10 * time.Second)},
		Log:         leasegate.Log{Level: "info", Format: "json"},
		Server:      leasegate.Server{StartGrace: leasegate.Duration(10 * time.Second), DrainTimeout: leasegate.Duration(5 * time.Second)},
	}
}

// startLeasegate starts one leasegate with cfg, stopped at t's cleanup,
// which also checks that its log holds no token s handed out.
func (s *stack) startLeasegate(t *testing.T, ctx context.Context, bin string, cfg leasegate.Config, env []string) *leasegate.Process {
	t.Helper()
	return s.startLeasegateOpts(t, ctx, leasegate.Options{Binary: bin, Config: cfg, Dir: t.TempDir(), Env: env})
}

// startLeasegateOpts is startLeasegate for any Options (a shipped YAML
// file in ConfigYAML, for one).
func (s *stack) startLeasegateOpts(t *testing.T, ctx context.Context, opts leasegate.Options) *leasegate.Process {
	t.Helper()
	if os.Getenv("LEASEGATE_E2E_VERBOSE") != "" {
		opts.Log = &testLogWriter{t: t}
	}
	p, err := leasegate.Start(ctx, opts)
	if err != nil {
		t.Fatalf("start leasegate: %v", err)
	}
	t.Cleanup(func() {
		if err := p.Stop(); err != nil {
			t.Errorf("stop leasegate: %v", err)
		}
		// SPEC §1/§6: a raw token is never logged (a hash prefix at most).
		logs := p.Logs()
		s.mu.Lock()
		for _, it := range s.issued {
			if strings.Contains(logs, it.tok) || strings.Contains(logs, tokenCore(it.tok)) {
				t.Errorf("leasegate's log contains a raw %s", it.kind)
			}
		}
		s.mu.Unlock()
		if t.Failed() {
			t.Logf("leasegate log tail:\n%s", tailString(p.Logs(), 8192))
		}
	})
	return p
}

// token obtains a fresh access token for the stack's client.
func (s *stack) token(t *testing.T) string {
	t.Helper()
	tok, err := s.hydra.Token(testCtx(t, 10*time.Second), s.oauth, []string{"read", "write"}, []string{audStorage})
	if err != nil {
		t.Fatalf("hydra token: %v", err)
	}
	s.mu.Lock()
	s.issued = append(s.issued, issuedToken{"client_credentials access token", tok})
	s.mu.Unlock()
	return tok
}

// codeSubject is the user the stack's authorization-code flows log in.
const codeSubject = "alice@leasegate-e2e"

// codeTokens runs Hydra's authorization-code flow for codeSubject with the
// stack's code client (created on first use: scopes openid,
// offline_access, read and write, audience audStorage) and returns the
// access, refresh and ID tokens, recorded for the log check. Zero fields
// of o get those defaults (all scopes, audStorage).
func (s *stack) codeTokens(t *testing.T, o hydra.CodeFlowOptions) hydra.CodeFlowTokens {
	t.Helper()
	ctx := testCtx(t, 30*time.Second)
	scopes := []string{"openid", "offline_access", "read", "write"}
	s.codeMu.Lock()
	if s.code.ID == "" {
		c, err := s.hydra.CreateCodeClient(ctx, hydra.CodeClientOptions{
			Name: "leasegate-e2e-code", Scopes: scopes, Audience: []string{audStorage},
		})
		if err != nil {
			s.codeMu.Unlock()
			t.Fatalf("create hydra code client: %v", err)
		}
		s.code = c
	}
	c := s.code
	s.codeMu.Unlock()
	o.Subject = cmp.Or(o.Subject, codeSubject)
	if len(o.Scopes) == 0 {
		o.Scopes = scopes
	}
	if len(o.Audience) == 0 {
		o.Audience = []string{audStorage}
	}
	toks, err := s.hydra.AuthCodeFlow(ctx, c, o)
	s.mu.Lock()
	for _, it := range []issuedToken{{"access token", toks.AccessToken}, {"refresh token", toks.RefreshToken}, {"ID token", toks.IDToken}} {
		if it.tok != "" {
			s.issued = append(s.issued, it)
		}
	}
	s.mu.Unlock()
	if err != nil {
		for _, st := range toks.Steps {
			t.Logf("  %v", st)
		}
		t.Fatalf("hydra authorization-code flow: %v", err)
	}
	return toks
}

// codeClientID is the client id of the stack's authorization-code client.
func (s *stack) codeClientID() string {
	s.codeMu.Lock()
	defer s.codeMu.Unlock()
	return s.code.ID
}

// check sends one Check and fails the test on a transport error.
func (s *stack) check(t *testing.T, r leasegate.Request) leasegate.Result {
	t.Helper()
	res, err := s.client.Check(testCtx(t, 10*time.Second), r)
	if err != nil {
		t.Fatalf("%s %s: %v", r.Method, r.Path, err)
	}
	return res
}

// introspections is how many introspection calls reached Hydra.
func (s *stack) introspections() int64 { return s.admin.Count(hydra.IntrospectPath) }

// jwksFetches is how many JWKS fetches reached Hydra.
func (s *stack) jwksFetches() int64 { return s.public.Count(hydra.JWKSPath) }

func (s *stack) metrics(t *testing.T) leasegate.Metrics {
	t.Helper()
	m, err := s.leasegate.Metrics(testCtx(t, 10*time.Second))
	if err != nil {
		t.Fatalf("metrics: %v", err)
	}
	return m
}

// expectation is what one Check should have produced.
type expectation struct {
	allowed bool
	status  int    // HTTP status; 0 = 200 when allowed
	lease   string // "" = don't care
	tier    string // "" = don't care
	calls   int64  // introspections this request caused
}

// expect sends r, checks the answer against want, and returns it.
func (s *stack) expect(t *testing.T, r leasegate.Request, want expectation) leasegate.Result {
	t.Helper()
	before := s.introspections()
	res := s.check(t, r)
	calls := s.introspections() - before
	status := want.status
	if status == 0 && want.allowed {
		status = http.StatusOK
	}
	var bad []string
	if res.Allowed() != want.allowed {
		bad = append(bad, fmt.Sprintf("allowed=%v, want %v", res.Allowed(), want.allowed))
	}
	if status != 0 && res.HTTPStatus != status {
		bad = append(bad, fmt.Sprintf("HTTP %d, want %d", res.HTTPStatus, status))
	}
	if want.lease != "" && res.Lease() != want.lease {
		bad = append(bad, fmt.Sprintf("lease %q, want %q", res.Lease(), want.lease))
	}
	if want.tier != "" && res.Tier() != want.tier {
		bad = append(bad, fmt.Sprintf("tier %q, want %q", res.Tier(), want.tier))
	}
	if calls != want.calls {
		bad = append(bad, fmt.Sprintf("%d introspection(s) at Hydra, want %d", calls, want.calls))
	}
	if len(bad) > 0 {
		t.Errorf("%s %s: %s (got %v, body %s)", r.Method, r.Path, strings.Join(bad, "; "), res, res.Body)
	}
	return res
}

// gate sits between leasegate and the counting proxy and can delay or hang
// issuer calls, to force coalescing or an issuer timeout.
type gate struct {
	srv     *httptest.Server
	delay   atomic.Int64                  // nanoseconds before forwarding
	hang    atomic.Bool                   // never answer (until the caller gives up)
	hold    atomic.Pointer[chan struct{}] // forward once this channel is closed
	held    atomic.Int32                  // calls waiting on hold now
	release chan struct{}
}

func newGate(t *testing.T, target string) *gate {
	t.Helper()
	u, err := url.Parse(target)
	if err != nil {
		t.Fatal(err)
	}
	g := &gate{release: make(chan struct{})}
	rp := &httputil.ReverseProxy{Rewrite: func(r *httputil.ProxyRequest) { r.SetURL(u) }}
	g.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if g.hang.Load() {
			select {
			case <-r.Context().Done():
			case <-g.release:
			}
			http.Error(w, "gate: hung", http.StatusGatewayTimeout)
			return
		}
		if ch := g.hold.Load(); ch != nil {
			g.held.Add(1)
			select {
			case <-*ch:
			case <-r.Context().Done():
				g.held.Add(-1)
				return
			case <-g.release:
			}
			g.held.Add(-1)
		}
		if d := time.Duration(g.delay.Load()); d > 0 {
			select {
			case <-time.After(d):
			case <-r.Context().Done():
				return
			case <-g.release:
			}
		}
		rp.ServeHTTP(w, r)
	}))
	t.Cleanup(func() {
		close(g.release)
		g.srv.Close()
	})
	return g
}

// Hold makes issuer calls wait until the returned function is called.
func (g *gate) Hold() (release func()) {
	ch := make(chan struct{})
	g.hold.Store(&ch)
	var once sync.Once
	return func() {
		once.Do(func() {
			g.hold.Store(nil)
			close(ch)
		})
	}
}

// Held is how many issuer calls are waiting on Hold now.
func (g *gate) Held() int { return int(g.held.Load()) }

func (g *gate) URL() string                       { return g.srv.URL }
func (g *gate) SetDelay(d time.Duration)          { g.delay.Store(int64(d)) }
func (g *gate) SetHang(on bool)                   { g.hang.Store(on) }
func bearerChallenge(res leasegate.Result) string { return res.Headers["www-authenticate"] }

// testLogWriter copies leasegate's log into the test log
// (LEASEGATE_E2E_VERBOSE=1).
type testLogWriter struct {
	t  *testing.T
	mu sync.Mutex
}

func (w *testLogWriter) Write(b []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.t.Logf("leasegate: %s", strings.TrimRight(string(b), "\n"))
	return len(b), nil
}

func tailString(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return "…" + s[len(s)-n:]
}
