// Package server is the leasegate process: the gRPC (ext_authz v3 +
// health), HTTP-mode, probes-and-metrics and admin listeners, Prometheus setup, reload and
// graceful drain, on a configuration server/config loads.
// It wires the other packages — the adapters envoy (gRPC) and forwardauth
// (HTTP mode) to the engine in authz — and holds no protocol logic of its
// own; nothing below it reads flags or environment.
package server

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"runtime/debug"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc/health"

	"github.com/leasegate/leasegate/authz"
	"github.com/leasegate/leasegate/authz/denylog"
	"github.com/leasegate/leasegate/authz/fleetmode"
	"github.com/leasegate/leasegate/envoy"
	"github.com/leasegate/leasegate/leasecache"
	"github.com/leasegate/leasegate/policy"
	"github.com/leasegate/leasegate/server/config"
	"github.com/leasegate/leasegate/server/fleetlink"
	"github.com/leasegate/leasegate/server/push"
	"github.com/leasegate/leasegate/server/telemetry"
)

// Options are Run's inputs besides the context.
type Options struct {
	ConfigPath string
	Config     *config.Config // already loaded; Run loads ConfigPath when nil
	Version    string
	// Reload delivers reload requests (SIGHUP, wired by main).
	Reload <-chan os.Signal
	// Logger overrides the logger the config describes (tests).
	Logger *slog.Logger
	// TracerProvider overrides the OTEL_* setup (tests).
	TracerProvider trace.TracerProvider
	// Getenv reads OTEL_*, GOMEMLIMIT and the variables that would make a
	// library log tokens (tokenLoggingEnv); os.Getenv when nil.
	Getenv func(string) string
	// Now is the lease clock; time.Now when nil (which lets a hit read the
	// clock once).
	Now func() time.Time
	// OnListen is told the bound addresses once every listener is up.
	OnListen func(Addrs)
	// MemoryLimit sets the Go runtime's soft memory limit from
	// lease.max_memory_mb and the container's limit (memoryLimit) unless
	// GOMEMLIMIT is set. It is process-wide: main sets it, tests sharing
	// one process do not.
	MemoryLimit bool
}

// Addrs are the addresses Run is serving on; GRPC is unix:///path for a
// Unix socket.
type Addrs struct{ GRPC, HTTP, Metrics, Admin, Push string }

// service is the running state. Everything a reload changes is in one
// generation, swapped whole; the lease cache is shared by all of them.
type service struct {
	opts     Options
	log      *slog.Logger
	gen      atomic.Pointer[generation]
	cache    *leasecache.Cache
	fleet    *fleetlink.Link // nil without fleet:
	metrics  *authz.Metrics
	denials  *denylog.Limit // one bucket for every generation
	pushLog  *denylog.Limit // push refusal lines: the same rate, a bucket of its own
	build    Build
	reloads  *prometheus.CounterVec
	reg      *prometheus.Registry
	tp       trace.TracerProvider
	flush    func(context.Context) error // flushes and stops tp
	health   *health.Server
	ready    atomic.Bool
	draining atomic.Bool
	ctx      context.Context
	mu       sync.Mutex // serializes reloads

	liveMu   sync.Mutex
	live     map[*generation]struct{} // not yet closed: the one in force and those retiring
	retiring sync.WaitGroup           // closers of retired generations
	stopping chan struct{}            // closed when Run returns

	// replay and pushMetrics outlive generations: the push receivers' jti
	// memory and series.
	replay      *push.Replay
	pushMetrics *push.Metrics
}

// Run serves until ctx is cancelled, then drains: health NOT_SERVING, stop
// accepting, finish in-flight checks, flush telemetry. It returns nil after
// a clean drain.
//
// It runs four steps: build (configuration, telemetry, policy, lease cache,
// the first generation and the front ends), listen (every listener, so a
// port clash fails start-up before anything serves), serve (until ctx ends
// or a listener fails, reloading on opts.Reload) and drain.
func Run(ctx context.Context, opts Options) error {
	s, fe, err := build(ctx, opts)
	if err != nil {
		return err
	}
	defer s.close()
	ls, err := listen(ctx, s.gen.Load().cfg)
	if err != nil {
		fe.grpc.Stop() // its stream workers run from NewServer on
		s.flushTelemetry()
		return err
	}
	runErr := s.serve(ctx, fe, ls)
	s.drain(fe)
	return runErr
}

