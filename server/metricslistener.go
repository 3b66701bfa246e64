package server

import (
	"io"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/leasegate/leasegate/authz/fleetmode"
	"github.com/leasegate/leasegate/authz/metrics"
)

// The probes and metrics listener (SPEC §6, listen.metrics): GET /healthz,
// /readyz and /metrics, open to kubelet and Prometheus without a secret,
// and nothing that changes state. The admin listener serves the same three
// routes beside its own.

// metricsHandler serves listen.metrics.
func (s *service) metricsHandler() http.Handler {
	mux := http.NewServeMux()
	s.probeRoutes(mux)
	return mux
}

func (s *service) metricsServer() *http.Server {
	return &http.Server{Handler: s.metricsHandler(), ReadHeaderTimeout: 5 * time.Second, MaxHeaderBytes: 64 << 10}
}

// probeRoutes adds /healthz, /readyz and /metrics to mux.
func (s *service) probeRoutes(mux *http.ServeMux) {
	mux.HandleFunc("GET /healthz", s.serveHealthz)
	mux.HandleFunc("GET /readyz", s.serveReadyz)
	// OpenMetrics when the scraper asks for it: exemplars (the trace_id of
	// a sampled check) only exist in that format.
	mux.Handle("GET /metrics", promhttp.HandlerFor(s.reg, promhttp.HandlerOpts{EnableOpenMetrics: true}))
}

// serveHealthz is liveness: the process answers. It stays 200 through the
// start grace and the drain, when readiness is 503, so that a kubelet
// never restarts a replica for waiting on its issuers or for finishing its
// in-flight checks.
func (s *service) serveHealthz(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	switch {
	case s.draining.Load():
		io.WriteString(w, "ok (draining)\n")
	case !s.ready.Load():
		io.WriteString(w, "ok (starting)\n")
	default:
		io.WriteString(w, "ok\n")
	}
}

// serveReadyz is readiness: 503 until every issuer has been reached once
// or the start grace is over, while draining, and in fleet mode with
// on_store_loss: deny while the store is down.
func (s *service) serveReadyz(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	switch {
	case s.draining.Load():
		http.Error(w, "draining", http.StatusServiceUnavailable)
	case !s.ready.Load():
		http.Error(w, "issuers not reached yet", http.StatusServiceUnavailable)
	case s.fleet != nil && s.fleet.Loss() == fleetmode.StoreLossDeny && !s.fleet.Up():
		http.Error(w, "fleet store unavailable (on_store_loss: deny)", http.StatusServiceUnavailable)
	case s.fleet != nil:
		io.WriteString(w, "ready (fleet: "+s.fleet.Mode()+")\n")
	default:
		io.WriteString(w, "ready\n")
	}
}

// opsCollectors are the SPEC §6 series read at scrape time from the lease
// cache and the engine in force: negative leases, evictions and the
// issuers' breakers.
func (s *service) opsCollectors() []prometheus.Collector {
	return []prometheus.Collector{
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "leasegate_negative_leases",
			Help: "Negative leases (recent inactive or invalid answers) held in the lease cache.",
		}, func() float64 { return float64(s.cache.NegativeLen()) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "leasegate_lease_evictions_total",
			Help: "Leases dropped before lease.max to make room (lease.max_memory_mb too small for the traffic).",
		}, func() float64 { return float64(s.cache.Evictions()) }),
		metrics.BreakerCollector(func() map[string]bool {
			if g := s.gen.Load(); g != nil {
				return g.eng.BreakersOpen()
			}
			return nil
		}),
	}
}
