package push

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// Outcomes of a push request (leasegate_push_requests_total): accepted
// (2xx), a refusal by its RFC 8935 code, replayed, or unavailable (the
// issuer's keys or the fleet's store could not be reached).
const (
	outcomeAccepted    = "accepted"
	outcomeReplayed    = "replayed"
	outcomeUnavailable = "unavailable"
)

// Metrics are the receivers' series. One Metrics outlives reloads.
type Metrics struct {
	requests *prometheus.CounterVec
	events   *prometheus.CounterVec
}

// NewMetrics creates and registers the series on reg:
// leasegate_push_requests_total{receiver,outcome} and
// leasegate_push_events_total{receiver,event}, the events of accepted
// tokens (event "unknown" for a SET event type not acted on).
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	m := &Metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "leasegate_push_requests_total",
			Help: "Push revocation requests by receiver (backchannel, ssf) and outcome (accepted, invalid_request, invalid_key, invalid_issuer, invalid_audience, replayed, unavailable).",
		}, []string{"receiver", "outcome"}),
		events: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "leasegate_push_events_total",
			Help: "Events in accepted push tokens by receiver and event (backchannel-logout, session-revoked, credential-change, account-disabled, credential-compromise, unknown: accepted and ignored).",
		}, []string{"receiver", "event"}),
	}
	for _, c := range []prometheus.Collector{m.requests, m.events} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("push metrics: %w", err)
		}
	}
	for _, o := range []string{outcomeAccepted, codeInvalidRequest, codeInvalidKey, codeInvalidIssuer, codeInvalidAudience, outcomeReplayed, outcomeUnavailable} {
		m.requests.WithLabelValues(SourceBackchannel, o)
		m.requests.WithLabelValues(SourceSSF, o)
	}
	return m, nil
}

func (m *Metrics) request(source, outcome string) {
	if m != nil {
		m.requests.WithLabelValues(source, outcome).Inc()
	}
}

func (m *Metrics) event(source, event string) {
	if m != nil {
		m.events.WithLabelValues(source, event).Inc()
	}
}
