package policy

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"gopkg.in/yaml.v3"
)

// storageCase is one entry of testdata/storage/cases.yaml.
type storageCase struct {
	Name        string `yaml:"name"`
	Why         string `yaml:"why"`
	Profile     string `yaml:"profile"`
	Base        string `yaml:"base"`
	Method      string `yaml:"method"`
	Path        string `yaml:"path"`
	Host        string `yaml:"host"`
	Destination string `yaml:"destination"`
	Source      string `yaml:"source"`
	IfNoneMatch string `yaml:"if_none_match"`
	Overwrite   string `yaml:"overwrite"`
	Scope       string `yaml:"scope"`
	WLCGVer     string `yaml:"wlcg_ver"`
	Want        struct {
		Allow  bool   `yaml:"allow"`
		Status int    `yaml:"status"`
		Error  string `yaml:"error"`
		Scope  string `yaml:"scope"`
	} `yaml:"want"`
}

func (c storageCase) args() (StorageProfile, StorageRequest, string, string, string) {
	profile := StorageProfile(c.Profile)
	if profile == "" {
		profile = ProfileWLCG
	}
	base := c.Base
	if base == "" {
		base = "/"
	}
	host := c.Host
	if host == "" {
		host = "storage.example.org"
	}
	req := StorageRequest{
		Method:      c.Method,
		Path:        c.Path,
		Host:        host,
		Destination: c.Destination,
		Source:      c.Source,
		IfNoneMatch: c.IfNoneMatch,
		Overwrite:   c.Overwrite,
	}
	return profile, req, c.Scope, base, c.WLCGVer
}

func loadStorageCases(tb testing.TB) []storageCase {
	tb.Helper()
	raw, err := os.ReadFile(filepath.Join("testdata", "storage", "cases.yaml"))
	if err != nil {
		tb.Fatalf("read golden cases: %v", err)
	}
	dec := yaml.NewDecoder(bytes.NewReader(raw))
	dec.KnownFields(true)
	var cases []storageCase
	if err := dec.Decode(&cases); err != nil {
		tb.Fatalf("decode golden cases: %v", err)
	}
	return cases
}

func TestAuthorizeStorageGolden(t *testing.T) {
	cases := loadStorageCases(t)
	if len(cases) < 70 {
		t.Fatalf("only %d golden cases, want at least 70", len(cases))
	}
	seen := make(map[string]bool, len(cases))
	for _, c := range cases {
		if seen[c.Name] {
			t.Fatalf("duplicate case name %q", c.Name)
		}
		seen[c.Name] = true
		t.Run(c.Name, func(t *testing.T) {
			got := AuthorizeStorage(c.args())
			if got.Allow != c.Want.Allow || got.Status != c.Want.Status || got.Error != c.Want.Error || got.Scope != c.Want.Scope {
				t.Errorf("got allow=%v status=%d error=%q scope=%q (%s)\nwant allow=%v status=%d error=%q scope=%q",
					got.Allow, got.Status, got.Error, got.Scope, got.Description,
					c.Want.Allow, c.Want.Status, c.Want.Error, c.Want.Scope)
			}
			checkDecisionShape(t, got)
		})
	}
}

// checkDecisionShape asserts the invariants every decision keeps, whatever
// the input: the RFC 6750 code matches the status, only a 403 names a scope.
func checkDecisionShape(t testing.TB, d StorageDecision) {
	t.Helper()
	if d.Allow {
		if d.Status != 0 || d.Error != "" || d.Scope != "" {
			t.Errorf("allowed decision carries denial fields: %+v", d)
		}
		return
	}
	want := map[int]string{400: "invalid_request", 401: "invalid_token", 403: "insufficient_scope"}[d.Status]
	if want == "" || d.Error != want {
		t.Errorf("denied with status %d and error %q", d.Status, d.Error)
	}
	if d.Status != 403 && d.Scope != "" {
		t.Errorf("status %d names a scope %q", d.Status, d.Scope)
	}
	if d.Description == "" {
		t.Errorf("denied without a description: %+v", d)
	}
	// RFC 6750 §3: error_description and scope values exclude '"' and '\';
	// scope tokens (RFC 6749 §3.3) also exclude the space.
	for _, r := range d.Description {
		if r < 0x20 || r > 0x7e || r == '"' || r == '\\' {
			t.Errorf("description %q is not safe for WWW-Authenticate", d.Description)
			break
		}
	}
	for _, r := range d.Scope {
		if r <= 0x20 || r > 0x7e || r == '"' || r == '\\' {
			t.Errorf("scope hint %q is not a valid scope token", d.Scope)
			break
		}
	}
}

