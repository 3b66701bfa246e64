package policy

import (
	"slices"
	"testing"
	"time"
)

// targetIssuerHosts are the issuer local_hosts the target tests pass.
var targetIssuerHosts = []string{"webdav.example.org"}

// targetPolicy has a route of every kind a Destination or Source can land
// in: scopes required (/atlas/, /data/ with local_hosts, /sci/, /both/),
// critical (/admin/, /atlas/upload/), a shorter tier with a longer
// stale_if_error (/bulk/), window caps (/both/x/, /slow/) and host rules
// (/vo/, /alias/, [2001:db8::1]).
func targetPolicy(t testing.TB) *Policy {
	t.Helper()
	tiers := DefaultTiers()
	tiers[0].StaleIfError = time.Minute
	tiers[1].StaleIfError = 30 * time.Second
	tiers = append(tiers, TierConfig{Name: "bulk", Window: 2 * time.Second, StaleIfError: 5 * time.Minute})
	p, err := New(Config{
		Tiers:    tiers,
		LeaseMax: 10 * time.Minute,
		Routes: []RouteConfig{
			{Prefix: "/atlas/upload/", Tier: TierCritical},
			{Prefix: "/atlas/", Require: ProfileWLCG},
			{Prefix: "/data/", Require: ProfileWLCG, LocalHosts: []string{"dav.example.org"}},
			{Prefix: "/sci/", Require: ProfileSciTokens},
			{Prefix: "/both/x/", Require: ProfileSciTokens, Window: dur(2 * time.Second)},
			{Prefix: "/both/", Require: ProfileWLCG},
			{Prefix: "/vo/", Host: "storage.example.org:8443", Tier: TierCritical},
			{Prefix: "/vo/", Host: "storage.example.org", Require: ProfileWLCG},
			{Prefix: "/alias/", Host: "webdav.example.org", Require: ProfileSciTokens},
			{Prefix: "/search", Methods: []string{"POST"}, Tier: TierRead},
			{Prefix: "/slow/", Window: dur(20 * time.Second)},
			{Prefix: "/bulk/", Tier: "bulk"},
			{Prefix: "/admin/", Tier: TierCritical},
			{Prefix: "/", Host: "[2001:db8::1]", Require: ProfileSciTokens},
		},
	})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return p
}

func mustTarget(t testing.TB, v string) Target {
	t.Helper()
	if v == "" {
		return Target{}
	}
	tg, err := ParseTarget(v)
	if err != nil {
		t.Fatalf("ParseTarget(%q): %v", v, err)
	}
	return tg
}