// build makes everything Run serves with, nothing listening yet. On an
// error it has released what it made.
func build(ctx context.Context, opts Options) (*service, *frontEnds, error) {
	cfg := opts.Config
	if cfg == nil {
		var err error
		if cfg, err = config.Load(opts.ConfigPath); err != nil {
			return nil, nil, err
		}
	}
	if opts.Getenv == nil {
		opts.Getenv = os.Getenv
	}
	if err := tokenLoggingEnv(opts.Getenv); err != nil {
		return nil, nil, err
	}
	log := opts.Logger
	if log == nil {
		log = newLogger(cfg.Log, os.Stderr)
	}
	if opts.MemoryLimit && opts.Getenv("GOMEMLIMIT") == "" {
		limit, container := memoryLimit(cfg.Lease.MaxMemoryMB, os.ReadFile)
		debug.SetMemoryLimit(limit)
		log.Info("memory limit", slog.Int64("bytes", limit), slog.Int("lease_max_memory_mb", cfg.Lease.MaxMemoryMB),
			slog.Int64("container_bytes", container))
		if container > 0 && container < int64(cfg.Lease.MaxMemoryMB)<<20+128<<20 {
			// The lease cache alone may reach the bound: the collector would
			// run near its CPU cap, or the kernel kill the process.
			log.Warn("the container's memory limit leaves little room above lease.max_memory_mb; raise it to at least max_memory_mb + 128 MiB",
				slog.Int64("container_bytes", container), slog.Int("lease_max_memory_mb", cfg.Lease.MaxMemoryMB))
		}
	}
	// Lines logged for a traced request carry its trace_id and span_id.
	log = slog.New(telemetry.LogHandler(log.Handler()))
	s := &service{opts: opts, log: log, reg: prometheus.NewRegistry(), ctx: ctx, build: BuildInfo(opts.Version),
		live: map[*generation]struct{}{}, stopping: make(chan struct{})}
	s.tp, s.flush = opts.TracerProvider, func(context.Context) error { return nil }
	if s.tp == nil {
		var err error
		if s.tp, s.flush, err = telemetry.Setup(ctx, cfg.Tracing, s.build.Version, opts.Getenv); err != nil {
			return nil, nil, err
		}
	}
	fe, err := s.buildState(cfg)
	if err != nil {
		s.close()
		s.flushTelemetry()
		return nil, nil, err
	}
	return s, fe, nil
}

// buildState builds the policy, the lease cache, the metrics, the first
// generation and the front ends serving it.
func (s *service) buildState(cfg *config.Config) (*frontEnds, error) {
	pol, err := policy.New(cfg.PolicyConfig())
	if err != nil {
		return nil, fmt.Errorf("policy: %w", err)
	}
	s.cache, err = leasecache.New(leasecache.Config{
		MaxMemoryMB: cfg.Lease.MaxMemoryMB,
		NegativeTTL: cfg.Lease.NegativeTTL,
		MaxAge:      cfg.Lease.Max,
		Now:         s.opts.Now,
	})
	if err != nil {
		return nil, err
	}
	if err := s.registerMetrics(); err != nil {
		return nil, err
	}
	dc := cfg.DenialLogConfig()
	dc.Now = s.opts.Now
	if s.denials, err = denylog.New(dc); err != nil {
		return nil, err
	}
	if s.pushLog, err = denylog.New(dc); err != nil {
		return nil, err
	}
	if cfg.Fleet != nil {
		if s.fleet, err = fleetlink.Open(s.ctx, cfg.FleetStoreConfig(), fleetmode.StoreLoss(cfg.Fleet.OnStoreLoss), s.cache, s.log, s.reg,
			push.SourceBackchannel, push.SourceSSF); err != nil {
			return nil, err
		}
	}
	eng, err := s.newEngine(cfg, pol)
	if err != nil {
		return nil, err
	}
	rcv, err := s.newPush(cfg)
	if err != nil {
		eng.Close()
		return nil, err
	}
	s.install(newGeneration(cfg, pol, eng, rcv))
	b := pol.RevocationBound()
	s.log.Info("leasegate starting",
		slog.String("version", s.build.Version),
		slog.String("revision", s.build.Revision),
		slog.String("goversion", s.build.GoVersion),
		slog.Bool("vtprotobuf", envoy.VTProtobuf()),
		slog.String("revocation_bound", b.Window.String()),
		slog.String("revocation_bound_with_stale", b.WithStale.String()),
		slog.String("lease_max", b.LeaseMax.String()))
	return s.newFrontEnds(cfg)
}

// close releases what build made, once Run is done with it: retired
// engines close once idle (after the drain, now at the latest), then the
// engine in force and the lease cache.
func (s *service) close() {
	close(s.stopping)
	s.retiring.Wait()
	if g := s.gen.Load(); g != nil {
		g.eng.Close()
		closePush(g.push)
	}
	if s.fleet != nil {
		s.fleet.Close()
	}
	if s.cache != nil {
		s.cache.Close()
	}
}

