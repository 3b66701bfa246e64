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
