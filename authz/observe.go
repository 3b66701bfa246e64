package authz

import (
	"context"
	"log/slog"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"github.com/leasegate/leasegate/authz/request"
)

// annotate puts the decision on the request's span (the gRPC or HTTP server
// span), with the request it judged under the standard HTTP keys (OTel
// semantic conventions). Never the token, nor the query.
func (e *Engine) annotate(ctx context.Context, r *Request, d *Decision) {
	span := trace.SpanFromContext(ctx)
	if !span.IsRecording() {
		return
	}
	attrs := []attribute.KeyValue{
		attribute.String("leasegate.tier", d.Tier),
		attribute.String("leasegate.lease", string(d.Lease)),
		attribute.String("leasegate.decision", decisionLabel(d)),
		attribute.String("leasegate.reason", string(d.Reason)),
		attribute.String("leasegate.issuer", d.Issuer),
		attribute.Int("leasegate.status", d.Status),
	}
	if r != nil {
		attrs = append(attrs, request.SpanAttrs(r.Method, r.Path, r.Host)...)
		if r.RequestID != "" {
			attrs = append(attrs, attribute.String("leasegate.request_id", request.Clip(r.RequestID)))
		}
	}
	span.SetAttributes(attrs...)
}

// logDecision writes the decision's line: denials at info (at most
// log.denials_per_second of them, see denylog.Limit), allows at debug. The
// logger adds trace_id and span_id from ctx when the request is traced.
func (e *Engine) logDecision(ctx context.Context, r *Request, d *Decision) {
	level := slog.LevelInfo
	msg := "denied"
	if d.Allow {
		level, msg = slog.LevelDebug, "allowed"
	}
	if !e.log.Enabled(ctx, level) {
		return
	}
	var suppressed uint64
	if !d.Allow {
		var ok bool
		if ok, suppressed = e.denials.Admit(); !ok {
			return
		}
	}
	attrs := []slog.Attr{
		slog.String("reason", string(d.Reason)),
		slog.Int("status", d.Status),
		slog.String("tier", d.Tier),
		slog.String("lease", string(d.Lease)),
		slog.String("issuer", d.Issuer),
		slog.String("token_id", d.TokenID),
	}
	if d.Description != "" {
		attrs = append(attrs, slog.String("description", d.Description))
	}
	if r != nil {
		attrs = append(attrs, slog.String("method", request.Clip(r.Method)), slog.String("request_id", request.Clip(r.RequestID)))
	}
	if suppressed > 0 {
		attrs = append(attrs, slog.Uint64("suppressed", suppressed))
	}
	e.log.LogAttrs(ctx, level, msg, attrs...)
}
