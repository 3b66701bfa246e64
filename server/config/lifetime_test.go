package config

import (
	"encoding/json"
	"path/filepath"
	"testing"
	"time"

	"github.com/leasegate/leasegate/policy"
)

// TestLifetimeMapping: each max_token_lifetime reaches its owner (policy
// for the global and the route ones, the issuer's config for the issuer's),
// defaults leave them alone, and GET /config's view shows every issuer's
// and route's effective limit with its source.
func TestLifetimeMapping(t *testing.T) {
	cfg, err := parseFile(t, filepath.Join("check", "ok_lifetime.yaml"), nil)
	if err != nil {
		t.Fatal(err)
	}
	pc := cfg.PolicyConfig()
	if pc.MaxTokenLifetime != 12*time.Hour || !pc.RefuseLongLived || pc.Routes[0].MaxTokenLifetime != 30*time.Minute || pc.Routes[2].MaxTokenLifetime != 0 {
		t.Errorf("policy config: global %v, refuse %v, routes %+v", pc.MaxTokenLifetime, pc.RefuseLongLived, pc.Routes)
	}
	is := cfg.AuthzIssuers()
	if is[0].MaxTokenLifetime != time.Hour || is[1].MaxTokenLifetime != 0 {
		t.Errorf("issuers: %v, %v", is[0].MaxTokenLifetime, is[1].MaxTokenLifetime)
	}
	if cfg.Lease.Max != 10*time.Minute || cfg.Lease.MaxTokenLifetime != 12*time.Hour {
		t.Errorf("lease after defaults: %+v", cfg.Lease)
	}
	p, err := policy.New(pc)
	if err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(cfg.LifetimeView(p))
	if err != nil {
		t.Fatal(err)
	}
	var v struct {
		Global struct {
			Max     string  `json:"max_token_lifetime"`
			Seconds float64 `json:"max_token_lifetime_seconds"`
		} `json:"global"`
		Refuse  bool `json:"refuse_long_lived"`
		Issuers []struct {
			Name, Source string
			Max          string `json:"max_token_lifetime"`
		} `json:"issuers"`
		Routes []struct {
			Prefix, Source string
			Max            string `json:"max_token_lifetime"`
		} `json:"routes"`
	}
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatal(err)
	}
	if v.Global.Max != "12h" || v.Global.Seconds != 43200 || !v.Refuse {
		t.Errorf("global: %+v, refuse %v", v.Global, v.Refuse)
	}
	want := []string{"hydra 1h issuer hydra", "keycloak 12h global"}
	for i, w := range want {
		if got := v.Issuers[i].Name + " " + v.Issuers[i].Max + " " + v.Issuers[i].Source; got != w {
			t.Errorf("issuers[%d] = %q, want %q", i, got, w)
		}
	}
	want = []string{"/data/ 30m route /data/", "/archive/ 12h global", "/admin/ 12h global"}
	for i, w := range want {
		if got := v.Routes[i].Prefix + " " + v.Routes[i].Max + " " + v.Routes[i].Source; got != w {
			t.Errorf("routes[%d] = %q, want %q", i, got, w)
		}
	}
}

// TestLifetimeViewUnset: without a policy every limit reads none.
func TestLifetimeViewUnset(t *testing.T) {
	cfg, err := parseFile(t, filepath.Join("check", "ok_introspection.yaml"), checkEnv)
	if err != nil {
		t.Fatal(err)
	}
	p, err := policy.New(cfg.PolicyConfig())
	if err != nil {
		t.Fatal(err)
	}
	v := cfg.LifetimeView(p)
	if g := v["global"].(map[string]any); g["max_token_lifetime"] != "none" || len(g) != 1 {
		t.Errorf("global = %v", g)
	}
	if is := v["issuers"].([]map[string]any); len(is) != 1 || is[0]["max_token_lifetime"] != "none" || is[0]["name"] != "idp" {
		t.Errorf("issuers = %v", is)
	}
	if s := cfg.lifetimeSummary(p); s != "" {
		t.Errorf("summary part = %q, want none", s)
	}
}
