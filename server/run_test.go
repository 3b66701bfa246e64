package server

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jwk"

	"github.com/leasegate/leasegate/internal/testclock"
)

// fakeIssuer is an RFC 7662 endpoint that knows some tokens and counts calls.
type fakeIssuer struct {
	*httptest.Server
	calls  atomic.Int64
	open   atomic.Int64 // TCP connections open now
	mu     sync.Mutex
	active map[string]bool
	delay  time.Duration
	hold   chan struct{} // when non-nil, answers wait for it
}

func newFakeIssuer(t *testing.T) *fakeIssuer {
	t.Helper()
	fi := &fakeIssuer{active: map[string]bool{}}
	fi.Server = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fi.calls.Add(1)
		if err := r.ParseForm(); err != nil {
			http.Error(w, "bad form", http.StatusBadRequest)
			return
		}
		fi.mu.Lock()
		ok, hold, delay := fi.active[r.PostForm.Get("token")], fi.hold, fi.delay
		fi.mu.Unlock()
		if hold != nil {
			<-hold
		}
		time.Sleep(delay)
		w.Header().Set("Content-Type", "application/json")
		if !ok {
			io.WriteString(w, `{"active":false}`)
			return
		}
		fmt.Fprintf(w, `{"active":true,"sub":"alice","client_id":"cli","scope":"read write","exp":%d,"iss":"https://issuer.test"}`,
			time.Now().Add(time.Hour).Unix())
	}))
	fi.Config.ConnState = countConns(&fi.open)
	fi.Start()
	t.Cleanup(fi.Close)
	return fi
}

// countConns keeps n at the number of open connections of a server.
func countConns(n *atomic.Int64) func(net.Conn, http.ConnState) {
	return func(_ net.Conn, s http.ConnState) {
		switch s {
		case http.StateNew:
			n.Add(1)
		case http.StateClosed, http.StateHijacked:
			n.Add(-1)
		}
	}
}

func (fi *fakeIssuer) set(tok string, active bool) {
	fi.mu.Lock()
	fi.active[tok] = active
	fi.mu.Unlock()
}

const testConfigTmpl = `
listen:
  grpc: "127.0.0.1:0"
  metrics: "127.0.0.1:0"
  admin: "127.0.0.1:0"
issuers:
  - name: fake
    issuer: "https://issuer.test"
    default_for_opaque: true
    introspection:
      endpoint: "%s"
      auth: none
      timeout: 500ms
tiers:
  read: { window: %s }
lease:
  max: 10m
  max_memory_mb: 8
server:
  start_grace: 2s
  drain_timeout: 5s
`

