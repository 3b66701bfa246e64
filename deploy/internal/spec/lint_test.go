package spec

import (
	"strings"
	"testing"
)

func TestLint(t *testing.T) {
	for _, tc := range []struct {
		name, expr, want string // want: "" = accepted, else a substring of the error
	}{
		{"rate of a counter", `sum by (tier, lease) (rate(leasegate_decisions_total{job=~"$job",lease=~"hit|negative"}[$__rate_interval]))`, ""},
		{"histogram quantile", `histogram_quantile(0.99, sum by (issuer, le) (rate(leasegate_issuer_request_duration_seconds_bucket[5m])))`, ""},
		{"gauge as a value", `min by (instance) (leasegate_fleet_store_up) == 0`, ""},
		{"on() matching", `leasegate_leases / on (instance) leasegate_revocation_bound_seconds`, ""},
		{"syntax error", `sum(rate(leasegate_decisions_total[5m])`, "parse"},
		{"unknown series", `rate(leasegate_decision_total[5m])`, "not a series"},
		{"unknown label", `rate(leasegate_decisions_total{outcome="allow"}[5m])`, `no label "outcome"`},
		{"unknown value", `rate(leasegate_decisions_total{lease="hti"}[5m])`, `never "hti"`},
		{"unknown value in an alternation", `rate(leasegate_issuer_requests_total{outcome=~"error|timeout"}[5m])`, `never "timeout"`},
		{"le on a counter", `rate(leasegate_coalesced_total{le="1"}[5m])`, `no label "le"`},
		{"counter as a value", `sum(leasegate_decisions_total)`, "read through"},
		{"counter through a gauge function", `max_over_time(leasegate_coalesced_total[5m])`, "read through"},
		{"group by a label no series has", `sum by (outcome) (rate(leasegate_decisions_total[5m]))`, `no series below has label "outcome"`},
		{"on() a label no series has", `leasegate_leases / on (tier) leasegate_negative_leases`, `no series below has label "tier"`},
		{"nameless selector", `{__name__=~"leasegate_.*"}`, "by name"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := Lint(tc.expr)
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("Lint(%s): %v", tc.expr, err)
			case tc.want != "" && err == nil:
				t.Fatalf("Lint(%s) accepted it, want an error with %q", tc.expr, tc.want)
			case tc.want != "" && !strings.Contains(err.Error(), tc.want):
				t.Fatalf("Lint(%s): %v, want %q", tc.expr, err, tc.want)
			}
		})
	}
}
