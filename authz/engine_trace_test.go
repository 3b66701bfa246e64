package authz

import (
	"context"
	"net/http"
	"testing"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/leasegate/leasegate/policy"
)

// The lease.lookup span and the Check span it sits under name the lease
// outcome with the same words: a lease whose window has closed is a "miss"
// in both, not "expired" in one and "miss" in the other.
func TestLookupSpanAgreesWithCheckSpan(t *testing.T) {
	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	env := newEngEnv(t, engOpts{config: func(c *Config) { c.TracerProvider = tp }})
	env.iss.setAnswer("tok", env.active(nil))

	steps := []struct {
		name    string
		advance time.Duration
		want    LeaseOutcome
	}{
		{name: "first read validates", want: LeaseMiss},
		{name: "inside the read window", advance: time.Second, want: LeaseHit},
		{name: "window closed", advance: 2 * time.Minute, want: LeaseMiss},
	}
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			exp.Reset()
			env.clock.Advance(st.advance)
			// The caller's span stands in for the gRPC server span that
			// Engine.Check annotates.
			ctx, check := tp.Tracer("test").Start(context.Background(), "Check")
			d := env.eng.Check(ctx, &Request{Method: "GET", Path: "/atlas/f", Host: "storage.example.org", Headers: bearer("tok")})
			check.End()
			if !d.Allow || d.Lease != st.want {
				t.Fatalf("decision %+v, want an allow with lease %s", d, st.want)
			}
			got := map[string]string{}
			for _, s := range exp.GetSpans() {
				for _, a := range s.Attributes {
					if a.Key == "leasegate.lease" {
						got[s.Name] = a.Value.String()
					}
				}
			}
			if got["Check"] != string(st.want) || got["lease.lookup"] != string(st.want) {
				t.Fatalf("leasegate.lease by span = %v, want %s on Check and lease.lookup", got, st.want)
			}
		})
	}
}

// SPEC §6: the Check span's leasegate.lease names stale and negative
// answers too; the lookup span says what the lookup found (a closed
// window is a miss there, the stale allowance comes after the issuer
// failed).
func TestCheckSpanStaleAndNegative(t *testing.T) {
	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	tiers := policy.DefaultTiers()
	tiers[0].StaleIfError = 5 * time.Minute
	env := newEngEnv(t, engOpts{tiers: tiers, config: func(c *Config) { c.TracerProvider = tp }})
	env.iss.setAnswer("good", env.active(nil))
	env.iss.setAnswer("revoked", map[string]any{"active": false})
	check := func(tok string) (Decision, map[string]string) {
		exp.Reset()
		ctx, span := tp.Tracer("test").Start(context.Background(), "Check")
		d := env.eng.Check(ctx, &Request{Method: "GET", Path: "/atlas/f", Host: "storage.example.org", Headers: bearer(tok)})
		span.End()
		got := map[string]string{}
		for _, s := range exp.GetSpans() {
			for _, a := range s.Attributes {
				if a.Key == "leasegate.lease" {
					got[s.Name] = a.Value.String()
				}
			}
		}
		return d, got
	}
	check("revoked")
	if d, got := check("revoked"); d.Lease != LeaseNegative || got["Check"] != "negative" || got["lease.lookup"] != "negative" {
		t.Errorf("negative lease: decision lease %s, spans %v; want negative on both", d.Lease, got)
	}
	check("good")
	env.clock.Advance(2 * time.Minute)
	env.iss.setFault(func(w http.ResponseWriter, _ *http.Request) { http.Error(w, "down", http.StatusBadGateway) })
	if d, got := check("good"); !d.Allow || d.Lease != LeaseStale || got["Check"] != "stale" || got["lease.lookup"] != "miss" {
		t.Errorf("stale allowance: %+v, spans %v; want stale on Check, miss on lease.lookup", d, got)
	}
}