// listeners are Run's bound sockets; http and push are nil without
// listen.http and listen.push.
type listeners struct{ grpc, admin, metrics, http, push net.Listener }

// listen binds every listener or none.
func listen(ctx context.Context, cfg *config.Config) (listeners, error) {
	var ls listeners
	lc := net.ListenConfig{}
	var err error
	if ls.grpc, err = listenGRPC(ctx, &lc, cfg.Listen); err != nil {
		return ls, fmt.Errorf("listen grpc %s: %w", cfg.Listen.GRPC, err)
	}
	if ls.admin, err = lc.Listen(ctx, "tcp", cfg.Listen.Admin); err != nil {
		ls.grpc.Close()
		return ls, fmt.Errorf("listen admin %s: %w", cfg.Listen.Admin, err)
	}
	if ls.metrics, err = lc.Listen(ctx, "tcp", cfg.Listen.Metrics); err != nil {
		ls.close()
		return ls, fmt.Errorf("listen metrics %s: %w", cfg.Listen.Metrics, err)
	}
	if cfg.Listen.HTTP != "" {
		if ls.http, err = lc.Listen(ctx, "tcp", cfg.Listen.HTTP); err != nil {
			ls.close()
			return ls, fmt.Errorf("listen http %s: %w", cfg.Listen.HTTP, err)
		}
	}
	if cfg.Listen.Push != "" {
		if ls.push, err = lc.Listen(ctx, "tcp", cfg.Listen.Push); err != nil {
			ls.close()
			return ls, fmt.Errorf("listen push %s: %w", cfg.Listen.Push, err)
		}
	}
	return ls, nil
}

// close closes every bound socket.
func (ls listeners) close() {
	for _, l := range []net.Listener{ls.grpc, ls.admin, ls.metrics, ls.http, ls.push} {
		if l != nil {
			l.Close()
		}
	}
}

func (ls listeners) addrs() Addrs {
	a := Addrs{GRPC: ls.grpc.Addr().String(), Admin: ls.admin.Addr().String(), Metrics: ls.metrics.Addr().String()}
	if ls.grpc.Addr().Network() == "unix" {
		a.GRPC = config.UnixSocketPrefix + a.GRPC
	}
	if ls.http != nil {
		a.HTTP = ls.http.Addr().String()
	}
	if ls.push != nil {
		a.Push = ls.push.Addr().String()
	}
	return a
}

// serve runs the front ends on their listeners and reports readiness, then
// waits for ctx to end (nil) or a listener to fail (its error), applying
// reloads meanwhile.
func (s *service) serve(ctx context.Context, fe *frontEnds, ls listeners) error {
	errc := make(chan error, 5) // one per front end: none blocks after serve returns
	go func() { errc <- serveErr("grpc", fe.grpc.Serve(ls.grpc)) }()
	go func() { errc <- serveErr("admin", fe.admin.Serve(ls.admin)) }()
	go func() { errc <- serveErr("metrics", fe.metrics.Serve(ls.metrics)) }()
	if fe.http != nil {
		go func() { errc <- serveErr("http", fe.http.Serve(ls.http)) }()
	}
	if fe.push != nil {
		go func() { errc <- serveErr("push", fe.push.Serve(ls.push)) }()
	}
	addrs := ls.addrs()
	s.log.Info("listening", slog.String("grpc", addrs.GRPC), slog.String("http", addrs.HTTP),
		slog.String("metrics", addrs.Metrics), slog.String("admin", addrs.Admin), slog.String("push", addrs.Push))
	if s.opts.OnListen != nil {
		s.opts.OnListen(addrs)
	}

	readyCtx, stopReady := context.WithCancel(ctx)
	defer stopReady()
	go s.becomeReady(readyCtx, s.gen.Load().cfg.Server.StartGrace)
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-s.opts.Reload:
			s.reload()
		case err := <-errc:
			return err
		}
	}
}

// drain stops in order: say NOT_SERVING, stop accepting and finish
// in-flight checks (bounded by server.drain_timeout), then flush telemetry.
func (s *service) drain(fe *frontEnds) {
	s.log.Info("draining")
	s.draining.Store(true)
	s.health.Shutdown()
	ctx, cancel := context.WithTimeout(context.Background(), s.gen.Load().cfg.Server.DrainTimeout)
	defer cancel()
	fe.stop(ctx, s.log)
	s.flushTelemetry()
	s.log.Info("stopped")
}

// flushTelemetry flushes and stops the tracer provider, bounded.
func (s *service) flushTelemetry() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := s.flush(ctx); err != nil {
		s.log.Warn("telemetry flush failed", slog.String("error", err.Error()))
	}
}

