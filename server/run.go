// Package server is the leasegate process: configuration loading and
// validation, the gRPC (ext_authz v3 + health), HTTP-mode and admin
// listeners, OpenTelemetry and Prometheus setup, reload and graceful drain.
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
	"net/http"
	"os"
	"runtime"
	"runtime/debug"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"go.opentelemetry.io/contrib/instrumentation/google.golang.org/grpc/otelgrpc"
	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/keepalive"

	"github.com/leasegate/leasegate/authz"
	"github.com/leasegate/leasegate/envoy"
	"github.com/leasegate/leasegate/leasecache"
	"github.com/leasegate/leasegate/policy"
	"github.com/leasegate/leasegate/server/forwardauth"
)

// Options are Run's inputs besides the context.
type Options struct {
	ConfigPath string
	Config     *Config // already loaded; Run loads ConfigPath when nil
	Version    string
	// Reload delivers reload requests (SIGHUP, wired by main).
	Reload <-chan os.Signal
	// Logger overrides the logger the config describes (tests).
	Logger *slog.Logger
	// TracerProvider overrides the OTEL_* setup (tests).
	TracerProvider trace.TracerProvider
	// Getenv reads OTEL_* variables; os.Getenv when nil.
	Getenv func(string) string
	// Now is the lease clock; time.Now when nil.
	Now func() time.Time
	// OnListen is told the bound addresses once every listener is up.
	OnListen func(Addrs)
}

// Addrs are the addresses Run is serving on.
type Addrs struct{ GRPC, HTTP, Admin string }

// service is the running state. Everything a reload changes is in one
// generation, swapped whole; the lease cache is shared by all of them.
type service struct {
	opts    Options
	log     *slog.Logger
	gen     atomic.Pointer[generation]
	cache   *leasecache.Cache
	metrics *authz.Metrics
	reloads *prometheus.CounterVec
	reg     *prometheus.Registry
	tp      trace.TracerProvider
	health  *health.Server
	ready   atomic.Bool
	drain   atomic.Bool
	ctx     context.Context
	mu      sync.Mutex // serializes reloads

	liveMu   sync.Mutex
	live     map[*generation]struct{} // not yet closed: the one in force and those retiring
	retiring sync.WaitGroup           // closers of retired generations
	stopping chan struct{}            // closed when Run returns
}

