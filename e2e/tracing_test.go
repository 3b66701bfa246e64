package e2e

import (
	"crypto/rand"
	"encoding/hex"
	"regexp"
	"strings"
	"testing"
	"time"

	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"

	"github.com/leasegate/leasegate/e2e/internal/leasegate"
	"github.com/leasegate/leasegate/e2e/internal/otlpsink"
)

const checkSpanName = "envoy.service.auth.v3.Authorization/Check"

// TestTracing: leasegate exports OTLP/gRPC spans (configured only by the
// standard OTEL_* variables) to a receiver started here. A Check whose gRPC
// metadata carries a W3C traceparent yields, in that trace, the Check
// server span (child of the caller's span), the lease lookup and the
// introspection client span; no attribute anywhere holds the token.
func TestTracing(t *testing.T) {
	t.Parallel()
	sink, err := otlpsink.Start()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(sink.Close)
	s := newStack(t, stackOptions{Env: []string{
		"OTEL_EXPORTER_OTLP_ENDPOINT=" + sink.Endpoint(),
		"OTEL_EXPORTER_OTLP_PROTOCOL=grpc",
		"OTEL_TRACES_SAMPLER=parentbased_always_on",
		"OTEL_BSP_SCHEDULE_DELAY=100",
		"OTEL_SERVICE_NAME=leasegate-e2e",
	}})
	tok := s.token(t)

	// A miss: Check → lease.lookup → introspect hydra.
	missTrace, missParent := randomHex(t, 16), randomHex(t, 8)
	s.expect(t, leasegate.Request{Method: "GET", Path: "/data/t", Token: tok,
		Metadata: map[string]string{"traceparent": "00-" + missTrace + "-" + missParent + "-01"}},
		expectation{allowed: true, lease: "miss", calls: 1})
	// A hit: Check → lease.lookup, no issuer call.
	hitTrace, hitParent := randomHex(t, 16), randomHex(t, 8)
	s.expect(t, leasegate.Request{Method: "GET", Path: "/data/t", Token: tok, HeaderMap: true,
		Metadata: map[string]string{"traceparent": "00-" + hitTrace + "-" + hitParent + "-01"}},
		expectation{allowed: true, lease: "hit", calls: 0})
	// A denial, so a token-bearing failure path is traced too.
	denyTrace := randomHex(t, 16)
	s.check(t, leasegate.Request{Method: "DELETE", Path: "/data/t", Token: alterToken(tok),
		Metadata: map[string]string{"traceparent": "00-" + denyTrace + "-" + randomHex(t, 8) + "-01"}})

	// SPEC §6: each traced check's duration is an exemplar with its
	// trace_id (OpenMetrics, on the metrics listener), and its log line
	// names the trace.
	t.Run("exemplars", func(t *testing.T) {
		body, err := s.leasegate.OpenMetrics(testCtx(t, 10*time.Second))
		if err != nil {
			t.Fatal(err)
		}
		for lease, trace := range map[string]string{"miss": missTrace, "hit": hitTrace} {
			re := regexp.MustCompile(`(?m)^leasegate_check_duration_seconds_bucket\{[^}]*lease="` + lease + `"[^}]*\} \d+ # \{trace_id="` + trace + `"\}`)
			if !re.Match(body) {
				t.Errorf("no check_duration exemplar for the %s request's trace %s", lease, trace)
			}
		}
		if !regexp.MustCompile(`(?m)^leasegate_issuer_request_duration_seconds_bucket\{.*# \{trace_id="[0-9a-f]{32}"\}`).Match(body) {
			t.Error("no issuer_request_duration exemplar")
		}
	})
	t.Run("log trace ids", func(t *testing.T) {
		e, err := s.leasegate.WaitLog(testCtx(t, 5*time.Second), func(e leasegate.LogEntry) bool {
			return e.Msg == "denied" && strings.Contains(string(e.Raw), `"trace_id":"`+denyTrace+`"`)
		})
		if err != nil {
			t.Fatalf("no denied line with trace_id %s: %v", denyTrace, err)
		}
		if !regexp.MustCompile(`"span_id":"[0-9a-f]{16}"`).Match(e.Raw) {
			t.Errorf("denied line without span_id: %s", e.Raw)
		}
	})

	introspectName := "introspect " + issuerName
	has := func(spans []otlpsink.Span, trace string, names ...string) bool {
		for _, n := range names {
			if findSpan(spans, trace, n) == nil {
				return false
			}
		}
		return true
	}
	spans, err := sink.WaitFor(testCtx(t, 15*time.Second), func(sp []otlpsink.Span) bool {
		return has(sp, missTrace, checkSpanName, "lease.lookup", introspectName) && has(sp, hitTrace, checkSpanName, "lease.lookup")
	})
	if err != nil {
		t.Fatalf("spans not received (%v); got %s", err, describeSpans(spans))
	}

	t.Run("miss trace", func(t *testing.T) {
		check := findSpan(spans, missTrace, checkSpanName)
		if check.ParentSpanID != missParent {
			t.Errorf("Check span parent %q, want the caller's span %s", check.ParentSpanID, missParent)
		}
		if check.Kind != tracepb.Span_SPAN_KIND_SERVER {
			t.Errorf("Check span kind %v, want SERVER", check.Kind)
		}
		for k, v := range map[string]string{
			"leasegate.tier":     "read",
			"leasegate.lease":    "miss",
			"leasegate.decision": "allow",
			"leasegate.issuer":   issuerName,
		} {
			if check.Attributes[k] != v {
				t.Errorf("Check span %s = %q, want %q", k, check.Attributes[k], v)
			}
		}
		if check.Attributes["leasegate.reason"] == "" {
			t.Errorf("Check span lacks leasegate.reason: %v", check.Attributes)
		}
		if check.Resource["service.name"] != "leasegate-e2e" {
			t.Errorf("resource service.name %q, want OTEL_SERVICE_NAME's leasegate-e2e", check.Resource["service.name"])
		}
		lookup := findSpan(spans, missTrace, "lease.lookup")
		if lookup.ParentSpanID != check.SpanID {
			t.Errorf("lease.lookup parent %q, want the Check span %s", lookup.ParentSpanID, check.SpanID)
		}
		intro := findSpan(spans, missTrace, introspectName)
		if intro.Kind != tracepb.Span_SPAN_KIND_CLIENT {
			t.Errorf("%s kind %v, want CLIENT", introspectName, intro.Kind)
		}
		if !descendsFrom(spans, intro, check.SpanID) {
			t.Errorf("%s is not under the Check span: %s", introspectName, describeSpans(spans))
		}
	})

	t.Run("hit trace", func(t *testing.T) {
		check := findSpan(spans, hitTrace, checkSpanName)
		if check.Attributes["leasegate.lease"] != "hit" || check.ParentSpanID != hitParent {
			t.Errorf("hit Check span: parent %q lease %q", check.ParentSpanID, check.Attributes["leasegate.lease"])
		}
		if findSpan(spans, hitTrace, introspectName) != nil {
			t.Errorf("a lease hit made an introspection span")
		}
	})

	t.Run("no token in any span", func(t *testing.T) {
		// Whatever else arrived by now, in every trace.
		for _, sp := range sink.Spans() {
			for _, attrs := range append([]map[string]string{sp.Attributes, sp.Resource}, sp.EventAttrs...) {
				for k, v := range attrs {
					if strings.Contains(v, tok) || strings.Contains(v, tokenCore(tok)) {
						t.Errorf("span %q attribute %s holds the token", sp.Name, k)
					}
				}
			}
			if strings.Contains(sp.Name, tokenCore(tok)) {
				t.Errorf("span name %q holds the token", sp.Name)
			}
		}
	})
}

