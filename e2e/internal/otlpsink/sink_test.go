package otlpsink

import (
	"context"
	"testing"
	"time"

	collectortrace "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	resourcepb "go.opentelemetry.io/proto/otlp/resource/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
)

func str(k, v string) *commonpb.KeyValue {
	return &commonpb.KeyValue{Key: k, Value: &commonpb.AnyValue{Value: &commonpb.AnyValue_StringValue{StringValue: v}}}
}

func TestSinkRecordsExportedSpans(t *testing.T) {
	s, err := Start()
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	conn, err := grpc.NewClient("passthrough:///"+s.Addr(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	traceID := []byte{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16}
	req := &collectortrace.ExportTraceServiceRequest{ResourceSpans: []*tracepb.ResourceSpans{{
		Resource: &resourcepb.Resource{Attributes: []*commonpb.KeyValue{str("service.name", "svc")}},
		ScopeSpans: []*tracepb.ScopeSpans{{
			Scope: &commonpb.InstrumentationScope{Name: "scope"},
			Spans: []*tracepb.Span{
				{TraceId: traceID, SpanId: []byte{1, 1, 1, 1, 1, 1, 1, 1}, Name: "root", Kind: tracepb.Span_SPAN_KIND_SERVER,
					Attributes: []*commonpb.KeyValue{
						str("a", "b"),
						{Key: "n", Value: &commonpb.AnyValue{Value: &commonpb.AnyValue_IntValue{IntValue: 42}}},
						{Key: "list", Value: &commonpb.AnyValue{Value: &commonpb.AnyValue_ArrayValue{ArrayValue: &commonpb.ArrayValue{
							Values: []*commonpb.AnyValue{{Value: &commonpb.AnyValue_StringValue{StringValue: "x"}}, {Value: &commonpb.AnyValue_BoolValue{BoolValue: true}}}}}}},
					},
					Events: []*tracepb.Span_Event{{Name: "e", Attributes: []*commonpb.KeyValue{str("ev", "1")}}}},
				{TraceId: traceID, SpanId: []byte{2, 2, 2, 2, 2, 2, 2, 2}, ParentSpanId: []byte{1, 1, 1, 1, 1, 1, 1, 1}, Name: "child"},
			},
		}},
	}}}
	if _, err := collectortrace.NewTraceServiceClient(conn).Export(ctx, req); err != nil {
		t.Fatal(err)
	}
	spans, err := s.WaitFor(ctx, func(sp []Span) bool { return len(sp) == 2 })
	if err != nil {
		t.Fatal(err)
	}
	const tid = "0102030405060708090a0b0c0d0e0f10"
	root, child := spans[0], spans[1]
	for _, c := range []struct {
		name      string
		got, want string
	}{
		{name: "trace id hex", got: root.TraceID, want: tid},
		{name: "root has no parent", got: root.ParentSpanID, want: ""},
		{name: "child parent", got: child.ParentSpanID, want: "0101010101010101"},
		{name: "string attribute", got: root.Attributes["a"], want: "b"},
		{name: "int attribute", got: root.Attributes["n"], want: "42"},
		{name: "array attribute", got: root.Attributes["list"], want: "[x,true]"},
		{name: "resource", got: root.Resource["service.name"], want: "svc"},
		{name: "scope", got: root.Scope, want: "scope"},
		{name: "event attribute", got: root.EventAttrs[0]["ev"], want: "1"},
	} {
		t.Run(c.name, func(t *testing.T) {
			if c.got != c.want {
				t.Errorf("got %q, want %q", c.got, c.want)
			}
		})
	}
	if got := s.Trace(tid); len(got) != 2 {
		t.Errorf("Trace(%s) = %d spans, want 2", tid, len(got))
	}
	if s.Endpoint() != "http://"+s.Addr() {
		t.Errorf("Endpoint %q", s.Endpoint())
	}
}