// Run serves until ctx is cancelled, then drains: health NOT_SERVING, stop
// accepting, finish in-flight checks, flush telemetry. It returns nil after
// a clean drain.
func Run(ctx context.Context, opts Options) error {
	cfg := opts.Config
	if cfg == nil {
		var err error
		if cfg, err = Load(opts.ConfigPath); err != nil {
			return err
		}
	}
	if opts.Getenv == nil {
		opts.Getenv = os.Getenv
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	log := opts.Logger
	if log == nil {
		log = newLogger(cfg.Log, os.Stderr)
	}
	s := &service{opts: opts, log: log, reg: prometheus.NewRegistry(), ctx: ctx,
		live: map[*generation]struct{}{}, stopping: make(chan struct{})}

	tp, flush := opts.TracerProvider, func(context.Context) error { return nil }
	if tp == nil {
		var err error
		if tp, flush, err = setupTracing(ctx, cfg.Tracing, opts.Version, opts.Getenv); err != nil {
			return err
		}
	}
	s.tp = tp

	pol, err := policy.New(cfg.PolicyConfig())
	if err != nil {
		return fmt.Errorf("policy: %w", err)
	}
	s.cache, err = leasecache.New(leasecache.Config{
		MaxMemoryMB: cfg.Lease.MaxMemoryMB,
		NegativeTTL: cfg.Lease.NegativeTTL,
		MaxAge:      cfg.Lease.Max,
		Now:         opts.Now,
	})
	if err != nil {
		return err
	}
	defer s.cache.Close()

	s.reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	s.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "leasegate_leases",
		Help: "Positive leases held in the lease cache.",
	}, func() float64 { return float64(s.cache.Len()) }))
	if err := s.registerServerMetrics(); err != nil {
		return err
	}
	if s.metrics, err = authz.NewMetrics(s.reg); err != nil {
		return err
	}
	eng, err := s.newEngine(cfg, pol)
	if err != nil {
		return err
	}
	s.install(newGeneration(cfg, pol, eng))
	defer func() {
		// Retired engines close once idle; after the drain, now at the latest.
		close(s.stopping)
		s.retiring.Wait()
		s.gen.Load().eng.Close()
	}()

	b := pol.RevocationBound()
	log.Info("leasegate starting",
		slog.String("version", opts.Version),
		slog.String("revocation_bound", b.Window.String()),
		slog.String("revocation_bound_with_stale", b.WithStale.String()),
		slog.String("lease_max", b.LeaseMax.String()))

	// Listeners first, so a port clash fails start-up before anything runs.
	lc := net.ListenConfig{}
	grpcLis, err := lc.Listen(ctx, "tcp", cfg.Listen.GRPC)
	if err != nil {
		return fmt.Errorf("listen grpc %s: %w", cfg.Listen.GRPC, err)
	}
	adminLis, err := lc.Listen(ctx, "tcp", cfg.Listen.Admin)
	if err != nil {
		grpcLis.Close()
		return fmt.Errorf("listen admin %s: %w", cfg.Listen.Admin, err)
	}
	var httpLis net.Listener
	if cfg.Listen.HTTP != "" {
		if httpLis, err = lc.Listen(ctx, "tcp", cfg.Listen.HTTP); err != nil {
			grpcLis.Close()
			adminLis.Close()
			return fmt.Errorf("listen http %s: %w", cfg.Listen.HTTP, err)
		}
	}

	grpcSrv, err := s.grpcServer(cfg)
	if err != nil {
		return err
	}
	adminSrv := &http.Server{Handler: s.adminHandler(), ReadHeaderTimeout: 5 * time.Second}
	var httpSrv *http.Server
	if httpLis != nil {
		h, err := forwardauth.New(forwardauth.Config{
			Mode:   cfg.Listen.HTTPMode,
			Realm:  cfg.Realm,
			Engine: func() forwardauth.Checker { return checker{s} },
			Logger: log,
		})
		if err != nil {
			return err
		}
		httpSrv = &http.Server{
			Handler: otelhttp.NewHandler(h, "leasegate.http_check",
				otelhttp.WithTracerProvider(tp), otelhttp.WithPropagators(propagation.TraceContext{})),
			ReadHeaderTimeout: 5 * time.Second,
			MaxHeaderBytes:    1 << 20,
		}
	}

	errc := make(chan error, 3)
	go func() { errc <- serveErr("grpc", grpcSrv.Serve(grpcLis)) }()
	go func() { errc <- serveErr("admin", adminSrv.Serve(adminLis)) }()
	if httpSrv != nil {
		go func() { errc <- serveErr("http", httpSrv.Serve(httpLis)) }()
	}
	addrs := Addrs{GRPC: grpcLis.Addr().String(), Admin: adminLis.Addr().String()}
	if httpLis != nil {
		addrs.HTTP = httpLis.Addr().String()
	}
	log.Info("listening", slog.String("grpc", addrs.GRPC), slog.String("http", addrs.HTTP), slog.String("admin", addrs.Admin))
	if opts.OnListen != nil {
		opts.OnListen(addrs)
	}

	readyCtx, stopReady := context.WithCancel(ctx)
	defer stopReady()
	go s.becomeReady(readyCtx, cfg.Server.StartGrace)

	var runErr error
