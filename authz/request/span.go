package request

import (
	"net"
	"strconv"
	"strings"

	"go.opentelemetry.io/otel/attribute"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"

	"github.com/leasegate/leasegate/policy"
)

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

// SpanAttrs are a request's method, path (without the query, which can
// carry credentials) and host under their semantic-convention keys, each
// clipped: all three are the client's.
func SpanAttrs(method, path, host string) []attribute.KeyValue {
	var attrs []attribute.KeyValue
	if knownMethods[method] {
		attrs = append(attrs, semconv.HTTPRequestMethodKey.String(method))
	} else if method != "" {
		attrs = append(attrs, semconv.HTTPRequestMethodOther, semconv.HTTPRequestMethodOriginal(Clip(method)))
	}
	if p, _, _ := strings.Cut(path, "?"); p != "" {
		attrs = append(attrs, semconv.URLPath(Clip(p)))
	}
	if host != "" {
		name, port, err := net.SplitHostPort(host)
		if err != nil {
			name, port = host, ""
		}
		attrs = append(attrs, semconv.ServerAddress(Clip(name)))
		if n, err := strconv.Atoi(port); err == nil && n > 0 && n < 1<<16 {
			attrs = append(attrs, semconv.ServerPort(n))
		}
	}
	return attrs
}

// Clip bounds a client-controlled string in a log line or a span.
func Clip(s string) string {
	const maxLogged = 128
	if len(s) > maxLogged {
		return s[:maxLogged] + "…"
	}
	return s
}
