package policy

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestNormalizePath(t *testing.T) {
	tests := []struct {
		name    string
		raw     string
		want    string // "" means an error is expected
		literal string // "" means the same as want
	}{
		{name: "clean", raw: "/atlas/f", want: "/atlas/f"},
		{name: "root", raw: "/", want: "/"},
		{name: "query", raw: "/a/b?c=/../d", want: "/a/b"},
		{name: "only query", raw: "/?x", want: "/"},
		{name: "trailing slash kept", raw: "/a/b/", want: "/a/b/"},
		{name: "double slashes", raw: "//a///b//", want: "/a/b/"},
		{name: "dot", raw: "/a/./b/.", want: "/a/b/"},
		{name: "dotdot", raw: "/a/b/../c", want: "/a/c"},
		{name: "final dotdot keeps a slash", raw: "/a/b/..", want: "/a/"},
		{name: "clamped", raw: "/../../a", want: "/a"},
		{name: "all gone", raw: "/a/../..", want: "/"},
		{name: "decoded once", raw: "/a%20b/%41", want: "/a b/A"},
		{name: "double encoding stays literal", raw: "/a%252Fb", want: "/a%2Fb"},
		{name: "encoded dots", raw: "/a/%2E%2e/b", want: "/b"},
		{name: "utf-8", raw: "/%C3%A9t%C3%A9", want: "/été"},
		{name: "plus is not a space", raw: "/a+b", want: "/a+b"},
		{name: "dots in a name", raw: "/a/..b/b../...", want: "/a/..b/b../..."},
		{name: "encoded # is a name", raw: "/a/%23b", want: "/a/#b"},
		// SPEC §1: ";parameters" are ignored per segment for matching.
		{name: "param on a name", raw: "/a;v=1/b", want: "/a/b", literal: "/a;v=1/b"},
		{name: "issue 19: /data;x/secret", raw: "/data;x/secret", want: "/data/secret", literal: "/data;x/secret"},
		{name: "params on every segment", raw: "/a;x/b;y;z/c;", want: "/a/b/c", literal: "/a;x/b;y;z/c;"},
		{name: "param then dotdot", raw: "/a;x/../b", want: "/b"},
		{name: "encoded ; splits too", raw: "/data%3Bx/secret", want: "/data/secret", literal: "/data;x/secret"},
		{name: "param and trailing slash", raw: "/a;x/", want: "/a/", literal: "/a;x/"},
		{name: "param and dot segments", raw: "//a;x/./b/", want: "/a/b/", literal: "/a;x/b/"},
		{name: "relative", raw: "a/b"},
		{name: "empty", raw: ""},
		{name: "query only", raw: "?a"},
		{name: "asterisk form", raw: "*"},
		{name: "absolute form", raw: "http://h/admin/"},
		{name: "encoded slash", raw: "/a%2Fb"},
		{name: "encoded slash lower", raw: "/a%2fb"},
		{name: "encoded backslash", raw: "/a%5Cb"},
		{name: "encoded backslash lower", raw: "/a%5cb"},
		{name: "literal backslash", raw: `/a\b`},
		{name: `issue 19: /data\secret`, raw: `/data\secret`},
		{name: "encoded nul", raw: "/a%00"},
		{name: "literal nul", raw: "/a\x00"},
		{name: "nul in the query", raw: "/a?b\x00"},
		{name: "bad escape", raw: "/a%g0"},
		{name: "issue 19: /%64ata/secret%zz", raw: "/%64ata/secret%zz"},
		{name: "truncated escape", raw: "/a%4"},
		{name: "lone percent", raw: "/a%"},
		{name: "issue 19: /store/secret.root#/../../public/x", raw: "/store/secret.root#/../../public/x"},
		{name: "raw # in the query", raw: "/a?b#c"},
		{name: "dotdot param", raw: "/a/..;/b"},
		{name: "dot param", raw: "/a/.;x/b"},
		{name: "empty param", raw: "/a/;/b"},
		{name: "encoded dotdot param", raw: "/a/%2e%2e;x/b"},
		{name: "dotdot with an encoded ;", raw: "/a/..%3Bx/b"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, lit, err := normalizePath(tt.raw)
			if tt.want == "" {
				if err == nil {
					t.Fatalf("normalizePath(%q) = %q, %q; want an error", tt.raw, got, lit)
				}
				if !errors.Is(err, ErrInvalidPath) {
					t.Errorf("error %v does not wrap ErrInvalidPath", err)
				}
				return
			}
			wantLit := tt.literal
			if wantLit == "" {
				wantLit = tt.want
			}
			if err != nil || got != tt.want || lit != wantLit {
				t.Errorf("normalizePath(%q) = %q, %q, %v; want %q, %q", tt.raw, got, lit, err, tt.want, wantLit)
			}
		})
	}
}

