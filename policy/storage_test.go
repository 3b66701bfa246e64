package policy

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"go.yaml.in/yaml/v3"
)

// storageCase is one entry of testdata/storage/cases.yaml.
type storageCase struct {
	Name        string   `yaml:"name"`
	Why         string   `yaml:"why"`
	Profile     string   `yaml:"profile"`
	Base        string   `yaml:"base"`
	Method      string   `yaml:"method"`
	Path        string   `yaml:"path"`
	Host        string   `yaml:"host"`
	Destination string   `yaml:"destination"`
	Source      string   `yaml:"source"`
	IfNoneMatch string   `yaml:"if_none_match"`
	Overwrite   string   `yaml:"overwrite"`
	Scope       string   `yaml:"scope"`
	WLCGVer     string   `yaml:"wlcg_ver"`
	LocalHosts  []string `yaml:"local_hosts"`
	Want        struct {
		Allow  bool   `yaml:"allow"`
		Status int    `yaml:"status"`
		Error  string `yaml:"error"`
		Scope  string `yaml:"scope"`
	} `yaml:"want"`
}

// rawStorageRequest is a storage request as a proxy reports it, before
// Normalize.
type rawStorageRequest struct {
	Method, Path, Host                          string
	Destination, Source, IfNoneMatch, Overwrite string
	LocalHosts                                  []string
}

// authorizeRaw is what the engine does with a request on a storage route:
// Normalize (400 when it refuses), then AuthorizeStorage.
func authorizeRaw(profile StorageProfile, raw rawStorageRequest, scope, base, ver string) StorageDecision {
	nr, err := Normalize(raw.Method, raw.Host, raw.Path)
	if err != nil {
		return storageDeny(400, errInvalidRequest, "request path is not acceptable", "")
	}
	req := StorageRequest{
		Request: nr, Destination: raw.Destination, Source: raw.Source,
		IfNoneMatch: raw.IfNoneMatch, Overwrite: raw.Overwrite, RouteLocalHosts: raw.LocalHosts,
	}
	return AuthorizeStorage(profile, req, scope, base, ver)
}

func (c storageCase) args() (StorageProfile, rawStorageRequest, string, string, string) {
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
	req := rawStorageRequest{
		Method:      c.Method,
		Path:        c.Path,
		Host:        host,
		Destination: c.Destination,
		Source:      c.Source,
		IfNoneMatch: c.IfNoneMatch,
		Overwrite:   c.Overwrite,
	}
	req.LocalHosts = c.LocalHosts
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
			got := authorizeRaw(c.args())
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
		req   rawStorageRequest
		allow bool
	}{
		{name: "read token GETs /atlas/data/f", scope: read, req: rawStorageRequest{Method: "GET", Path: "/atlas/data/f"}, allow: true},
		{name: "read token cannot GET /atlasx/f", scope: read, req: rawStorageRequest{Method: "GET", Path: "/atlasx/f"}},
		{name: "read token cannot PUT", scope: read, req: rawStorageRequest{Method: "PUT", Path: "/atlas/data/f"}},
		{name: "read token cannot create", scope: read, req: rawStorageRequest{Method: "PUT", Path: "/atlas/data/new", IfNoneMatch: "*"}},
		{name: "read token cannot DELETE", scope: read, req: rawStorageRequest{Method: "DELETE", Path: "/atlas/data/f"}},
		{name: "create token uploads a new file", scope: create, req: rawStorageRequest{Method: "PUT", Path: "/atlas/data/new", IfNoneMatch: "*"}, allow: true},
		{name: "create token cannot overwrite", scope: create, req: rawStorageRequest{Method: "PUT", Path: "/atlas/data/f"}},
		{name: "create token cannot delete", scope: create, req: rawStorageRequest{Method: "DELETE", Path: "/atlas/data/f"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.req.Host = "storage.example.org"
			got := authorizeRaw(ProfileWLCG, tt.req, tt.scope, "/", "1.0")
			if got.Allow != tt.allow {
				t.Errorf("allow = %v, want %v (%+v)", got.Allow, tt.allow, got)
			}
		})
	}
}

func TestAuthorizeStorageUnknownProfileFailsClosed(t *testing.T) {
	for _, p := range []StorageProfile{"", "WLCG_STORAGE", "oauth"} {
		got := authorizeRaw(p, rawStorageRequest{Method: "GET", Path: "/f"}, "storage.read:/ read:/", "/", "")
		if got.Allow || got.Status != 403 {
			t.Errorf("profile %q: got %+v, want a 403", p, got)
		}
	}
}

func TestAuthorizeStorageEmptyHostTreatsDestinationAsLocal(t *testing.T) {
	// Without a Host we cannot tell, so a Destination URI is checked as a
	// local write: stricter for COPY, and MOVE stays possible.
	req := rawStorageRequest{Method: "COPY", Path: "/atlas/f", Destination: "https://anywhere.example.net/atlas/g"}
	got := authorizeRaw(ProfileWLCG, req, "storage.read:/atlas", "/", "")
	if got.Allow || got.Scope != "storage.modify:/atlas/g" {
		t.Errorf("got %+v, want a 403 naming storage.modify:/atlas/g", got)
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
			if got := tg.namesHost(host, tt.local, tt.more); got != tt.want {
				t.Errorf("namesHost = %v, want %v", got, tt.want)
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
	} {
		if _, err := ParseTarget(d); err == nil {
			t.Errorf("ParseTarget(%q) accepted", d)
		}
	}
	for _, d := range []string{"/a,b", "/a,1/b", "https://h.example.org/a,b", "/a;x/b", "https://[2001:db8::1]:8443/a", " /a "} {
		if _, err := ParseTarget(d); err != nil {
			t.Errorf("ParseTarget(%q): %v", d, err)
		}
	}
}

func BenchmarkAuthorizeStorage(b *testing.B) {
	nr, err := Normalize("GET", "storage.example.org", "/dcache/vo/atlas/data/run1/AOD.0001.root")
	if err != nil {
		b.Fatal(err)
	}
	req := StorageRequest{Request: nr}
	scope := "storage.read:/atlas storage.create:/atlas/user/alice storage.modify:/atlas/scratch"
	b.ReportAllocs()
	for b.Loop() {
		if d := AuthorizeStorage(ProfileWLCG, req, scope, "/dcache/vo", "1.0"); !d.Allow {
			b.Fatal("denied: " + d.Description)
		}
	}
}
