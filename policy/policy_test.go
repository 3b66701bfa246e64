package policy

import (
	"strings"
	"testing"
	"time"
)

func dur(d time.Duration) *time.Duration { return &d }

// rawRequest is a request as a proxy reports it, before Normalize.
type rawRequest struct {
	Method, Host, Path, TierHint string
	NoHost                       bool // send Host as given, even empty
}

// classify normalises r and classifies it, as the engine does.
func classify(t testing.TB, p *Policy, r rawRequest) Match {
	t.Helper()
	if r.Host == "" && !r.NoHost {
		// A host-less request meets every host rule; the tables mean a
		// host that names none of them.
		r.Host = "client.example.net"
	}
	nr, err := Normalize(r.Method, r.Host, r.Path)
	if err != nil {
		t.Fatalf("Normalize(%q, %q, %q): %v", r.Method, r.Host, r.Path, err)
	}
	return p.Classify(nr, r.TierHint)
}

func testPolicy(t *testing.T) *Policy {
	t.Helper()
	p, err := New(Config{
		Tiers:       DefaultTiers(),
		DefaultTier: TierCritical,
		LeaseMax:    10 * time.Minute,
		Routes: []RouteConfig{
			{Prefix: "/admin/", Tier: TierCritical},
			{Prefix: "/search", Methods: []string{"POST"}, Tier: TierRead},
			{Prefix: "/slow/", Window: dur(20 * time.Second)},
			{Prefix: "/vo/", Host: "storage.example.org", Tier: TierWrite},
		},
	})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return p
}

func TestClassify(t *testing.T) {
	p := testPolicy(t)
	tests := []struct {
		name       string
		req        rawRequest
		wantTier   string
		wantWindow time.Duration
		wantRoute  string
	}{
		{name: "GET is read", req: rawRequest{Method: "GET", Path: "/x"}, wantTier: TierRead, wantWindow: time.Minute},
		{name: "PROPFIND is read", req: rawRequest{Method: "PROPFIND", Path: "/x"}, wantTier: TierRead, wantWindow: time.Minute},
		{name: "MKCOL is write", req: rawRequest{Method: "MKCOL", Path: "/x"}, wantTier: TierWrite, wantWindow: 5 * time.Second},
		{name: "DELETE is critical", req: rawRequest{Method: "DELETE", Path: "/x"}, wantTier: TierCritical, wantWindow: 0},
		{name: "unknown method falls to default", req: rawRequest{Method: "BREW", Path: "/x"}, wantTier: TierCritical},
		{name: "method is case-sensitive", req: rawRequest{Method: "get", Path: "/x"}, wantTier: TierCritical},
		{name: "route beats method", req: rawRequest{Method: "GET", Path: "/admin/users"}, wantTier: TierCritical, wantRoute: "/admin/"},
		{name: "route with method", req: rawRequest{Method: "POST", Path: "/search?q=1"}, wantTier: TierRead, wantWindow: time.Minute, wantRoute: "/search"},
		{name: "route method mismatch", req: rawRequest{Method: "PUT", Path: "/search"}, wantTier: TierWrite, wantWindow: 5 * time.Second},
		{name: "context beats route", req: rawRequest{Method: "GET", Path: "/admin/x", TierHint: TierRead}, wantTier: TierRead, wantWindow: time.Minute, wantRoute: "/admin/"},
		{name: "context beats method", req: rawRequest{Method: "GET", Path: "/x", TierHint: TierCritical}, wantTier: TierCritical},
		{name: "route window caps tier", req: rawRequest{Method: "GET", Path: "/slow/f"}, wantTier: TierRead, wantWindow: 20 * time.Second, wantRoute: "/slow/"},
		{name: "route window never raises", req: rawRequest{Method: "PUT", Path: "/slow/f"}, wantTier: TierWrite, wantWindow: 5 * time.Second, wantRoute: "/slow/"},
		{name: "dot segments cannot dodge a route", req: rawRequest{Method: "GET", Path: "/data/../admin/x"}, wantTier: TierCritical, wantRoute: "/admin/"},
		{name: "encoded dots cannot dodge a route", req: rawRequest{Method: "GET", Path: "/data/%2e%2e/admin/x"}, wantTier: TierCritical, wantRoute: "/admin/"},
		{name: "double slash cannot dodge a route", req: rawRequest{Method: "GET", Path: "//admin//x"}, wantTier: TierCritical, wantRoute: "/admin/"},
		{name: "prefix without trailing slash", req: rawRequest{Method: "GET", Path: "/admin"}, wantTier: TierCritical, wantRoute: "/admin/"},
		{name: "sibling prefix not matched", req: rawRequest{Method: "GET", Path: "/administrator"}, wantTier: TierRead, wantWindow: time.Minute},
		{name: "host route matches host", req: rawRequest{Method: "GET", Host: "Storage.Example.org:8443", Path: "/vo/f"}, wantTier: TierWrite, wantWindow: 5 * time.Second, wantRoute: "/vo/"},
		{name: "host route skips other host", req: rawRequest{Method: "GET", Host: "other.example.org", Path: "/vo/f"}, wantTier: TierRead, wantWindow: time.Minute},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m := classify(t, p, tc.req)
			if m.Tier.Name != tc.wantTier {
				t.Errorf("tier = %s, want %s", m.Tier.Name, tc.wantTier)
			}
			if m.Window != tc.wantWindow {
				t.Errorf("window = %v, want %v", m.Window, tc.wantWindow)
			}
			gotRoute := ""
			if m.Route != nil {
				gotRoute = m.Route.Prefix
			}
			if gotRoute != tc.wantRoute {
				t.Errorf("route = %q, want %q", gotRoute, tc.wantRoute)
			}
		})
	}
}