// TestIssue7DoneMeans is issue 7's acceptance sentence, spelled out.
func TestIssue7DoneMeans(t *testing.T) {
	read := "storage.read:/atlas"
	create := "storage.create:/atlas"
	tests := []struct {
		name  string
		scope string
		req   StorageRequest
		allow bool
	}{
		{name: "read token GETs /atlas/data/f", scope: read, req: StorageRequest{Method: "GET", Path: "/atlas/data/f"}, allow: true},
		{name: "read token cannot GET /atlasx/f", scope: read, req: StorageRequest{Method: "GET", Path: "/atlasx/f"}},
		{name: "read token cannot PUT", scope: read, req: StorageRequest{Method: "PUT", Path: "/atlas/data/f"}},
		{name: "read token cannot create", scope: read, req: StorageRequest{Method: "PUT", Path: "/atlas/data/new", IfNoneMatch: "*"}},
		{name: "read token cannot DELETE", scope: read, req: StorageRequest{Method: "DELETE", Path: "/atlas/data/f"}},
		{name: "create token uploads a new file", scope: create, req: StorageRequest{Method: "PUT", Path: "/atlas/data/new", IfNoneMatch: "*"}, allow: true},
		{name: "create token cannot overwrite", scope: create, req: StorageRequest{Method: "PUT", Path: "/atlas/data/f"}},
		{name: "create token cannot delete", scope: create, req: StorageRequest{Method: "DELETE", Path: "/atlas/data/f"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.req.Host = "storage.example.org"
			got := AuthorizeStorage(ProfileWLCG, tt.req, tt.scope, "/", "1.0")
			if got.Allow != tt.allow {
				t.Errorf("allow = %v, want %v (%+v)", got.Allow, tt.allow, got)
			}
		})
	}
}

func TestAuthorizeStorageUnknownProfileFailsClosed(t *testing.T) {
	for _, p := range []StorageProfile{"", "WLCG_STORAGE", "oauth"} {
		got := AuthorizeStorage(p, StorageRequest{Method: "GET", Path: "/f"}, "storage.read:/ read:/", "/", "")
		if got.Allow || got.Status != 403 {
			t.Errorf("profile %q: got %+v, want a 403", p, got)
		}
	}
}

func TestAuthorizeStorageEmptyHostTreatsDestinationAsLocal(t *testing.T) {
	// Without a Host we cannot tell, so a Destination URI is checked as a
	// local write: stricter for COPY, and MOVE stays possible.
	req := StorageRequest{Method: "COPY", Path: "/atlas/f", Destination: "https://anywhere.example.net/atlas/g"}
	got := AuthorizeStorage(ProfileWLCG, req, "storage.read:/atlas", "/", "")
	if got.Allow || got.Scope != "storage.modify:/atlas/g" {
		t.Errorf("got %+v, want a 403 naming storage.modify:/atlas/g", got)
	}
}

