package policy

import (
	"slices"
	"strings"
	"testing"
	"time"
)

func TestValidate(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
		want []ConfigProblem // Msg: a substring (the normalisers word their own)
	}{
		{
			name: "defaults are valid",
			cfg:  Config{Tiers: DefaultTiers(), LeaseMax: 10 * time.Minute},
		},
		{
			name: "tier durations against lease.max",
			cfg: Config{LeaseMax: time.Minute, Tiers: []TierConfig{
				{Name: "read", Window: 2 * time.Minute, StaleIfError: 3 * time.Minute},
				{Name: "critical", StaleIfError: time.Second},
				{Name: "odd", Window: -time.Second},
			}},
			want: []ConfigProblem{
				{"tiers.read.window", "2m0s exceeds lease.max 1m0s"},
				{"tiers.read.stale_if_error", "3m0s exceeds lease.max 1m0s"},
				{"tiers.critical.stale_if_error", "not allowed on a tier with window 0"},
				{"tiers.odd", "durations must not be negative"},
			},
		},
		{
			name: "methods",
			cfg: Config{LeaseMax: time.Minute, Tiers: []TierConfig{
				{Name: "a", Methods: []string{"GET", "GE T"}}, {Name: "critical", Methods: []string{"GET"}},
			}},
			want: []ConfigProblem{
				{"tiers.a.methods", `"GE T" is not an HTTP method token`},
				{"tiers.critical.methods", `method GET is also in tier "a"`},
			},
		},
		{
			name: "tier names",
			cfg:  Config{LeaseMax: time.Minute, DefaultTier: "a", Tiers: []TierConfig{{Name: ""}, {Name: "a"}, {Name: "a"}}},
			want: []ConfigProblem{{"tiers", "tier with an empty name"}, {"tiers.a", "tier defined twice"}},
		},
		{
			name: "default tier and lease max",
			cfg:  Config{DefaultTier: "platinum", Tiers: []TierConfig{{Name: "read"}}},
			want: []ConfigProblem{{"default_tier", `"platinum" is not a defined tier`}, {"lease_max", "must be positive"}},
		},
		{
			name: "empty default tier is critical",
			cfg:  Config{LeaseMax: time.Minute, Tiers: []TierConfig{{Name: "read"}}},
			want: []ConfigProblem{{"default_tier", `"critical" is not a defined tier`}},
		},
		{
			name: "routes",
			cfg: Config{LeaseMax: time.Minute, Tiers: DefaultTiers(), Routes: []RouteConfig{
				{Prefix: "/ok/"},
				{Prefix: "/my%20dir/", Host: "bad host", LocalHosts: []string{"ok.example", "a:1"},
					Tier: "gold", Window: dur(2 * time.Minute), Require: "x509", Methods: []string{""}},
			}},
			want: []ConfigProblem{
				{"routes[1].prefix", `prefix "/my%20dir/" must be written decoded`},
				{"routes[1].host", `"bad host": invalid host`},
				{"routes[1].local_hosts[1]", `local host "a:1" names a port`},
				{"routes[1].tier", `"gold" is not a defined tier`},
				{"routes[1].window", "2m0s is outside 0..lease.max"},
				{"routes[1].require", `"x509" is not wlcg_storage or scitokens`},
				{"routes[1].methods", `"" is not an HTTP method token`},
			},
		},
		{
			name: "conditional_create only with wlcg_storage",
			cfg: Config{LeaseMax: time.Minute, Tiers: DefaultTiers(), Routes: []RouteConfig{
				{Prefix: "/wlcg/", Require: ProfileWLCG, ConditionalCreate: true},
				{Prefix: "/sci/", Require: ProfileSciTokens, ConditionalCreate: true},
				{Prefix: "/none/", ConditionalCreate: true},
			}},
			want: []ConfigProblem{
				{"routes[1].conditional_create", "conditional_create needs require: wlcg_storage"},
				{"routes[2].conditional_create", "conditional_create needs require: wlcg_storage"},
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := tc.cfg.Validate()
			match := func(p, w ConfigProblem) bool { return p.Field == w.Field && strings.Contains(p.Msg, w.Msg) }
			if !slices.EqualFunc(got, tc.want, match) {
				t.Errorf("Validate() =\n%q\nwant\n%q", got, tc.want)
			}
		})
	}
}

// FuzzValidateCoversNew: New and Validate are two paths over one Config
// and must agree where they overlap: whatever New refuses, Validate
// refuses too, so a configuration Validate accepts always compiles.
func FuzzValidateCoversNew(f *testing.F) {
	f.Add("read", "GET", "critical", "/a/", "", "alias", "", "", int64(60), int64(0), int64(600), int64(-1))
	f.Add("", "GET", "nope", "b/", "bad host", "a:1", "gold", "x509", int64(-1), int64(5), int64(0), int64(-5))
	f.Add("critical", "DELETE", "", "/x/", "h.example", "", "read", "wlcg_storage", int64(0), int64(5), int64(10), int64(3))
	f.Fuzz(func(t *testing.T, name, method, def, prefix, host, local, tier, require string, window, stale, leaseMax, routeWindow int64) {
		rc := RouteConfig{Prefix: prefix, Host: host, Tier: tier, Require: StorageProfile(require), Methods: []string{method},
			ConditionalCreate: routeWindow%2 != 0}
		if local != "" {
			rc.LocalHosts = []string{local}
		}
		if routeWindow >= 0 {
			rc.Window = dur(time.Duration(routeWindow) * time.Second)
		}
		cfg := Config{
			Tiers: append(DefaultTiers(), TierConfig{Name: name, Methods: []string{method},
				Window: time.Duration(window) * time.Second, StaleIfError: time.Duration(stale) * time.Second}),
			DefaultTier: def,
			Routes:      []RouteConfig{rc},
			LeaseMax:    time.Duration(leaseMax) * time.Second,
		}
		_, err := New(cfg)
		if ps := cfg.Validate(); err != nil && len(ps) == 0 {
			t.Fatalf("New refused what Validate accepts: %v\nconfig %+v", err, cfg)
		}
	})
}
