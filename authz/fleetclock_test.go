package authz_test

import (
	"context"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/leasegate/leasegate/authz"
	"github.com/leasegate/leasegate/authz/fleetmode"
	"github.com/leasegate/leasegate/authz/issuer"
	"github.com/leasegate/leasegate/leasecache"
	"github.com/leasegate/leasegate/leasecache/fleet"
	"github.com/leasegate/leasegate/policy"
)

// slowStore is a SharedStore whose every lookup takes delay and finds
// lease: the fleet's answer to a local miss, a round trip late.
type slowStore struct {
	fleetmode.SharedStore // only what the test reaches is implemented
	delay                 time.Duration
	lease                 func() leasecache.Lease
}

func (s *slowStore) KeyOf(k leasecache.Key) leasecache.Key { return k }
func (s *slowStore) Up() bool                              { return true }
func (s *slowStore) Position() fleet.Position              { return fleet.Position{} }
func (s *slowStore) Lookup(ctx context.Context, _ leasecache.Key) (leasecache.Lease, fleet.Outcome, error) {
	l := s.lease() // as the store held it when asked
	select {
	case <-time.After(s.delay):
	case <-ctx.Done():
		return leasecache.Lease{}, fleet.Unavailable, ctx.Err()
	}
	return l, fleet.Hit, nil
}

// TestFleetHitLifetimeAfterTheLookup: with real clocks (no Config.Now, a
// lease cache on time.Now), a hit the fleet's store answered is judged by
// the lifetime policy at the time the answer came, not when Check began:
// a token that crosses its limit during the store's round trip is refused.
func TestFleetHitLifetimeAfterTheLookup(t *testing.T) {
	const limit, delay = 2 * time.Second, 600 * time.Millisecond
	pol, err := policy.New(policy.Config{Tiers: policy.DefaultTiers(), LeaseMax: 10 * time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	cache, err := leasecache.New(leasecache.Config{MaxMemoryMB: 8, MaxAge: 10 * time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cache.Close() })
	store := &slowStore{delay: delay, lease: func() leasecache.Lease {
		now := time.Now()
		// Over its limit 300 ms into the lookup.
		return leasecache.Lease{ValidatedAt: now, Expiry: now.Add(time.Hour), IssuedAt: now.Add(-limit + delay/2),
			Subject: "alice", Scope: "storage.read:/", Issuer: "idp"}
	}}
	eng, err := authz.New(context.Background(), authz.Config{
		Realm: "leasegate", Policy: pol, Cache: cache,
		Issuers: []authz.IssuerConfig{{
			Name: "idp", Issuer: "https://idp.example", Mode: authz.ModeIntrospection, DefaultForOpaque: true,
			MaxTokenLifetime: limit,
			// Never called: the store answers every lookup.
			Introspection:   issuer.IntrospectionConfig{Endpoint: "http://127.0.0.1:1/introspect", Auth: issuer.AuthNone, Timeout: time.Second},
			BreakerFailures: 1000, BreakerOpenFor: time.Second,
		}},
		Fleet:  &fleetmode.Config{Store: store, NegativeTTL: time.Second, LeaseMax: 10 * time.Minute},
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(eng.Close)
	h := headerMap{"authorization": "Bearer fleet-clock-token"}
	d := eng.Check(context.Background(), &authz.Request{Method: "GET", Host: "s.example", Path: "/f", Headers: h})
	if d.Allow || d.Reason != authz.ReasonLifetime {
		t.Fatalf("a token %v past its lifetime limit when the store answered: allow=%v reason=%s lease=%s (%s)", delay/2, d.Allow, d.Reason, d.Lease, d.Description)
	}
}

// headerMap is authz.Headers with one field per name.
type headerMap map[string]string

func (h headerMap) Get(name string) (string, int) {
	v, ok := h[name]
	if !ok {
		return "", 0
	}
	return v, 1
}

func (h headerMap) UnderscoreName(match func(string) bool) string {
	for k := range h {
		if strings.IndexByte(k, '_') >= 0 && match(k) {
			return k
		}
	}
	return ""
}