func TestNormalizePath(t *testing.T) {
	tests := []struct {
		name string
		raw  string
		want string // "" means an error is expected
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
		{name: "param on a name", raw: "/a;v=1/b", want: "/a;v=1/b"},
		{name: "dots in a name", raw: "/a/..b/b../...", want: "/a/..b/b../..."},
		{name: "relative", raw: "a/b"},
		{name: "empty", raw: ""},
		{name: "query only", raw: "?a"},
		{name: "encoded slash", raw: "/a%2Fb"},
		{name: "encoded slash lower", raw: "/a%2fb"},
		{name: "encoded backslash", raw: "/a%5Cb"},
		{name: "encoded backslash lower", raw: "/a%5cb"},
		{name: "literal backslash", raw: `/a\b`},
		{name: "encoded nul", raw: "/a%00"},
		{name: "literal nul", raw: "/a\x00"},
		{name: "bad escape", raw: "/a%g0"},
		{name: "truncated escape", raw: "/a%4"},
		{name: "lone percent", raw: "/a%"},
		{name: "dotdot param", raw: "/a/..;/b"},
		{name: "dot param", raw: "/a/.;x/b"},
		{name: "empty param", raw: "/a/;/b"},
		{name: "encoded dotdot param", raw: "/a/%2e%2e;x/b"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := NormalizePath(tt.raw)
			if tt.want == "" {
				if err == nil {
					t.Fatalf("NormalizePath(%q) = %q, want an error", tt.raw, got)
				}
				if !errors.Is(err, ErrInvalidPath) {
					t.Errorf("error %v does not wrap ErrInvalidPath", err)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Errorf("NormalizePath(%q) = %q, %v; want %q", tt.raw, got, err, tt.want)
			}
		})
	}
}

func TestValidateBasePath(t *testing.T) {
	tests := []struct {
		base string
		ok   bool
	}{
		{"", true}, {"/", true}, {"/dcache/vo", true}, {"/dcache/vo/", true},
		{"dcache", false}, {"/a//b", false}, {"/a/../b", false}, {"/a/./b", false},
		{`/a\b`, false}, {"/a?b", false}, {"//", false},
	}
	for _, tt := range tests {
		t.Run(tt.base, func(t *testing.T) {
			if err := ValidateBasePath(tt.base); (err == nil) != tt.ok {
				t.Errorf("ValidateBasePath(%q) = %v, want ok=%v", tt.base, err, tt.ok)
			}
		})
	}
}

func TestDestinationNamesHost(t *testing.T) {
	tests := []struct {
		name, dest, host string
		local            bool
	}{
		{name: "path", dest: "/a", host: "h", local: true},
		{name: "same host", dest: "https://h/a", host: "h", local: true},
		{name: "same host default port", dest: "https://h/a", host: "h:443", local: true},
		{name: "http default port", dest: "http://h/a", host: "h:80", local: true},
		{name: "explicit ports equal", dest: "https://h:8443/a", host: "h:8443", local: true},
		{name: "leading zero port", dest: "https://h:08443/a", host: "h:8443", local: true},
		{name: "request port unknown", dest: "https://h:8443/a", host: "h", local: true},
		{name: "trailing dot", dest: "https://h./a", host: "H", local: true},
		{name: "ipv6", dest: "https://[::1]:8443/a", host: "[::1]:8443", local: true},
		{name: "unknown scheme no port", dest: "root://h//a", host: "h:1094", local: true},
		{name: "other host", dest: "https://g/a", host: "h", local: false},
		{name: "other port", dest: "https://h:9443/a", host: "h:8443", local: false},
		{name: "https default vs 8443", dest: "https://h/a", host: "h:8443", local: false},
		{name: "ipv6 other port", dest: "https://[::1]:1/a", host: "[::1]:2", local: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tg, err := parseTarget(tt.dest)
			if err != nil {
				t.Fatalf("parseTarget(%q): %v", tt.dest, err)
			}
			if got := tg.namesHost(tt.host); got != tt.local {
				t.Errorf("namesHost = %v, want %v", got, tt.local)
			}
		})
	}
}

func TestParseTargetRefuses(t *testing.T) {
	for _, d := range []string{"", "  ", "//h/a", "a/b", "https:///a", "https://u@h/a", "https://h%41/a", "1http://h/a", "://h/a"} {
		if _, err := parseTarget(d); err == nil {
			t.Errorf("parseTarget(%q) accepted", d)
		}
	}
}

func BenchmarkAuthorizeStorage(b *testing.B) {
	req := StorageRequest{Method: "GET", Path: "/dcache/vo/atlas/data/run1/AOD.0001.root", Host: "storage.example.org"}
	scope := "storage.read:/atlas storage.create:/atlas/user/alice storage.modify:/atlas/scratch"
	b.ReportAllocs()
	for b.Loop() {
		if d := AuthorizeStorage(ProfileWLCG, req, scope, "/dcache/vo", "1.0"); !d.Allow {
			b.Fatal("denied: " + d.Description)
		}
	}
}
