package metrics

import (
	"context"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/trace"
)

// exemplar is the trace_id exemplar of ctx's span when it is sampled
// (SPEC §6), nil otherwise: an exemplar pointing at a trace that was not
// kept would lead nowhere.
func exemplar(ctx context.Context) prometheus.Labels {
	sc := trace.SpanContextFromContext(ctx)
	if !sc.IsValid() || !sc.IsSampled() {
		return nil
	}
	return prometheus.Labels{"trace_id": sc.TraceID().String()}
}

// observe records v on o, with the exemplar ex when there is one.
func observe(o prometheus.Observer, v float64, ex prometheus.Labels) {
	if eo, ok := o.(prometheus.ExemplarObserver); ok && ex != nil {
		eo.ObserveWithExemplar(v, ex)
		return
	}
	o.Observe(v)
}

// Outcomes of leasegate_jwks_refreshes_total.
const (
	jwksOK    = "ok"
	jwksError = "error"
)

// JWKSRefreshHook is the issuer.JWTConfig.OnRefresh that counts issuer's
// JWKS refreshes, calling next too when set. Both outcomes are exported
// from the start, so a rate over them exists before the first failure.
func (m *Metrics) JWKSRefreshHook(issuer string, next func(error)) func(error) {
	if m == nil {
		return next
	}
	ok := m.jwksRefreshes.WithLabelValues(issuer, jwksOK)
	failed := m.jwksRefreshes.WithLabelValues(issuer, jwksError)
	return func(err error) {
		if err != nil {
			failed.Inc()
		} else {
			ok.Inc()
		}
		if next != nil {
			next(err)
		}
	}
}
