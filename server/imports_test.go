package server

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"maps"
	"os/exec"
	"slices"
	"strings"
	"testing"
)

const module = "github.com/leasegate/leasegate"

// allowedImports is the import direction (README, Development): each
// package of the module and the packages of the module it may import
// directly, by path inside the module ("." is main). Every other edge
// inside the module is refused, so nothing imports upward or sideways:
// envoy and server/forwardauth are siblings that never import each other
// or server. A new package gets one line here (and its importers an entry
// each); TestImportRulesSeeEveryPackage refuses a line for a package that
// does not exist, so authz/issuer, already allowed below authz, gets its
// line when it is made: `"authz/issuer": {},` plus what it imports.
var allowedImports = map[string][]string{
	".":      {"server", "server/config"},
	"server": {"server/config", "server/telemetry", "server/fleetlink", "server/unixsocket", "envoy", "server/forwardauth", "server/push", "authz", "authz/denylog", "authz/fleetmode", "authz/issuer", "authz/metrics", "policy", "policy/storage", "leasecache", "leasecache/fleet"},
	// The YAML configuration: it decodes and places problems, and runs the
	// checks of the packages that own each field (tracing: server/telemetry).
	"server/config":    {"server/config/yamltree", "server/telemetry", "server/unixsocket", "server/push", "authz", "authz/denylog", "authz/fleetmode", "authz/trust", "authz/issuer", "policy", "policy/lifetime", "policy/storage", "leasecache", "leasecache/fleet"},
	"server/telemetry": {},
	// Binding a Unix socket listener: private directory, mode, owner, link.
	"server/unixsocket": {},
	// Strict YAML decoding through the node tree, with lines.
	"server/config/yamltree": {},
	// The replica's link to the fleet's store, kept across generations.
	"server/fleetlink":   {"authz/fleetmode", "leasecache", "leasecache/fleet"},
	"envoy":              {"authz"},
	"server/forwardauth": {"authz"},
	// The push receivers verify with authz/issuer's key sets and name what
	// they revoke in leasecache's terms; the Revoker they call is server's.
	"server/push": {"authz/denylog", "authz/issuer", "leasecache"},
	// authz imports the fleet package for the store's two value types
	// (Position, Outcome) only.
	"authz": {"authz/denylog", "authz/fleetmode", "authz/headertext", "authz/metrics", "authz/panics", "authz/recent", "authz/request", "authz/trust", "authz/issuer", "policy", "policy/lifetime", "policy/storage", "leasecache", "leasecache/fleet"},
	// The engine's fleet mode declares the SharedStore it consumes.
	"authz/fleetmode": {"leasecache", "leasecache/fleet"},
	// Reading a request: its normal form, single fields, method overrides
	// (their underscore spellings by authz/headertext's rule), bearer
	// token, span attributes.
	"authz/request": {"authz/headertext", "policy"},
	// The trusted issuers: their config, checks, clients and breaker.
	"authz/trust": {"authz/issuer", "policy", "policy/lifetime"},
	// The engine's Prometheus series.
	"authz/metrics": {"leasecache/fleet"},
	// The rate limit on denial log lines.
	"authz/denylog": {},
	// What a log line may say of a recovered panic.
	"authz/panics": {},
	// What text may go into a header: the RFC 6750 challenge, claim values
	// passed upstream, underscore twins.
	"authz/headertext": {},
	// The bounded map of recent hits' views.
	"authz/recent": {},
	"authz/issuer": {"authz/issuer/jwks"},
	// One issuer's key set: discovery, fetches, refresh, candidate keys.
	"authz/issuer/jwks": {},
	"policy":            {"policy/lifetime"},
	"policy/lifetime":   {},
	"policy/storage":    {"policy"},
	"leasecache":        {},
	"leasecache/fleet":  {"leasecache", "leasecache/fleet/revlog"},
	// The revocation log: records, follower, fence index.
	"leasecache/fleet/revlog": {"leasecache"},
	// Test helpers, imported from _test.go files only (make lint).
	"internal/testclock": {},
	"internal/testredis": {},
	// make lint's size check, a program of its own.
	"internal/tools/linelimit": {},
}

