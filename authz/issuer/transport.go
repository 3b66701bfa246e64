package issuer

import (
	"net"
	"net/http"
	"time"

	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
	"go.opentelemetry.io/otel/trace"
)

// defaultMaxConns is PooledTransport's per-host bound, and so
// IntrospectionConfig.MaxConns's default.
const defaultMaxConns = 64

// PooledTransport is the connection pool of one issuer's calls: at most
// maxConns connections per host (64 when maxConns ≤ 0), each kept idle up
// to 90s, with dial and TLS handshake bounded at 5s and the answer's headers
// at 30s; proxies from the environment. The caller owns it and closes its
// idle connections when done.
func PooledTransport(maxConns int) *http.Transport {
	if maxConns <= 0 {
		maxConns = defaultMaxConns
	}
	return &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxConnsPerHost:       maxConns,
		MaxIdleConnsPerHost:   maxConns,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   5 * time.Second,
		ResponseHeaderTimeout: 30 * time.Second,
		ForceAttemptHTTP2:     true,
	}
}

// TracedTransport gives each issuer call through rt an HTTP client span
// named name, from tp.
func TracedTransport(rt http.RoundTripper, tp trace.TracerProvider, name string) http.RoundTripper {
	return otelhttp.NewTransport(rt,
		otelhttp.WithTracerProvider(tp),
		otelhttp.WithSpanNameFormatter(func(string, *http.Request) string { return name }))
}