func TestClassifyUnknownHintIsStrictest(t *testing.T) {
	p := testPolicy(t)
	m := classify(t, p, rawRequest{Method: "GET", Path: "/x", TierHint: "critcal"})
	if !m.HintUnknown || m.Tier.Name != TierCritical || m.Window != 0 {
		t.Fatalf("got tier %s window %v unknown=%v, want critical 0 true", m.Tier.Name, m.Window, m.HintUnknown)
	}
}

func TestLeaseMaxCapsWindows(t *testing.T) {
	tiers := DefaultTiers()
	tiers[0].Window = time.Hour
	tiers[0].StaleIfError = 2 * time.Hour
	p, err := New(Config{Tiers: tiers, LeaseMax: 2 * time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	m := classify(t, p, rawRequest{Method: "GET", Path: "/"})
	if m.Window != 2*time.Minute {
		t.Fatalf("window = %v, want capped 2m", m.Window)
	}
	b := p.RevocationBound()
	if b.Window != 2*time.Minute || b.WithStale != 2*time.Minute {
		t.Fatalf("bound = %+v, want both 2m", b)
	}
}

func TestRevocationBound(t *testing.T) {
	tiers := DefaultTiers()
	tiers[0].StaleIfError = 5 * time.Minute
	p, err := New(Config{Tiers: tiers, LeaseMax: 10 * time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	b := p.RevocationBound()
	if b.Window != time.Minute {
		t.Errorf("Window = %v, want 1m (largest tier window)", b.Window)
	}
	if b.WithStale != 5*time.Minute {
		t.Errorf("WithStale = %v, want 5m", b.WithStale)
	}
}

func TestNewRejects(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
		want []string
	}{
		{
			name: "method in two tiers",
			cfg: Config{LeaseMax: time.Minute, Tiers: []TierConfig{
				{Name: "a", Methods: []string{"GET"}}, {Name: "b", Methods: []string{"GET"}}, {Name: "critical"},
			}},
			want: []string{`method GET is in tiers "a" and "b"`},
		},
		{
			name: "stale on window zero",
			cfg:  Config{LeaseMax: time.Minute, Tiers: []TierConfig{{Name: "critical", StaleIfError: time.Second}}},
			want: []string{"stale_if_error is not allowed on a window-0 tier"},
		},
		{
			name: "unknown route tier and default",
			cfg: Config{LeaseMax: time.Minute, DefaultTier: "nope", Tiers: DefaultTiers(),
				Routes: []RouteConfig{{Prefix: "/a/", Tier: "gold"}, {Prefix: "b/"}}},
			want: []string{`default_tier "nope"`, `tier "gold" is not a defined tier`, `prefix "b/" must start with /`},
		},
		{
			name: "no lease max",
			cfg:  Config{Tiers: DefaultTiers()},
			want: []string{"lease.max must be positive"},
		},
		{
			name: "conditional_create without wlcg_storage",
			cfg:  Config{LeaseMax: time.Minute, Tiers: DefaultTiers(), Routes: []RouteConfig{{Prefix: "/a/", Require: ProfileSciTokens, ConditionalCreate: true}}},
			want: []string{"route 0 (/a/): conditional_create needs require: wlcg_storage"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := New(tc.cfg)
			if err == nil {
				t.Fatal("New succeeded, want error")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
		})
	}
}

// TestClassifyConditionalCreate: the first matching storage route (the
// most specific area, which names the backend) says whether creates are
// conditional, so a narrower route onto a backend that ignores
// If-None-Match keeps the strict create rule and a catch-all after it
// does not take it away; a tier-only route has no say.
func TestClassifyConditionalCreate(t *testing.T) {
	p, err := New(Config{Tiers: DefaultTiers(), LeaseMax: time.Minute, Routes: []RouteConfig{
		{Prefix: "/dcache/xrootd-pool/", Require: ProfileWLCG},
		{Prefix: "/dcache/slow/", Tier: TierCritical},
		{Prefix: "/dcache/", Require: ProfileWLCG, ConditionalCreate: true},
		{Prefix: "/xrootd/", Require: ProfileWLCG},
		{Prefix: "/mixed/", Require: ProfileSciTokens},
		{Prefix: "/mixed/", Require: ProfileWLCG, ConditionalCreate: true},
		{Prefix: "/", Require: ProfileWLCG},
	}})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		path string
		want bool
	}{
		{"/dcache/atlas/f", true},
		{"/dcache/slow/f", true}, // the tier-only route does not veto
		{"/dcache/xrootd-pool/f", false},
		{"/xrootd/atlas/f", false},
		{"/public/f", false}, // the catch-all says no
		{"/mixed/f", false},  // the SciTokens route says nothing for its backend
	}
	for _, tc := range tests {
		t.Run(tc.path, func(t *testing.T) {
			if got := classify(t, p, rawRequest{Method: "PUT", Path: tc.path}).ConditionalCreate; got != tc.want {
				t.Errorf("ConditionalCreate = %v, want %v", got, tc.want)
			}
		})
	}
	t.Run("a local target's storage route vetoes", func(t *testing.T) {
		m := classify(t, p, rawRequest{Method: "PUT", Path: "/dcache/atlas/f"})
		dst, err := ParseTarget("/xrootd/atlas/f")
		if err != nil {
			t.Fatal(err)
		}
		p.AddTargets(&m, dst, Target{}, nil)
		if m.ConditionalCreate {
			t.Error("ConditionalCreate survived a Destination under a route without it")
		}
	})
}

func BenchmarkClassify(b *testing.B) {
	p, err := New(Config{Tiers: DefaultTiers(), LeaseMax: 10 * time.Minute,
		Routes: []RouteConfig{{Prefix: "/admin/", Tier: TierCritical}, {Prefix: "/data/", Require: ProfileWLCG}}})
	if err != nil {
		b.Fatal(err)
	}
	method, host, target := "GET", "storage.example.org", "/data/atlas/file.root"
	b.ReportAllocs()
	for b.Loop() {
		r, err := Normalize(method, host, target)
		if err != nil {
			b.Fatal(err)
		}
		_ = p.Classify(r, "")
	}
}

// BenchmarkNormalize: a clean request's host and target, as most arrive:
// a short path, and a grid storage path with a port and a query.
func BenchmarkNormalize(b *testing.B) {
	for _, tc := range []struct{ name, host, target string }{
		{"short", "storage.example", "/data/file.root?x=1"},
		{"grid", "xrootd.storage.example.org:1094", "/atlas/rucio/mc23_13p6TeV/ab/cd/EVNT.36512874._000123.pool.root.1?xrd.wantprot=unix"},
	} {
		b.Run(tc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := Normalize("GET", tc.host, tc.target); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
