package server

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"io"
	"log"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	otelcodes "go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/leasegate/leasegate/server/config"
)

// These tests prove SPEC §2's failure rule through the real server over
// real gRPC: whatever the issuer does wrong, a Check is answered in bounded
// time with 503 + Retry-After (or a stale allow for a read inside
// stale_if_error), never with an allow by accident and never with a gRPC
// error, and nothing is left running afterwards.

// faultMode is what the fake issuer does to the next connection or request.
type faultMode int32

const (
	modeHealthy      faultMode = iota
	modeDown                   // listener closed: connection refused
	modeBlackHole              // TCP accepted, never read from or answered
	modeSlow                   // answers active, but long after the timeout
	modeFlapping               // every other call is a 500
	mode5xx                    // 500
	mode429                    // 429 with Retry-After: 30
	modeTruncated              // 200, body cut short of its Content-Length
	modeStringActive           // {"active":"true"}
	modeHugeBody               // a 10 MiB answer
	modeRedirectLoop           // 302 to itself
	modeTLS                    // TLS with a self-signed certificate
	modeHold                   // answers correctly once release is called
)

const (
	// faultTimeout is introspection.timeout in every config here.
	faultTimeout = 300 * time.Millisecond
	// loadTolerantTimeout is introspection.timeout for the flood and soak
	// tests, which count answers, not time: on two busy cores under -race a
	// healthy fake issuer can take longer than faultTimeout to answer.
	loadTolerantTimeout = 5 * time.Second
	// latencyMargin is what a 503 may take beyond the issuer timeout on a
	// busy 2-core machine under -race.
	latencyMargin = 500 * time.Millisecond
	slowFor       = 2 * time.Second
	hugeBodyBytes = 10 << 20
)

// faultIssuer is an RFC 7662 endpoint on a fixed address whose behaviour
// can be switched between healthy and every fault, so a lease made while it
// is healthy can be tested against the fault that follows.
type faultIssuer struct {
	URL    string // http://addr/introspect
	TLSURL string // https://addr/introspect, for modeTLS
	addr   net.Addr
	srv    *http.Server
	tlsCfg *tls.Config
	done   chan struct{}
	served chan struct{}
	// basic, when set, is the Authorization value every call must carry
	// (client_secret_basic); a call without it is answered 401.
	basic string
	// uncounted: no per-token counts (a soak would grow them forever).
	uncounted bool

	calls    atomic.Int64 // requests that reached the HTTP handler
	accepted atomic.Int64 // TCP connections accepted
	flap     atomic.Int64

	mu       sync.Mutex
	mode     faultMode
	ln       net.Listener  // nil while down
	lnSwap   chan struct{} // closed and replaced whenever ln changes
	closed   bool
	active   map[string]bool
	perToken map[string]int
	arrivals map[string][]time.Time
	gate     chan struct{} // modeHold waits for it

	connMu sync.Mutex
	conns  map[net.Conn]struct{}
}

// newFaultIssuer starts a healthy fake issuer. keepAlive false makes every
// answer close its connection, so goroutine counts can go back to baseline.
func newFaultIssuer(t testing.TB, keepAlive bool) *faultIssuer {
	t.Helper()
	return newFaultIssuerOpts(t, issuerOpts{keepAlive: keepAlive})
}

// issuerOpts are fixed before the issuer serves.
type issuerOpts struct {
	keepAlive bool
	uncounted bool   // see faultIssuer.uncounted
	basic     string // see faultIssuer.basic
}

func newFaultIssuerOpts(t testing.TB, o issuerOpts) *faultIssuer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	fi := &faultIssuer{
		addr:      ln.Addr(),
		tlsCfg:    selfSignedTLS(t),
		done:      make(chan struct{}),
		served:    make(chan struct{}),
		ln:        ln,
		lnSwap:    make(chan struct{}),
		active:    map[string]bool{},
		perToken:  map[string]int{},
		arrivals:  map[string][]time.Time{},
		conns:     map[net.Conn]struct{}{},
		basic:     o.basic,
		uncounted: o.uncounted,
	}
	fi.URL = "http://" + ln.Addr().String() + "/introspect"
	fi.TLSURL = "https://" + ln.Addr().String() + "/introspect"
	fi.srv = &http.Server{
		Handler:           fi,
		ReadHeaderTimeout: 5 * time.Second,
		// TLS handshake failures are the point of modeTLS, not news;
		// anything else (a panic in the handler) is.
		ErrorLog: log.New(dropTLSErrors{}, "fake issuer: ", 0),
	}
	fi.srv.SetKeepAlivesEnabled(o.keepAlive)
	go func() {
		defer close(fi.served)
		_ = fi.srv.Serve(faultListener{fi})
	}()
	t.Cleanup(fi.close)
	return fi
}

