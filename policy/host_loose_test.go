package policy

import (
	"testing"
	"time"
)

// TestLooseRouteWithoutTierKeepsMethodTier: a host:port rule that sets no
// tier, matched first, gives the request the method's tier (Classify's
// precedence: the first matching route's tier, else the method table), so
// a later weaker rule's tier does not apply to it. Met loosely (the port
// left out), it still keeps the method's tier: a DELETE is not leased 60s
// without the port where it is validated fresh with it.
func TestLooseRouteWithoutTierKeepsMethodTier(t *testing.T) {
	p, err := New(Config{Tiers: DefaultTiers(), LeaseMax: 10 * time.Minute, Routes: []RouteConfig{
		{Prefix: "/data/", Host: "storage.example.org:2880", Require: ProfileWLCG},
		{Prefix: "/data/", Host: "storage.example.org", Tier: TierRead},
	}})
	if err != nil {
		t.Fatal(err)
	}
	full := classify(t, p, rawRequest{Method: "DELETE", Host: "storage.example.org:2880", Path: "/data/f"})
	for _, h := range []string{"storage.example.org", "Storage.Example.Org.", "storage.example.org:443", "storage.example.org:80"} {
		loose := classify(t, p, rawRequest{Method: "DELETE", Host: h, Path: "/data/f"})
		if loose.Window > full.Window || loose.StaleIfError > full.StaleIfError {
			t.Errorf("DELETE Host %q: tier %s window %v stale %v; with the port %s %v %v",
				h, loose.Tier.Name, loose.Window, loose.StaleIfError, full.Tier.Name, full.Window, full.StaleIfError)
		}
	}
}

// TestAbsentHostNoTierHostRuleKeepsMethodTier: a request naming no host
// meets a host rule without a tier loosely, and that rule, first, still
// keeps the method's tier (DELETE: critical, window 0) against a later
// host-less rule's weaker one, as for the host the rule names.
func TestAbsentHostNoTierHostRuleKeepsMethodTier(t *testing.T) {
	p, err := New(Config{Tiers: DefaultTiers(), LeaseMax: 10 * time.Minute, Routes: []RouteConfig{
		{Prefix: "/data/", Host: "storage.example.org", Require: ProfileWLCG},
		{Prefix: "/data/", Tier: TierRead},
	}})
	if err != nil {
		t.Fatal(err)
	}
	named := classify(t, p, rawRequest{Method: "DELETE", Host: "storage.example.org", Path: "/data/f"})
	none := classify(t, p, rawRequest{Method: "DELETE", NoHost: true, Path: "/data/f"})
	if named.Window != 0 {
		t.Fatalf("named host: window %v, want 0", named.Window)
	}
	if none.Window > named.Window {
		t.Errorf("a DELETE naming no host: tier %s window %v; naming storage.example.org: %s %v",
			none.Tier.Name, none.Window, named.Tier.Name, named.Window)
	}
}

// TestAddTargetsKeepsLooseTightening: a local target's loose matches hold
// the request as they hold the target path alone: a MOVE whose Destination
// lies under a critical host:port rule is critical with the port, without
// it and with no host at all.
func TestAddTargetsKeepsLooseTightening(t *testing.T) {
	p := targetPolicy(t) // /vo/ on storage.example.org:8443 is critical
	for _, tc := range []struct {
		name string
		req  rawRequest
	}{
		{"with the port", rawRequest{Method: "MOVE", Host: "storage.example.org:8443", Path: "/public/x"}},
		{"portless", rawRequest{Method: "MOVE", Host: "storage.example.org", Path: "/public/x"}},
		{"no host", rawRequest{Method: "MOVE", NoHost: true, Path: "/public/x"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// The same request aimed at the target path directly.
			direct := tc.req
			direct.Path = "/vo/f"
			d := classify(t, p, direct)
			m := classify(t, p, tc.req)
			p.AddTargets(&m, mustTarget(t, "/vo/f"), Target{}, targetIssuerHosts)
			if m.Window > d.Window || m.StaleIfError > d.StaleIfError {
				t.Errorf("MOVE with Destination /vo/f: tier %s window %v stale %v; MOVE of /vo/f itself: %s %v %v",
					m.Tier.Name, m.Window, m.StaleIfError, d.Tier.Name, d.Window, d.StaleIfError)
			}
		})
	}
}
