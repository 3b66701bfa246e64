package authz

import (
	"context"
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/leasegate/leasegate/authz/denylog"
	"github.com/leasegate/leasegate/authz/metrics"
)

// exemplarTraceIDs lists the trace_id of every exemplar on family's
// histogram buckets.
func exemplarTraceIDs(t *testing.T, reg *prometheus.Registry, family string) []string {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, mf := range mfs {
		if mf.GetName() != family {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, b := range m.GetHistogram().GetBucket() {
				for _, l := range b.GetExemplar().GetLabel() {
					if l.GetName() == "trace_id" {
						ids = append(ids, l.GetValue())
					}
				}
			}
		}
	}
	return ids
}

// SPEC §6: the duration histograms carry the trace_id of a sampled
// request as an exemplar, and an unsampled one leaves none.
func TestDurationExemplarsCarryTraceID(t *testing.T) {
	env := newEngEnv(t, engOpts{})
	env.iss.setAnswer("tok-a", env.active(nil))
	env.iss.setAnswer("tok-b", env.active(nil))
	check := func(tp trace.TracerProvider, tok string) trace.SpanContext {
		ctx, span := tp.Tracer("test").Start(context.Background(), "Check")
		defer span.End()
		if d := env.eng.Check(ctx, &Request{Method: "GET", Path: "/f", Host: "storage.example.org", Headers: bearer(tok)}); !d.Allow {
			t.Fatalf("%s: %+v, want allow", tok, d)
		}
		return span.SpanContext()
	}

	unsampled := sdktrace.NewTracerProvider(sdktrace.WithSampler(sdktrace.NeverSample()))
	check(unsampled, "tok-a")
	for _, f := range []string{"leasegate_check_duration_seconds", "leasegate_issuer_request_duration_seconds"} {
		if ids := exemplarTraceIDs(t, env.reg, f); len(ids) != 0 {
			t.Errorf("%s: exemplars %v after an unsampled request, want none", f, ids)
		}
	}

	sampled := sdktrace.NewTracerProvider(sdktrace.WithSampler(sdktrace.AlwaysSample()))
	sc := check(sampled, "tok-b")
	for _, f := range []string{"leasegate_check_duration_seconds", "leasegate_issuer_request_duration_seconds"} {
		ids := exemplarTraceIDs(t, env.reg, f)
		if len(ids) != 1 || ids[0] != sc.TraceID().String() {
			t.Errorf("%s: exemplar trace_ids %v, want [%s]", f, ids, sc.TraceID())
		}
	}
}

func TestJWKSRefreshesCounted(t *testing.T) {
	jw := newEngJWT(t, ModeJWT, engOpts{})
	refreshes := func(outcome string) float64 {
		return jw.counter("leasegate_jwks_refreshes_total", "issuer", engIssuerName, "outcome", outcome)
	}
	if ok, failed := refreshes("ok"), refreshes("error"); ok != 1 || failed != 0 {
		t.Fatalf("after the start: ok %v error %v, want 1 and 0", ok, failed)
	}
	stranger := newTestKey(t, jwa.ES256, "unknown-kid", 0)
	tok := stranger.sign(t, jw.claims(nil), nil)
	if d := jw.check("GET", "/f", tok); d.Allow {
		t.Fatalf("unknown key allowed: %+v", d)
	}
	if ok := refreshes("ok"); ok != 2 {
		t.Fatalf("after an unknown kid: ok %v, want 2 (one on-demand refresh)", ok)
	}
	jw.jwks.down.Store(true)
	jw.clock.Advance(2 * time.Hour) // past MinRefetchInterval
	if d := jw.check("GET", "/f", tok); d.Allow || d.Status != 503 {
		t.Fatalf("unknown key, JWKS down: %+v, want 503", d)
	}
	if ok, failed := refreshes("ok"), refreshes("error"); ok != 2 || failed != 1 {
		t.Fatalf("after a failed refresh: ok %v error %v, want 2 and 1", ok, failed)
	}
}

