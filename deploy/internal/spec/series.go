// Package spec holds the metric contract of SPEC §6 and §8 (names, types,
// labels and the label values leasegate exports) and lints PromQL
// expressions against it, so a dashboard query or an alert rule that
// names a series, a label or a value leasegate does not export is caught
// before a Prometheus ever runs it.
package spec

// Kind is a series' Prometheus type.
type Kind int

const (
	Counter Kind = iota
	Gauge
	Histogram
)

// Series is one exported metric family.
type Series struct {
	Kind Kind
	// Labels are the family's own labels (job and instance come from the
	// scrape; le from a histogram's buckets).
	Labels []string
	// Values lists, per label with a closed set, every value exported.
	Values map[string][]string
}

// All is every series SPEC §6 names, fleet mode's (§8) included.
var All = map[string]Series{
	"leasegate_decisions_total": {Counter, []string{"tier", "decision", "lease"}, map[string][]string{
		"decision": {"allow", "deny", "unavailable"},
		"lease":    {"hit", "miss", "stale", "negative", "none"},
	}},
	"leasegate_issuer_requests_total": {Counter, []string{"issuer", "outcome"}, map[string][]string{
		"outcome": {"active", "inactive", "invalid", "error", "circuit_open"},
	}},
	"leasegate_issuer_request_duration_seconds": {Histogram, []string{"issuer"}, nil},
	"leasegate_check_duration_seconds": {Histogram, []string{"tier", "lease"}, map[string][]string{
		"lease": {"hit", "miss", "stale", "negative", "none"},
	}},
	"leasegate_leases":                {Gauge, nil, nil},
	"leasegate_coalesced_total":       {Counter, nil, nil},
	"leasegate_build_info":            {Gauge, []string{"version", "revision", "goversion"}, nil},
	"leasegate_lease_evictions_total": {Counter, nil, nil},
	"leasegate_negative_leases":       {Gauge, nil, nil},
	"leasegate_breaker_open":          {Gauge, []string{"issuer"}, nil},
	"leasegate_jwks_refreshes_total":  {Counter, []string{"issuer", "outcome"}, nil},
	"leasegate_config_reloads_total": {Counter, []string{"outcome"}, map[string][]string{
		"outcome": {"applied", "refused"},
	}},
	"leasegate_revocation_bound_seconds": {Gauge, nil, nil},
	"leasegate_fleet_store_up":           {Gauge, nil, nil},
	"leasegate_fleet_lease_lookups_total": {Counter, []string{"outcome"}, map[string][]string{
		"outcome": {"hit", "miss", "negative", "forged", "revoked", "error"},
	}},
	"leasegate_fleet_revocations_total":        {Counter, []string{"source"}, nil},
	"leasegate_fleet_revocation_delay_seconds": {Histogram, nil, nil},
}

// scrapeLabels are the labels Prometheus adds to every scraped series.
var scrapeLabels = []string{"job", "instance"}