func (fi *faultIssuer) close() {
	fi.mu.Lock()
	if fi.closed {
		fi.mu.Unlock()
		return
	}
	fi.closed = true
	close(fi.done)
	if fi.ln != nil {
		fi.ln.Close()
	}
	fi.mu.Unlock()
	fi.dropConns()
	fi.srv.Close()
	<-fi.served
}

// dropConns closes every open connection and says how many there were.
func (fi *faultIssuer) dropConns() int {
	fi.connMu.Lock()
	conns := fi.conns
	fi.conns = map[net.Conn]struct{}{}
	fi.connMu.Unlock()
	for c := range conns {
		c.Close()
	}
	return len(conns)
}

// setMode switches the behaviour for what comes next.
func (fi *faultIssuer) setMode(t testing.TB, m faultMode) {
	t.Helper()
	fi.mu.Lock()
	fi.mode = m
	fi.flap.Store(0)
	if m == modeHold {
		fi.gate = make(chan struct{})
	}
	switch {
	case m == modeDown && fi.ln != nil:
		ln := fi.ln
		fi.ln = nil
		ln.Close()
		close(fi.lnSwap)
		fi.lnSwap = make(chan struct{})
	case m != modeDown && fi.ln == nil:
		ln, err := net.Listen("tcp", fi.addr.String())
		if err != nil {
			fi.mu.Unlock()
			t.Fatalf("re-listen on %s: %v", fi.addr, err)
		}
		fi.ln = ln
		close(fi.lnSwap)
		fi.lnSwap = make(chan struct{})
	}
	fi.mu.Unlock()
	// Like an issuer restart: open connections end, so idle ones a fault
	// left in the client's pool do not outlive it.
	if fi.dropConns() > 0 {
		// Let the client's pool see the closes: Go does not retry a POST
		// sent on a pooled connection the server had just closed, and
		// that race is not what these tests are about.
		time.Sleep(100 * time.Millisecond)
	}
}

func (fi *faultIssuer) set(tok string, active bool) {
	fi.mu.Lock()
	fi.active[tok] = active
	fi.mu.Unlock()
}

// release lets calls held in modeHold answer, and every later one.
func (fi *faultIssuer) release() {
	fi.mu.Lock()
	close(fi.gate)
	fi.mu.Unlock()
}

// seen is how many calls carried tok.
func (fi *faultIssuer) seen(tok string) int {
	fi.mu.Lock()
	defer fi.mu.Unlock()
	return fi.perToken[tok]
}

// arrivalsOf is when each call carrying tok arrived.
func (fi *faultIssuer) arrivalsOf(tok string) []time.Time {
	fi.mu.Lock()
	defer fi.mu.Unlock()
	return append([]time.Time(nil), fi.arrivals[tok]...)
}

// tokenCounts is a copy of the per-token call counts.
func (fi *faultIssuer) tokenCounts() map[string]int {
	fi.mu.Lock()
	defer fi.mu.Unlock()
	out := make(map[string]int, len(fi.perToken))
	for k, v := range fi.perToken {
		out[k] = v
	}
	return out
}

func (fi *faultIssuer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	fi.calls.Add(1)
	if err := r.ParseForm(); err != nil {
		http.Error(w, "bad form", http.StatusBadRequest)
		return
	}
	tok := r.PostForm.Get("token")
	fi.mu.Lock()
	if !fi.uncounted {
		fi.perToken[tok]++
		fi.arrivals[tok] = append(fi.arrivals[tok], time.Now())
	}
	mode, active, gate := fi.mode, fi.active[tok], fi.gate
	fi.mu.Unlock()
	if fi.basic != "" && r.Header.Get("Authorization") != fi.basic {
		http.Error(w, `{"error":"invalid_client"}`, http.StatusUnauthorized)
		return
	}

	switch mode {
	case modeBlackHole: // a connection that was open before the switch
		select {
		case <-r.Context().Done():
		case <-fi.done:
		}
		return
	case modeSlow:
		select {
		case <-time.After(slowFor):
		case <-r.Context().Done():
			return
		case <-fi.done:
			return
		}
	case modeHold:
		select {
		case <-gate:
		case <-r.Context().Done():
			return
		case <-fi.done:
			return
		}
	case modeFlapping:
		if fi.flap.Add(1)%2 == 1 {
			http.Error(w, "flap", http.StatusInternalServerError)
			return
		}
	case mode5xx:
		http.Error(w, "issuer broke", http.StatusInternalServerError)
		return
	case mode429:
		w.Header().Set("Retry-After", "30")
		http.Error(w, "slow down", http.StatusTooManyRequests)
		return
	case modeTruncated:
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Content-Length", "200")
		io.WriteString(w, `{"active":true,"sub":"al`)
		return
	case modeStringActive:
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"active":"true","sub":"alice","exp":%d}`, time.Now().Add(time.Hour).Unix())
		return
	case modeHugeBody:
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"active":true,"sub":"`)
		chunk := []byte(strings.Repeat("a", 64<<10))
		for n := 0; n < hugeBodyBytes; n += len(chunk) {
			if _, err := w.Write(chunk); err != nil {
				return
			}
		}
		io.WriteString(w, `"}`)
		return
	case modeRedirectLoop:
		w.Header().Set("Location", fi.URL)
		w.WriteHeader(http.StatusFound)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	if !active {
		io.WriteString(w, `{"active":false}`)
		return
	}
	fmt.Fprintf(w, `{"active":true,"sub":"alice","client_id":"cli","scope":"read write","exp":%d,"iss":"https://issuer.test"}`,
		time.Now().Add(time.Hour).Unix())
}

