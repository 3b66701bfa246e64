package authz

import "github.com/prometheus/client_golang/prometheus"

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
