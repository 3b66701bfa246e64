package authz

import (
	"cmp"
	"context"
	"io"
	"log/slog"
	"testing"

	"github.com/leasegate/leasegate/policy"
)

// benchEnv is an engine as the server runs it (metrics on, logs at info so
// allows are not logged, no tracing) with a warm lease for tok.
func benchEnv(b *testing.B, o engOpts, tok, path string) *engEnv {
	b.Helper()
	return benchEnvScope(b, o, tok, path, "")
}

// benchEnvScope is benchEnv with the token's scope ("" for the default).
func benchEnvScope(b *testing.B, o engOpts, tok, path, scope string) *engEnv {
	b.Helper()
	cfg := o.config
	o.config = func(c *Config) {
		c.Logger = slog.New(slog.NewJSONHandler(io.Discard, &slog.HandlerOptions{Level: slog.LevelInfo}))
		if cfg != nil {
			cfg(c)
		}
	}
	env := newEngEnv(b, o)
	env.iss.setAnswer(tok, env.active(func(a map[string]any) {
		if scope != "" {
			a["scope"] = scope
		}
	}))
	if d := env.check("GET", path, tok); !d.Allow {
		b.Fatalf("warm-up: %+v", d)
	}
	return env
}

// BenchmarkCheckHit is a decision on a lease hit, end to end inside authz:
// extract → classify → lookup → decision. Goal: < 1 µs/op, ≤ 3 allocs/op.
func BenchmarkCheckHit(b *testing.B) {
	const tok = "ory_at_bench-0123456789abcdefghijklmnopqrstuvwxyz.ABCDEFGHIJKLMNOPQRSTUVWXYZ"
	storage := engOpts{
		routes: []policy.RouteConfig{{Prefix: "/admin/", Tier: policy.TierCritical}, {Prefix: "/data/", Require: policy.ProfileWLCG}},
		issuer: func(ic *IssuerConfig) { ic.BasePath = "/data" },
	}
	cases := []struct {
		name   string
		opts   engOpts
		method string // "" means GET
		path   string
		hdr    engHeaders // besides Authorization
		scope  string     // "" means the default
	}{
		{name: "plain", path: "/data/atlas/file"},
		{name: "no metrics", opts: engOpts{config: func(c *Config) { c.Metrics = nil }}, path: "/data/atlas/file"},
		{name: "storage route", opts: storage, path: "/data/atlas/file"},
		// A MOVE within the storage area: the Destination's routes are
		// classified too (SPEC §1), on the same hit path.
		{name: "local move", opts: storage, method: "MOVE", path: "/data/atlas/file",
			hdr: engHeaders{"destination": {"https://storage.example.org/data/atlas/moved"}}, scope: "storage.read:/atlas storage.modify:/atlas"},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			env := benchEnvScope(b, c.opts, tok, c.path, c.scope)
			h := bearer(tok)
			for k, v := range c.hdr {
				h[k] = v
			}
			r := &Request{Method: cmp.Or(c.method, "GET"), Host: "storage.example.org", Path: c.path, Headers: h}
			ctx := context.Background()
			b.ReportAllocs()
			for b.Loop() {
				d := env.eng.Check(ctx, r)
				if !d.Allow || d.Lease != LeaseHit {
					b.Fatalf("not a hit: %+v", d)
				}
			}
			if env.calls() != 1 {
				b.Fatalf("issuer calls = %d, want 1", env.calls())
			}
		})
	}
}

// BenchmarkCheckHitParallel is BenchmarkCheckHit from every P at once, one
// token per goroutine (shared metrics, cache shards and clock).
func BenchmarkCheckHitParallel(b *testing.B) {
	const tok = "ory_at_bench-parallel"
	env := benchEnv(b, engOpts{}, tok, "/f")
	r := &Request{Method: "GET", Path: "/f", Headers: bearer(tok)}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if d := env.eng.Check(context.Background(), r); !d.Allow {
				b.Errorf("not allowed: %+v", d)
				return
			}
		}
	})
}

// BenchmarkCheckNegative is a request with a token the issuer recently said
// is inactive: answered from the negative lease.
func BenchmarkCheckNegative(b *testing.B) {
	env := benchEnv(b, engOpts{}, "good", "/f")
	const bad = "ory_at_inactive"
	if d := env.check("GET", "/f", bad); d.Allow {
		b.Fatal("allowed")
	}
	r := &Request{Method: "GET", Path: "/f", Headers: bearer(bad)}
	b.ReportAllocs()
	for b.Loop() {
		if d := env.eng.Check(context.Background(), r); d.Lease != LeaseNegative {
			b.Fatalf("%+v", d)
		}
	}
}