type dropTLSErrors struct{}

func (dropTLSErrors) Write(p []byte) (int, error) {
	if !bytes.Contains(p, []byte("TLS handshake error")) {
		os.Stderr.Write(p)
	}
	return len(p), nil
}

// faultListener hands the HTTP server the connections the current mode
// serves: none while down or black-holed (those are held open, unread),
// TLS ones in modeTLS.
type faultListener struct{ fi *faultIssuer }

func (l faultListener) Accept() (net.Conn, error) {
	fi := l.fi
	for {
		fi.mu.Lock()
		ln, swap, closed := fi.ln, fi.lnSwap, fi.closed
		fi.mu.Unlock()
		if closed {
			return nil, net.ErrClosed
		}
		if ln == nil {
			select {
			case <-swap:
				continue
			case <-fi.done:
				return nil, net.ErrClosed
			}
		}
		c, err := ln.Accept()
		fi.mu.Lock()
		mode, swapped := fi.mode, fi.ln != ln || fi.closed
		fi.mu.Unlock()
		if err != nil {
			if swapped {
				continue
			}
			return nil, err
		}
		fi.accepted.Add(1)
		tc := &trackedConn{Conn: c, fi: fi}
		fi.connMu.Lock()
		fi.conns[tc] = struct{}{}
		fi.connMu.Unlock()
		switch mode {
		case modeBlackHole:
			continue
		case modeTLS:
			return tls.Server(tc, fi.tlsCfg), nil
		}
		return tc, nil
	}
}

// Close is a no-op: the issuer owns the socket (faultIssuer.close).
func (l faultListener) Close() error   { return nil }
func (l faultListener) Addr() net.Addr { return l.fi.addr }

type trackedConn struct {
	net.Conn
	fi *faultIssuer
}

func (c *trackedConn) Close() error {
	c.fi.connMu.Lock()
	delete(c.fi.conns, c)
	c.fi.connMu.Unlock()
	return c.Conn.Close()
}

// selfSignedTLS is a certificate no CA vouches for.
func selfSignedTLS(t testing.TB) *tls.Config {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "issuer.test"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}}
}

// faultConfig is a leasegate config for the fault tests.
type faultConfig struct {
	endpoint   string
	timeout    time.Duration // introspection.timeout, faultTimeout when 0
	failures   int           // circuit_breaker.failures
	openFor    time.Duration // circuit_breaker.open_for
	readWindow time.Duration
	negTTL     time.Duration
	memMB      int
}

func (c faultConfig) yaml() string {
	if c.timeout == 0 {
		c.timeout = faultTimeout
	}
	if c.failures == 0 {
		c.failures = 1000 // the breaker stays out of the way
	}
	if c.openFor == 0 {
		c.openFor = 300 * time.Millisecond
	}
	if c.readWindow == 0 {
		c.readWindow = 100 * time.Millisecond
	}
	if c.negTTL == 0 {
		c.negTTL = 10 * time.Second
	}
	if c.memMB == 0 {
		c.memMB = 16
	}
	return fmt.Sprintf(`
listen:
  grpc: "127.0.0.1:0"
  metrics: "127.0.0.1:0"
  admin: "127.0.0.1:0"
issuers:
  - name: fake
    issuer: "https://issuer.test"
    default_for_opaque: true
    introspection:
      endpoint: %q
      auth: none
      timeout: %s
      max_conns: 8
    circuit_breaker: { failures: %d, open_for: %s }
tiers:
  read: { window: %s, stale_if_error: 30s }
lease:
  max: 10m
  negative_ttl: %s
  max_memory_mb: %d
server:
  start_grace: 2s
  drain_timeout: 5s
`, c.endpoint, c.timeout, c.failures, c.openFor, c.readWindow, c.negTTL, c.memMB)
}