// forbiddenDeps are import path prefixes a package must not depend on,
// even transitively.
var forbiddenDeps = map[string][]string{
	// STYLE: policy/ and leasecache/ never import protos, gRPC or HTTP.
	"policy":     {"net/http", "google.golang.org/grpc", "google.golang.org/protobuf", "google.golang.org/genproto", "github.com/envoyproxy/go-control-plane"},
	"leasecache": {"net/http", "google.golang.org/grpc", "google.golang.org/protobuf", "google.golang.org/genproto", "github.com/envoyproxy/go-control-plane"},

	// policy/storage, policy/lifetime and authz/request are as pure as the
	// policy they read.
	"authz/headertext": {"net/http", "google.golang.org/grpc", "google.golang.org/protobuf", "google.golang.org/genproto", "github.com/envoyproxy/go-control-plane"},
	"authz/request":    {"net/http", "google.golang.org/grpc", "google.golang.org/protobuf", "google.golang.org/genproto", "github.com/envoyproxy/go-control-plane"},
	"policy/storage":   {"net/http", "google.golang.org/grpc", "google.golang.org/protobuf", "google.golang.org/genproto", "github.com/envoyproxy/go-control-plane"},
	"policy/lifetime":  {"net/http", "google.golang.org/grpc", "google.golang.org/protobuf", "google.golang.org/genproto", "github.com/envoyproxy/go-control-plane"},

	// The decision and HTTP mode know nothing of gRPC or Envoy's protos.
	"authz":              {"google.golang.org/grpc", "google.golang.org/genproto", "github.com/envoyproxy/go-control-plane"},
	"authz/fleetmode":    {"google.golang.org/grpc", "google.golang.org/genproto", "github.com/envoyproxy/go-control-plane"},
	"authz/trust":        {"google.golang.org/grpc", "google.golang.org/genproto", "github.com/envoyproxy/go-control-plane"},
	"authz/issuer":       {"google.golang.org/grpc", "google.golang.org/genproto", "github.com/envoyproxy/go-control-plane"},
	"authz/issuer/jwks":  {"google.golang.org/grpc", "google.golang.org/genproto", "github.com/envoyproxy/go-control-plane"},
	"server/forwardauth": {"google.golang.org/grpc", "google.golang.org/genproto", "github.com/envoyproxy/go-control-plane"},
	"server/push":        {"google.golang.org/grpc", "google.golang.org/genproto", "github.com/envoyproxy/go-control-plane"},
}

// onlyImporters: packages outside the module that exactly these packages
// may import directly (STYLE: envoy/ is the only package that imports
// go-control-plane's ext_authz types).
var onlyImporters = map[string][]string{
	"github.com/envoyproxy/go-control-plane": {"envoy"},
}

// listedPackage is what `go list -json` says of one package of the module.
type listedPackage struct {
	ImportPath string
	Imports    []string // direct, production code only
	Deps       []string // transitive
}

// listModule runs `go list -deps -json` over the module's packages (the
// e2e module is its own and not included): the module's own packages by
// path inside it, and every package listed (dependencies too) by import
// path.
func listModule(t *testing.T) (own, all map[string]listedPackage) {
	t.Helper()
	cmd := exec.Command("go", "list", "-deps", "-json=ImportPath,Imports,Deps", "./...")
	cmd.Dir = ".."
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, stderr.String())
	}
	own, all = map[string]listedPackage{}, map[string]listedPackage{}
	dec := json.NewDecoder(bytes.NewReader(out))
	for {
		var p listedPackage
		if err := dec.Decode(&p); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatalf("go list output: %v", err)
		}
		all[p.ImportPath] = p
		if rel, ok := inModule(p.ImportPath); ok {
			own[rel] = p
		}
	}
	if len(own) == 0 {
		t.Fatal("go list found no package of the module")
	}
	return own, all
}

// inModule returns path relative to the module ("." for its root).
func inModule(path string) (string, bool) {
	if path == module {
		return ".", true
	}
	rel, ok := strings.CutPrefix(path, module+"/")
	return rel, ok
}

// under reports whether path is prefix or a package below it.
func under(path, prefix string) bool {
	return path == prefix || strings.HasPrefix(path, prefix+"/")
}

func TestImportDirection(t *testing.T) {
	pkgs, all := listModule(t)
	for _, rel := range slices.Sorted(maps.Keys(pkgs)) {
		p := pkgs[rel]
		allowed, known := allowedImports[rel]
		if !known {
			t.Errorf("package %s is not in allowedImports: give it a line saying what it may import", rel)
		}
		for _, imp := range p.Imports {
			if dep, ok := inModule(imp); ok && known && !slices.Contains(allowed, dep) {
				t.Errorf("%s imports %s; allowed: %v", rel, dep, allowed)
			}
			for prefix, importers := range onlyImporters {
				if under(imp, prefix) && !slices.Contains(importers, rel) {
					t.Errorf("%s imports %s; only %v may import %s", rel, imp, importers, prefix)
				}
			}
		}
		for _, bad := range forbiddenDeps[rel] {
			if i := slices.IndexFunc(p.Deps, func(dep string) bool { return under(dep, bad) }); i >= 0 {
				t.Errorf("%s depends on %s (%s, through its import %s)", rel, bad, p.Deps[i], importedThrough(all, p, p.Deps[i]))
			}
		}
	}
}

// importedThrough names the direct import of p that is dep or brings it in.
func importedThrough(all map[string]listedPackage, p listedPackage, dep string) string {
	for _, imp := range p.Imports {
		if imp == dep || slices.Contains(all[imp].Deps, dep) {
			return imp
		}
	}
	return "?"
}

// TestImportRulesSeeEveryPackage guards the test itself: the rules name
// packages that exist, so a rename does not quietly turn a rule off.
func TestImportRulesSeeEveryPackage(t *testing.T) {
	pkgs, _ := listModule(t)
	for _, table := range []map[string][]string{allowedImports, forbiddenDeps} {
		for rel := range table {
			if _, ok := pkgs[rel]; !ok {
				t.Errorf("the import rules name %s, which go list does not know", rel)
			}
		}
	}
	for _, importers := range onlyImporters {
		for _, rel := range importers {
			if _, ok := pkgs[rel]; !ok {
				t.Errorf("the import rules name %s, which go list does not know", rel)
			}
		}
	}
}
