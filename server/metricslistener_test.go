package server

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"regexp"
	"runtime"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc/metadata"

	"github.com/leasegate/leasegate/internal/testclock"
)

// probeConfig is a one-issuer config on free loopback ports; the issuer's
// endpoint and the start grace vary, extra is appended.
func probeConfig(endpoint, startGrace, extra string) string {
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
      timeout: 200ms
lease:
  max_memory_mb: 8
server:
  start_grace: %s
  drain_timeout: 5s
%s`, endpoint, startGrace, extra)
}

// httpGet fetches url with the given headers (key, value, ...).
func httpGet(t testing.TB, url string, header ...string) (int, http.Header, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	res, err := adminClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, res.Header, string(b)
}

// deadEndpoint is an introspection URL on a port nothing listens on.
func deadEndpoint(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return "http://" + addr + "/introspect"
}

// SPEC §6: listen.metrics serves /healthz, /readyz and /metrics with no
// secret, and nothing else; the admin listener keeps them and adds /config
// and /revoke, behind its secret.
func TestMetricsListenerRoutes(t *testing.T) {
	iss := newFakeIssuer(t)
	secretFile := writeSecret(t, "admin", secretAdmin)
	r := startConfigured(t, probeConfig(iss.URL, "2s", fmt.Sprintf("admin: { secret_file: %q }\n", secretFile)), nil)
	waitServing(t, r)
	if r.addrs.Metrics == "" || r.addrs.Metrics == r.addrs.Admin {
		t.Fatalf("metrics address %q (admin %q)", r.addrs.Metrics, r.addrs.Admin)
	}
	if !strings.Contains(r.logs.String(), `"metrics":"`+r.addrs.Metrics+`"`) {
		t.Error("the listening line does not name the metrics address")
	}
	metrics, admin := "http://"+r.addrs.Metrics, "http://"+r.addrs.Admin
	bearer := "Bearer " + secretAdmin
	for _, tc := range []struct {
		method, url, auth string
		want              int
	}{
		{"GET", metrics + "/healthz", "", 200},
		{"GET", metrics + "/readyz", "", 200},
		{"GET", metrics + "/metrics", "", 200},
		{"GET", metrics + "/config", bearer, 404},
		{"POST", metrics + "/revoke", bearer, 404},
		{"POST", metrics + "/metrics", "", 405},
		{"GET", admin + "/healthz", "", 200},
		{"GET", admin + "/readyz", "", 200},
		{"GET", admin + "/metrics", "", 200},
		{"GET", admin + "/config", "", 401},
		{"GET", admin + "/config", "Bearer wrong", 401},
		{"GET", admin + "/config", bearer, 200},
		{"POST", admin + "/revoke", "", 401},
	} {
		t.Run(tc.method+" "+strings.TrimPrefix(strings.TrimPrefix(tc.url, metrics), admin), func(t *testing.T) {
			req, err := http.NewRequest(tc.method, tc.url, strings.NewReader(`{"token":"x"}`))
			if err != nil {
				t.Fatal(err)
			}
			if tc.auth != "" {
				req.Header.Set("Authorization", tc.auth)
			}
			res, err := adminClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(res.Body)
			res.Body.Close()
			if res.StatusCode != tc.want {
				t.Fatalf("%s %s = %d %s, want %d", tc.method, tc.url, res.StatusCode, b, tc.want)
			}
			if tc.want == 401 && res.Header.Get("WWW-Authenticate") == "" {
				t.Error("401 without WWW-Authenticate")
			}
		})
	}
}

// Liveness holds through the start grace: a replica waiting on its issuers
// is not ready, but must not be restarted for it.
func TestProbesDuringStartGrace(t *testing.T) {
	r := startConfigured(t, probeConfig(deadEndpoint(t), "1h", ""), nil)
	for _, base := range []string{r.addrs.Metrics, r.addrs.Admin} {
		if code, _, body := httpGet(t, "http://"+base+"/healthz"); code != 200 || body != "ok (starting)\n" {
			t.Errorf("%s /healthz in the start grace = %d %q, want 200 \"ok (starting)\"", base, code, body)
		}
		if code, _, body := httpGet(t, "http://"+base+"/readyz"); code != 503 {
			t.Errorf("%s /readyz in the start grace = %d %q, want 503", base, code, body)
		}
	}
}

// Past a short start grace the replica is ready although the issuer never
// answered (SPEC §6: ready once reached or after the grace).
func TestReadyAfterStartGrace(t *testing.T) {
	r := startConfigured(t, probeConfig(deadEndpoint(t), "100ms", ""), nil)
	url := "http://" + r.addrs.Metrics + "/readyz"
	deadline := time.Now().Add(5 * time.Second)
	for {
		code, _, _ := httpGet(t, url)
		if code == 200 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("/readyz still %d long after a 100ms start grace", code)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if code, _, body := httpGet(t, "http://"+r.addrs.Metrics+"/healthz"); code != 200 || body != "ok\n" {
		t.Errorf("/healthz = %d %q, want 200 ok", code, body)
	}
}

// Draining: readiness fails at once, liveness holds until the in-flight
// checks are done and the process exits.
func TestProbesDuringDrain(t *testing.T) {
	iss := newFakeIssuer(t)
	iss.set("slow", true)
	// The held check must outlast the probes below even on a loaded
	// machine: its issuer timeout and the drain bound are long, and the
	// test releases it itself.
	cfg := strings.NewReplacer("timeout: 200ms", "timeout: "+loadTolerantTimeout.String(),
		"drain_timeout: 5s", "drain_timeout: 30s").Replace(probeConfig(iss.URL+"/introspect", "2s", ""))
	r := startConfigured(t, cfg, nil)
	waitServing(t, r)
	hold := make(chan struct{})
	iss.mu.Lock()
	iss.hold = hold
	iss.mu.Unlock()
	released := false
	defer func() {
		if !released {
			close(hold)
		}
	}()
	callsBefore := iss.calls.Load()
	got := make(chan error, 1)
	go func() {
		_, err := r.client.Check(context.Background(), envoyRequest("GET", "/f", "slow"))
		got <- err
	}()
	for iss.calls.Load() == callsBefore {
		time.Sleep(5 * time.Millisecond)
	}
	r.cancel()
	waitLog(t, r.logs, "draining")
	for _, base := range []string{r.addrs.Metrics, r.addrs.Admin} {
		if code, _, body := httpGet(t, "http://"+base+"/healthz"); code != 200 || body != "ok (draining)\n" {
			t.Errorf("%s /healthz while draining = %d %q, want 200 \"ok (draining)\"", base, code, body)
		}
		if code, _, body := httpGet(t, "http://"+base+"/readyz"); code != 503 || !strings.Contains(body, "draining") {
			t.Errorf("%s /readyz while draining = %d %q, want 503 draining", base, code, body)
		}
	}
	close(hold)
	released = true
	if err := <-got; err != nil {
		t.Errorf("in-flight check: %v", err)
	}
	select {
	case err := <-r.done:
		if err != nil {
			t.Fatalf("Run = %v", err)
		}
		r.done <- nil
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return after the drain")
	}
}

// specSeries are the SPEC §6 series outside fleet mode, as a scrape of
// the metrics listener must show them.
var specSeries = []string{
	"leasegate_decisions_total", "leasegate_issuer_requests_total",
	"leasegate_issuer_request_duration_seconds", "leasegate_check_duration_seconds",
	"leasegate_leases", "leasegate_coalesced_total", "leasegate_build_info",
	"leasegate_lease_evictions_total", "leasegate_negative_leases", "leasegate_breaker_open",
	"leasegate_jwks_refreshes_total", "leasegate_config_reloads_total", "leasegate_revocation_bound_seconds",
}

func TestMetricsListenerExportsSpecSeries(t *testing.T) {
	iss := newFakeIssuer(t)
	iss.set("good", true)
	js := newJWKSServer(t)
	r := startConfigured(t, strings.Replace(probeConfig(iss.URL+"/introspect", "2s", ""), "lease:", "  "+strings.TrimSpace(jwtIssuerYAML("jwt", js.URL))+"\nlease:", 1), nil)
	waitServing(t, r)
	if _, err := r.client.Check(context.Background(), envoyRequest("GET", "/f", "good")); err != nil {
		t.Fatal(err)
	}
	if _, err := r.client.Check(context.Background(), envoyRequest("GET", "/f", "bad")); err != nil {
		t.Fatal(err)
	}
	_, _, body := httpGet(t, "http://"+r.addrs.Metrics+"/metrics")
	for _, name := range specSeries {
		if !regexp.MustCompile(`(?m)^` + name + `(_bucket|_count)?[{ ]`).MatchString(body) {
			t.Errorf("no %s series on /metrics", name)
		}
	}
	b := BuildInfo("test")
	want := fmt.Sprintf(`leasegate_build_info{goversion=%q,revision=%q,version=%q} 1`, runtime.Version(), b.Revision, "test")
	if !strings.Contains(body, want) {
		t.Errorf("build info: want %s in\n%s", want, grepLines(body, "build_info"))
	}
	for _, want := range []string{
		`leasegate_negative_leases 1`,
		`leasegate_breaker_open{issuer="fake"} 0`,
		`leasegate_breaker_open{issuer="jwt"} 0`,
		`leasegate_jwks_refreshes_total{issuer="jwt",outcome="ok"} 1`,
		`leasegate_jwks_refreshes_total{issuer="jwt",outcome="error"} 0`,
		`leasegate_lease_evictions_total 0`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("want %s on /metrics:\n%s", want, grepLines(body, "leasegate_"))
		}
	}
}

// The -version line and leasegate_build_info say the same.
func TestBuildInfoString(t *testing.T) {
	b := BuildInfo("v1.2.3")
	if b.Version != "v1.2.3" || b.GoVersion != runtime.Version() || b.Revision == "" {
		t.Fatalf("BuildInfo = %+v", b)
	}
	want := fmt.Sprintf("leasegate v1.2.3 (revision %s, %s)", b.Revision, runtime.Version())
	if b.String() != want {
		t.Errorf("String = %q, want %q", b.String(), want)
	}
	if d := BuildInfo(""); d.Version == "" {
		t.Error("an unset version stays empty")
	}
}

// tracedCtx carries a sampled W3C traceparent as Envoy would send it.
func tracedCtx(t *testing.T, traceHex, spanHex string) (context.Context, trace.SpanContext) {
	t.Helper()
	tid, err := trace.TraceIDFromHex(traceHex)
	if err != nil {
		t.Fatal(err)
	}
	sid, err := trace.SpanIDFromHex(spanHex)
	if err != nil {
		t.Fatal(err)
	}
	parent := trace.NewSpanContext(trace.SpanContextConfig{TraceID: tid, SpanID: sid, TraceFlags: trace.FlagsSampled, Remote: true})
	carrier := propagation.MapCarrier{}
	propagation.TraceContext{}.Inject(trace.ContextWithSpanContext(context.Background(), parent), carrier)
	return metadata.AppendToOutgoingContext(context.Background(), "traceparent", carrier.Get("traceparent")), parent
}

// SPEC §6: a traced request's duration observations carry its trace_id as
// an exemplar, served in the OpenMetrics exposition; its log lines carry
// trace_id and span_id.
func TestTracedCheckExemplarsAndLogIDs(t *testing.T) {
	iss := newFakeIssuer(t)
	iss.set("traced", true)
	tp := sdktrace.NewTracerProvider(sdktrace.WithSampler(sdktrace.ParentBased(sdktrace.AlwaysSample())))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	r := startConfigured(t, probeConfig(iss.URL+"/introspect", "2s", ""), tp)
	waitServing(t, r)

	ctx, parent := tracedCtx(t, "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7")
	if _, err := r.client.Check(ctx, envoyRequest("GET", "/f", "traced")); err != nil {
		t.Fatal(err)
	}
	code, hdr, body := httpGet(t, "http://"+r.addrs.Metrics+"/metrics", "Accept", "application/openmetrics-text; version=1.0.0; charset=utf-8")
	if code != 200 || !strings.HasPrefix(hdr.Get("Content-Type"), "application/openmetrics-text") {
		t.Fatalf("OpenMetrics scrape: %d, Content-Type %q", code, hdr.Get("Content-Type"))
	}
	for _, family := range []string{"leasegate_check_duration_seconds_bucket", "leasegate_issuer_request_duration_seconds_bucket"} {
		re := regexp.MustCompile(`(?m)^` + family + `\{[^}]*\} \d+ # \{trace_id="` + parent.TraceID().String() + `"\}`)
		if !re.MatchString(body) {
			t.Errorf("no %s exemplar with trace_id %s:\n%s", family, parent.TraceID(), grepLines(body, family))
		}
	}
	if _, _, plain := httpGet(t, "http://"+r.addrs.Metrics+"/metrics"); strings.Contains(plain, "trace_id") {
		t.Error("the plain text exposition carries exemplars")
	}

	denyCtx, denyParent := tracedCtx(t, "0af7651916cd43dd8448eb211c80319c", "b7ad6b7169203331")
	if _, err := r.client.Check(denyCtx, envoyRequest("GET", "/f", "not-active")); err != nil {
		t.Fatal(err)
	}

	var denied map[string]any
	for _, l := range strings.Split(r.logs.String(), "\n") {
		var m map[string]any
		if json.Unmarshal([]byte(l), &m) == nil && m["msg"] == "denied" {
			denied = m
		}
	}
	if denied == nil {
		t.Fatalf("no denied line:\n%s", r.logs.String())
	}
	if denied["trace_id"] != denyParent.TraceID().String() {
		t.Errorf("denied line trace_id = %v, want %s", denied["trace_id"], denyParent.TraceID())
	}
	if sid, _ := denied["span_id"].(string); len(sid) != 16 || sid == denyParent.SpanID().String() {
		t.Errorf("denied line span_id = %v, want the server span's (not Envoy's %s)", denied["span_id"], denyParent.SpanID())
	}
}

// log.denials_per_second reaches the engine, on the lease clock.
func TestDenialsPerSecondWired(t *testing.T) {
	iss := newFakeIssuer(t)
	clock := testclock.New(time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC))
	r := startConfiguredOpts(t, probeConfig(iss.URL+"/introspect", "2s", "log: { denials_per_second: 1 }\n"), nil, nil,
		func(o *Options) { o.Now = clock.Now })
	waitServing(t, r)
	for range 5 {
		if _, err := r.client.Check(context.Background(), envoyRequest("GET", "/f", "")); err != nil {
			t.Fatal(err)
		}
	}
	if n := strings.Count(r.logs.String(), `"msg":"denied"`); n != 1 {
		t.Fatalf("%d denial lines for 5 denials at 1/s, want 1", n)
	}
	clock.Advance(time.Second)
	if _, err := r.client.Check(context.Background(), envoyRequest("GET", "/f", "")); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(r.logs.String(), `"suppressed":4`) {
		t.Errorf("the line after the burst does not count the 4 left out:\n%s", grepLines(r.logs.String(), "denied"))
	}
}