// TestAddTargets: a Destination or Source on this server brings its routes'
// require:, local_hosts and tier or window; one on another server nothing.
func TestAddTargets(t *testing.T) {
	p := targetPolicy(t)
	wlcg, sci := requireWLCG, requireSciTokens
	tests := []struct {
		name        string
		req         rawRequest
		dest, src   string
		issuerHosts []string // nil means targetIssuerHosts
		wantRequire Requirements
		wantTier    string
		wantWindow  time.Duration
		wantStale   time.Duration
		wantLocal   string // a host m.LocalHosts must list
	}{
		{name: "no target", req: rawRequest{Method: "MOVE", Path: "/public/x"}, wantTier: TierWrite, wantWindow: 5 * time.Second, wantStale: 30 * time.Second},
		{name: "public target", req: rawRequest{Method: "MOVE", Path: "/public/x"}, dest: "/public/y", wantTier: TierWrite, wantWindow: 5 * time.Second, wantStale: 30 * time.Second},
		{name: "issue: MOVE into /data/", req: rawRequest{Method: "MOVE", Path: "/public/x"}, dest: "/data/secret", wantRequire: wlcg, wantTier: TierWrite, wantWindow: 5 * time.Second, wantStale: 30 * time.Second, wantLocal: "dav.example.org"},
		{name: "issue: MOVE into /data/ by URI", req: rawRequest{Method: "MOVE", Host: "storage.example.org", Path: "/public/x"}, dest: "http://Storage.Example.org.:80/x/../data;v=1/secret", wantRequire: wlcg, wantTier: TierWrite, wantWindow: 5 * time.Second, wantStale: 30 * time.Second},
		{name: "issue: COPY pulling /data/", req: rawRequest{Method: "COPY", Host: "storage.example.org", Path: "/public/y"}, src: "https://storage.example.org/data/secret", wantRequire: wlcg, wantTier: TierWrite, wantWindow: 5 * time.Second, wantStale: 30 * time.Second},
		{name: "remote Destination", req: rawRequest{Method: "COPY", Host: "storage.example.org", Path: "/public/y"}, dest: "https://remote.example.net/admin/data", wantTier: TierWrite, wantWindow: 5 * time.Second, wantStale: 30 * time.Second},
		{name: "remote Source", req: rawRequest{Method: "COPY", Host: "storage.example.org", Path: "/public/y"}, src: "https://remote.example.net/data/secret", wantTier: TierWrite, wantWindow: 5 * time.Second, wantStale: 30 * time.Second},
		{name: "a route's local_hosts", req: rawRequest{Method: "MOVE", Host: "storage.example.org", Path: "/public/x"}, dest: "https://dav.example.org/data/s", wantRequire: wlcg, wantTier: TierWrite, wantWindow: 5 * time.Second, wantStale: 30 * time.Second, wantLocal: "dav.example.org"},
		{name: "a route's local_hosts name this server for that route only", req: rawRequest{Method: "MOVE", Host: "storage.example.org", Path: "/public/x"}, dest: "https://dav.example.org/atlas/s", wantTier: TierWrite, wantWindow: 5 * time.Second, wantStale: 30 * time.Second},
		{name: "critical target", req: rawRequest{Method: "COPY", Path: "/public/x"}, src: "/atlas/upload/f", wantRequire: wlcg, wantTier: TierCritical, wantWindow: 0, wantStale: 0},
		{name: "critical target beats Envoy's tier", req: rawRequest{Method: "MOVE", Path: "/public/x", TierHint: TierRead}, dest: "/admin/y", wantTier: TierCritical, wantWindow: 0, wantStale: 0},
		{name: "critical request path keeps its route", req: rawRequest{Method: "MOVE", Path: "/admin/x"}, dest: "/public/y", wantTier: TierCritical},
		{name: "target window cap", req: rawRequest{Method: "MOVE", Path: "/public/x"}, dest: "/both/x/f", wantRequire: wlcg | sci, wantTier: TierWrite, wantWindow: 2 * time.Second, wantStale: 30 * time.Second},
		{name: "target window cap never raises", req: rawRequest{Method: "MOVE", Path: "/public/x"}, dest: "/slow/f", wantTier: TierWrite, wantWindow: 5 * time.Second, wantStale: 30 * time.Second},
		{name: "target window cap on a read method", req: rawRequest{Method: "PROPFIND", Path: "/public/x"}, dest: "/slow/f", wantTier: TierRead, wantWindow: 20 * time.Second, wantStale: time.Minute},
		{name: "shorter tier, smaller stale allowance", req: rawRequest{Method: "MOVE", Path: "/public/x"}, dest: "/bulk/f", wantTier: "bulk", wantWindow: 2 * time.Second, wantStale: 30 * time.Second},
		{name: "longer tier, smaller stale allowance", req: rawRequest{Method: "POST", Path: "/bulk/x"}, dest: "/admin/../search", wantTier: "bulk", wantWindow: 2 * time.Second, wantStale: time.Minute},
		{name: "route methods read against the request's", req: rawRequest{Method: "MOVE", Path: "/bulk/x"}, dest: "/search", wantTier: "bulk", wantWindow: 2 * time.Second, wantStale: 5 * time.Minute},
		{name: "host rule with the request's port", req: rawRequest{Method: "MOVE", Host: "storage.example.org:8443", Path: "/public/x"}, dest: "/vo/f", wantRequire: wlcg, wantTier: TierCritical},
		// The host without a port may be for the :8443 rule, critical: a
		// target is held to it as the request path /vo/f is (loosely).
		{name: "host rule read against the request's host", req: rawRequest{Method: "MOVE", Host: "storage.example.org", Path: "/public/x"}, dest: "http://192.0.2.1/vo/f", wantRequire: wlcg, wantTier: TierCritical},
		{name: "host rule read against the target's host", req: rawRequest{Method: "MOVE", Host: "storage.example.org", Path: "/public/x"}, dest: "https://webdav.example.org/alias/f", wantRequire: sci, wantTier: TierWrite, wantWindow: 5 * time.Second, wantStale: 30 * time.Second},
		{name: "issuer local_hosts decide", req: rawRequest{Method: "MOVE", Host: "storage.example.org", Path: "/public/x"}, dest: "https://webdav.example.org/alias/f", issuerHosts: []string{}, wantTier: TierWrite, wantWindow: 5 * time.Second, wantStale: 30 * time.Second},
		{name: "IPv6 literal host rule", req: rawRequest{Method: "MOVE", Host: "storage.example.org", Path: "/public/x"}, dest: "http://[2001:DB8:0::1]:80/f", wantRequire: sci, wantTier: TierWrite, wantWindow: 5 * time.Second, wantStale: 30 * time.Second},
		{name: "unknown request host: every target is local, every host rule applies", req: rawRequest{Method: "MOVE", Path: "/public/x", NoHost: true}, dest: "https://remote.example.net/data/f", wantRequire: wlcg | sci, wantTier: TierWrite, wantWindow: 5 * time.Second, wantStale: 30 * time.Second},
		{name: "a local Source's local_hosts make the Destination local", req: rawRequest{Method: "COPY", Host: "storage.example.org", Path: "/public/x"},
			dest: "https://dav.example.org/sci/y", src: "/data/z", wantRequire: wlcg | sci, wantTier: TierWrite, wantWindow: 5 * time.Second, wantStale: 30 * time.Second},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m := classify(t, p, tc.req)
			hosts := tc.issuerHosts
			if hosts == nil {
				hosts = targetIssuerHosts
			}
			p.AddTargets(&m, mustTarget(t, tc.dest), mustTarget(t, tc.src), hosts)
			if m.Require != tc.wantRequire {
				t.Errorf("require = %b, want %b", m.Require, tc.wantRequire)
			}
			if m.Tier.Name != tc.wantTier || m.Window != tc.wantWindow || m.StaleIfError != tc.wantStale {
				t.Errorf("tier %s window %v stale %v; want %s %v %v",
					m.Tier.Name, m.Window, m.StaleIfError, tc.wantTier, tc.wantWindow, tc.wantStale)
			}
			if tc.wantLocal != "" && !slices.Contains(m.LocalHosts, tc.wantLocal) {
				t.Errorf("local hosts %q, want %q among them", m.LocalHosts, tc.wantLocal)
			}
		})
	}
}

