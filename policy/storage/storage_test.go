package storage

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/leasegate/leasegate/policy"

	"go.yaml.in/yaml/v3"
)

// storageCase is one entry of testdata/cases.yaml.
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
	Depth       string `yaml:"depth"`
	// Conditional is the route's conditional_create.
	ConditionalCreate bool     `yaml:"conditional_create"`
	Scope             string   `yaml:"scope"`
	WLCGVer           string   `yaml:"wlcg_ver"`
	LocalHosts        []string `yaml:"local_hosts"`
	Want              struct {
		Allow bool `yaml:"allow"`
		// Conditional: allowed only with If-None-Match: * upstream.
		Conditional bool   `yaml:"conditional"`
		Status      int    `yaml:"status"`
		Error       string `yaml:"error"`
		Scope       string `yaml:"scope"`
	} `yaml:"want"`
}

// rawStorageRequest is a storage request as a proxy reports it, before
// Normalize.
type rawStorageRequest struct {
	Method, Path, Host                          string
	Destination, Source, IfNoneMatch, Overwrite string
	Depth                                       string
	ConditionalCreate                           bool
	LocalHosts                                  []string
}

// authorizeRaw is what the engine does with a request on a storage route:
// policy.Normalize (400 when it refuses), then Authorize.
func authorizeRaw(profile policy.StorageProfile, raw rawStorageRequest, scope, base, ver string) Decision {
	nr, err := policy.Normalize(raw.Method, raw.Host, raw.Path)
	if err != nil {
		return deny(400, errInvalidRequest, "request path is not acceptable", "")
	}
	req := Request{
		Request: nr, Destination: raw.Destination, Source: raw.Source,
		IfNoneMatch: raw.IfNoneMatch, Overwrite: raw.Overwrite, RouteLocalHosts: raw.LocalHosts,
		Depth: raw.Depth, ConditionalCreate: raw.ConditionalCreate,
	}
	return Authorize(profile, req, scope, base, ver)
}

func (c storageCase) args() (policy.StorageProfile, rawStorageRequest, string, string, string) {
	profile := policy.StorageProfile(c.Profile)
	if profile == "" {
		profile = policy.ProfileWLCG
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
		Depth:       c.Depth,

		ConditionalCreate: c.ConditionalCreate,
	}
	req.LocalHosts = c.LocalHosts
	return profile, req, c.Scope, base, c.WLCGVer
}

func loadStorageCases(tb testing.TB) []storageCase {
	tb.Helper()
	raw, err := os.ReadFile(filepath.Join("testdata", "cases.yaml"))
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
			if got.Allow != c.Want.Allow || got.Conditional != c.Want.Conditional || got.Status != c.Want.Status || got.Error != c.Want.Error || got.Scope != c.Want.Scope {
				t.Errorf("got allow=%v conditional=%v status=%d error=%q scope=%q (%s)\nwant allow=%v conditional=%v status=%d error=%q scope=%q",
					got.Allow, got.Conditional, got.Status, got.Error, got.Scope, got.Description,
					c.Want.Allow, c.Want.Conditional, c.Want.Status, c.Want.Error, c.Want.Scope)
			}
			checkDecisionShape(t, got)
		})
	}
}

// checkDecisionShape asserts the invariants every decision keeps, whatever
// the input: the RFC 6750 code matches the status, only a 403 names a scope.
func checkDecisionShape(t testing.TB, d Decision) {
	t.Helper()
	if d.Conditional && !d.Allow {
		t.Errorf("a denial marked conditional: %+v", d)
	}
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
			got := authorizeRaw(policy.ProfileWLCG, tt.req, tt.scope, "/", "1.0")
			if got.Allow != tt.allow {
				t.Errorf("allow = %v, want %v (%+v)", got.Allow, tt.allow, got)
			}
		})
	}
}

func TestAuthorizeStorageUnknownProfileFailsClosed(t *testing.T) {
	for _, p := range []policy.StorageProfile{"", "WLCG_STORAGE", "oauth"} {
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
	got := authorizeRaw(policy.ProfileWLCG, req, "storage.read:/atlas", "/", "")
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

func BenchmarkAuthorizeStorage(b *testing.B) {
	nr, err := policy.Normalize("GET", "storage.example.org", "/dcache/vo/atlas/data/run1/AOD.0001.root")
	if err != nil {
		b.Fatal(err)
	}
	req := Request{Request: nr}
	scope := "storage.read:/atlas storage.create:/atlas/user/alice storage.modify:/atlas/scratch"
	b.ReportAllocs()
	for b.Loop() {
		if d := Authorize(policy.ProfileWLCG, req, scope, "/dcache/vo", "1.0"); !d.Allow {
			b.Fatal("denied: " + d.Description)
		}
	}
}
