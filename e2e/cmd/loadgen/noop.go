package main

import (
	"context"
	"fmt"
	"net"
	"os"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
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
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// noopAuthz answers every Check with OK without looking at the request:
// what is left is the cost of gRPC itself (HTTP/2, proto decoding of the
// CheckRequest, the stats handler), the floor leasegate is compared with.
type noopAuthz struct {
	authv3.UnimplementedAuthorizationServer
	resp *authv3.CheckResponse
}

var _ authv3.AuthorizationServer = noopAuthz{}

// okResponse is shared: marshalling only reads it.
var okResponse = &authv3.CheckResponse{Status: &rpcstatus.Status{Code: int32(codes.OK)}}

// richOKResponse has the shape of leasegate's answer to a hit, so the cost
// of the response alone (marshalling it, and the client decoding it) can
// be told apart from the cost of deciding.
func richOKResponse() *authv3.CheckResponse {
	hdr := func(k, v string) *corev3.HeaderValueOption {
		return &corev3.HeaderValueOption{
			Header:       &corev3.HeaderValue{Key: k, Value: v},
			AppendAction: corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD,
			Append:       wrapperspb.Bool(false),
		}
	}
	md, _ := structpb.NewStruct(map[string]any{
		"sub": "subject-000000000042@example.org", "client_id": "leasegate-bench-client-000000000001",
		"scope": "openid storage.read:/ storage.modify:/atlas", "iss": "https://issuer.bench.example",
		"tier": "read", "lease": "hit",
	})
	return &authv3.CheckResponse{
		Status: &rpcstatus.Status{Code: int32(codes.OK)},
		HttpResponse: &authv3.CheckResponse_OkResponse{OkResponse: &authv3.OkHttpResponse{Headers: []*corev3.HeaderValueOption{
			hdr("x-auth-subject", "subject-000000000042@example.org"),
			hdr("x-auth-client-id", "leasegate-bench-client-000000000001"),
			hdr("x-auth-scope", "openid storage.read:/ storage.modify:/atlas"),
			hdr("x-auth-issuer", "https://issuer.bench.example"),
		}}},
		DynamicMetadata: md,
	}
}

func (n noopAuthz) Check(context.Context, *authv3.CheckRequest) (*authv3.CheckResponse, error) {
	return n.resp, nil
}

// newFloorServer mirrors leasegate's server.grpcServer with its defaults
// and tracing off (a no-op tracer provider): the same grpc-go version,
// options and otelgrpc stats handler, so the only difference measured is
// leasegate's own work. streamWorkers > 0 adds grpc.NumStreamWorkers, to
// measure what reusing handler goroutines would save.
func newFloorServer(streamWorkers uint32, richOK bool) *grpc.Server {
	opts := []grpc.ServerOption{
		grpc.StatsHandler(otelgrpc.NewServerHandler(
			otelgrpc.WithTracerProvider(noop.NewTracerProvider()),
			otelgrpc.WithPropagators(propagation.TraceContext{}),
		)),
		grpc.MaxConcurrentStreams(1024),
		grpc.MaxRecvMsgSize(4 << 20),
		grpc.KeepaliveParams(keepalive.ServerParameters{Time: 2 * time.Minute, Timeout: 20 * time.Second}),
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: 10 * time.Second, PermitWithoutStream: true}),
	}
	if streamWorkers > 0 {
		opts = append(opts, grpc.NumStreamWorkers(streamWorkers))
	}
	g := grpc.NewServer(opts...)
	srv := noopAuthz{resp: okResponse}
	if richOK {
		srv.resp = richOKResponse()
	}
	authv3.RegisterAuthorizationServer(g, srv)
	healthpb.RegisterHealthServer(g, health.NewServer())
	return g
}

func serveNoop(ctx context.Context, addr, addrFile string, streamWorkers uint32, richOK bool) error {
	lis, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("listen %s: %w", addr, err)
	}
	g := newFloorServer(streamWorkers, richOK)
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