loop:
	for {
		select {
		case <-ctx.Done():
			break loop
		case <-opts.Reload:
			s.reload()
		case err := <-errc:
			runErr = err
			break loop
		}
	}

	// Drain in order: say NOT_SERVING, stop accepting and finish in-flight
	// checks (bounded), then flush telemetry.
	log.Info("draining")
	s.drain.Store(true)
	s.health.Shutdown()
	drainCtx, cancel := context.WithTimeout(context.Background(), s.gen.Load().cfg.Server.DrainTimeout)
	defer cancel()
	stopped := make(chan struct{})
	go func() { grpcSrv.GracefulStop(); close(stopped) }()
	select {
	case <-stopped:
	case <-drainCtx.Done():
		log.Warn("drain timeout: closing remaining gRPC streams")
		grpcSrv.Stop()
	}
	if httpSrv != nil {
		if err := httpSrv.Shutdown(drainCtx); err != nil {
			httpSrv.Close()
		}
	}
	if err := adminSrv.Shutdown(drainCtx); err != nil {
		adminSrv.Close()
	}
	flushCtx, cancelFlush := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancelFlush()
	if err := flush(flushCtx); err != nil {
		log.Warn("telemetry flush failed", slog.String("error", err.Error()))
	}
	log.Info("stopped")
	return runErr
}

func serveErr(name string, err error) error {
	if err == nil || errors.Is(err, http.ErrServerClosed) || errors.Is(err, grpc.ErrServerStopped) {
		return nil
	}
	return fmt.Errorf("%s listener: %w", name, err)
}

func (s *service) grpcServer(cfg *Config) (*grpc.Server, error) {
	g := grpc.NewServer(
		grpc.StatsHandler(otelgrpc.NewServerHandler(
			otelgrpc.WithTracerProvider(s.tp),
			otelgrpc.WithPropagators(propagation.TraceContext{}),
		)),
		grpc.MaxConcurrentStreams(cfg.Server.MaxConcurrentStreams),
		// Envoy may send up to 8 MiB of headers (max_request_headers_kb); a
		// larger message would be a gRPC error, not a decision.
		grpc.MaxRecvMsgSize(16<<20),
		grpc.KeepaliveParams(keepalive.ServerParameters{Time: 2 * time.Minute, Timeout: 20 * time.Second}),
		// Envoy pings idle HTTP/2 connections; don't kill it for that.
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: 10 * time.Second, PermitWithoutStream: true}),
	)
	adapter, err := envoy.New(envoy.Config{Engine: func() envoy.Checker { return checker{s} }, Realm: cfg.Realm, Logger: s.log})
	if err != nil {
		return nil, err
	}
	adapter.Register(g)
	s.health = health.NewServer()
	s.health.SetServingStatus("", healthpb.HealthCheckResponse_NOT_SERVING)
	s.health.SetServingStatus(healthService, healthpb.HealthCheckResponse_NOT_SERVING)
	healthpb.RegisterHealthServer(g, s.health)
	return g, nil
}

const healthService = "envoy.service.auth.v3.Authorization"

