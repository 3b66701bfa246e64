package telemetry

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"testing"

	"go.opentelemetry.io/otel/trace"
)

func TestLogHandlerAddsTraceIDs(t *testing.T) {
	tid, _ := trace.TraceIDFromHex("4bf92f3577b34da6a3ce929d0e0e4736")
	sid, _ := trace.SpanIDFromHex("00f067aa0ba902b7")
	traced := trace.ContextWithSpanContext(context.Background(),
		trace.NewSpanContext(trace.SpanContextConfig{TraceID: tid, SpanID: sid}))
	for _, tc := range []struct {
		name     string
		ctx      context.Context
		wantIDs  bool
		withAttr bool
	}{
		{name: "traced", ctx: traced, wantIDs: true},
		{name: "traced, logger with attributes", ctx: traced, wantIDs: true, withAttr: true},
		{name: "no span", ctx: context.Background()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var buf bytes.Buffer
			h := LogHandler(LogHandler(slog.NewJSONHandler(&buf, nil))) // twice: wrapped once
			log := slog.New(h)
			if tc.withAttr {
				log = log.With("component", "test")
			}
			log.InfoContext(tc.ctx, "denied", "reason", "inactive")
			var line map[string]any
			if err := json.Unmarshal(buf.Bytes(), &line); err != nil {
				t.Fatalf("%v: %s", err, buf.String())
			}
			if tc.wantIDs {
				if line["trace_id"] != tid.String() || line["span_id"] != sid.String() {
					t.Errorf("trace_id %v span_id %v, want %s %s", line["trace_id"], line["span_id"], tid, sid)
				}
			} else if _, ok := line["trace_id"]; ok {
				t.Errorf("untraced line has trace_id: %s", buf.String())
			}
			if bytes.Count(buf.Bytes(), []byte(`"trace_id"`)) > 1 {
				t.Errorf("trace_id twice: %s", buf.String())
			}
			if line["reason"] != "inactive" || (tc.withAttr && line["component"] != "test") {
				t.Errorf("the record's own attributes are lost: %s", buf.String())
			}
		})
	}
}
