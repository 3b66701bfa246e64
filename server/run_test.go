package server

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
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
)

// fakeIssuer is an RFC 7662 endpoint that knows some tokens and counts calls.
type fakeIssuer struct {
	*httptest.Server
	calls  atomic.Int64
	mu     sync.Mutex
	active map[string]bool
	delay  time.Duration
	hold   chan struct{} // when non-nil, answers wait for it
}

func newFakeIssuer(t *testing.T) *fakeIssuer {
	t.Helper()
	fi := &fakeIssuer{active: map[string]bool{}}
	fi.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
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
	t.Cleanup(fi.Close)
	return fi
}

func (fi *fakeIssuer) set(tok string, active bool) {
	fi.mu.Lock()
	fi.active[tok] = active
	fi.mu.Unlock()
}

const testConfigTmpl = `
listen:
  grpc: "127.0.0.1:0"
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
		byName[s.Name] = s
		if s.SpanContext.TraceID() != traceID {
			t.Errorf("span %s has trace %s, want Envoy's %s", s.Name, s.SpanContext.TraceID(), traceID)
		}
		for _, a := range s.Attributes {
			if strings.Contains(a.Value.Emit(), "traced-token") {
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
		attrs[string(a.Key)] = a.Value.Emit()
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
