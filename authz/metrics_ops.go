package authz

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

// jwksRefreshHook is the issuer.JWTConfig.OnRefresh that counts issuer's
// JWKS refreshes, calling next too when set. Both outcomes are exported
// from the start, so a rate over them exists before the first failure.
func (m *Metrics) jwksRefreshHook(issuer string, next func(error)) func(error) {
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

var breakerOpenDesc = prometheus.NewDesc("leasegate_breaker_open",
	"1 while the issuer's circuit breaker refuses calls (open, or waiting on its probe), else 0.",
	[]string{"issuer"}, nil)

// BreakerCollector exports leasegate_breaker_open{issuer} for each issuer
// of the engine current returns at scrape time: the one in force, whose
// breakers are the ones deciding (a reload builds new ones). current may
// return nil before the first engine.
func BreakerCollector(current func() *Engine) prometheus.Collector {
	return breakerCollector{current}
}

type breakerCollector struct{ current func() *Engine }

func (breakerCollector) Describe(ch chan<- *prometheus.Desc) { ch <- breakerOpenDesc }

func (c breakerCollector) Collect(ch chan<- prometheus.Metric) {
	e := c.current()
	if e == nil {
		return
	}
	for name, is := range e.byName {
		v := 0.0
		if is.BreakerOpen() {
			v = 1
		}
		ch <- prometheus.MustNewConstMetric(breakerOpenDesc, prometheus.GaugeValue, v, name)
	}
}
