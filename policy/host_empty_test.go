package policy

import (
	"testing"
	"time"
)

// A request that names no host must not escape a host: route (found by review).
func TestClassifyNoHostKeepsHostRoutes(t *testing.T) {
	p, err := New(Config{Tiers: DefaultTiers(), LeaseMax: 10 * time.Minute, Routes: []RouteConfig{
		{Prefix: "/admin/", Host: "storage.example.org", Tier: TierCritical, Require: ProfileWLCG},
	}})
	if err != nil {
		t.Fatal(err)
	}
	for _, h := range []string{"storage.example.org", "STORAGE.example.org.:443", ""} {
		r, err := Normalize("GET", h, "/admin/x")
		if err != nil {
			t.Fatalf("%q: %v", h, err)
		}
		m := p.Classify(r, "")
		t.Logf("host %-28q -> tier %s window %v require %v", h, m.Tier.Name, m.Window, m.Require)
		if m.Tier.Name != TierCritical || m.Require == 0 {
			t.Errorf("host %q selects a weaker route: tier %s, require %v", h, m.Tier.Name, m.Require)
		}
	}
}

// TestClassifyPortlessHostMeetsPortRules: a request host without a port
// could be for the port a rule names (a client may leave a non-default
// port out, and nginx's $host never has one), so the rule's require,
// lifetime and local hosts apply; but it could as well be for the default
// port, so the rule gives no tier or window and does not make creates
// conditional. Another explicit port meets nothing.
func TestClassifyPortlessHostMeetsPortRules(t *testing.T) {
	p, err := New(Config{Tiers: DefaultTiers(), LeaseMax: 10 * time.Minute, Routes: []RouteConfig{
		{Prefix: "/door/", Host: "storage.example.org:2880", Require: ProfileWLCG, ConditionalCreate: true,
			Tier: TierRead, Window: dur(30 * time.Second), MaxTokenLifetime: time.Hour, LocalHosts: []string{"door.internal"}},
	}})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		host                string
		require, cond       bool
		tier                string
		window, lifetimeMax time.Duration
		local               bool
	}{
		{host: "storage.example.org:2880", require: true, cond: true, tier: TierRead, window: 30 * time.Second, lifetimeMax: time.Hour, local: true},
		{host: "Storage.Example.Org.:02880", require: true, cond: true, tier: TierRead, window: 30 * time.Second, lifetimeMax: time.Hour, local: true},
		// No port: the require, the lifetime and the local hosts, but the
		// method's tier (PUT: write) and no conditional create.
		{host: "storage.example.org", require: true, tier: TierWrite, window: 5 * time.Second, lifetimeMax: time.Hour, local: true},
		{host: "storage.example.org:443", require: true, tier: TierWrite, window: 5 * time.Second, lifetimeMax: time.Hour, local: true},
		{host: "storage.example.org:2881", tier: TierWrite, window: 5 * time.Second},
		{host: "other.example.org", tier: TierWrite, window: 5 * time.Second},
	}
	for _, tc := range tests {
		t.Run(tc.host, func(t *testing.T) {
			m := classify(t, p, rawRequest{Method: "PUT", Host: tc.host, Path: "/door/f"})
			if (m.Require != 0) != tc.require || m.ConditionalCreate != tc.cond {
				t.Errorf("require %v, conditional create %v; want a require %v, conditional %v", m.Require, m.ConditionalCreate, tc.require, tc.cond)
			}
			if m.Tier.Name != tc.tier || m.Window != tc.window {
				t.Errorf("tier %s window %v, want %s %v", m.Tier.Name, m.Window, tc.tier, tc.window)
			}
			if m.Lifetime.Limit.Max != tc.lifetimeMax || (len(m.LocalHosts) > 0) != tc.local {
				t.Errorf("lifetime %v, local hosts %v; want %v, some %v", m.Lifetime.Limit, m.LocalHosts, tc.lifetimeMax, tc.local)
			}
		})
	}
}
