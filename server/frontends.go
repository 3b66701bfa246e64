package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"go.opentelemetry.io/contrib/instrumentation/google.golang.org/grpc/otelgrpc"
	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
	"go.opentelemetry.io/otel/propagation"
	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/leasegate/leasegate/envoy"
	"github.com/leasegate/leasegate/server/config"
	"github.com/leasegate/leasegate/server/forwardauth"
)

// frontEnds are the servers Run serves on its listeners: the gRPC server
// (the envoy adapter and health), the probes and metrics, the admin API,
// HTTP mode (the forwardauth adapter; nil without listen.http) and the push
// receivers on listen.push. Each check goes to the generation in force
// through checker.
type frontEnds struct {
	grpc    *grpc.Server
	metrics *http.Server
	admin   *http.Server
	http    *http.Server
	push    *http.Server // the push receivers on listen.push; nil without it
}

func (s *service) newFrontEnds(cfg *config.Config) (*frontEnds, error) {
	g, err := s.grpcServer(cfg)
	if err != nil {
		return nil, err
	}
	fe := &frontEnds{grpc: g, metrics: s.metricsServer(),
		// Without listen.push the issuer reaches the receivers here: the
		// same bounds on a slow body as pushServer's.
		admin: &http.Server{Handler: s.adminHandler(cfg.Listen.Push == ""), ReadHeaderTimeout: 5 * time.Second,
			ReadTimeout: 10 * time.Second, WriteTimeout: 15 * time.Second, IdleTimeout: time.Minute},
		push: s.pushServer(cfg)}
	if cfg.Listen.HTTP != "" {
		if fe.http, err = s.httpModeServer(cfg); err != nil {
			g.Stop() // its stream workers
			return nil, err
		}
	}
	return fe, nil
}

// stop ends every server: gRPC gracefully with a forced stop when ctx ends
// first, then HTTP mode, push, admin and last the probes (closed when their
// shutdown times out), so a kubelet sees /healthz 200 and /readyz 503
// until the checks are done.
func (fe *frontEnds) stop(ctx context.Context, log *slog.Logger) {
	stopped := make(chan struct{})
	go func() { fe.grpc.GracefulStop(); close(stopped) }()
	select {
	case <-stopped:
	case <-ctx.Done():
		log.Warn("drain timeout: closing remaining gRPC streams")
		fe.grpc.Stop()
	}
	for _, h := range []*http.Server{fe.http, fe.push} {
		if h != nil && h.Shutdown(ctx) != nil {
			h.Close()
		}
	}
	if err := fe.admin.Shutdown(ctx); err != nil {
		fe.admin.Close()
	}
	if err := fe.metrics.Shutdown(ctx); err != nil {
		fe.metrics.Close()
	}
}

func serveErr(name string, err error) error {
	if err == nil || errors.Is(err, http.ErrServerClosed) || errors.Is(err, grpc.ErrServerStopped) {
		return nil
	}
	return fmt.Errorf("%s listener: %w", name, err)
}

// httpModeServer serves the forwardauth handler, each request in an
// OpenTelemetry server span.
func (s *service) httpModeServer(cfg *config.Config) (*http.Server, error) {
	h, err := forwardauth.New(forwardauth.Config{
		Mode:   cfg.Listen.HTTPMode,
		Realm:  cfg.Realm,
		Engine: func() forwardauth.Checker { return checker{s} },
		Logger: s.log,
	})
	if err != nil {
		return nil, err
	}
	return &http.Server{
		Handler: otelhttp.NewHandler(h, "leasegate.http_check",
			otelhttp.WithTracerProvider(s.tp), otelhttp.WithPropagators(propagation.TraceContext{})),
		ReadHeaderTimeout: 5 * time.Second,
		MaxHeaderBytes:    1 << 20,
	}, nil
}

func (s *service) grpcServer(cfg *config.Config) (*grpc.Server, error) {
	opts := append([]grpc.ServerOption{grpc.StatsHandler(otelgrpc.NewServerHandler(
		otelgrpc.WithTracerProvider(s.tp),
		otelgrpc.WithPropagators(propagation.TraceContext{}),
	))}, envoy.ServerOptions(cfg.Server.MaxConcurrentStreams)...)
	g := grpc.NewServer(opts...)
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

// becomeReady probes the issuers until each has answered once (and the
// push receivers have their key sets) or the start grace passes, then
// reports SERVING.
func (s *service) becomeReady(ctx context.Context, grace time.Duration) {
	deadline := time.Now().Add(grace)
	t := time.NewTicker(250 * time.Millisecond)
	defer t.Stop()
	for {
		g := s.acquire()
		probeCtx, cancel := context.WithTimeout(ctx, 2*time.Second)
		g.eng.Probe(probeCtx)
		cancel()
		ready := g.eng.Ready() && (g.push == nil || g.push.Ready())
		g.release()
		if ready || !time.Now().Before(deadline) {
			if !ready {
				s.log.Warn("start grace passed before every issuer answered; serving anyway", slog.Duration("start_grace", grace))
			}
			s.ready.Store(true)
			if !s.draining.Load() {
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
