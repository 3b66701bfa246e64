package authz

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/leasegate/leasegate/authz/metrics"
)

// Metrics are the engine's series; authz/metrics owns them. One Metrics
// outlives engine rebuilds on reload, so counters never reset.
type Metrics = metrics.Metrics

// NewMetrics creates and registers the series on reg.
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) { return metrics.New(reg) }

// decisionLabel is d's decision label: allow, unavailable (503) or deny.
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

// tierLabel is d's tier, "none" before one was chosen.
func tierLabel(d *Decision) string {
	if d.Tier == "" {
		return "none"
	}
	return d.Tier
}