// becomeReady probes the issuers until each has answered once or the start
// grace passes, then reports SERVING.
func (s *service) becomeReady(ctx context.Context, grace time.Duration) {
	deadline := time.Now().Add(grace)
	t := time.NewTicker(250 * time.Millisecond)
	defer t.Stop()
	for {
		g := s.acquire()
		probeCtx, cancel := context.WithTimeout(ctx, 2*time.Second)
		g.eng.Probe(probeCtx)
		cancel()
		ready := g.eng.Ready()
		g.release()
		if ready || !time.Now().Before(deadline) {
			if !ready {
				s.log.Warn("start grace passed before every issuer answered; serving anyway", slog.Duration("start_grace", grace))
			}
			s.ready.Store(true)
			if !s.drain.Load() {
				s.health.SetServingStatus("", healthpb.HealthCheckResponse_SERVING)
				s.health.SetServingStatus(healthService, healthpb.HealthCheckResponse_SERVING)
			}
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (s *service) newEngine(cfg *Config, pol *policy.Policy) (*authz.Engine, error) {
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
		Issuers:            cfg.authzIssuers(),
	}
	return authz.New(s.ctx, ac)
}

// reload re-reads the config file and builds a whole new generation
// (config, policy, engine) before anything changes; a file that is refused
// changes nothing. Leases survive: the lease cache is shared.
func (s *service) reload() {
	s.mu.Lock()
	defer s.mu.Unlock()
	old := s.gen.Load()
	path := s.opts.ConfigPath
	if path == "" {
		path = old.cfg.path
	}
	refuse := func(err error) {
		s.reloads.WithLabelValues("refused").Inc()
		s.log.Error("reload refused; keeping the running configuration", slog.String("config", path), slog.String("error", err.Error()))
	}
	cfg, err := Load(path)
	if err != nil {
		refuse(err)
		return
	}
	keys := restartOnly(old.cfg, cfg)
	cfg.keepRestartOnly(old.cfg)
	if cfg.adminOpen() {
		// The new file may move the admin listener to loopback and drop
		// the secret; the listener stays where it is until a restart.
		refuse(fmt.Errorf("listen.admin stays %s until a restart, and a non-loopback admin listener needs admin.secret", cfg.Listen.Admin))
		return
	}
	pol, err := policy.New(cfg.PolicyConfig())
	if err != nil {
		refuse(fmt.Errorf("policy: %w", err))
		return
	}
	eng, err := s.newEngine(cfg, pol)
	if err != nil {
		refuse(err)
		return
	}
	if len(keys) > 0 {
		s.log.Warn("these settings take effect only after a restart; the running values are kept",
			slog.String("changed", strings.Join(keys, ", ")))
	}
	s.install(newGeneration(cfg, pol, eng))
	s.reloads.WithLabelValues("applied").Inc()
	b := pol.RevocationBound()
	s.log.Info("configuration reloaded",
		slog.String("revocation_bound", b.Window.String()),
		slog.String("revocation_bound_with_stale", b.WithStale.String()),
		slog.String("lease_max", b.LeaseMax.String()))
}

// restartOnly lists what differs between a and b among the settings that
// are wired once at start: listeners, the cache's size and negative TTL,
// logging, tracing, the gRPC stream limit, and the realm (the gRPC and HTTP
// front ends build some answers themselves).
func restartOnly(a, b *Config) []string {
	var keys []string
	add := func(changed bool, key string) {
		if changed {
			keys = append(keys, key)
		}
	}
	add(a.Listen != b.Listen, "listen")
	add(a.Lease.MaxMemoryMB != b.Lease.MaxMemoryMB, "lease.max_memory_mb")
	add(a.Lease.NegativeTTL != b.Lease.NegativeTTL, "lease.negative_ttl")
	add(a.Log != b.Log, "log")
	ta, tb := a.Tracing, b.Tracing
	ta.SamplerArg, tb.SamplerArg = nil, nil
	add(ta != tb || deref(a.Tracing.SamplerArg) != deref(b.Tracing.SamplerArg), "tracing")
	add(a.Server.MaxConcurrentStreams != b.Server.MaxConcurrentStreams, "server.max_concurrent_streams")
	add(a.Realm != b.Realm, "realm")
	return keys
}

// keepRestartOnly puts back the running values of the settings restartOnly
// lists, so a reloaded config says what is in force (GET /config) and the
// new engine answers with the realm the front ends still use.
func (c *Config) keepRestartOnly(running *Config) {
	c.Listen = running.Listen
	c.Lease.MaxMemoryMB = running.Lease.MaxMemoryMB
	c.Lease.NegativeTTL = running.Lease.NegativeTTL
	c.Log = running.Log
	c.Tracing = running.Tracing
	c.Server.MaxConcurrentStreams = running.Server.MaxConcurrentStreams
	c.Realm = running.Realm
}

func deref(p *string) string {
	if p == nil {
		return "\x00unset"
	}
	return *p
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
	revision, goVersion := "unknown", runtime.Version()
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, kv := range bi.Settings {
			if kv.Key == "vcs.revision" {
				revision = kv.Value
			}
		}
	}
	info := prometheus.NewGauge(prometheus.GaugeOpts{
		Name:        "leasegate_build_info",
		Help:        "Always 1; the labels say which build is running.",
		ConstLabels: prometheus.Labels{"version": s.opts.Version, "revision": revision, "goversion": goVersion},
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

func newLogger(c LogConfig, w io.Writer) *slog.Logger {
	var level slog.Level
	_ = level.UnmarshalText([]byte(c.Level))
	ho := &slog.HandlerOptions{Level: level}
	if c.Format == "text" {
		return slog.New(slog.NewTextHandler(w, ho))
	}
	return slog.New(slog.NewJSONHandler(w, ho))
}
