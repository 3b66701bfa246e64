package policy

import (
	"strings"
	"testing"
	"time"
)

// TestClassifyLifetime: a request's limit is the global one held to every
// matching route's, not only the first route's (SPEC §1: "every matching
// route's require: (and lifetime limit) applies"), and a local
// Destination's routes add theirs.
func TestClassifyLifetime(t *testing.T) {
	p, err := New(Config{
		Tiers:            DefaultTiers(),
		LeaseMax:         10 * time.Minute,
		MaxTokenLifetime: 2 * time.Hour,
		RefuseLongLived:  true,
		Routes: []RouteConfig{
			{Prefix: "/data/atlas/", Tier: TierRead},               // first match, no limit of its own
			{Prefix: "/data/", MaxTokenLifetime: 30 * time.Minute}, // stricter, matches too
			{Prefix: "/loose/", MaxTokenLifetime: 24 * time.Hour},  // looser than global: global wins
			{Prefix: "/vo/", Host: "storage.example.org", MaxTokenLifetime: time.Minute},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		req  rawRequest
		dest string
		want string
	}{
		{name: "no route", req: rawRequest{Method: "GET", Path: "/other/f"}, want: "global: 2h"},
		{name: "a later matching route tightens", req: rawRequest{Method: "GET", Path: "/data/atlas/f"}, want: "route /data/: 30m"},
		{name: "route", req: rawRequest{Method: "PUT", Path: "/data/f"}, want: "route /data/: 30m"},
		{name: "a looser route does not loosen", req: rawRequest{Method: "GET", Path: "/loose/f"}, want: "global: 2h"},
		{name: "host route on its host", req: rawRequest{Method: "GET", Host: "Storage.Example.Org.", Path: "/vo/f"}, want: "route /vo/ on storage.example.org: 1m"},
		{name: "host route elsewhere", req: rawRequest{Method: "GET", Host: "other.example.org", Path: "/vo/f"}, want: "global: 2h"},
		{name: "MOVE into a stricter route", req: rawRequest{Method: "MOVE", Path: "/other/f"}, dest: "/data/g", want: "route /data/: 30m"},
		{name: "MOVE to another server", req: rawRequest{Method: "MOVE", Path: "/other/f"}, dest: "https://elsewhere.example.net/data/g", want: "global: 2h"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m := classify(t, p, tc.req)
			if tc.dest != "" {
				dt, err := ParseTarget(tc.dest)
				if err != nil {
					t.Fatal(err)
				}
				p.AddTargets(&m, dt, Target{}, nil)
			}
			if got := m.Lifetime.Limit.String(); got != tc.want {
				t.Errorf("limit %s, want %s", got, tc.want)
			}
			if !m.Lifetime.RefuseLongLived {
				t.Errorf("refuse_long_lived lost")
			}
		})
	}
	routes := p.RouteLifetimes()
	var got []string
	for _, l := range routes {
		got = append(got, l.String())
	}
	if want := "global: 2h,route /data/: 30m,global: 2h,route /vo/ on storage.example.org: 1m"; strings.Join(got, ",") != want {
		t.Errorf("RouteLifetimes = %v, want %s", got, want)
	}
}

func TestValidateLifetime(t *testing.T) {
	base := func() Config {
		return Config{Tiers: DefaultTiers(), LeaseMax: 10 * time.Minute, Routes: []RouteConfig{{Prefix: "/data/"}}}
	}
	tests := []struct {
		name   string
		mod    func(*Config)
		fields []string
	}{
		{"off", func(*Config) {}, nil},
		{"set", func(c *Config) { c.MaxTokenLifetime, c.Routes[0].MaxTokenLifetime = 12*time.Hour, time.Hour }, nil},
		{"one second", func(c *Config) { c.MaxTokenLifetime = time.Second }, nil},
		{"negative global", func(c *Config) { c.MaxTokenLifetime = -time.Second }, []string{"max_token_lifetime"}},
		{"sub-second global", func(c *Config) { c.MaxTokenLifetime = 500 * time.Millisecond }, []string{"max_token_lifetime"}},
		{"negative route", func(c *Config) { c.Routes[0].MaxTokenLifetime = -time.Hour }, []string{"routes[0].max_token_lifetime"}},
		{"sub-second route", func(c *Config) { c.Routes[0].MaxTokenLifetime = time.Millisecond }, []string{"routes[0].max_token_lifetime"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := base()
			tc.mod(&c)
			var got []string
			for _, p := range c.Validate() {
				got = append(got, p.Field)
			}
			if strings.Join(got, " ") != strings.Join(tc.fields, " ") {
				t.Fatalf("problems %v, want %v", c.Validate(), tc.fields)
			}
			// New refuses no more than Validate: only the negative ones.
			if _, err := New(c); (err != nil) != (len(tc.fields) > 0 && strings.HasPrefix(tc.name, "negative")) {
				t.Errorf("New: %v", err)
			}
		})
	}
}
