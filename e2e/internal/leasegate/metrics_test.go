package leasegate

import (
	"math"
	"testing"
)

func TestParseMetrics(t *testing.T) {
	const text = `# HELP leasegate_decisions_total Access decisions.
# TYPE leasegate_decisions_total counter
leasegate_decisions_total{decision="allow",lease="hit",tier="read"} 4
leasegate_decisions_total{decision="allow",lease="miss",tier="read"} 1
leasegate_decisions_total{decision="deny",lease="none",tier="critical"} 2 1700000000000
leasegate_coalesced_total 99
odd_labels{path="a\"b\\c\nd",empty=""} 1.5e+00
leasegate_check_duration_seconds_bucket{le="+Inf",tier="read"} 5
nan_value NaN
`
	m, err := ParseMetrics([]byte(text))
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name   string
		metric string
		match  map[string]string
		want   float64
	}{
		{name: "subset match", metric: "leasegate_decisions_total", match: map[string]string{"tier": "read"}, want: 5},
		{name: "exact series", metric: "leasegate_decisions_total", match: map[string]string{"tier": "read", "lease": "hit", "decision": "allow"}, want: 4},
		{name: "with timestamp", metric: "leasegate_decisions_total", match: map[string]string{"decision": "deny"}, want: 2},
		{name: "all series", metric: "leasegate_decisions_total", want: 7},
		{name: "no labels", metric: "leasegate_coalesced_total", want: 99},
		{name: "escaped label value", metric: "odd_labels", match: map[string]string{"path": "a\"b\\c\nd", "empty": ""}, want: 1.5},
		{name: "+Inf label", metric: "leasegate_check_duration_seconds_bucket", match: map[string]string{"le": "+Inf"}, want: 5},
		{name: "missing series is zero", metric: "leasegate_decisions_total", match: map[string]string{"lease": "stale"}, want: 0},
		{name: "missing metric is zero", metric: "nope", want: 0},
	} {
		t.Run(c.name, func(t *testing.T) {
			if got := m.Sum(c.metric, c.match); got != c.want {
				t.Errorf("Sum(%s, %v) = %v, want %v", c.metric, c.match, got, c.want)
			}
		})
	}
	if v := m.Sum("nan_value", nil); !math.IsNaN(v) {
		t.Errorf("NaN parsed as %v", v)
	}
	before := Metrics{"leasegate_coalesced_total": {{Value: 90}}}
	if d := m.Delta(before, "leasegate_coalesced_total", nil); d != 9 {
		t.Errorf("Delta = %v, want 9", d)
	}
}

func TestParseMetricsErrors(t *testing.T) {
	for _, c := range []struct {
		name string
		text string
	}{
		{name: "no value", text: "metric_only\n"},
		{name: "unterminated label", text: `m{a="b} 1` + "\n"},
		{name: "bad number", text: "m one\n"},
		{name: "label without quotes", text: "m{a=b} 1\n"},
	} {
		t.Run(c.name, func(t *testing.T) {
			if _, err := ParseMetrics([]byte(c.text)); err == nil {
				t.Errorf("ParseMetrics(%q) succeeded, want an error", c.text)
			}
		})
	}
}