type running struct {
	addrs   Addrs
	conn    *grpc.ClientConn
	client  authv3.AuthorizationClient
	cancel  context.CancelFunc
	done    chan error
	reload  chan os.Signal
	cfgPath string
	logs    *syncBuffer
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func startServer(t *testing.T, issuerURL, readWindow string, tp trace.TracerProvider) *running {
	t.Helper()
	return startConfigured(t, fmt.Sprintf(testConfigTmpl, issuerURL, readWindow), tp)
}

// envoyRequest is shaped like Envoy's: lower-case keys, pseudo-headers.
func envoyRequest(method, path, token string) *authv3.CheckRequest {
	h := map[string]string{
		":method": method, ":path": path, ":authority": "storage.example.org",
		"x-request-id": "req-1", "x-auth-subject": "forged",
	}
	if token != "" {
		h["authorization"] = "Bearer " + token
	}
	return &authv3.CheckRequest{Attributes: &authv3.AttributeContext{Request: &authv3.AttributeContext_Request{
		Http: &authv3.AttributeContext_HttpRequest{Method: method, Path: path, Host: "storage.example.org", Headers: h},
	}}}
}

func waitServing(t *testing.T, r *running) {
	t.Helper()
	hc := healthpb.NewHealthClient(r.conn)
	deadline := time.Now().Add(5 * time.Second)
	for {
		resp, err := hc.Check(context.Background(), &healthpb.HealthCheckRequest{})
		if err == nil && resp.Status == healthpb.HealthCheckResponse_SERVING {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("health never SERVING: %v %v", resp, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func headerValue(resp *authv3.CheckResponse, name string) (string, bool) {
	for _, h := range resp.GetOkResponse().GetHeaders() {
		if h.GetHeader().GetKey() == name {
			return h.GetHeader().GetValue(), true
		}
	}
	return "", false
}

func TestRunServesChecks(t *testing.T) {
	iss := newFakeIssuer(t)
	iss.set("good-token", true)
	r := startServer(t, iss.URL, "60s", nil)
	waitServing(t, r)
	ctx := context.Background()

	resp, err := r.client.Check(ctx, envoyRequest("GET", "/data/f", "good-token"))
	if err != nil {
		t.Fatalf("Check: %v", err)
	}
	if codes.Code(resp.GetStatus().GetCode()) != codes.OK {
		t.Fatalf("status = %v, want OK", resp.GetStatus())
	}
	if v, _ := headerValue(resp, "x-auth-subject"); v != "alice" {
		t.Errorf("x-auth-subject = %q, want alice (client's forged value must be overwritten)", v)
	}
	if _, err := r.client.Check(ctx, envoyRequest("GET", "/data/f", "good-token")); err != nil {
		t.Fatal(err)
	}
	// The readiness probe may have called once; count from here.
	before := iss.calls.Load()
	if _, err := r.client.Check(ctx, envoyRequest("HEAD", "/data/f", "good-token")); err != nil {
		t.Fatal(err)
	}
	if got := iss.calls.Load() - before; got != 0 {
		t.Errorf("a read inside the window called the issuer %d times", got)
	}

	resp, err = r.client.Check(ctx, envoyRequest("GET", "/data/f", ""))
	if err != nil {
		t.Fatal(err)
	}
	if codes.Code(resp.GetStatus().GetCode()) != codes.Unauthenticated || resp.GetDeniedResponse().GetStatus().GetCode() != 401 {
		t.Errorf("no token: %v", resp)
	}

	// Admin API.
	get := func(path string) (int, string) {
		res, err := http.Get("http://" + r.addrs.Admin + path)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		return res.StatusCode, string(b)
	}
	if code, _ := get("/readyz"); code != 200 {
		t.Errorf("/readyz = %d", code)
	}
	code, body := get("/metrics")
	if code != 200 || !strings.Contains(body, `leasegate_decisions_total{decision="allow",lease="hit",tier="read"} 2`) ||
		!strings.Contains(body, `leasegate_decisions_total{decision="allow",lease="miss",tier="read"} 1`) ||
		!strings.Contains(body, "leasegate_leases 1") {
		t.Errorf("/metrics missing expected series:\n%s", grepLines(body, "leasegate_"))
	}
	code, body = get("/config")
	var conf map[string]any
	if code != 200 || json.Unmarshal([]byte(body), &conf) != nil {
		t.Fatalf("/config = %d %s", code, body)
	}
	bound, _ := conf["revocation_bound"].(map[string]any)
	if bound["window"] != "1m0s" {
		t.Errorf("/config revocation_bound = %v", bound)
	}

	// Admin revoke: the next read goes to the issuer.
	res, err := http.Post("http://"+r.addrs.Admin+"/revoke", "application/json", strings.NewReader(`{"token":"good-token"}`))
	if err != nil || res.StatusCode != 200 {
		t.Fatalf("revoke: %v %v", res, err)
	}
	res.Body.Close()
	iss.set("good-token", false)
	resp, err = r.client.Check(ctx, envoyRequest("GET", "/data/f", "good-token"))
	if err != nil {
		t.Fatal(err)
	}
	if codes.Code(resp.GetStatus().GetCode()) != codes.Unauthenticated {
		t.Errorf("after admin revoke: %v, want UNAUTHENTICATED", resp.GetStatus())
	}
	if strings.Contains(r.logs.String(), "good-token") {
		t.Error("a log line holds the raw token")
	}
}

func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) && !strings.HasPrefix(l, "#") {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

func TestReloadKeepsLeases(t *testing.T) {
	iss := newFakeIssuer(t)
	iss.set("tok", true)
	r := startServer(t, iss.URL, "60s", nil)
	waitServing(t, r)
	ctx := context.Background()
	if _, err := r.client.Check(ctx, envoyRequest("GET", "/f", "tok")); err != nil {
		t.Fatal(err)
	}

	// An invalid file is refused; the old config keeps serving.
	if err := os.WriteFile(r.cfgPath, []byte("listen: [broken"), 0o600); err != nil {
		t.Fatal(err)
	}
	r.reload <- nil
	waitLog(t, r.logs, "reload refused")
	before := iss.calls.Load()
	resp, err := r.client.Check(ctx, envoyRequest("GET", "/f", "tok"))
	if err != nil || codes.Code(resp.GetStatus().GetCode()) != codes.OK || iss.calls.Load() != before {
		t.Fatalf("after a refused reload: %v %v, calls +%d", resp.GetStatus(), err, iss.calls.Load()-before)
	}

	// Shrinking the read window to 0 applies to the existing lease at once,
	// and the lease itself survives for the other tiers.
	if err := os.WriteFile(r.cfgPath, []byte(fmt.Sprintf(testConfigTmpl, iss.URL, "0s")), 0o600); err != nil {
		t.Fatal(err)
	}
	r.reload <- nil
	waitLog(t, r.logs, "configuration reloaded")
	before = iss.calls.Load()
	if _, err := r.client.Check(ctx, envoyRequest("GET", "/f", "tok")); err != nil {
		t.Fatal(err)
	}
	if iss.calls.Load() != before+1 {
		t.Fatalf("read with window 0 after reload: calls +%d, want 1", iss.calls.Load()-before)
	}
	before = iss.calls.Load()
	if _, err := r.client.Check(ctx, envoyRequest("PUT", "/f", "tok")); err != nil {
		t.Fatal(err)
	}
	if iss.calls.Load() != before {
		t.Fatalf("write inside its window after reload called the issuer: lease was dropped")
	}
}

func waitLog(t *testing.T, b *syncBuffer, msg string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !strings.Contains(b.String(), msg) {
		if time.Now().After(deadline) {
			t.Fatalf("log never said %q:\n%s", msg, b.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestDrainFinishesInFlight(t *testing.T) {
	iss := newFakeIssuer(t)
	iss.set("slow", true)
	r := startServer(t, iss.URL, "60s", nil)
	waitServing(t, r)
	hold := make(chan struct{})
	iss.mu.Lock()
	iss.hold = hold
	iss.mu.Unlock()

	got := make(chan *authv3.CheckResponse, 1)
	callsBefore := iss.calls.Load()
	go func() {
		resp, err := r.client.Check(context.Background(), envoyRequest("GET", "/f", "slow"))
		if err != nil {
			t.Errorf("in-flight check failed: %v", err)
		}
		got <- resp
	}()
	for iss.calls.Load() == callsBefore { // the check is at the issuer now
		time.Sleep(5 * time.Millisecond)
	}
	r.cancel() // SIGTERM
	waitLog(t, r.logs, "draining")
	hc := healthpb.NewHealthClient(r.conn)
	if resp, err := hc.Check(context.Background(), &healthpb.HealthCheckRequest{}); err == nil && resp.Status == healthpb.HealthCheckResponse_SERVING {
		t.Error("health still SERVING while draining")
	}
	close(hold)
	select {
	case resp := <-got:
		if resp == nil || codes.Code(resp.GetStatus().GetCode()) != codes.OK {
			t.Fatalf("in-flight check: %v, want OK", resp.GetStatus())
		}
	case <-time.After(5 * time.Second):
		t.Fatal("in-flight check never finished")
	}
	select {
	case err := <-r.done:
		if err != nil {
			t.Fatalf("Run = %v, want nil after drain", err)
		}
		r.done <- nil // for cleanup
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return after drain")
	}
}

func TestTracingParentsAndAttributes(t *testing.T) {
	iss := newFakeIssuer(t)
	iss.set("traced-token", true)
	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
	r := startServer(t, iss.URL, "60s", tp)
	waitServing(t, r)

	traceID, _ := trace.TraceIDFromHex("4bf92f3577b34da6a3ce929d0e0e4736")
	spanID, _ := trace.SpanIDFromHex("00f067aa0ba902b7")
	parent := trace.NewSpanContext(trace.SpanContextConfig{TraceID: traceID, SpanID: spanID, TraceFlags: trace.FlagsSampled, Remote: true})
	carrier := propagation.MapCarrier{}
	propagation.TraceContext{}.Inject(trace.ContextWithSpanContext(context.Background(), parent), carrier)
	ctx := metadata.AppendToOutgoingContext(context.Background(), "traceparent", carrier.Get("traceparent"))

	exp.Reset()
	resp, err := r.client.Check(ctx, envoyRequest("GET", "/f", "traced-token"))
	if err != nil || codes.Code(resp.GetStatus().GetCode()) != codes.OK {
		t.Fatalf("Check: %v %v", resp.GetStatus(), err)
	}
	// The server span ends after the client has its response; wait for it.
	var spans tracetest.SpanStubs
	for deadline := time.Now().Add(3 * time.Second); ; {
		spans = exp.GetSpans()
		if slices.ContainsFunc(spans, func(s tracetest.SpanStub) bool { return s.Name == "envoy.service.auth.v3.Authorization/Check" }) ||
			time.Now().After(deadline) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	byName := map[string]tracetest.SpanStub{}
	for _, s := range spans {
		if strings.HasPrefix(s.Name, "grpc.health.v1.Health/") {
			continue // waitServing's last probe can end after the Reset
		}
		byName[s.Name] = s
		if s.SpanContext.TraceID() != traceID {
			t.Errorf("span %s has trace %s, want Envoy's %s", s.Name, s.SpanContext.TraceID(), traceID)
		}
		for _, a := range s.Attributes {
			if strings.Contains(a.Value.String(), "traced-token") {
				t.Errorf("span %s attribute %s holds the token", s.Name, a.Key)
			}
		}
	}
	server, ok := byName["envoy.service.auth.v3.Authorization/Check"]
	if !ok {
		t.Fatalf("no server span; got %v", names(spans))
	}
	if server.Parent.SpanID() != spanID {
		t.Errorf("server span parent = %s, want %s", server.Parent.SpanID(), spanID)
	}
	attrs := map[string]string{}
	for _, a := range server.Attributes {
		attrs[string(a.Key)] = a.Value.String()
	}
	for k, want := range map[string]string{"leasegate.tier": "read", "leasegate.lease": "miss", "leasegate.decision": "allow", "leasegate.issuer": "fake", "leasegate.reason": "allowed", "http.request.method": "GET", "leasegate.request_id": "req-1"} {
		if attrs[k] != want {
			t.Errorf("server span %s = %q, want %q", k, attrs[k], want)
		}
	}
	lookup, ok := byName["lease.lookup"]
	if !ok || lookup.Parent.SpanID() != server.SpanContext.SpanID() {
		t.Errorf("lease.lookup span missing or not a child of the server span: %v", names(spans))
	}
	intro, ok := byName["introspect fake"]
	if !ok || intro.SpanKind != trace.SpanKindClient {
		t.Errorf("no introspection client span: %v", names(spans))
	}
}

func names(spans tracetest.SpanStubs) []string {
	var out []string
	for _, s := range spans {
		out = append(out, s.Name)
	}
	return out
}

// header_map-only requests (encode_raw_headers: true) work end to end.
func TestRunRawHeaderMap(t *testing.T) {
	iss := newFakeIssuer(t)
	iss.set("raw-token", true)
	r := startServer(t, iss.URL, "60s", nil)
	waitServing(t, r)
	req := &authv3.CheckRequest{Attributes: &authv3.AttributeContext{Request: &authv3.AttributeContext_Request{
		Http: &authv3.AttributeContext_HttpRequest{HeaderMap: &corev3.HeaderMap{Headers: []*corev3.HeaderValue{
			{Key: ":method", RawValue: []byte("GET")},
			{Key: ":path", RawValue: []byte("/f")},
			{Key: ":authority", RawValue: []byte("storage.example.org")},
			{Key: "authorization", RawValue: []byte("Bearer raw-token")},
		}}},
	}}}
	resp, err := r.client.Check(context.Background(), req)
	if err != nil || codes.Code(resp.GetStatus().GetCode()) != codes.OK {
		t.Fatalf("raw header_map check: %v %v", resp.GetStatus(), err)
	}
}

func TestReloadWithDeletedFileKeepsServing(t *testing.T) {
	iss := newFakeIssuer(t)
	iss.set("tok", true)
	r := startServer(t, iss.URL, "60s", nil)
	waitServing(t, r)
	if err := os.Remove(r.cfgPath); err != nil {
		t.Fatal(err)
	}
	r.reload <- nil
	waitLog(t, r.logs, "reload refused")
	resp, err := r.client.Check(context.Background(), envoyRequest("GET", "/f", "tok"))
	if err != nil || codes.Code(resp.GetStatus().GetCode()) != codes.OK {
		t.Fatalf("after reload of a deleted file: %v %v", resp.GetStatus(), err)
	}
}

// A Check that arrives while the issuer is down fails closed with 503 and
// Retry-After; nothing turns an error into an allow.
func TestIssuerDownFailsClosed(t *testing.T) {
	iss := newFakeIssuer(t)
	r := startServer(t, iss.URL, "60s", nil)
	waitServing(t, r)
	iss.Close()
	start := time.Now()
	resp, err := r.client.Check(context.Background(), envoyRequest("DELETE", "/f", "any-token"))
	if err != nil {
		t.Fatalf("gRPC error %v: Envoy would apply failure_mode_allow", err)
	}
	if codes.Code(resp.GetStatus().GetCode()) != codes.Unavailable || resp.GetDeniedResponse().GetStatus().GetCode() != 503 {
		t.Fatalf("issuer down: %v", resp)
	}
	var retry string
	for _, h := range resp.GetDeniedResponse().GetHeaders() {
		if strings.EqualFold(h.GetHeader().GetKey(), "retry-after") {
			retry = h.GetHeader().GetValue()
		}
	}
	if retry == "" {
		t.Error("503 without Retry-After")
	}
	if took := time.Since(start); took > 600*time.Millisecond {
		t.Errorf("took %v, want within the 500ms issuer timeout", took)
	}
}

// reloadTmpl is a config for the reload tests: the fake introspection
// issuer (endpoint), more issuers, the read window, more tiers, lease.max.
const reloadTmpl = `
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
      timeout: 5s
%s
tiers:
  read: { window: %s }
%s
lease:
  max: %s
  max_memory_mb: 8
server:
  start_grace: 2s
  drain_timeout: 5s
`

// reloadYAML fills reloadTmpl; extraIssuers and extraTiers are YAML list
// items and map entries indented for their place.
func reloadYAML(endpoint, extraIssuers, readWindow, extraTiers, leaseMax string) string {
	return fmt.Sprintf(reloadTmpl, endpoint, extraIssuers, readWindow, extraTiers, leaseMax)
}

// reloadWith writes yamlText over the running config, signals a reload and
// waits for its outcome: true when it was applied, false when refused.
func reloadWith(t *testing.T, r *running, yamlText string) bool {
	t.Helper()
	count := func() (int, int) {
		l := r.logs.String()
		return strings.Count(l, `"msg":"configuration reloaded"`), strings.Count(l, `"msg":"reload refused; keeping the running configuration"`)
	}
	ok0, bad0 := count()
	if err := os.WriteFile(r.cfgPath, []byte(yamlText), 0o600); err != nil {
		t.Fatal(err)
	}
	r.reload <- nil
	deadline := time.Now().Add(5 * time.Second)
	for {
		ok, bad := count()
		switch {
		case ok > ok0:
			return true
		case bad > bad0:
			return false
		case time.Now().After(deadline):
			t.Fatalf("reload had no outcome:\n%s", r.logs.String())
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func getConfig(t *testing.T, r *running) map[string]any {
	t.Helper()
	res, err := adminClient.Get("http://" + r.addrs.Admin + "/config")
	if err != nil {
		t.Fatalf("GET /config: %v", err)
	}
	defer res.Body.Close()
	var conf map[string]any
	if err := json.NewDecoder(res.Body).Decode(&conf); err != nil || res.StatusCode != 200 {
		t.Fatalf("GET /config = %d, %v", res.StatusCode, err)
	}
	return conf
}

// tierView finds a tier in GET /config's tier table.
func tierView(conf map[string]any, name string) map[string]any {
	tiers, _ := conf["tiers"].([]any)
	for _, t := range tiers {
		if m, _ := t.(map[string]any); m["name"] == name {
			return m
		}
	}
	return nil
}

// GET /config after a reload that adds a tier used to drop the connection
// (a panic in the handler); the admin view and the decisions must both
// use the new tier table.
func TestConfigAfterReloadAddsTier(t *testing.T) {
	iss := newFakeIssuer(t)
	iss.set("tok", true)
	r := startConfigured(t, reloadYAML(iss.URL, "", "60s", "", "10m"), nil)
	waitServing(t, r)
	if tierView(getConfig(t, r), "bulk") != nil {
		t.Fatal("tier bulk before the reload")
	}

	if !reloadWith(t, r, reloadYAML(iss.URL, "", "60s", "  bulk: { methods: [REPORT, SEARCH], window: 30s }", "10m")) {
		t.Fatalf("reload refused:\n%s", r.logs.String())
	}
	conf := getConfig(t, r)
	bulk := tierView(conf, "bulk")
	if bulk == nil || bulk["window"] != "30s" || fmt.Sprint(bulk["methods"]) != "[REPORT SEARCH]" {
		t.Fatalf("/config tier bulk = %v; tiers %v", bulk, conf["tiers"])
	}
	if read := tierView(conf, "read"); fmt.Sprint(read["methods"]) != "[GET HEAD OPTIONS PROPFIND]" {
		t.Errorf("/config tier read = %v", read)
	}
	if o := check(r, envoyRequest("REPORT", "/f", "tok")); o.code() != codes.OK {
		t.Fatalf("REPORT: %v", o)
	}
	if v := metricValue(t, r, `leasegate_decisions_total{decision="allow",lease="miss",tier="bulk"}`); v != 1 {
		t.Errorf("decisions in tier bulk = %v, want 1", v)
	}
}

// A custom tier at start-up is shown by GET /config too.
func TestConfigWithCustomTier(t *testing.T) {
	iss := newFakeIssuer(t)
	r := startConfigured(t, reloadYAML(iss.URL, "", "60s", "  bulk: { methods: [REPORT], window: 30s }\n  aaa: { methods: [SEARCH], window: 1s }", "10m"), nil)
	conf := getConfig(t, r)
	for name, want := range map[string]string{"read": "[GET HEAD OPTIONS PROPFIND]", "bulk": "[REPORT]", "aaa": "[SEARCH]", "critical": "[DELETE]"} {
		if tv := tierView(conf, name); fmt.Sprint(tv["methods"]) != want {
			t.Errorf("/config tier %s = %v, want methods %s", name, tv, want)
		}
	}
}

func revokeSubject(t *testing.T, r *running, subject string) {
	t.Helper()
	res, err := adminClient.Post("http://"+r.addrs.Admin+"/revoke", "application/json",
		strings.NewReader(fmt.Sprintf(`{"subject":%q,"issuer":"fake"}`, subject)))
	if err != nil || res.StatusCode != 200 {
		t.Fatalf("revoke subject %s: %v %v", subject, res, err)
	}
	res.Body.Close()
}

// A reload that raises lease.max must reach the lease cache: it forgets a
// subject revoke after lease.max, so with the old, shorter lease.max a
// revoked subject's lease came back as a hit inside the new, longer window.
func TestReloadAppliesLeaseMax(t *testing.T) {
	iss := newFakeIssuer(t)
	iss.set("tok", true)
	clock := testclock.New(time.Now())
	r := startConfiguredOpts(t, reloadYAML(iss.URL, "", "1m", "", "1m"), nil, nil, func(o *Options) { o.Now = clock.Now })
	waitServing(t, r)
	if o := check(r, envoyRequest("GET", "/f", "tok")); o.code() != codes.OK || o.lease() != "miss" {
		t.Fatalf("first read: %v", o)
	}
	if !reloadWith(t, r, reloadYAML(iss.URL, "", "30m", "", "30m")) {
		t.Fatalf("reload refused:\n%s", r.logs.String())
	}
	clock.Advance(time.Second)
	revokeSubject(t, r, "alice") // voids tok's lease
	clock.Advance(5 * time.Minute)
	revokeSubject(t, r, "bob") // prunes revoke records older than lease.max

	before := iss.calls.Load()
	o := check(r, envoyRequest("GET", "/f", "tok"))
	if o.lease() == "hit" || iss.calls.Load() != before+1 {
		t.Fatalf("read after alice's revoke: lease %s, issuer calls +%d; want a miss (the revoke forgotten under the old lease.max)", o.lease(), iss.calls.Load()-before)
	}
}

// An admin revoke that lands while a reload replaces the engine applies to
// a validation still in flight in the old engine: its answer must not
// come back as a lease.
func TestRevokeDuringReload(t *testing.T) {
	iss := newFakeIssuer(t)
	iss.set("tok", true)
	r := startConfigured(t, reloadYAML(iss.URL, "", "60s", "", "10m"), nil)
	waitServing(t, r)
	hold := make(chan struct{})
	iss.mu.Lock()
	iss.hold = hold
	iss.mu.Unlock()
	before := iss.calls.Load()
	first := make(chan outcome, 1)
	go func() { first <- check(r, envoyRequest("GET", "/f", "tok")) }()
	for iss.calls.Load() == before { // in flight at the issuer, in the old engine
		time.Sleep(2 * time.Millisecond)
	}

	if !reloadWith(t, r, reloadYAML(iss.URL, "", "60s", "  bulk: { methods: [REPORT], window: 1s }", "10m")) {
		t.Fatalf("reload refused:\n%s", r.logs.String())
	}
	res, err := adminClient.Post("http://"+r.addrs.Admin+"/revoke", "application/json", strings.NewReader(`{"token":"tok"}`))
	if err != nil || res.StatusCode != 200 {
		t.Fatalf("revoke: %v %v", res, err)
	}
	res.Body.Close()
	iss.mu.Lock()
	iss.hold = nil
	iss.mu.Unlock()
	close(hold)
	if o := <-first; o.code() != codes.OK {
		t.Fatalf("the check that was in flight: %v", o) // it came before the revoke
	}

	before = iss.calls.Load()
	o := check(r, envoyRequest("GET", "/f", "tok"))
	if o.lease() == "hit" || iss.calls.Load() != before+1 {
		t.Fatalf("read after the revoke: lease %s, issuer calls +%d; the pre-revoke answer was kept as a lease", o.lease(), iss.calls.Load()-before)
	}
}

// jwksServer serves one RSA key and counts its open connections.
type jwksServer struct {
	*httptest.Server
	open atomic.Int64
}

func newJWKSServer(t *testing.T) *jwksServer {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	pub, err := jwk.FromRaw(&key.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	_ = pub.Set(jwk.KeyIDKey, "k1")
	_ = pub.Set(jwk.AlgorithmKey, jwa.RS256)
	set := jwk.NewSet()
	_ = set.AddKey(pub)
	body, err := json.Marshal(set)
	if err != nil {
		t.Fatal(err)
	}
	js := &jwksServer{}
	js.Server = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/jwk-set+json")
		w.Write(body)
	}))
	js.Config.ConnState = countConns(&js.open)
	js.Start()
	t.Cleanup(js.Close)
	return js
}

func jwtIssuerYAML(name, jwksURL string) string {
	return fmt.Sprintf(`  - name: %s
    issuer: "https://%s.example/"
    mode: jwt
    jwks_uri: %q
    audiences: ["https://storage.example.org"]`, name, name, jwksURL)
}

func waitOpen(t *testing.T, what string, n *atomic.Int64, want int64) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for n.Load() != want {
		if time.Now().After(deadline) {
			t.Fatalf("%s: %d connections open, want %d", what, n.Load(), want)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// After a reload the old engine's issuer connections are closed and its
// JWKS refresh stops, once the checks still running on it are done; those
// checks finish normally.
func TestReloadClosesOldIssuerConnections(t *testing.T) {
	oldIss, newIss := newFakeIssuer(t), newFakeIssuer(t)
	oldIss.set("tok", true)
	newIss.set("tok", true)
	oldJWKS, newJWKS := newJWKSServer(t), newJWKSServer(t)
	r := startConfigured(t, reloadYAML(oldIss.URL, jwtIssuerYAML("jwt", oldJWKS.URL), "60s", "", "10m"), nil)
	waitServing(t, r)
	if o := check(r, envoyRequest("DELETE", "/f", "tok")); o.code() != codes.OK {
		t.Fatalf("check before the reload: %v", o)
	}
	if oldIss.open.Load() == 0 || oldJWKS.open.Load() == 0 {
		t.Fatalf("no connection kept to the issuer (%d) or JWKS (%d) to begin with", oldIss.open.Load(), oldJWKS.open.Load())
	}

	// A check in flight on the old engine across the reload.
	hold := make(chan struct{})
	oldIss.mu.Lock()
	oldIss.hold = hold
	oldIss.mu.Unlock()
	before := oldIss.calls.Load()
	inflight := make(chan outcome, 1)
	go func() { inflight <- check(r, envoyRequest("DELETE", "/f", "tok")) }()
	for oldIss.calls.Load() == before {
		time.Sleep(2 * time.Millisecond)
	}
	if !reloadWith(t, r, reloadYAML(newIss.URL, jwtIssuerYAML("jwt", newJWKS.URL), "60s", "", "10m")) {
		t.Fatalf("reload refused:\n%s", r.logs.String())
	}
	if o := check(r, envoyRequest("DELETE", "/f", "tok")); o.code() != codes.OK || newIss.calls.Load() == 0 {
		t.Fatalf("check after the reload: %v (new issuer calls %d)", o, newIss.calls.Load())
	}
	if oldIss.open.Load() == 0 {
		t.Fatal("the in-flight check's connection was closed under it")
	}
	oldIss.mu.Lock()
	oldIss.hold = nil
	oldIss.mu.Unlock()
	close(hold)
	if o := <-inflight; o.code() != codes.OK {
		t.Fatalf("the check in flight across the reload: %v", o)
	}
	waitOpen(t, "old introspection issuer", &oldIss.open, 0)
	waitOpen(t, "old JWKS", &oldJWKS.open, 0)
}

// A refused reload changes nothing: the old tiers, lease.max, bound and
// issuer stay in force.
func TestRefusedReloadChangesNothing(t *testing.T) {
	iss, other := newFakeIssuer(t), newFakeIssuer(t)
	iss.set("tok", true)
	r := startConfigured(t, reloadYAML(iss.URL, "", "60s", "", "10m"), nil)
	waitServing(t, r)
	want := getConfig(t, r)
	// Valid YAML that the engine refuses (a jwt issuer without audiences).
	bad := reloadYAML(other.URL, "  - { name: j, issuer: \"https://j.example/\", mode: jwt, jwks_uri: \"http://127.0.0.1:1/\" }",
		"5m", "  bulk: { methods: [REPORT], window: 30s }", "30m")
	if reloadWith(t, r, bad) {
		t.Fatal("a config without jwt audiences was applied")
	}
	got := getConfig(t, r)
	for _, k := range []string{"tiers", "lease", "revocation_bound", "issuers"} {
		if fmt.Sprint(got[k]) != fmt.Sprint(want[k]) {
			t.Errorf("/config %s after a refused reload:\n got %v\nwant %v", k, got[k], want[k])
		}
	}
	if o := check(r, envoyRequest("DELETE", "/f", "tok")); o.code() != codes.OK || other.calls.Load() != 0 {
		t.Fatalf("check after a refused reload: %v, refused config's issuer called %d times", o, other.calls.Load())
	}
	if v := metricValue(t, r, `leasegate_config_reloads_total{outcome="refused"}`); v != 1 {
		t.Errorf(`leasegate_config_reloads_total{outcome="refused"} = %v, want 1`, v)
	}
}

// The admin listener stays where it was bound until a restart, so a reload
// that moves it to loopback cannot also drop the secret it needs there.
func TestReloadCannotOpenTheAdminListener(t *testing.T) {
	iss := newFakeIssuer(t)
	exposed := strings.Replace(reloadYAML(iss.URL, "", "60s", "", "10m"), `admin: "127.0.0.1:0"`, `admin: "0.0.0.0:0"`, 1) +
		fmt.Sprintf("admin: { secret_file: %q }\n", writeSecret(t, "admin", secretAdmin))
	r := startConfigured(t, exposed, nil)
	if code, _ := adminPost(t, r, "/revoke", "", `{"token":"x"}`); code != http.StatusUnauthorized {
		t.Fatalf("revoke without the secret before the reload: %d", code)
	}
	// Valid on its own: a loopback admin listener needs no secret.
	if reloadWith(t, r, reloadYAML(iss.URL, "", "60s", "", "10m")) {
		t.Fatal("a reload dropped the admin secret of a listener still bound to 0.0.0.0")
	}
	if code, _ := adminPost(t, r, "/revoke", "", `{"token":"x"}`); code != http.StatusUnauthorized {
		t.Fatalf("revoke without the secret after the reload: %d, want 401", code)
	}
}

// Settings only a restart applies keep their running values, in GET
// /config and in the answers: the realm of the engine's denials stays the
// one the front ends use.
func TestReloadKeepsRestartOnlySettings(t *testing.T) {
	iss := newFakeIssuer(t)
	r := startConfigured(t, reloadYAML(iss.URL, "", "60s", "", "10m"), nil)
	waitServing(t, r)
	next := strings.Replace(reloadYAML(iss.URL, "", "30s", "", "10m"), "max_memory_mb: 8", "max_memory_mb: 16", 1) + "realm: elsewhere\n"
	if !reloadWith(t, r, next) {
		t.Fatalf("reload refused:\n%s", r.logs.String())
	}
	if !strings.Contains(r.logs.String(), `"changed":"lease.max_memory_mb, realm"`) {
		t.Errorf("no warning naming the restart-only settings:\n%s", grepLines(r.logs.String(), "restart"))
	}
	conf := getConfig(t, r)
	lease, _ := conf["lease"].(map[string]any)
	if conf["realm"] != "leasegate" || fmt.Sprint(lease["max_memory_mb"]) != "8" {
		t.Errorf("/config realm %v, lease %v: want the running leasegate and 8", conf["realm"], lease)
	}
	if read := tierView(conf, "read"); read["window"] != "30s" {
		t.Errorf("/config read window %v, want the reloaded 30s", read["window"])
	}
	o := check(r, envoyRequest("GET", "/f", ""))
	if h := o.deniedHeader("www-authenticate"); !strings.Contains(h, `realm="leasegate"`) {
		t.Errorf("denial after the reload: WWW-Authenticate %q, want the running realm", h)
	}
}

// A validation can outlive its check: the caller's deadline ends first
// (503), the issuer call goes on to fill the lease for the next request.
// When a reload retires its engine meanwhile and then a revoke lands, the
// late answer must not come back as a lease either.
func TestRevokeReachesValidationOutlivingItsCheck(t *testing.T) {
	iss := newFakeIssuer(t)
	iss.set("tok", true)
	r := startConfigured(t, reloadYAML(iss.URL, "", "60s", "", "10m"), nil)
	waitServing(t, r)
	const active = `leasegate_issuer_requests_total{issuer="fake",outcome="active"}`
	actives := metricValue(t, r, active)
	hold := make(chan struct{})
	iss.mu.Lock()
	iss.hold = hold
	iss.mu.Unlock()
	released := false
	defer func() { // a failure below must not leave the fake issuer's Close waiting on it
		if !released {
			close(hold)
		}
	}()
	before := iss.calls.Load()
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	resp, err := r.client.Check(ctx, envoyRequest("GET", "/f", "tok"))
	// The check ends first: leasegate's 503 at the propagated deadline, or,
	// on a loaded machine, the client's own deadline a moment before it.
	ended := (err == nil && codes.Code(resp.GetStatus().GetCode()) == codes.Unavailable) || status.Code(err) == codes.DeadlineExceeded
	if !ended || iss.calls.Load() != before+1 {
		t.Fatalf("check with a short deadline: %v %v, %d issuer calls: want it ended while the issuer call goes on", resp.GetStatus(), err, iss.calls.Load()-before)
	}

	if !reloadWith(t, r, reloadYAML(iss.URL, "", "60s", "  bulk: { methods: [REPORT], window: 1s }", "10m")) {
		t.Fatalf("reload refused:\n%s", r.logs.String())
	}
	if code, _ := adminPost(t, r, "/revoke", "", `{"token":"tok"}`); code != 200 {
		t.Fatalf("revoke: %d", code)
	}
	iss.mu.Lock()
	iss.hold = nil
	iss.mu.Unlock()
	close(hold)
	released = true
	deadline := time.Now().Add(5 * time.Second)
	for metricValue(t, r, active) == actives { // the late answer is in
		if time.Now().After(deadline) {
			t.Fatal("the issuer call never finished")
		}
		time.Sleep(5 * time.Millisecond)
	}
	for range 10 { // and its lease, if it kept one, stored right after
		if n := metricValue(t, r, "leasegate_leases"); n != 0 {
			t.Fatalf("leasegate_leases = %v after the revoke: the pre-revoke answer was kept", n)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// SPEC §1: "The server logs this bound at start": the longest window,
// and the longest age stale_if_error may serve while the issuer is down.
func TestStartLogsRevocationBound(t *testing.T) {
	iss := newFakeIssuer(t)
	yaml := strings.Replace(fmt.Sprintf(testConfigTmpl, iss.URL, "45s"), "read: { window: 45s }",
		"read: { window: 45s, stale_if_error: 3m }\n  write: { window: 20s }", 1)
	r := startConfigured(t, yaml, nil)
	var start map[string]any
	for line := range strings.Lines(r.logs.String()) {
		var rec map[string]any
		if json.Unmarshal([]byte(line), &rec) == nil && rec["msg"] == "leasegate starting" {
			start = rec
		}
	}
	if start == nil {
		t.Fatalf("no start line in\n%s", r.logs.String())
	}
	if start["revocation_bound"] != "45s" || start["revocation_bound_with_stale"] != "3m0s" || start["lease_max"] != "10m0s" {
		t.Errorf("start line bound = %v / %v / %v, want 45s / 3m0s / 10m0s",
			start["revocation_bound"], start["revocation_bound_with_stale"], start["lease_max"])
	}
}