// startConfigured is startServer with a config of the caller's; logs
// (debug and up) are kept in r.logs.
func startConfigured(t testing.TB, yamlText string, tp trace.TracerProvider) *running {
	t.Helper()
	return startConfiguredLog(t, yamlText, tp, nil)
}

// startConfiguredLog sends the logs to w instead, when w is not nil.
func startConfiguredLog(t testing.TB, yamlText string, tp trace.TracerProvider, w io.Writer) *running {
	t.Helper()
	return startConfiguredOpts(t, yamlText, tp, w, nil)
}

// startConfiguredOpts lets mod change Run's options (a clock, say).
func startConfiguredOpts(t testing.TB, yamlText string, tp trace.TracerProvider, w io.Writer, mod func(*Options)) *running {
	t.Helper()
	cfgPath := filepath.Join(t.TempDir(), "leasegate.yaml")
	if err := os.WriteFile(cfgPath, []byte(yamlText), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	r := &running{done: make(chan error, 1), reload: make(chan os.Signal, 1), cfgPath: cfgPath, logs: &syncBuffer{}}
	if w == nil {
		w = r.logs
	}
	ctx, cancel := context.WithCancel(context.Background())
	r.cancel = cancel
	listening := make(chan Addrs, 1)
	opts := Options{
		ConfigPath: cfgPath, Config: cfg, Version: "test", Reload: r.reload,
		Logger:         slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug})),
		TracerProvider: tp,
		OnListen:       func(a Addrs) { listening <- a },
	}
	if mod != nil {
		mod(&opts)
	}
	go func() { r.done <- Run(ctx, opts) }()
	select {
	case r.addrs = <-listening:
	case err := <-r.done:
		t.Fatalf("Run exited early: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("server did not start")
	}
	r.conn, err = grpc.NewClient(r.addrs.GRPC, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	r.client = authv3.NewAuthorizationClient(r.conn)
	t.Cleanup(func() {
		r.conn.Close()
		cancel()
		select {
		case <-r.done:
		case <-time.After(10 * time.Second):
			t.Error("server did not stop")
		}
	})
	return r
}

// outcome is one Check as a client sees it.
type outcome struct {
	resp *authv3.CheckResponse
	err  error
	took time.Duration
}

func (o outcome) code() codes.Code { return codes.Code(o.resp.GetStatus().GetCode()) }

// httpStatus is the HTTP status Envoy would send: 200 for OK.
func (o outcome) httpStatus() int {
	if o.code() == codes.OK && o.resp.GetOkResponse() != nil {
		return 200
	}
	return int(o.resp.GetDeniedResponse().GetStatus().GetCode())
}

func (o outcome) lease() string {
	return o.resp.GetDynamicMetadata().GetFields()["lease"].GetStringValue()
}

func (o outcome) deniedHeader(name string) string {
	for _, h := range o.resp.GetDeniedResponse().GetHeaders() {
		if strings.EqualFold(h.GetHeader().GetKey(), name) {
			return h.GetHeader().GetValue()
		}
	}
	return ""
}

func (o outcome) retryAfter() int {
	n, err := strconv.Atoi(o.deniedHeader("retry-after"))
	if err != nil {
		return -1
	}
	return n
}

func (o outcome) String() string {
	if o.err != nil {
		return "gRPC error " + o.err.Error()
	}
	return fmt.Sprintf("%v/%d lease=%s retry-after=%q body=%q (%v)", o.code(), o.httpStatus(), o.lease(),
		o.deniedHeader("retry-after"), o.resp.GetDeniedResponse().GetBody(), o.took)
}

func check(r *running, req *authv3.CheckRequest) outcome {
	start := time.Now()
	resp, err := r.client.Check(context.Background(), req)
	return outcome{resp: resp, err: err, took: time.Since(start)}
}

// wantUnavailable asserts SPEC §2's fail-closed answer within the bound.
func wantUnavailable(t *testing.T, what string, o outcome) {
	t.Helper()
	switch {
	case o.err != nil:
		t.Errorf("%s: %v: Envoy would apply failure_mode_allow", what, o.err)
	case o.code() != codes.Unavailable || o.httpStatus() != 503:
		t.Errorf("%s: %v, want UNAVAILABLE/503", what, o)
	case o.retryAfter() < 1:
		t.Errorf("%s: 503 without a Retry-After of at least 1s: %v", what, o)
	}
	if o.took > faultTimeout+latencyMargin {
		t.Errorf("%s took %v, beyond the issuer timeout %v + %v", what, o.took, faultTimeout, latencyMargin)
	}
}

// metricValue reads one series from /metrics; -1 when absent.
func metricValue(t testing.TB, r *running, series string) float64 {
	t.Helper()
	body := adminGet(t, r, "/metrics")
	for _, l := range strings.Split(body, "\n") {
		if v, ok := strings.CutPrefix(l, series+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatalf("metric %s: %v", l, err)
			}
			return f
		}
	}
	return -1
}

