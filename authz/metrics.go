package authz

import (
	"errors"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the engine's Prometheus series (SPEC §6). One Metrics outlives
// engine rebuilds on reload, so counters never reset.
type Metrics struct {
	decisions      *prometheus.CounterVec
	issuerRequests *prometheus.CounterVec
	issuerDuration *prometheus.HistogramVec
	checkDuration  *prometheus.HistogramVec
	coalesced      prometheus.Counter
}

// Buckets resolving tens of microseconds (hits) up to seconds (issuer calls).
var durationBuckets = []float64{
	.00001, .000025, .00005, .0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5,
}

// NewMetrics creates and registers the series on reg.
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	m := &Metrics{
		decisions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "leasegate_decisions_total",
			Help: "Access decisions by tier, decision (allow, deny, unavailable) and lease outcome (hit, miss, stale, negative, none).",
		}, []string{"tier", "decision", "lease"}),
		issuerRequests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "leasegate_issuer_requests_total",
			Help: "Validations sent to issuers, by outcome (active, inactive, invalid, error, circuit_open).",
		}, []string{"issuer", "outcome"}),
		issuerDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "leasegate_issuer_request_duration_seconds",
			Help:    "Time spent validating with an issuer (introspection and/or JWT verification).",
			Buckets: durationBuckets,
		}, []string{"issuer"}),
		checkDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "leasegate_check_duration_seconds",
			Help:    "Time to decide a request, by tier and lease outcome.",
			Buckets: durationBuckets,
		}, []string{"tier", "lease"}),
		coalesced: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "leasegate_coalesced_total",
			Help: "Requests that shared another request's in-flight issuer call instead of making their own.",
		}),
	}
	for _, c := range []prometheus.Collector{m.decisions, m.issuerRequests, m.issuerDuration, m.checkDuration, m.coalesced} {
		if err := reg.Register(c); err != nil {
			var are prometheus.AlreadyRegisteredError
			if !errors.As(err, &are) {
				return nil, err
			}
		}
	}
	return m, nil
}

func decisionLabel(d *Decision) string {
	switch {
	case d.Allow:
		return "allow"
	case d.Status == 503:
		return "unavailable"
	default:
		return "deny"
	}
}

func (m *Metrics) observeDecision(d *Decision, took time.Duration) {
	if m == nil {
		return
	}
	tier := d.Tier
	if tier == "" {
		tier = "none"
	}
	m.decisions.WithLabelValues(tier, decisionLabel(d), string(d.Lease)).Inc()
	m.checkDuration.WithLabelValues(tier, string(d.Lease)).Observe(took.Seconds())
}

func (m *Metrics) observeIssuer(issuer, outcome string, took time.Duration) {
	if m == nil {
		return
	}
	m.issuerRequests.WithLabelValues(issuer, outcome).Inc()
	if took > 0 {
		m.issuerDuration.WithLabelValues(issuer).Observe(took.Seconds())
	}
}

func (m *Metrics) observeCoalesced() {
	if m != nil {
		m.coalesced.Inc()
	}
}
