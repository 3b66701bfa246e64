package metrics

import "github.com/prometheus/client_golang/prometheus"

var breakerOpenDesc = prometheus.NewDesc("leasegate_breaker_open",
	"1 while the issuer's circuit breaker refuses calls (open, or waiting on its probe), else 0.",
	[]string{"issuer"}, nil)

// BreakerCollector exports leasegate_breaker_open{issuer} for each issuer
// open reports at scrape time: those of the engine in force, whose
// breakers are the ones deciding (a reload builds new ones). open may
// return nil before the first engine.
func BreakerCollector(open func() map[string]bool) prometheus.Collector {
	return breakerCollector{open}
}

type breakerCollector struct{ open func() map[string]bool }

func (breakerCollector) Describe(ch chan<- *prometheus.Desc) { ch <- breakerOpenDesc }

func (c breakerCollector) Collect(ch chan<- prometheus.Metric) {
	for name, open := range c.open() {
		v := 0.0
		if open {
			v = 1
		}
		ch <- prometheus.MustNewConstMetric(breakerOpenDesc, prometheus.GaugeValue, v, name)
	}
}
