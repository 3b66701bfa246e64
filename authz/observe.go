package authz

import (
	"context"
	"log/slog"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"
)

// annotate puts the decision on the request's span (the gRPC or HTTP server
// span). Never the token.
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
		attrs = append(attrs, attribute.String("http.request.method", r.Method))
		if r.RequestID != "" {
			attrs = append(attrs, attribute.String("leasegate.request_id", clip(r.RequestID)))
		}
	}
	span.SetAttributes(attrs...)
}

func (e *Engine) logDecision(ctx context.Context, r *Request, d *Decision) {
	level := slog.LevelInfo
	msg := "denied"
	if d.Allow {
		level, msg = slog.LevelDebug, "allowed"
	}
	if !e.log.Enabled(ctx, level) {
		return
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
		attrs = append(attrs, slog.String("method", clip(r.Method)), slog.String("request_id", clip(r.RequestID)))
	}
	e.log.LogAttrs(ctx, level, msg, attrs...)
}

// clip bounds client-controlled strings in logs and spans.
func clip(s string) string {
	const maxLogged = 128
	if len(s) > maxLogged {
		return s[:maxLogged] + "…"
	}
	return s
}