func TestNormalizeHost(t *testing.T) {
	tests := []struct {
		in, want string
		bad      bool
	}{
		{in: "", want: ""},
		{in: "storage.example.org", want: "storage.example.org"},
		{in: "Storage.Example.ORG", want: "storage.example.org"},
		{in: "storage.example.org.", want: "storage.example.org"},
		{in: "storage.example.org:443", want: "storage.example.org"},
		{in: "storage.example.org:80", want: "storage.example.org"},
		{in: "storage.example.org.:0443", want: "storage.example.org"},
		{in: "storage.example.org:8443", want: "storage.example.org:8443"},
		{in: "STORAGE.example.org.:08443", want: "storage.example.org:8443"},
		{in: "storage", want: "storage"},
		{in: "under_score.example.org", want: "under_score.example.org"},
		{in: "192.0.2.1:443", want: "192.0.2.1"},
		{in: "[::1]", want: "[::1]"},
		{in: "[0:0::1]:8443", want: "[::1]:8443"},
		{in: "[2001:DB8::1]:443", want: "[2001:db8::1]"},
		{in: "[::ffff:192.0.2.1]", want: "192.0.2.1"},
		{in: "[::FFFF:c000:201]:8443", want: "192.0.2.1:8443"},
		{in: "storage.example.org..", bad: true},
		{in: ".storage.example.org", bad: true},
		{in: "storage..example.org", bad: true},
		{in: ".", bad: true},
		{in: ":443", bad: true},
		{in: "storage.example.org:", bad: true},
		{in: "storage.example.org:0", bad: true},
		{in: "storage.example.org:65536", bad: true},
		{in: "storage.example.org:+443", bad: true},
		{in: "storage.example.org:443:443", bad: true},
		{in: "::1", bad: true},
		{in: "[::1", bad: true},
		{in: "[::1]x", bad: true},
		{in: "[192.0.2.1]", bad: true},
		{in: "[fe80::1%eth0]", bad: true},
		{in: "127.1", bad: true},
		{in: "010.0.0.1", bad: true},
		{in: "1.2.3.4.5", bad: true},
		{in: "user@storage.example.org", bad: true},
		{in: "storage.example.org/x", bad: true},
		{in: "störage.example.org", bad: true},
		{in: "storage%2eexample.org", bad: true},
		{in: "a b", bad: true},
		{in: strings.Repeat("a", 64) + ".org", bad: true},
		{in: strings.Repeat("a.", 127) + "org", bad: true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := NormalizeHost(tt.in)
			if tt.bad {
				if err == nil || !errors.Is(err, ErrInvalidHost) {
					t.Fatalf("NormalizeHost(%q) = %q, %v; want an ErrInvalidHost", tt.in, got, err)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("NormalizeHost(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
			}
			if again, err := NormalizeHost(got); err != nil || again != got {
				t.Fatalf("not a fixed point: %q then %q, %v", got, again, err)
			}
		})
	}
}

// TestNormalizeHostBytes: every byte in a label's middle, against the
// rule: letters (folded), digits, '-' and '_' are kept; any other byte is
// refused (the dot and ':' make other names, tested above).
func TestNormalizeHostBytes(t *testing.T) {
	for c := range 256 {
		b := byte(c)
		if b == '.' || b == ':' || b == '[' {
			continue
		}
		got, err := NormalizeHost("a" + string([]byte{b}) + "b.example")
		lower := b | 0x20
		valid := 'a' <= lower && lower <= 'z' || '0' <= b && b <= '9' || b == '-' || b == '_'
		want := ""
		if valid {
			want = "a" + string([]byte{b}) + "b.example"
			if 'A' <= b && b <= 'Z' {
				want = "a" + string([]byte{lower}) + "b.example"
			}
		}
		if valid != (err == nil) || got != want {
			t.Errorf("NormalizeHost with byte %#x = %q, %v; want %q", b, got, err, want)
		}
	}
}

func TestNormalizeLocalHost(t *testing.T) {
	for in, want := range map[string]string{"Alias.Example.org.": "alias.example.org", "dav": "dav", "[2001:db8::1]": "[2001:db8::1]", "10.0.0.1": "10.0.0.1"} {
		if got, err := NormalizeLocalHost(in); err != nil || got != want {
			t.Errorf("NormalizeLocalHost(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, in := range []string{"", "alias.example.org:443", "[::1]:80", "bad host", "a..b"} {
		if got, err := NormalizeLocalHost(in); err == nil {
			t.Errorf("NormalizeLocalHost(%q) = %q, want an error", in, got)
		}
	}
}

func TestNormalizeDoesNotAllocateForCleanRequests(t *testing.T) {
	for _, tc := range []struct{ host, target string }{
		{"storage.example.org", "/data/atlas/file.root"},
		{"storage.example.org:8443", "/data/atlas/file.root?x=1"},
		{"storage.example.org.", "/data/atlas/dir/"},
		{"storage.example.org:443", "/"},
	} {
		if n := testing.AllocsPerRun(100, func() { _, _ = Normalize("GET", tc.host, tc.target) }); n != 0 {
			t.Errorf("Normalize(%q, %q): %v allocations, want 0", tc.host, tc.target, n)
		}
	}
}

func TestValidatePrefix(t *testing.T) {
	for _, ok := range []string{"/", "/admin/", "/search", "/my dir/", "/a/b.c/"} {
		if err := ValidatePrefix(ok); err != nil {
			t.Errorf("ValidatePrefix(%q): %v", ok, err)
		}
	}
	for _, bad := range []string{"", "admin/", "/my%20dir/", "/a;x/", "/a?b", "/a#b", `/a\b`, "/a\x00", "//a/", "/a//b", "/./a", "/a/../b", "/a/.."} {
		if err := ValidatePrefix(bad); err == nil {
			t.Errorf("ValidatePrefix(%q) accepted", bad)
		}
	}
}

// spellingPolicy is the route table the spelling tests and the fuzz target
// use: requirements, tiers and windows placed so that a route picked by a
// wrong spelling would change what is checked.
func spellingPolicy(t testing.TB) *Policy {
	t.Helper()
	p, err := New(Config{
		Tiers:    DefaultTiers(),
		LeaseMax: 10 * time.Minute,
		Routes: []RouteConfig{
			{Prefix: "/atlas/upload/", Tier: TierCritical},
			{Prefix: "/atlas/", Require: ProfileWLCG},
			{Prefix: "/data/", Require: ProfileWLCG, MaxTokenLifetime: time.Hour},
			{Prefix: "/both/x/", Require: ProfileSciTokens, Window: dur(2 * time.Second), MaxTokenLifetime: 10 * time.Minute},
			{Prefix: "/both/", Require: ProfileWLCG},
			{Prefix: "/vo/", Host: "storage.example.org:8443", Tier: TierCritical},
			{Prefix: "/vo/", Host: "storage.example.org", Require: ProfileWLCG, MaxTokenLifetime: 30 * time.Minute},
			{Prefix: "/search", Methods: []string{"POST"}, Tier: TierRead},
			{Prefix: "/slow/", Window: dur(20 * time.Second)},
			{Prefix: "/admin/", Tier: TierCritical},
			{Prefix: "/my dir/", Require: ProfileSciTokens},
			{Prefix: "/", Host: "[2001:db8::1]", Require: ProfileSciTokens},
			{Prefix: "/ip4/", Host: "192.0.2.7", Tier: TierCritical},
		},
	})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return p
}

// TestClassifySpellings is issue 19 class 1 on the policy alone: a request
// spelled differently selects the same route, requirements and window as its
// normalised form.
func TestClassifySpellings(t *testing.T) {
	p := spellingPolicy(t)
	tests := []struct {
		name        string
		req         rawRequest
		wantRequire []StorageProfile
		wantTier    string
		wantWindow  time.Duration
	}{
		{name: "clean", req: rawRequest{Method: "GET", Path: "/data/secret"}, wantRequire: []StorageProfile{ProfileWLCG}, wantTier: TierRead, wantWindow: time.Minute},
		{name: "issue 19: /data;x/secret", req: rawRequest{Method: "GET", Path: "/data;x/secret"}, wantRequire: []StorageProfile{ProfileWLCG}, wantTier: TierRead, wantWindow: time.Minute},
		{name: "encoded letters", req: rawRequest{Method: "GET", Path: "/%64ata/secret"}, wantRequire: []StorageProfile{ProfileWLCG}, wantTier: TierRead, wantWindow: time.Minute},
		{name: "encoded ;", req: rawRequest{Method: "GET", Path: "/data%3bx/secret"}, wantRequire: []StorageProfile{ProfileWLCG}, wantTier: TierRead, wantWindow: time.Minute},
		{name: "param on the bare prefix", req: rawRequest{Method: "GET", Path: "/data;x"}, wantRequire: []StorageProfile{ProfileWLCG}, wantTier: TierRead, wantWindow: time.Minute},
		// Without a port, the request may also be for the :8443 rule,
		// which is critical: its tier holds (hostMatches, loosely).
		{name: "issue 19: Host with a trailing dot", req: rawRequest{Method: "GET", Host: "storage.example.org.", Path: "/vo/f"}, wantRequire: []StorageProfile{ProfileWLCG}, wantTier: TierCritical},
		{name: "host in capitals with default port", req: rawRequest{Method: "GET", Host: "STORAGE.EXAMPLE.ORG:443", Path: "/vo/f"}, wantRequire: []StorageProfile{ProfileWLCG}, wantTier: TierCritical},
		{name: "other host", req: rawRequest{Method: "GET", Host: "other.example.org", Path: "/vo/f"}, wantTier: TierRead, wantWindow: time.Minute},
		{name: "ipv6 rule, other spelling", req: rawRequest{Method: "GET", Host: "[2001:DB8:0::1]:443", Path: "/f"}, wantRequire: []StorageProfile{ProfileSciTokens}, wantTier: TierRead, wantWindow: time.Minute},
		{name: "ipv4 rule, IPv4-mapped IPv6 spelling", req: rawRequest{Method: "GET", Host: "[::ffff:192.0.2.7]", Path: "/ip4/f"}, wantTier: TierCritical},
		{name: "ipv4 rule, mapped hex spelling", req: rawRequest{Method: "GET", Host: "[::FFFF:C000:207]:443", Path: "/ip4/f"}, wantTier: TierCritical},
		{name: "decoded prefix", req: rawRequest{Method: "GET", Path: "/my%20dir/f"}, wantRequire: []StorageProfile{ProfileSciTokens}, wantTier: TierRead, wantWindow: time.Minute},
		{name: "port rule by another spelling", req: rawRequest{Method: "GET", Host: "Storage.Example.Org.:08443", Path: "/vo/f"}, wantRequire: []StorageProfile{ProfileWLCG}, wantTier: TierCritical},
		// Class 12: the first route gives the tier, every route its require.
		{name: "issue 19: tier-only route first", req: rawRequest{Method: "PUT", Path: "/atlas/upload/f"}, wantRequire: []StorageProfile{ProfileWLCG}, wantTier: TierCritical},
		{name: "tier-only route through a param", req: rawRequest{Method: "PUT", Path: "/atlas/upload;x/f"}, wantRequire: []StorageProfile{ProfileWLCG}, wantTier: TierCritical},
		{name: "two profiles", req: rawRequest{Method: "GET", Path: "/both/x/f"}, wantRequire: []StorageProfile{ProfileWLCG, ProfileSciTokens}, wantTier: TierRead, wantWindow: 2 * time.Second},
		{name: "one of them", req: rawRequest{Method: "GET", Path: "/both/y"}, wantRequire: []StorageProfile{ProfileWLCG}, wantTier: TierRead, wantWindow: time.Minute},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m := classify(t, p, tc.req)
			got := requirements(m)
			if strings.Join(profilesText(got), ",") != strings.Join(profilesText(tc.wantRequire), ",") {
				t.Errorf("require = %v, want %v", got, tc.wantRequire)
			}
			if m.Tier.Name != tc.wantTier || m.Window != tc.wantWindow {
				t.Errorf("tier %s window %v, want %s %v", m.Tier.Name, m.Window, tc.wantTier, tc.wantWindow)
			}
		})
	}
}

// requirements lists the storage profiles m makes a request satisfy.
func requirements(m Match) []StorageProfile {
	var out []StorageProfile
	for p := range m.Require.All() {
		out = append(out, p)
	}
	return out
}

func profilesText(ps []StorageProfile) []string {
	out := make([]string, len(ps))
	for i, p := range ps {
		out[i] = string(p)
	}
	return out
}

func TestClassifyLocalHostsAccumulate(t *testing.T) {
	p, err := New(Config{Tiers: DefaultTiers(), LeaseMax: time.Minute, Routes: []RouteConfig{
		{Prefix: "/a/b/", LocalHosts: []string{"B.example.org."}},
		{Prefix: "/a/", Require: ProfileWLCG, LocalHosts: []string{"a.example.org"}},
		{Prefix: "/c/", LocalHosts: []string{"c.example.org"}},
	}})
	if err != nil {
		t.Fatal(err)
	}
	m := classify(t, p, rawRequest{Method: "COPY", Path: "/a/b/f"})
	if got := strings.Join(m.LocalHosts, " "); got != "b.example.org a.example.org" {
		t.Fatalf("LocalHosts = %q, want both matching routes' in normal form", got)
	}
	m = classify(t, p, rawRequest{Method: "COPY", Path: "/c/f"})
	if got := strings.Join(m.LocalHosts, " "); got != "c.example.org" {
		t.Fatalf("LocalHosts = %q", got)
	}
}

func TestNewRejectsRouteSpellings(t *testing.T) {
	tests := []struct {
		route RouteConfig
		want  string
	}{
		{RouteConfig{Prefix: "/my%20dir/"}, "must be written decoded"},
		{RouteConfig{Prefix: "/data;v=1/"}, "must be written decoded"},
		{RouteConfig{Prefix: "/a/../b/"}, "not normalised"},
		{RouteConfig{Prefix: "/a/", Host: "bad host"}, "invalid host"},
		{RouteConfig{Prefix: "/a/", LocalHosts: []string{"alias.example.org:443"}}, "names a port"},
	}
	for _, tt := range tests {
		t.Run(tt.want, func(t *testing.T) {
			_, err := New(Config{Tiers: DefaultTiers(), LeaseMax: time.Minute, Routes: []RouteConfig{tt.route}})
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("New: %v, want an error containing %q", err, tt.want)
			}
		})
	}
}
