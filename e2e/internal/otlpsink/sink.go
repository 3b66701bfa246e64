// Package otlpsink is a minimal OpenTelemetry collector for tests: an OTLP
// gRPC trace receiver (opentelemetry.proto.collector.trace.v1.TraceService)
// on a loopback port that records every span it is sent, flattened for
// assertions.
package otlpsink

import (
	"context"
	"encoding/hex"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"

	collectortrace "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/grpc"
)

// Span is one received span with ids as lower-case hex and attribute values
// rendered as strings.
type Span struct {
	TraceID      string
	SpanID       string
	ParentSpanID string // "" for a root span
	Name         string
	Kind         tracepb.Span_SpanKind
	Attributes   map[string]string
	Resource     map[string]string // resource attributes (service.name, …)
	Scope        string            // instrumentation scope name
	StatusCode   tracepb.Status_StatusCode
	EventAttrs   []map[string]string // attributes of the span's events
}

// Sink is a running receiver. Methods are safe for concurrent use.
type Sink struct {
	collectortrace.UnimplementedTraceServiceServer

	srv *grpc.Server
	ln  net.Listener

	mu      sync.Mutex
	spans   []Span
	changed chan struct{}
}

// Start listens on 127.0.0.1:0 and serves until Close.
func Start() (*Sink, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("otlpsink: %w", err)
	}
	s := &Sink{srv: grpc.NewServer(), ln: ln, changed: make(chan struct{})}
	collectortrace.RegisterTraceServiceServer(s.srv, s)
	go func() { _ = s.srv.Serve(ln) }()
	return s, nil
}

// Addr is the listener's host:port.
func (s *Sink) Addr() string { return s.ln.Addr().String() }

// Endpoint is the URL to give an exporter as OTEL_EXPORTER_OTLP_ENDPOINT
// (with OTEL_EXPORTER_OTLP_PROTOCOL=grpc).
func (s *Sink) Endpoint() string { return "http://" + s.Addr() }

// Close stops the receiver.
func (s *Sink) Close() { s.srv.Stop() }

// Export implements the collector's TraceService.
func (s *Sink) Export(_ context.Context, req *collectortrace.ExportTraceServiceRequest) (*collectortrace.ExportTraceServiceResponse, error) {
	var got []Span
	for _, rs := range req.GetResourceSpans() {
		res := attrMap(rs.GetResource().GetAttributes())
		for _, ss := range rs.GetScopeSpans() {
			for _, sp := range ss.GetSpans() {
				span := Span{
					TraceID:    hex.EncodeToString(sp.GetTraceId()),
					SpanID:     hex.EncodeToString(sp.GetSpanId()),
					Name:       sp.GetName(),
					Kind:       sp.GetKind(),
					Attributes: attrMap(sp.GetAttributes()),
					Resource:   res,
					Scope:      ss.GetScope().GetName(),
					StatusCode: sp.GetStatus().GetCode(),
				}
				if p := sp.GetParentSpanId(); len(p) > 0 {
					span.ParentSpanID = hex.EncodeToString(p)
				}
				for _, ev := range sp.GetEvents() {
					span.EventAttrs = append(span.EventAttrs, attrMap(ev.GetAttributes()))
				}
				got = append(got, span)
			}
		}
	}
	s.mu.Lock()
	s.spans = append(s.spans, got...)
	close(s.changed)
	s.changed = make(chan struct{})
	s.mu.Unlock()
	return &collectortrace.ExportTraceServiceResponse{}, nil
}

// Spans returns every span received so far.
func (s *Sink) Spans() []Span {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Span(nil), s.spans...)
}

// Trace returns the received spans of one trace (hex trace id).
func (s *Sink) Trace(traceID string) []Span {
	var out []Span
	for _, sp := range s.Spans() {
		if sp.TraceID == traceID {
			out = append(out, sp)
		}
	}
	return out
}

// WaitFor waits until done accepts the spans received so far and returns
// them, or returns ctx's error with the spans seen.
func (s *Sink) WaitFor(ctx context.Context, done func([]Span) bool) ([]Span, error) {
	for {
		s.mu.Lock()
		spans := append([]Span(nil), s.spans...)
		changed := s.changed
		s.mu.Unlock()
		if done(spans) {
			return spans, nil
		}
		select {
		case <-ctx.Done():
			return spans, ctx.Err()
		case <-changed:
		}
	}
}

func attrMap(kvs []*commonpb.KeyValue) map[string]string {
	m := make(map[string]string, len(kvs))
	for _, kv := range kvs {
		m[kv.GetKey()] = valueString(kv.GetValue())
	}
	return m
}

// valueString renders any OTLP attribute value as text, so a test can
// search every value for a secret whatever its type.
func valueString(v *commonpb.AnyValue) string {
	switch x := v.GetValue().(type) {
	case *commonpb.AnyValue_StringValue:
		return x.StringValue
	case *commonpb.AnyValue_BoolValue:
		return strconv.FormatBool(x.BoolValue)
	case *commonpb.AnyValue_IntValue:
		return strconv.FormatInt(x.IntValue, 10)
	case *commonpb.AnyValue_DoubleValue:
		return strconv.FormatFloat(x.DoubleValue, 'g', -1, 64)
	case *commonpb.AnyValue_BytesValue:
		return string(x.BytesValue)
	case *commonpb.AnyValue_ArrayValue:
		parts := make([]string, 0, len(x.ArrayValue.GetValues()))
		for _, e := range x.ArrayValue.GetValues() {
			parts = append(parts, valueString(e))
		}
		return "[" + strings.Join(parts, ",") + "]"
	case *commonpb.AnyValue_KvlistValue:
		parts := make([]string, 0, len(x.KvlistValue.GetValues()))
		for _, kv := range x.KvlistValue.GetValues() {
			parts = append(parts, kv.GetKey()+"="+valueString(kv.GetValue()))
		}
		return "{" + strings.Join(parts, ",") + "}"
	}
	return ""
}