func (s *service) newEngine(cfg *config.Config, pol *policy.Policy) (*authz.Engine, error) {
	ac := authz.Config{
		Realm:  cfg.Realm,
		Policy: pol,
		Cache:  s.cache,
		Upstream: authz.UpstreamHeaderNames{
			Subject:  cfg.Upstream.Headers.Subject,
			ClientID: cfg.Upstream.Headers.ClientID,
			Scope:    cfg.Upstream.Headers.Scope,
			Issuer:   cfg.Upstream.Headers.Issuer,
		},
		StripAuthorization: cfg.Upstream.StripAuthorization,
		Now:                s.opts.Now,
		Logger:             s.log,
		TracerProvider:     s.tp,
		Metrics:            s.metrics,
		DenialLog:          s.denials,
		Issuers:            cfg.AuthzIssuers(),
	}
	if s.fleet != nil {
		ac.Fleet = &fleetmode.Config{
			Store:       s.fleet,
			OnStoreLoss: s.fleet.Loss(),
			NegativeTTL: cfg.Lease.NegativeTTL,
			LeaseMax:    cfg.Lease.Max,
		}
	}
	return authz.New(s.ctx, ac)
}

// registerMetrics adds the process and Go collectors, the lease gauges,
// the series the server owns (SPEC §6) and the engine's.
func (s *service) registerMetrics() error {
	s.reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	s.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "leasegate_leases",
		Help: "Positive leases held in the lease cache.",
	}, func() float64 { return float64(s.cache.Len()) }))
	s.reg.MustRegister(s.opsCollectors()...)
	if err := s.registerServerMetrics(); err != nil {
		return err
	}
	var err error
	if s.metrics, err = authz.NewMetrics(s.reg); err != nil {
		return err
	}
	s.replay = push.NewReplay(0)
	s.pushMetrics, err = push.NewMetrics(s.reg)
	return err
}

// registerServerMetrics adds the series the server owns (SPEC §6).
func (s *service) registerServerMetrics() error {
	s.reloads = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "leasegate_config_reloads_total",
		Help: "Configuration reloads, by outcome (applied, refused).",
	}, []string{"outcome"})
	bound := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "leasegate_revocation_bound_seconds",
		Help: "Longest a token revoked at its issuer may still be allowed, stale_if_error included.",
	}, func() float64 { return s.gen.Load().pol.RevocationBound().WithStale.Seconds() })
	info := prometheus.NewGauge(prometheus.GaugeOpts{
		Name:        "leasegate_build_info",
		Help:        "Always 1; the labels say which build is running (as leasegate -version does).",
		ConstLabels: prometheus.Labels{"version": s.build.Version, "revision": s.build.Revision, "goversion": s.build.GoVersion},
	})
	info.Set(1)
	for _, c := range []prometheus.Collector{s.reloads, bound, info} {
		if err := s.reg.Register(c); err != nil {
			return fmt.Errorf("metrics: %w", err)
		}
	}
	for _, o := range []string{"applied", "refused"} {
		s.reloads.WithLabelValues(o) // exported as 0 before the first reload
	}
	return nil
}

// tokenLoggingEnv refuses the environment settings that make a library
// leasegate uses log requests, bearer tokens included. Each library reads
// its setting at init, so only unsetting it helps.
func tokenLoggingEnv(getenv func(string) string) error {
	if getenv("GRPC_BINARY_LOG_FILTER") != "" {
		return errors.New("GRPC_BINARY_LOG_FILTER is set: gRPC binary logging would write bearer tokens to a file; unset it")
	}
	// With =2 x/net's HTTP/2 framer, which grpc-go reads with, logs the
	// first 256 bytes of every DATA frame, a CheckRequest's Authorization
	// often among them; with =1 net/http's HTTP/2 client logs the headers
	// it sends an issuer, client secrets included. Both read GODEBUG so.
	if g := getenv("GODEBUG"); strings.Contains(g, "http2debug=1") || strings.Contains(g, "http2debug=2") {
		return errors.New("GODEBUG has http2debug: HTTP/2 debug logging would write bearer tokens or issuer secrets to the log; remove it")
	}
	return nil
}

func newLogger(c config.LogConfig, w io.Writer) *slog.Logger {
	var level slog.Level
	_ = level.UnmarshalText([]byte(c.Level))
	ho := &slog.HandlerOptions{Level: level}
	if c.Format == "text" {
		return slog.New(slog.NewTextHandler(w, ho))
	}
	return slog.New(slog.NewJSONHandler(w, ho))
}
