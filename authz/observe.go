package authz

import (
	"context"
	"log/slog"
	"net"
	"strconv"
	"strings"

	"go.opentelemetry.io/otel/attribute"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"

	"github.com/leasegate/leasegate/policy"
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
		attrs = append(attrs, requestAttrs(r)...)
		if r.RequestID != "" {
			attrs = append(attrs, attribute.String("leasegate.request_id", clip(r.RequestID)))
		}
	}
	span.SetAttributes(attrs...)
}

// knownMethods are the methods http.request.method names as they are: the
// semantic conventions' list (RFC 9110 and PATCH) and, as they allow an
// instrumentation to add, every method of leasegate's default tiers
// (WebDAV). Any other is _OTHER, with the method in
// http.request.method_original.
var knownMethods = func() map[string]bool {
	m := map[string]bool{}
	for _, kv := range []attribute.KeyValue{
		semconv.HTTPRequestMethodConnect, semconv.HTTPRequestMethodDelete, semconv.HTTPRequestMethodGet,
		semconv.HTTPRequestMethodHead, semconv.HTTPRequestMethodOptions, semconv.HTTPRequestMethodPatch,
		semconv.HTTPRequestMethodPost, semconv.HTTPRequestMethodPut, semconv.HTTPRequestMethodTrace,
	} {
		m[kv.Value.AsString()] = true
	}
	for _, t := range policy.DefaultTiers() {
		for _, method := range t.Methods {
			m[method] = true
		}
	}
	return m
}()

// requestAttrs are r's method, path (without the query, which can carry
// credentials) and host under their semantic-convention keys.
func requestAttrs(r *Request) []attribute.KeyValue {
	var attrs []attribute.KeyValue
	if knownMethods[r.Method] {
		attrs = append(attrs, semconv.HTTPRequestMethodKey.String(r.Method))
	} else if r.Method != "" {
		attrs = append(attrs, semconv.HTTPRequestMethodOther, semconv.HTTPRequestMethodOriginal(clip(r.Method)))
	}
	if p, _, _ := strings.Cut(r.Path, "?"); p != "" {
		attrs = append(attrs, semconv.URLPath(clip(p)))
	}
	if r.Host != "" {
		host, port, err := net.SplitHostPort(r.Host)
		if err != nil {
			host, port = r.Host, ""
		}
		attrs = append(attrs, semconv.ServerAddress(clip(host)))
		if n, err := strconv.Atoi(port); err == nil && n > 0 && n < 1<<16 {
			attrs = append(attrs, semconv.ServerPort(n))
		}
	}
	return attrs
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
		attrs = append(attrs, slog.String("method", clip(r.Method)), slog.String("request_id", clip(r.RequestID)))
	}
	if suppressed > 0 {
		attrs = append(attrs, slog.Uint64("suppressed", suppressed))
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
