package main

import (
	"context"
	"fmt"
	"net"
	"os"
	"strings"
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
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/leasegate/leasegate/envoy"
)

// noopAuthz answers every Check with OK without looking at the request:
// what is left is the cost of gRPC itself (HTTP/2, proto decoding of the
// CheckRequest, the stats handler), the floor leasegate is compared with.
type noopAuthz struct {
	authv3.UnimplementedAuthorizationServer
	resp *authv3.CheckResponse
	work time.Duration
}

// floorOptions vary the floor server for experiments; the zero value is
// the floor.
type floorOptions struct {
	// streamWorkers > 0 adds grpc.NumStreamWorkers.
	streamWorkers uint32
	// richOK answers with a leasegate-shaped OK response.
	richOK bool
	// work is CPU burnt per Check, to see how latency and scheduling
	// react to a handler that does something.
	work time.Duration
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
			//lint:ignore SA1019 leasegate's answer sets append too (older Envoys read only append); the noop server mirrors its size
			Append: wrapperspb.Bool(false),
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
	if n.work > 0 {
		for start := time.Now(); time.Since(start) < n.work; {
		}
	}
	return n.resp, nil
}

// newFloorServer is leasegate's gRPC server without leasegate: the same
// options (envoy.ServerOptions: the codec, the stream workers, the
// limits) and the same otelgrpc stats handler with tracing off, so the
// only difference measured is leasegate's own work.
func newFloorServer(o floorOptions) *grpc.Server {
	opts := append([]grpc.ServerOption{grpc.StatsHandler(otelgrpc.NewServerHandler(
		otelgrpc.WithTracerProvider(noop.NewTracerProvider()),
		otelgrpc.WithPropagators(propagation.TraceContext{}),
	))}, envoy.ServerOptions(1024)...)
	if o.streamWorkers > 0 {
		opts = append(opts, grpc.NumStreamWorkers(o.streamWorkers)) // the later option wins
	}
	g := grpc.NewServer(opts...)
	srv := noopAuthz{resp: okResponse, work: o.work}
	if o.richOK {
		srv.resp = richOKResponse()
	}
	authv3.RegisterAuthorizationServer(g, srv)
	healthpb.RegisterHealthServer(g, health.NewServer())
	return g
}

// listenAddr listens on host:port or, for unix:///path, on a Unix socket
// (replacing a socket file left by an earlier run).
func listenAddr(addr string) (net.Listener, error) {
	if path, ok := strings.CutPrefix(addr, "unix://"); ok {
		_ = os.Remove(path)
		return net.Listen("unix", path)
	}
	return net.Listen("tcp", addr)
}

func serveNoop(ctx context.Context, addr, addrFile string, o floorOptions) error {
	lis, err := listenAddr(addr)
	if err != nil {
		return fmt.Errorf("listen %s: %w", addr, err)
	}
	g := newFloorServer(o)
	bound := lis.Addr().String()
	if lis.Addr().Network() == "unix" {
		bound = "unix://" + bound
	}
	if err := writeAddr(addrFile, bound); err != nil {
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