func findSpan(spans []otlpsink.Span, trace, name string) *otlpsink.Span {
	for i := range spans {
		if spans[i].TraceID == trace && spans[i].Name == name {
			return &spans[i]
		}
	}
	return nil
}

// descendsFrom reports whether ancestor is on sp's parent chain.
func descendsFrom(spans []otlpsink.Span, sp *otlpsink.Span, ancestor string) bool {
	byID := map[string]*otlpsink.Span{}
	for i := range spans {
		if spans[i].TraceID == sp.TraceID {
			byID[spans[i].SpanID] = &spans[i]
		}
	}
	for cur, n := sp, 0; cur != nil && n < 32; n++ {
		if cur.ParentSpanID == ancestor {
			return true
		}
		cur = byID[cur.ParentSpanID]
	}
	return false
}

func describeSpans(spans []otlpsink.Span) string {
	var b strings.Builder
	for _, sp := range spans {
		b.WriteString("\n  " + sp.TraceID + " " + sp.SpanID + "←" + sp.ParentSpanID + " " + sp.Name)
	}
	return b.String()
}

// tokenCore is a distinctive part of a token, so a partial leak is found
// too: an opaque Hydra token's random part (ory_at_<random>.<signature>
// for access tokens, ory_rt_ for refresh tokens), a JWT's signature.
func tokenCore(tok string) string {
	if strings.Count(tok, ".") == 2 {
		return tok[strings.LastIndexByte(tok, '.')+1:]
	}
	core := strings.TrimPrefix(strings.TrimPrefix(tok, "ory_at_"), "ory_rt_")
	if i := strings.IndexByte(core, '.'); i > 8 {
		core = core[:i]
	}
	return core
}

// alterToken changes one character of an opaque token's signature part.
func alterToken(tok string) string {
	last := tok[len(tok)-2]
	c := byte('x')
	if last == 'x' {
		c = 'y'
	}
	return tok[:len(tok)-2] + string(c) + tok[len(tok)-1:]
}

func randomHex(t *testing.T, n int) string {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}