// adminClient keeps no idle connections, so goroutine counts stay honest.
var adminClient = &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 10 * time.Second}

func adminGet(t testing.TB, r *running, path string) string {
	t.Helper()
	res, err := adminClient.Get("http://" + r.addrs.Admin + path)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// settleGoroutines waits for the goroutine count to come back to within
// margin of baseline.
func settleGoroutines(t testing.TB, baseline, margin int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		n := runtime.NumGoroutine()
		if n <= baseline+margin {
			return
		}
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			t.Errorf("goroutines: %d, baseline %d (+%d allowed); stacks:\n%s", n, baseline, margin, buf[:runtime.Stack(buf, true)])
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// baselineGoroutines samples the count after a short settle.
func baselineGoroutines() int {
	n := runtime.NumGoroutine()
	for range 10 {
		time.Sleep(10 * time.Millisecond)
		n = min(n, runtime.NumGoroutine())
	}
	return n
}

// waitExpired polls a read with tok until the read window has closed and
// the lease is no longer a hit, and returns that first non-hit answer.
func waitExpired(t *testing.T, r *running, tok string) outcome {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		o := check(r, envoyRequest("GET", "/data/f", tok))
		if o.err != nil || o.lease() != "hit" {
			return o
		}
		if time.Now().After(deadline) {
			t.Fatalf("lease for a read never expired: %v", o)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestIssuerFaults(t *testing.T) {
	faults := []struct {
		name string
		mode faultMode
		// logSays is the reason the warn log must carry.
		logSays string
		// spanError: the README promises an error status on the
		// introspect span.
		spanError bool
		// https: the endpoint is https:// (reached by a reload, since a
		// healthy self-signed issuer cannot exist without a CA).
		https bool
	}{
		{name: "down", mode: modeDown, logSays: "connection refused", spanError: true},
		{name: "black hole", mode: modeBlackHole, logSays: "no answer in time", spanError: true},
		{name: "slow", mode: modeSlow, logSays: "no answer in time", spanError: true},
		{name: "flapping", mode: modeFlapping, logSays: "HTTP 500"},
		{name: "5xx", mode: mode5xx, logSays: "HTTP 500", spanError: true},
		{name: "429", mode: mode429, logSays: "HTTP 429", spanError: true},
		{name: "truncated JSON", mode: modeTruncated, logSays: "reading answer"},
		{name: "active as a string", mode: modeStringActive, logSays: "malformed answer"},
		{name: "10 MiB body", mode: modeHugeBody, logSays: "answer exceeds"},
		{name: "redirect loop", mode: modeRedirectLoop, logSays: "redirect"},
		{name: "TLS self-signed", mode: modeTLS, logSays: "certificate", https: true},
	}
	for _, tc := range faults {
		t.Run(tc.name, func(t *testing.T) {
			fi := newFaultIssuer(t, false)
			good := "good-" + strings.ReplaceAll(tc.name, " ", "-")
			fi.set(good, true)
			exp := tracetest.NewInMemoryExporter()
			tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
			cfg := faultConfig{endpoint: fi.URL}
			r := startConfigured(t, cfg.yaml(), tp)
			waitServing(t, r)

			// A lease while the issuer is healthy.
			if o := check(r, envoyRequest("GET", "/data/f", good)); o.err != nil || o.code() != codes.OK || o.lease() != "miss" {
				t.Fatalf("healthy read: %v", o)
			}
			baseline := baselineGoroutines()

			fi.setMode(t, tc.mode)
			if tc.https {
				cfg.endpoint = fi.TLSURL
				if err := os.WriteFile(r.cfgPath, []byte(cfg.yaml()), 0o600); err != nil {
					t.Fatal(err)
				}
				r.reload <- nil
				waitLog(t, r.logs, "configuration reloaded")
			}

			// A read whose window has closed, inside stale_if_error: the
			// first issuer call under the fault fails (flapping too), and
			// the old lease is served as stale.
			o := waitExpired(t, r, good)
			if o.err != nil || o.code() != codes.OK || o.lease() != "stale" {
				t.Errorf("expired read inside stale_if_error: %v, want OK lease=stale", o)
			}
			if o.took > faultTimeout+latencyMargin {
				t.Errorf("stale read took %v", o.took)
			}

			// DELETE is window 0: never stale, never OK while the issuer
			// fails. Flapping alternates with allowed answers.
			if tc.mode == modeFlapping {
				for i := range 6 {
					o := check(r, envoyRequest("DELETE", "/data/f", good))
					if i%2 == 0 {
						if o.err != nil || o.code() != codes.OK {
							t.Errorf("flapping call %d (issuer answered): %v, want OK", i, o)
						}
					} else {
						wantUnavailable(t, fmt.Sprintf("flapping call %d (issuer failed)", i), o)
					}
				}
			} else {
				wantUnavailable(t, "DELETE", check(r, envoyRequest("DELETE", "/data/f", good)))
			}

			// A burst of distinct tokens: each 503 on time (flapping: the
			// calls that get an answer learn the token is inactive).
			const burst = 24
			outs := make([]outcome, burst)
			var wg sync.WaitGroup
			for i := range burst {
				wg.Go(func() { outs[i] = check(r, envoyRequest("DELETE", "/data/f", fmt.Sprintf("burst-%d", i))) })
			}
			wg.Wait()
			for i, o := range outs {
				if tc.mode == modeFlapping && o.err == nil && o.httpStatus() == 401 {
					continue
				}
				wantUnavailable(t, fmt.Sprintf("burst %d", i), o)
			}
			// While the fault lasts the issuer client may keep up to
			// max_conns (8) idle connections, two goroutines each;
			// nothing else may remain.
			settleGoroutines(t, baseline, 6+2*8)

			// Operators see it.
			if v := metricValue(t, r, `leasegate_issuer_requests_total{issuer="fake",outcome="error"}`); v < 1 {
				t.Errorf(`issuer_requests_total{outcome="error"} = %v, want ≥ 1`, v)
			}
			if v := metricValue(t, r, `leasegate_decisions_total{decision="unavailable",lease="miss",tier="critical"}`); v < 1 {
				t.Errorf(`decisions_total{decision="unavailable",tier="critical"} = %v, want ≥ 1`, v)
			}
			if v := metricValue(t, r, `leasegate_decisions_total{decision="allow",lease="stale",tier="read"}`); v != 1 {
				t.Errorf(`decisions_total{decision="allow",lease="stale"} = %v, want 1`, v)
			}
			logs := r.logs.String()
			if !strings.Contains(logs, `"msg":"issuer fault"`) || !strings.Contains(logs, tc.logSays) {
				t.Errorf("warn log lacks issuer fault %q:\n%s", tc.logSays, grepLines(logs, "issuer fault"))
			}
			if tc.spanError {
				errored := false
				for _, s := range exp.GetSpans() {
					if s.Name == "introspect fake" && s.Status.Code == otelcodes.Error {
						errored = true
					}
				}
				if !errored {
					t.Errorf("no introspect span with an error status; spans: %v", names(exp.GetSpans()))
				}
			}

			// Recovery: the issuer is back, the next request is decided by
			// it. A fault was never read as a verdict on a token: the good
			// token is allowed and a burst token reaches the issuer again.
			fi.setMode(t, modeHealthy)
			if tc.https {
				cfg.endpoint = fi.URL
				if err := os.WriteFile(r.cfgPath, []byte(cfg.yaml()), 0o600); err != nil {
					t.Fatal(err)
				}
				r.reload <- nil
				deadline := time.Now().Add(5 * time.Second)
				for strings.Count(r.logs.String(), "configuration reloaded") < 2 && time.Now().Before(deadline) {
					time.Sleep(10 * time.Millisecond)
				}
			}
			if o := check(r, envoyRequest("DELETE", "/data/f", good)); o.err != nil || o.code() != codes.OK {
				t.Errorf("after recovery: %v, want OK", o)
			}
			if tc.mode != modeFlapping {
				before := fi.seen("burst-0")
				if o := check(r, envoyRequest("DELETE", "/data/f", "burst-0")); o.err != nil || o.httpStatus() != 401 {
					t.Errorf("burst token after recovery: %v, want 401 from the issuer", o)
				}
				if fi.seen("burst-0") != before+1 {
					t.Errorf("a token seen during the fault did not reach the issuer after it: a fault became a negative lease")
				}
			}
			// The fault's connections are gone: back to baseline.
			settleGoroutines(t, baseline, 6)
		})
	}
}

// After failures consecutive faults the breaker opens: no issuer calls,
// 503 with Retry-After at once; after open_for exactly one probe goes
// through, and the first probe that meets a healthy issuer closes it.
func TestCircuitBreakerOpensAndRecovers(t *testing.T) {
	const failures = 3
	fi := newFaultIssuer(t, false)
	for i := range 8 {
		fi.set(fmt.Sprintf("tok-%d", i), true)
	}
	// A long timeout: the half-open probe below is held at the issuer.
	r := startConfigured(t, faultConfig{endpoint: fi.URL, timeout: 5 * time.Second, failures: failures, openFor: 300 * time.Millisecond}.yaml(), nil)
	waitServing(t, r)
	del := func(tok string) outcome { return check(r, envoyRequest("DELETE", "/f", tok)) }
	fi.set("read-tok", true)
	if o := check(r, envoyRequest("GET", "/f", "read-tok")); o.err != nil || o.code() != codes.OK {
		t.Fatalf("healthy read: %v", o)
	}

	fi.setMode(t, mode5xx)
	start := fi.calls.Load()
	for i := range failures {
		wantUnavailable(t, fmt.Sprintf("fault %d", i), del("tok-0"))
	}
	if got := fi.calls.Load() - start; got != failures {
		t.Fatalf("issuer saw %d calls for %d faults", got, failures)
	}

	// Open: the issuer sees nothing.
	opened := fi.calls.Load()
	for i := range 5 {
		o := del(fmt.Sprintf("tok-%d", i))
		wantUnavailable(t, "while open", o)
		if o.took > faultTimeout {
			t.Errorf("an open breaker answered after %v, want at once", o.took)
		}
	}
	// stale_if_error still applies while the breaker is open.
	if o := waitExpired(t, r, "read-tok"); o.err != nil || o.code() != codes.OK || o.lease() != "stale" {
		t.Errorf("expired read while open: %v, want OK lease=stale", o)
	}
	if got := fi.calls.Load() - opened; got != 0 {
		t.Fatalf("issuer saw %d calls while the breaker was open", got)
	}
	if v := metricValue(t, r, `leasegate_issuer_requests_total{issuer="fake",outcome="circuit_open"}`); v < 5 {
		t.Errorf(`issuer_requests_total{outcome="circuit_open"} = %v, want ≥ 5`, v)
	}

	// After open_for one probe goes through; it fails, so it opens again.
	probeAt := waitProbe(t, fi, opened, func() outcome { return del("tok-0") })
	wantUnavailable(t, "failed probe", probeAt)
	for range 3 {
		wantUnavailable(t, "reopened", del("tok-1"))
	}
	if got := fi.calls.Load() - opened; got != 1 {
		t.Fatalf("issuer saw %d calls around one probe, want 1", got)
	}

	// Half-open: of concurrent requests with distinct tokens exactly one
	// probe reaches the (now healthy) issuer; while it is in flight the
	// others are refused at once. The probe is allowed and closes the
	// breaker.
	fi.setMode(t, modeHold)
	time.Sleep(350 * time.Millisecond) // open_for passes; nothing is asserted on it
	before := fi.calls.Load()
	results := make(chan outcome, 8)
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() { results <- del(fmt.Sprintf("tok-%d", i)) })
	}
	for range 7 {
		wantUnavailable(t, "half-open, not the probe", <-results)
	}
	for deadline := time.Now().Add(5 * time.Second); fi.calls.Load() == before && time.Now().Before(deadline); {
		time.Sleep(5 * time.Millisecond)
	}
	if got := fi.calls.Load() - before; got != 1 {
		t.Errorf("half-open: %d issuer calls, want exactly one probe", got)
	}
	fi.release()
	if o := <-results; o.err != nil || o.code() != codes.OK {
		t.Errorf("the probe that met a healthy issuer: %v, want OK", o)
	}
	wg.Wait()
	fi.setMode(t, modeHealthy)
	before = fi.calls.Load()
	for i := range 3 {
		if o := del(fmt.Sprintf("tok-%d", i)); o.err != nil || o.code() != codes.OK {
			t.Errorf("after recovery: %v, want OK", o)
		}
	}
	if got := fi.calls.Load() - before; got != 3 {
		t.Errorf("closed breaker: %d issuer calls for 3 critical requests", got)
	}
}

// waitProbe sends requests until one reaches the issuer (after open_for).
func waitProbe(t *testing.T, fi *faultIssuer, since int64, send func() outcome) outcome {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		o := send()
		if fi.calls.Load() > since {
			return o
		}
		if o.err != nil || o.code() == codes.OK {
			t.Fatalf("while open: %v", o)
		}
		if time.Now().After(deadline) {
			t.Fatal("no probe reached the issuer after open_for")
		}
		time.Sleep(25 * time.Millisecond)
	}
}

// An issuer's 429 Retry-After keeps the breaker open longer than open_for,
// and clients are told so.
func TestCircuitBreakerHonoursRetryAfter(t *testing.T) {
	const failures = 2
	fi := newFaultIssuer(t, false)
	fi.set("tok", true)
	r := startConfigured(t, faultConfig{endpoint: fi.URL, failures: failures, openFor: 300 * time.Millisecond}.yaml(), nil)
	waitServing(t, r)

	fi.setMode(t, mode429)
	for i := range failures {
		o := check(r, envoyRequest("DELETE", "/f", "tok"))
		wantUnavailable(t, fmt.Sprintf("429 %d", i), o)
		if o.retryAfter() < 29 {
			t.Errorf("Retry-After %q, want the issuer's 30", o.deniedHeader("retry-after"))
		}
	}
	// Well past open_for: still open, still no calls, Retry-After ≥ 29.
	opened := fi.calls.Load()
	until := time.Now().Add(700 * time.Millisecond)
	n := 0
	for time.Now().Before(until) {
		o := check(r, envoyRequest("DELETE", "/f", "tok"))
		wantUnavailable(t, "open after 429", o)
		if o.retryAfter() < 29 {
			t.Errorf("open after 429: Retry-After %q, want ≥ 29", o.deniedHeader("retry-after"))
		}
		n++
		time.Sleep(50 * time.Millisecond)
	}
	if got := fi.calls.Load() - opened; got != 0 {
		t.Errorf("issuer saw %d calls within its Retry-After (open_for is only 300ms)", got)
	}
	if n < 5 {
		t.Errorf("only %d requests while open", n)
	}
}

// issuer.introspection.max_conns bounds the connections to one issuer: with
// every connection held at the issuer, further checks queue (and time out)
// instead of opening more.
func TestIssuerConnectionsBounded(t *testing.T) {
	const maxConns = 8 // faultConfig's max_conns
	fi := newFaultIssuer(t, true)
	toks := make([]string, 3*maxConns)
	for i := range toks {
		toks[i] = fmt.Sprintf("conn-%d", i)
		fi.set(toks[i], true)
	}
	r := startConfigured(t, faultConfig{endpoint: fi.URL, timeout: 5 * time.Second}.yaml(), nil)
	waitServing(t, r)
	fi.setMode(t, modeHold)
	accepted := fi.accepted.Load()

	outs := make([]outcome, len(toks))
	var wg sync.WaitGroup
	for i, tok := range toks {
		wg.Go(func() { outs[i] = check(r, envoyRequest("DELETE", "/f", tok)) })
	}
	deadline := time.Now().Add(5 * time.Second)
	for fi.calls.Load() < int64(maxConns) && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	time.Sleep(200 * time.Millisecond) // room for a ninth connection, if one were coming
	if got := fi.accepted.Load() - accepted; got > maxConns {
		t.Errorf("%d connections opened to one issuer, max_conns is %d", got, maxConns)
	}
	if got := fi.calls.Load(); got > maxConns+1 { // +1: the readiness probe
		t.Errorf("%d calls in flight at the issuer, max_conns is %d", got, maxConns)
	}
	fi.release()
	wg.Wait()
	for i, o := range outs {
		if o.err != nil || o.code() != codes.OK {
			t.Errorf("check %d after release: %v", i, o)
		}
	}
}

// README "Failure behaviour": "a caller with a shorter Envoy deadline gets
// 503 at its deadline while the shared call still fills the lease". Envoy
// sends its ext_authz timeout as the gRPC deadline; an answer that arrives
// at the deadline arrives after Envoy stopped waiting, and Envoy then
// applies its own error handling (failure_mode_allow), not leasegate's 503.
func TestShortCallerDeadlineGets503(t *testing.T) {
	fi := newFaultIssuer(t, true)
	fi.set("late", true)
	r := startConfigured(t, faultConfig{endpoint: fi.URL, timeout: 5 * time.Second}.yaml(), nil)
	waitServing(t, r)
	fi.setMode(t, modeHold)

	t.Run("503 before the deadline", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
		defer cancel()
		resp, err := r.client.Check(ctx, envoyRequest("DELETE", "/f", "late"))
		o := outcome{resp: resp, err: err}
		if err != nil {
			t.Fatalf("gRPC error %v: Envoy would apply failure_mode_allow", err)
		}
		wantUnavailable(t, "short deadline", o)
	})

	// The shared call outlives the caller and fills the lease.
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	_, _ = r.client.Check(ctx, envoyRequest("GET", "/f", "late"))
	cancel()
	deadline := time.Now().Add(5 * time.Second)
	for fi.seen("late") == 0 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	fi.release()
	calls := fi.calls.Load()
	deadline = time.Now().Add(5 * time.Second)
	for {
		o := check(r, envoyRequest("GET", "/f", "late"))
		if o.err == nil && o.code() == codes.OK && o.lease() == "hit" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the abandoned call never filled the lease: %v", o)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if got := fi.calls.Load() - calls; got > 1 {
		t.Errorf("%d more issuer calls, want the abandoned one to have filled the lease", got)
	}
}