// gaugeValue reads the one gauge c exports for issuer.
func gaugeValue(t *testing.T, c prometheus.Collector, issuer string) (float64, bool) {
	t.Helper()
	ch := make(chan prometheus.Metric, 8)
	go func() { c.Collect(ch); close(ch) }()
	v, found := 0.0, false
	for m := range ch {
		var pb dto.Metric
		if err := m.Write(&pb); err != nil {
			t.Fatal(err)
		}
		for _, l := range pb.GetLabel() {
			if l.GetName() == "issuer" && l.GetValue() == issuer {
				v, found = pb.GetGauge().GetValue(), true
			}
		}
	}
	return v, found
}

func TestBreakerOpenGauge(t *testing.T) {
	const tok = "opaque-breaker-gauge"
	env := newEngEnv(t, engOpts{issuer: func(ic *IssuerConfig) { ic.BreakerFailures, ic.BreakerOpenFor = 2, 10*time.Second }})
	env.iss.setAnswer(tok, env.active(nil))
	c := metrics.BreakerCollector(env.eng.BreakersOpen)
	want := func(step string, v float64) {
		t.Helper()
		got, found := gaugeValue(t, c, engIssuerName)
		if !found || got != v {
			t.Fatalf("%s: leasegate_breaker_open{issuer=%q} = %v (exported %v), want %v", step, engIssuerName, got, found, v)
		}
	}
	want("closed", 0)
	env.iss.setFault(func(w http.ResponseWriter, _ *http.Request) { http.Error(w, "down", http.StatusBadGateway) })
	env.check("GET", "/f", tok)
	want("one fault of two", 0)
	env.check("GET", "/f", tok)
	want("open", 1)
	env.clock.Advance(10 * time.Second)
	want("past open_for, no probe yet", 1)
	env.iss.setFault(nil)
	if d := env.check("GET", "/f", tok); !d.Allow {
		t.Fatalf("probe: %+v, want allow", d)
	}
	want("closed by the probe", 0)

	if _, found := gaugeValue(t, metrics.BreakerCollector(func() map[string]bool { return nil }), engIssuerName); found {
		t.Error("a collector without an engine exported a series")
	}
}

// deniedLines returns the "denied" log lines in logs, decoded.
func deniedLines(t *testing.T, logs string) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, l := range strings.Split(strings.TrimSpace(logs), "\n") {
		var m map[string]any
		if l == "" || json.Unmarshal([]byte(l), &m) != nil {
			continue
		}
		if m["msg"] == "denied" {
			out = append(out, m)
		}
	}
	return out
}