func TestParseTargetDoesNotAllocateForCleanValues(t *testing.T) {
	for _, v := range []string{"/data/atlas/f", "https://storage.example.org/data/atlas/f", "http://storage.example.org:8443/data/?x=1"} {
		if n := testing.AllocsPerRun(100, func() { _, _ = ParseTarget(v) }); n != 0 {
			t.Errorf("ParseTarget(%q): %v allocations, want 0", v, n)
		}
	}
}

// TestAddTargetsWithoutTargetsDoesNotAllocate keeps the engine's hit path
// free of allocations for requests without Destination or Source, and for
// a local MOVE between routes without local_hosts.
func TestAddTargetsWithoutTargetsDoesNotAllocate(t *testing.T) {
	p := targetPolicy(t)
	n, err := Normalize("MOVE", "storage.example.org", "/atlas/f")
	if err != nil {
		t.Fatal(err)
	}
	dst := mustTarget(t, "https://storage.example.org/atlas/g")
	for name, d := range map[string]Target{"none": {}, "local": dst} {
		if a := testing.AllocsPerRun(100, func() {
			m := p.Classify(n, "")
			p.AddTargets(&m, d, Target{}, targetIssuerHosts)
		}); a != 0 {
			t.Errorf("%s: %v allocations, want 0", name, a)
		}
	}
}

