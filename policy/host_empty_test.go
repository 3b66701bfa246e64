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

// TestClassifyPortlessHostKeepsStricterWindow: leaving the port out does
// not escape a host:port rule's stricter tier or window either.
func TestClassifyPortlessHostKeepsStricterWindow(t *testing.T) {
	p, err := New(Config{Tiers: DefaultTiers(), LeaseMax: 10 * time.Minute, Routes: []RouteConfig{
		{Prefix: "/admin/", Host: "storage.example.org:2880", Tier: TierCritical},
		{Prefix: "/door/", Host: "storage.example.org:2880", Window: dur(0)},
		{Prefix: "/mirror/", Host: "storage.example.org:2880", Tier: TierRead},
	}})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		path   string
		window time.Duration // with the port: the rule's; without: the stricter of it and the method's
		loose  time.Duration
	}{
		{"/admin/x", 0, 0},
		{"/door/x", 0, 0},
		{"/mirror/x", time.Minute, 5 * time.Second}, // a weaker rule does not loosen POST's write tier
	}
	for _, tc := range tests {
		full := classify(t, p, rawRequest{Method: "POST", Host: "storage.example.org:2880", Path: tc.path})
		loose := classify(t, p, rawRequest{Method: "POST", Host: "storage.example.org", Path: tc.path})
		if full.Window != tc.window || loose.Window != tc.loose {
			t.Errorf("%s: window %v with the port, %v without; want %v and %v", tc.path, full.Window, loose.Window, tc.window, tc.loose)
		}
	}
}

// TestClassifyAbsentHostNeverWeakerTier: a request that names no host
// meets every host rule loosely, so a weaker host rule's tier does not
// apply to it (a DELETE stays critical), and it agrees with a portless
// host on conditional_create (off: the operator vouched for one backend).
func TestClassifyAbsentHostNeverWeakerTier(t *testing.T) {
	p, err := New(Config{Tiers: DefaultTiers(), LeaseMax: 10 * time.Minute, Routes: []RouteConfig{
		{Prefix: "/", Host: "mirror.example.org", Tier: TierRead},
		{Prefix: "/door/", Host: "storage.example.org:2880", Require: ProfileWLCG, ConditionalCreate: true},
	}})
	if err != nil {
		t.Fatal(err)
	}
	other := classify(t, p, rawRequest{Method: "DELETE", Host: "storage.example.org", Path: "/f"})
	none := classify(t, p, rawRequest{Method: "DELETE", NoHost: true, Path: "/f"})
	if none.Window != 0 || none.Window > other.Window {
		t.Errorf("a DELETE naming no host is leased %v (%s), one naming another host %v", none.Window, none.Tier.Name, other.Window)
	}
	portless := classify(t, p, rawRequest{Method: "PUT", Host: "storage.example.org", Path: "/door/f"})
	absent := classify(t, p, rawRequest{Method: "PUT", NoHost: true, Path: "/door/f"})
	if portless.ConditionalCreate || absent.ConditionalCreate || portless.Require == 0 || absent.Require == 0 {
		t.Errorf("conditional create: portless %v, absent %v (require %v, %v); want off, with the require", portless.ConditionalCreate, absent.ConditionalCreate, portless.Require, absent.Require)
	}
}
