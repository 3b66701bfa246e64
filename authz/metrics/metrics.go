// Package metrics owns the decision engine's Prometheus series (SPEC §6):
// decisions, check and issuer durations with trace_id exemplars, issuer
// calls, coalescing, fleet lookups and JWKS refreshes.
package metrics

import (
	"context"
	"errors"
	"maps"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/leasegate/leasegate/leasecache/fleet"
)

// Metrics are the engine's Prometheus series (SPEC §6). One Metrics outlives
// engine rebuilds on reload, so counters never reset.
type Metrics struct {
	decisions      *prometheus.CounterVec
	issuerRequests *prometheus.CounterVec
	issuerDuration *prometheus.HistogramVec
	checkDuration  *prometheus.HistogramVec
	coalesced      prometheus.Counter
	fleetLookups   *prometheus.CounterVec
	jwksRefreshes  *prometheus.CounterVec

	// series caches the per-decision children so the hot path skips the
	// vectors' label hashing and validation. Copy-on-write: label values
	// are few (tiers × 3 decisions × 5 lease outcomes).
	series   atomic.Pointer[map[decisionKey]*decisionSeries]
	seriesMu sync.Mutex
}

type decisionKey struct{ tier, decision, lease string }

type decisionSeries struct {
	count prometheus.Counter
	took  prometheus.Observer
}

// Buckets resolving tens of microseconds (hits) up to seconds (issuer calls).
var durationBuckets = []float64{
	.00001, .000025, .00005, .0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5,
}

// New creates and registers the series on reg; a series already
// registered (a second New on the same registry) is reused, so both count
// into what the registry exports.
func New(reg prometheus.Registerer) (*Metrics, error) {
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
		fleetLookups: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "leasegate_fleet_lease_lookups_total",
			Help: "Fleet mode: shared-store lookups after a local miss, by outcome (hit, miss, negative, forged, revoked, error).",
		}, []string{"outcome"}),
		jwksRefreshes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "leasegate_jwks_refreshes_total",
			Help: "JWKS refreshes (OIDC discovery included), background or for an unknown key, by outcome (ok, error).",
		}, []string{"issuer", "outcome"}),
	}
	if err := errors.Join(
		register(reg, &m.decisions), register(reg, &m.issuerRequests), register(reg, &m.issuerDuration),
		register(reg, &m.checkDuration), register(reg, &m.coalesced), register(reg, &m.fleetLookups),
		register(reg, &m.jwksRefreshes),
	); err != nil {
		return nil, err
	}
	return m, nil
}

// Decision counts one decision (allow, deny or unavailable) of tier with
// its lease outcome and times it; ctx's sampled span is the exemplar.
func (m *Metrics) Decision(ctx context.Context, tier, decision, lease string, took time.Duration) {
	if m == nil {
		return
	}
	s := m.decisionSeries(decisionKey{tier, decision, lease})
	s.count.Inc()
	observe(s.took, took.Seconds(), exemplar(ctx))
}

func (m *Metrics) decisionSeries(k decisionKey) *decisionSeries {
	if p := m.series.Load(); p != nil {
		if s := (*p)[k]; s != nil {
			return s
		}
	}
	m.seriesMu.Lock()
	defer m.seriesMu.Unlock()
	old := m.series.Load()
	if old != nil {
		if s := (*old)[k]; s != nil {
			return s
		}
	}
	next := map[decisionKey]*decisionSeries{}
	if old != nil {
		next = maps.Clone(*old)
	}
	s := &decisionSeries{
		count: m.decisions.WithLabelValues(k.tier, k.decision, k.lease),
		took:  m.checkDuration.WithLabelValues(k.tier, k.lease),
	}
	next[k] = s
	m.series.Store(&next)
	return s
}

// Outcomes of leasegate_issuer_requests_total.
const (
	IssuerActive      = "active"
	IssuerInactive    = "inactive"
	IssuerInvalid     = "invalid"
	IssuerError       = "error"
	IssuerCircuitOpen = "circuit_open"
)

// KnowIssuer exports issuer's request series at zero, every outcome, so
// a rate over them (the issuer-error alert's) exists before the first
// validation of each.
func (m *Metrics) KnowIssuer(issuer string) {
	if m == nil {
		return
	}
	for _, o := range [...]string{IssuerActive, IssuerInactive, IssuerInvalid, IssuerError, IssuerCircuitOpen} {
		m.issuerRequests.WithLabelValues(issuer, o)
	}
}

// Issuer counts one validation with an issuer by outcome (one of the
// Issuer* names); ctx is the call's, for the exemplar; took 0 records no
// duration.
func (m *Metrics) Issuer(ctx context.Context, issuer, outcome string, took time.Duration) {
	if m == nil {
		return
	}
	m.issuerRequests.WithLabelValues(issuer, outcome).Inc()
	if took > 0 {
		observe(m.issuerDuration.WithLabelValues(issuer), took.Seconds(), exemplar(ctx))
	}
}

// Coalesced counts a request that shared another's issuer call.
func (m *Metrics) Coalesced() {
	if m != nil {
		m.coalesced.Inc()
	}
}

// FleetLookup counts a shared-store lookup after a local miss.
func (m *Metrics) FleetLookup(o fleet.Outcome) {
	if m != nil {
		m.fleetLookups.WithLabelValues(o.String()).Inc()
	}
}

// register registers *c on reg, or points *c at the collector reg already
// has under that name.
func register[C prometheus.Collector](reg prometheus.Registerer, c *C) error {
	err := reg.Register(*c)
	var are prometheus.AlreadyRegisteredError
	if errors.As(err, &are) {
		if existing, ok := are.ExistingCollector.(C); ok {
			*c = existing
			return nil
		}
	}
	return err
}