func TestDestinationNamesHost(t *testing.T) {
	tests := []struct {
		name, dest, host string
		local, more      []string
		want             bool
	}{
		{name: "path", dest: "/a", host: "h.example.org", want: true},
		{name: "same host", dest: "https://h.example.org/a", host: "h.example.org", want: true},
		{name: "same host default port", dest: "https://h.example.org/a", host: "h.example.org:443", want: true},
		{name: "http default port", dest: "http://h.example.org/a", host: "h.example.org:80", want: true},
		{name: "explicit ports equal", dest: "https://h.example.org:8443/a", host: "h.example.org:8443", want: true},
		{name: "leading zero port", dest: "https://h.example.org:08443/a", host: "h.example.org:8443", want: true},
		{name: "request port unknown", dest: "https://h.example.org:8443/a", host: "h.example.org", want: true},
		{name: "trailing dot", dest: "https://h.example.org./a", host: "H.Example.Org", want: true},
		{name: "unknown scheme", dest: "root://h.example.org//a", host: "h.example.org:1094", want: true},
		{name: "unknown request host", dest: "https://g.example.org/a", host: "", want: true},
		// SPEC §5: the host decides, not the port.
		{name: "other port", dest: "https://h.example.org:9443/a", host: "h.example.org:8443", want: true},
		{name: "https default vs 8443", dest: "https://h.example.org/a", host: "h.example.org:8443", want: true},
		{name: "unqualified name", dest: "https://h/a", host: "h.example.org", want: true},
		{name: "other unqualified name", dest: "https://storage/a", host: "h.example.org", want: true},
		{name: "localhost", dest: "http://localhost:2880/a", host: "h.example.org", want: true},
		{name: "a .localhost name", dest: "http://dav.localhost/a", host: "h.example.org", want: true},
		{name: "ipv4 literal", dest: "https://192.0.2.1/a", host: "h.example.org", want: true},
		{name: "ipv6 literal", dest: "https://[::1]:8443/a", host: "h.example.org", want: true},
		{name: "ipv6 both sides", dest: "https://[::1]:1/a", host: "[::1]:2", want: true},
		{name: "route or issuer alias", dest: "https://alias.example.org/a", host: "h.example.org",
			more: []string{"other.example.org", "alias.example.org"}, want: true},
		{name: "other host", dest: "https://g.example.org/a", host: "h.example.org", want: false},
		{name: "other host with a digit at the end", dest: "https://g1.example.org2/a", host: "h.example.org", want: false},
		{name: "alias of nothing", dest: "https://g.example.org/a", host: "h.example.org",
			local: []string{"alias.example.org"}, want: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tg, err := ParseTarget(tt.dest)
			if err != nil {
				t.Fatalf("ParseTarget(%q): %v", tt.dest, err)
			}
			host, err := NormalizeHost(tt.host)
			if err != nil {
				t.Fatal(err)
			}
			if got := tg.NamesThisServer(host, tt.local, tt.more); got != tt.want {
				t.Errorf("NamesThisServer = %v, want %v", got, tt.want)
			}
		})
	}
}

// TestParseTargetRefuses is SPEC §5 for Destination and Source values,
// including issue 19 class 11 (a fragment moves the operation off the
// checked path) and class 3 (two values joined by Envoy's headers map).
func TestParseTargetRefuses(t *testing.T) {
	for _, d := range []string{
		"", "  ", "//h/a", "a/b", "https:///a", "https://u@h/a", "https://u:p@h/a", "https://h%41/a", "1http://h/a", "://h/a",
		"/atlas/protected/victim#/../../scratch/x",
		"https://storage.example.org/atlas/protected/victim#/../../scratch/x",
		"/a#", "https://h.example.org#x",
		"https://h.example.org:x/a", "https://h.example.org:/a", "https://h.example.org:99999/a", "https://[::1/a", "https://::1/a",
		"https://h..example.org/a", "https://127.1/a", "https://h_ex ample/a",
		"/a b", "/a\tb", "/a\x00",
		"/a,/b", "/a, /b", "https://h.example.org/a,https://g.example.org/b", "/a,dav://g/b",
		"/a%2Fb", "/a%zz", "/a\\b",
		// Any raw "," in the path: Envoy's headers map joins two fields
		// with ",", and no reading of the one value is the backend's.
		// "/atlas" + "x" reads as the sibling /atlas,x, which the route
		// /atlas/ does not match; "/atlas/alice/.." + "x" as a name inside
		// alice; "/protected/victim" + "x/../../atlas/y" as /atlas/y.
		"/a,b", "/a,1/b", "https://h.example.org/a,b", "/atlas,", "/atlas,x",
		"/atlas/alice/..,x", "/atlas/alice/%2e%2E,x", "https://storage.example.org/atlas/alice/..,x", "/..,x",
		"/protected/victim,x/../../../atlas/scratch/y", "https://storage.example.org/protected/victim,x/../../atlas/y",
		"/a/x,y/..,z", "/a,b?x/../..", "/a,..", "/a,b//c",
	} {
		if _, err := ParseTarget(d); err == nil {
			t.Errorf("ParseTarget(%q) accepted", d)
		}
	}
	// A "," percent-encoded is one name; one in the query moves no path.
	for _, d := range []string{"/a%2Cb", "/a%2c1/b", "https://h.example.org/a%2Cb", "/a;x/b", "https://[2001:db8::1]:8443/a", " /a ",
		"/a?q=1,2", "/a/..?q,x", "https://h.example.org/a?x=1,y"} {
		if _, err := ParseTarget(d); err != nil {
			t.Errorf("ParseTarget(%q): %v", d, err)
		}
	}
}
