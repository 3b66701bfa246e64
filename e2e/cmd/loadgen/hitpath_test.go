package main

import (
	"context"
	"io"
	"log/slog"
	"net/http/httptest"
	"testing"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/protobuf/proto"

	"github.com/leasegate/leasegate/authz"
	"github.com/leasegate/leasegate/authz/issuer"
	"github.com/leasegate/leasegate/envoy"
	"github.com/leasegate/leasegate/leasecache"
	"github.com/leasegate/leasegate/policy"
)

// The hit-path benchmarks split a lease hit's server-side cost into the
// parts leasegate adds on top of the gRPC floor, in process, so the split
// does not depend on the load of the machine:
//
//	go test ./cmd/loadgen -run '^$' -bench HitPath -benchmem -count 5
//
// The floor's own per-request work (HTTP/2, the stats handler, decoding
// the CheckRequest) is BenchmarkHitPathFloor; everything else is
// leasegate's. leasegate's handler decodes only the fields it reads
// instead of the whole request (envoy's BenchmarkDecode).

// hitEnv is a leasegate adapter and engine as server.Run builds them
// (metrics on, logs at warn, no tracing) with a lease for token 42.
type hitEnv struct {
	adapter *envoy.Server
	engine  *authz.Engine
	req     *authv3.CheckRequest
	reqB    []byte
}

func newHitEnv(tb testing.TB) *hitEnv {
	tb.Helper()
	iss := httptest.NewServer(&fakeIssuer{})
	tb.Cleanup(iss.Close)
	pol, err := policy.New(policy.Config{Tiers: policy.DefaultTiers(), LeaseMax: 10 * time.Minute})
	if err != nil {
		tb.Fatal(err)
	}
	cache, err := leasecache.New(leasecache.Config{MaxMemoryMB: 64, MaxAge: 10 * time.Minute})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = cache.Close() })
	metrics, err := authz.NewMetrics(prometheus.NewRegistry())
	if err != nil {
		tb.Fatal(err)
	}
	eng, err := authz.New(context.Background(), authz.Config{
		Realm:  "leasegate",
		Policy: pol,
		Cache:  cache,
		Issuers: []authz.IssuerConfig{{
			Name: "bench", Issuer: "https://issuer.bench.example", Mode: authz.ModeIntrospection, DefaultForOpaque: true,
			Introspection: issuer.IntrospectionConfig{Endpoint: iss.URL + "/introspect", Auth: issuer.AuthNone},
		}},
		Upstream: authz.UpstreamHeaderNames{Subject: "x-auth-subject", ClientID: "x-auth-client-id", Scope: "x-auth-scope", Issuer: "x-auth-issuer"},
		Logger:   slog.New(slog.NewJSONHandler(io.Discard, &slog.HandlerOptions{Level: slog.LevelWarn})),
		Metrics:  metrics,
	})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(eng.Close)
	adapter, err := envoy.New(envoy.Config{Engine: func() envoy.Checker { return eng }, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		tb.Fatal(err)
	}
	t, err := newTemplate("GET", "storage.example.org", "/atlas/data/run3/file-000042.root")
	if err != nil {
		tb.Fatal(err)
	}
	env := &hitEnv{adapter: adapter, engine: eng, reqB: make([]byte, len(t.b))}
	t.fill(env.reqB, 42, 1, 2)
	env.req = new(authv3.CheckRequest)
	if err := proto.Unmarshal(env.reqB, env.req); err != nil {
		tb.Fatal(err)
	}
	// The first Check fills the lease.
	resp, _ := adapter.Check(context.Background(), env.req)
	if resp.GetStatus().GetCode() != 0 {
		tb.Fatalf("warm-up check denied: %v", resp)
	}
	return env
}

// BenchmarkHitPathFloor is the floor's decode of the request: the one
// piece of per-request work below the handler that the benchmarks here
// can isolate (the no-op server pays it too).
func BenchmarkHitPathFloor(b *testing.B) {
	env := newHitEnv(b)
	b.Run("unmarshal request", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			var r authv3.CheckRequest
			if err := proto.Unmarshal(env.reqB, &r); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("marshal no-op response", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := proto.Marshal(okResponse); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkHitPath is what leasegate adds per hit: the adapter's Check
// (header view, engine, response build) and marshalling its larger OK
// response, then the engine and the lease key alone.
func BenchmarkHitPath(b *testing.B) {
	env := newHitEnv(b)
	ctx := context.Background()
	b.Run("adapter Check", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			resp, _ := env.adapter.Check(ctx, env.req)
			if resp.GetStatus().GetCode() != 0 {
				b.Fatal("denied")
			}
		}
	})
	resp, _ := env.adapter.Check(ctx, env.req)
	b.Run("marshal OK response", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := proto.Marshal(resp); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("marshal OK response without dynamic_metadata", func(b *testing.B) {
		r := proto.Clone(resp).(*authv3.CheckResponse)
		r.DynamicMetadata = nil
		b.ReportAllocs()
		for b.Loop() {
			if _, err := proto.Marshal(r); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("marshal OK response with vtproto", func(b *testing.B) {
		// go-control-plane's generated MarshalVTStrict (build tag
		// vtprotobuf), as envoy.Codec calls it.
		if _, ok := marshalVT(resp); !ok {
			b.Skip("needs -tags vtprotobuf")
		}
		b.ReportAllocs()
		for b.Loop() {
			if _, ok := marshalVT(resp); !ok {
				b.Fatal("MarshalVTStrict failed")
			}
		}
	})
	codec := envoy.Codec()
	b.Run("adapter Check and codec marshal", func(b *testing.B) {
		// The server's whole share of a hit below gRPC: what the handler
		// does and what the codec makes of its answer.
		b.ReportAllocs()
		for b.Loop() {
			resp, _ := env.adapter.Check(ctx, env.req)
			data, err := codec.Marshal(resp)
			if err != nil {
				b.Fatal(err)
			}
			data.Free()
		}
	})
	b.Run("engine Check", func(b *testing.B) {
		r := &authz.Request{Method: "GET", Host: "storage.example.org", Path: "/atlas/data/run3/file-000042.root",
			Headers: authHeader("Bearer " + tokenString(42))}
		b.ReportAllocs()
		for b.Loop() {
			if d := env.engine.Check(ctx, r); !d.Allow || d.Lease != authz.LeaseHit {
				b.Fatalf("not a hit: %+v", d)
			}
		}
	})
	b.Run("lease key (SHA-256)", func(b *testing.B) {
		tok := tokenString(42)
		b.ReportAllocs()
		for b.Loop() {
			_ = leasecache.KeyOf(tok)
		}
	})
}

type authHeader string

func (h authHeader) Get(name string) (string, int) {
	if name == "authorization" {
		return string(h), 1
	}
	return "", 0
}

func (authHeader) UnderscoreName(func(string) bool) string { return "" }

// TestHitPathResponse checks the benchmark's setup: the adapter allows
// token 42 from its lease.
func TestHitPathResponse(t *testing.T) {
	env := newHitEnv(t)
	resp, err := env.adapter.Check(context.Background(), env.req)
	if err != nil || resp.GetStatus().GetCode() != 0 {
		t.Fatalf("Check = %v, %v; want OK", resp, err)
	}
	if lease := resp.GetDynamicMetadata().GetFields()["lease"].GetStringValue(); lease != "hit" {
		t.Fatalf("lease = %q, want hit", lease)
	}
}