func TestDenialLogLimit(t *testing.T) {
	clock := newEngClock()
	dl, err := denylog.New(denylog.Config{PerSecond: 2, Now: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	env := newEngEnv(t, engOpts{config: func(c *Config) { c.DenialLog = dl }})
	env.iss.setAnswer("good", env.active(nil))
	for range 10 {
		if d := env.check("GET", "/f", "garbage"); d.Allow {
			t.Fatal("garbage allowed")
		}
	}
	lines := deniedLines(t, env.logs.String())
	if len(lines) != 2 {
		t.Fatalf("%d denial lines in a burst of 10 at 2/s, want 2 (one second's worth)", len(lines))
	}
	if _, ok := lines[1]["suppressed"]; ok {
		t.Errorf("a line before any suppression says suppressed: %v", lines[1])
	}
	for range 3 {
		if d := env.check("GET", "/f", "good"); !d.Allow {
			t.Fatalf("good token: %+v", d)
		}
	}
	if n := strings.Count(env.logs.String(), `"msg":"allowed"`); n != 3 {
		t.Errorf("%d allow lines, want 3: allows are not limited", n)
	}
	clock.Advance(500 * time.Millisecond) // one token back
	env.check("GET", "/f", "garbage")
	env.check("GET", "/f", "garbage")
	lines = deniedLines(t, env.logs.String())
	if len(lines) != 3 {
		t.Fatalf("%d denial lines after half a second more, want 3", len(lines))
	}
	if got := lines[2]["suppressed"]; got != float64(8) {
		t.Errorf("suppressed = %v on the first line after the burst, want 8", got)
	}

	unlimited := newEngEnv(t, engOpts{})
	for range 10 {
		unlimited.check("GET", "/f", "garbage")
	}
	if n := len(deniedLines(t, unlimited.logs.String())); n != 10 {
		t.Errorf("no limit: %d denial lines for 10 denials", n)
	}
}

// The judged request goes on the span under the semantic-convention keys;
// an unknown method is _OTHER, and the query (which may hold a token)
// never appears.
func TestSpanRequestAttributes(t *testing.T) {
	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	env := newEngEnv(t, engOpts{config: func(c *Config) { c.TracerProvider = tp }})
	for _, tc := range []struct {
		method, host string
		want         map[string]string
		absent       []string
	}{
		{method: "PROPFIND", host: "storage.example.org:8443",
			want:   map[string]string{"http.request.method": "PROPFIND", "url.path": "/atlas/f", "server.address": "storage.example.org", "server.port": "8443"},
			absent: []string{"http.request.method_original"}},
		{method: "BREW", host: "storage.example.org",
			want:   map[string]string{"http.request.method": "_OTHER", "http.request.method_original": "BREW", "server.address": "storage.example.org"},
			absent: []string{"server.port"}},
	} {
		t.Run(tc.method, func(t *testing.T) {
			exp.Reset()
			ctx, span := tp.Tracer("test").Start(context.Background(), "Check")
			env.eng.Check(ctx, &Request{Method: tc.method, Path: "/atlas/f?access_token=secret-in-query", Host: tc.host, Headers: bearer("tok")})
			span.End()
			spans := exp.GetSpans()
			var got map[string]string
			for _, s := range spans {
				if s.Name != "Check" {
					continue
				}
				got = map[string]string{}
				for _, a := range s.Attributes {
					got[string(a.Key)] = a.Value.String()
					if strings.Contains(a.Value.String(), "secret-in-query") {
						t.Errorf("attribute %s holds the query: %q", a.Key, a.Value.String())
					}
				}
			}
			for k, v := range tc.want {
				if got[k] != v {
					t.Errorf("%s = %q, want %q", k, got[k], v)
				}
			}
			for _, k := range tc.absent {
				if _, ok := got[k]; ok {
					t.Errorf("%s set (%q), want absent", k, got[k])
				}
			}
		})
	}
}

// TestIssuerSeriesFromTheStart: before any validation, every outcome of
// the configured issuer is exported at zero (the issuer-error alert's
// rate needs the series to exist), and a validation counts into them.
func TestIssuerSeriesFromTheStart(t *testing.T) {
	env := newEngEnv(t, engOpts{})
	var outcomes []string
	for _, m := range env.family("leasegate_issuer_requests_total") {
		if !labelsMatch(m, []string{"issuer", engIssuerName}) || m.GetCounter().GetValue() != 0 {
			t.Fatalf("series before any validation: %v", m)
		}
		for _, lp := range m.GetLabel() {
			if lp.GetName() == "outcome" {
				outcomes = append(outcomes, lp.GetValue())
			}
		}
	}
	slices.Sort(outcomes)
	if want := []string{"active", "circuit_open", "error", "inactive", "invalid"}; !slices.Equal(outcomes, want) {
		t.Fatalf("outcomes %v, want %v", outcomes, want)
	}
	env.check("GET", "/f", "some-unknown-token")
	if got := env.counter("leasegate_issuer_requests_total", "outcome", "inactive"); got != 1 {
		t.Errorf("inactive after one refusal: %v", got)
	}
}
