package main

import (
	"context"
	"fmt"
	"net"
	"os"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"go.opentelemetry.io/contrib/instrumentation/google.golang.org/grpc/otelgrpc"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace/noop"
	rpcstatus "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/keepalive"
)

// noopAuthz answers every Check with OK without looking at the request:
// what is left is the cost of gRPC itself (HTTP/2, proto decoding of the
// CheckRequest, the stats handler), the floor leasegate is compared with.
type noopAuthz struct {
	authv3.UnimplementedAuthorizationServer
}

var _ authv3.AuthorizationServer = noopAuthz{}

// okResponse is shared: marshalling only reads it.
var okResponse = &authv3.CheckResponse{Status: &rpcstatus.Status{Code: int32(codes.OK)}}

func (noopAuthz) Check(context.Context, *authv3.CheckRequest) (*authv3.CheckResponse, error) {
	return okResponse, nil
}

// newFloorServer mirrors leasegate's server.grpcServer with its defaults
// and tracing off (a no-op tracer provider): the same grpc-go version,
// options and otelgrpc stats handler, so the only difference measured is
// leasegate's own work.
func newFloorServer() *grpc.Server {
	g := grpc.NewServer(
		grpc.StatsHandler(otelgrpc.NewServerHandler(
			otelgrpc.WithTracerProvider(noop.NewTracerProvider()),
			otelgrpc.WithPropagators(propagation.TraceContext{}),
		)),
		grpc.MaxConcurrentStreams(1024),
		grpc.MaxRecvMsgSize(4<<20),
		grpc.KeepaliveParams(keepalive.ServerParameters{Time: 2 * time.Minute, Timeout: 20 * time.Second}),
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: 10 * time.Second, PermitWithoutStream: true}),
	)
	authv3.RegisterAuthorizationServer(g, noopAuthz{})
	healthpb.RegisterHealthServer(g, health.NewServer())
	return g
}

func serveNoop(ctx context.Context, addr, addrFile string) error {
	lis, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("listen %s: %w", addr, err)
	}
	g := newFloorServer()
	if err := writeAddr(addrFile, lis.Addr().String()); err != nil {
		return err
	}
	fmt.Fprintln(os.Stderr, "no-op ext_authz listening on", lis.Addr())
	go func() {
		<-ctx.Done()
		g.Stop()
	}()
	if err := g.Serve(lis); err != nil && ctx.Err() == nil {
		return fmt.Errorf("serve: %w", err)
	}
	return nil
}
