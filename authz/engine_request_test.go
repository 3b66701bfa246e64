package authz

import (
	"context"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/leasegate/leasegate/authz/issuer"
	"github.com/leasegate/leasegate/leasecache"
	"github.com/leasegate/leasegate/policy"
)

// Issue 19's accidental allows that hinge on how the engine reads the
// request: its path and host (class 1), a fragment (11), repeated WebDAV
// fields (3), accumulated route requirements (12) and which Destination
// names this server (13). Every example from the issue is here verbatim.

// reqCase is one request against a test engine and the decision expected.
type reqCase struct {
	name   string
	method string
	host   string // "" means storage.example.org
	path   string
	hdr    map[string][]string // besides Authorization
	tok    string              // "" means the case table's default token
	status int                 // 200 for allow
	reason Reason              // checked when set
	tier   string              // checked when set
}

func runReqCases(t *testing.T, env *engEnv, defTok string, cases []reqCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tok := tc.tok
			if tok == "" {
				tok = defTok
			}
			h := bearer(tok)
			for k, v := range tc.hdr {
				h[k] = v
			}
			host := tc.host
			if host == "" {
				host = "storage.example.org"
			}
			d := env.eng.Check(context.Background(), &Request{Method: tc.method, Host: host, Path: tc.path, Headers: h})
			if d.Status != tc.status || d.Allow != (tc.status == http.StatusOK) {
				t.Fatalf("%s %s (Host %q): status %d allow=%v (%s: %s), want %d",
					tc.method, tc.path, host, d.Status, d.Allow, d.Reason, d.Description, tc.status)
			}
			if tc.status == http.StatusBadRequest && (d.Error != ErrCodeInvalidRequest || d.Reason != ReasonMalformed) {
				t.Fatalf("400 with error %q reason %s, want invalid_request / %s", d.Error, d.Reason, ReasonMalformed)
			}
			if tc.reason != "" && d.Reason != tc.reason {
				t.Fatalf("reason %s, want %s", d.Reason, tc.reason)
			}
			if tc.tier != "" && d.Tier != tc.tier {
				t.Fatalf("tier %s, want %s", d.Tier, tc.tier)
			}
		})
	}
}

// TestEngineRouteSpellings is class 1: no spelling of a path or host may
// select a weaker route than its normalised form, and a path that cannot be
// normalised is 400 before any route is chosen, on every route.
func TestEngineRouteSpellings(t *testing.T) {
	env := newEngEnv(t, engOpts{routes: []policy.RouteConfig{
		{Prefix: "/data/", Require: policy.ProfileWLCG},
		{Prefix: "/vo/", Host: "storage.example.org", Require: policy.ProfileWLCG},
		{Prefix: "/admin/", Tier: policy.TierCritical},
	}})
	const tok = "opaque-spelling"
	// Reads /atlas and /public/vo only: nothing under /data or /vo.
	env.iss.setAnswer(tok, env.active(func(a map[string]any) { a["scope"] = "openid storage.read:/atlas storage.read:/public" }))
	runReqCases(t, env, tok, []reqCase{
		{name: "control: plain /data path needs the scope", method: "GET", path: "/data/secret", status: 403},
		{name: "control: a path no route names is allowed", method: "GET", path: "/public/f", status: 200},
		{name: "issue: GET /data;x/secret", method: "GET", path: "/data;x/secret", status: 403},
		{name: "issue: GET /%64ata/secret%zz", method: "GET", path: "/%64ata/secret%zz", status: 400},
		{name: `issue: GET /data\secret`, method: "GET", path: `/data\secret`, status: 400},
		{name: "issue: Host storage.example.org. (trailing dot)", method: "GET", host: "storage.example.org.", path: "/vo/secret", status: 403},
		{name: "encoded name of the prefix", method: "GET", path: "/%64ata/secret", status: 403},
		{name: "param on the last prefix segment", method: "GET", path: "/data;jsessionid=1", status: 403},
		{name: "host in upper case with default port", method: "GET", host: "STORAGE.example.org:443", path: "/vo/secret", status: 403},
		{name: "host with trailing dot and port 80", method: "GET", host: "storage.example.org.:80", path: "/vo/secret", status: 403},
		{name: "tier route reached through a param", method: "GET", path: "/admin;x/users", status: 200, tier: policy.TierCritical},
		{name: "undecodable path on a route without require", method: "GET", path: "/public/%zz", status: 400},
		{name: "encoded slash on a route without require", method: "GET", path: "/public/a%2Fb", status: 400},
		{name: "encoded backslash", method: "GET", path: "/public/a%5cb", status: 400},
		{name: "raw NUL", method: "GET", path: "/public/a\x00", status: 400},
		{name: "encoded NUL", method: "GET", path: "/public/a%00", status: 400},
		{name: "raw # in the path", method: "GET", path: "/public/a#b", status: 400},
		{name: "not an absolute path", method: "OPTIONS", path: "*", status: 400},
		{name: "invalid host", method: "GET", host: "storage.example.org:99999", path: "/public/f", status: 400},
	})
	// One validation, and one more for the critical (window 0) request: a
	// refused request never reaches the issuer.
	if env.calls() != 2 {
		t.Fatalf("issuer calls = %d, want 2", env.calls())
	}
}

// TestEngineFragmentInPath is class 11 for the request path: through nginx
// the fragment would move the authorised path off the served one.
func TestEngineFragmentInPath(t *testing.T) {
	env := newEngEnv(t, engOpts{routes: []policy.RouteConfig{{Prefix: "/", Require: policy.ProfileWLCG}}})
	const tok = "opaque-fragment-path"
	env.iss.setAnswer(tok, env.active(func(a map[string]any) { a["scope"] = "storage.read:/public" }))
	runReqCases(t, env, tok, []reqCase{
		{name: "control", method: "GET", path: "/public/x", status: 200},
		{name: "issue: GET /store/secret.root#/../../public/x", method: "GET", path: "/store/secret.root#/../../public/x", status: 400},
		{name: "encoded # is a name", method: "GET", path: "/public/a%23b", status: 200},
	})
}

// TestEngineFragmentInDestination is class 11 for Destination and Source:
// a fragment, userinfo or an unparseable authority is 400.
func TestEngineFragmentInDestination(t *testing.T) {
	env := newEngEnv(t, engOpts{routes: []policy.RouteConfig{{Prefix: "/atlas/", Require: policy.ProfileWLCG}}})
	const tok = "opaque-fragment-dest"
	env.iss.setAnswer(tok, env.active(func(a map[string]any) { a["scope"] = "storage.read:/atlas storage.modify:/atlas/scratch" }))
	dest := func(v ...string) map[string][]string { return map[string][]string{"destination": v} }
	src := func(v ...string) map[string][]string { return map[string][]string{"source": v} }
	runReqCases(t, env, tok, []reqCase{
		{name: "control: copy into scratch", method: "COPY", path: "/atlas/data/f", hdr: dest("/atlas/scratch/x"), status: 200},
		{name: "control: copy onto protected", method: "COPY", path: "/atlas/data/f", hdr: dest("/atlas/protected/victim"), status: 403},
		{name: "issue: Destination /atlas/protected/victim#/../../scratch/x", method: "COPY", path: "/atlas/data/f",
			hdr: dest("/atlas/protected/victim#/../../scratch/x"), status: 400},
		{name: "fragment in an absolute URI", method: "COPY", path: "/atlas/data/f",
			hdr: dest("https://storage.example.org/atlas/protected/victim#/../../scratch/x"), status: 400},
		{name: "empty fragment", method: "MOVE", path: "/atlas/scratch/a", hdr: dest("/atlas/scratch/b#"), status: 400},
		{name: "userinfo", method: "COPY", path: "/atlas/data/f", hdr: dest("https://u@remote.example.net/x"), status: 400},
		{name: "unparseable authority", method: "COPY", path: "/atlas/data/f", hdr: dest("https://remote.example.net:x/y"), status: 400},
		{name: "fragment in Source", method: "COPY", path: "/atlas/scratch/f", hdr: src("https://remote.example.net/f#x"), status: 400},
		{name: "userinfo in Source", method: "COPY", path: "/atlas/scratch/f", hdr: src("https://u:p@remote.example.net/f"), status: 400},
		{name: "fragment on a route without require", method: "COPY", path: "/elsewhere/f", hdr: dest("/elsewhere/g#x"), status: 400},
	})
}

// TestEngineAccumulatedRequirements is class 12: the tier comes from the
// first matching route, but every matching route's require: applies.
func TestEngineAccumulatedRequirements(t *testing.T) {
	env := newEngEnv(t, engOpts{routes: []policy.RouteConfig{
		{Prefix: "/atlas/upload/", Tier: policy.TierCritical},
		{Prefix: "/atlas/", Require: policy.ProfileWLCG},
		{Prefix: "/both/", Require: policy.ProfileWLCG},
		{Prefix: "/both/", Require: policy.ProfileSciTokens},
	}})
	tokens := map[string]string{
		"openid": "openid",
		"wlcg":   "storage.modify:/atlas storage.read:/both",
		"sci":    "read:/both",
		"both":   "storage.read:/both read:/both",
	}
	for name, scope := range tokens {
		env.iss.setAnswer("opaque-acc-"+name, env.active(func(a map[string]any) { a["scope"] = scope }))
	}
	runReqCases(t, env, "", []reqCase{
		{name: "issue: openid-only PUT under /atlas/upload/", method: "PUT", path: "/atlas/upload/f", tok: "opaque-acc-openid", status: 403, tier: policy.TierCritical},
		{name: "tier still from the first route", method: "PUT", path: "/atlas/upload/f", tok: "opaque-acc-wlcg", status: 200, tier: policy.TierCritical},
		{name: "openid-only PUT under /atlas/", method: "PUT", path: "/atlas/f", tok: "opaque-acc-openid", status: 403, tier: policy.TierWrite},
		{name: "wlcg and scitokens both required: wlcg only", method: "GET", path: "/both/f", tok: "opaque-acc-wlcg", status: 403},
		{name: "wlcg and scitokens both required: scitokens only", method: "GET", path: "/both/f", tok: "opaque-acc-sci", status: 403},
		{name: "wlcg and scitokens both required: both", method: "GET", path: "/both/f", tok: "opaque-acc-both", status: 200},
	})
}

// TestEngineRepeatedWebDAVFields is class 3: more than one Destination,
// Source, Overwrite or If-None-Match field is 400 on every request, counted
// or joined with "," by Envoy's headers map.
func TestEngineRepeatedWebDAVFields(t *testing.T) {
	env := newEngEnv(t, engOpts{routes: []policy.RouteConfig{{Prefix: "/atlas/", Require: policy.ProfileWLCG}}})
	const tok = "opaque-repeated"
	env.iss.setAnswer(tok, env.active(func(a map[string]any) { a["scope"] = "storage.read:/atlas storage.create:/atlas" }))
	const scratch = "opaque-repeated-scratch"
	env.iss.setAnswer(scratch, env.active(func(a map[string]any) { a["scope"] = "storage.modify:/atlas/scratch" }))
	h := func(kv ...string) map[string][]string {
		m := map[string][]string{}
		for i := 0; i+1 < len(kv); i += 2 {
			m[kv[i]] = append(m[kv[i]], kv[i+1])
		}
		return m
	}
	runReqCases(t, env, tok, []reqCase{
		{name: "control: create-only COPY with Overwrite F", method: "COPY", path: "/atlas/f", hdr: h("destination", "/atlas/g", "overwrite", "F"), status: 200},
		{name: "issue: Overwrite F then Overwrite T", method: "COPY", path: "/atlas/f", hdr: h("destination", "/atlas/g", "overwrite", "F", "overwrite", "T"), status: 400},
		{name: "Overwrite joined by Envoy", method: "COPY", path: "/atlas/f", hdr: h("destination", "/atlas/g", "overwrite", "F,T"), status: 400},
		{name: "issue: two Destination fields", method: "COPY", path: "/atlas/f", hdr: h("destination", "/atlas/g", "destination", "/atlas/h"), status: 400},
		{name: "Destination paths joined by Envoy", method: "COPY", path: "/atlas/f", hdr: h("destination", "/atlas/g,/atlas/h"), status: 400},
		{name: "Destination URIs joined by Envoy", method: "COPY", path: "/atlas/f", hdr: h("destination", "https://storage.example.org/atlas/g, https://remote.example.net/h"), status: 400},
		{name: "a raw comma inside a Destination name reads as two values", method: "COPY", path: "/atlas/f", hdr: h("destination", "/atlas/g,1", "overwrite", "F"), status: 400},
		{name: "an encoded comma inside a Destination name is one value", method: "COPY", path: "/atlas/f", hdr: h("destination", "/atlas/g%2C1", "overwrite", "F"), status: 200},
		{name: "two Source fields", method: "COPY", path: "/atlas/f", hdr: h("source", "https://remote.example.net/a", "source", "https://remote.example.net/b"), status: 400},
		{name: "Source URIs joined by Envoy", method: "COPY", path: "/atlas/f", hdr: h("source", "https://remote.example.net/a,https://remote.example.net/b"), status: 400},
		{name: "control: create-only PUT with If-None-Match *", method: "PUT", path: "/atlas/new", hdr: h("if-none-match", "*"), status: 200},
		{name: "two If-None-Match fields", method: "PUT", path: "/atlas/new", hdr: h("if-none-match", "*", "if-none-match", `"etag"`), status: 400},
		{name: "If-None-Match * joined with an etag", method: "PUT", path: "/atlas/new", hdr: h("if-none-match", `*, "etag"`), status: 400},
		{name: "If-None-Match etag list is one value", method: "GET", path: "/atlas/f", hdr: h("if-none-match", `"a", "b"`), status: 200},
		{name: "repeated fields on a route without require", method: "GET", path: "/elsewhere", hdr: h("overwrite", "T", "overwrite", "T"), status: 400},
		{name: "repeated Destination on a route without require", method: "MOVE", path: "/elsewhere/a", hdr: h("destination", "/elsewhere/b", "destination", "/atlas/c"), status: 400},
		// Two fields "/atlas/scratch/.." and "x", joined by Envoy: read as
		// one they name "/atlas/scratch/..,x" inside scratch, but a backend
		// that takes the first field (net/http, nginx, Apache) moves onto
		// /atlas itself.
		{name: "control: MOVE within scratch", method: "MOVE", path: "/atlas/scratch/a", tok: scratch, hdr: h("destination", "/atlas/scratch/b"), status: 200},
		{name: "control: MOVE onto /atlas", method: "MOVE", path: "/atlas/scratch/a", tok: scratch, hdr: h("destination", "/atlas/scratch/.."), status: 403},
		{name: "Destination ending in .. joined with a second field", method: "MOVE", path: "/atlas/scratch/a", tok: scratch, hdr: h("destination", "/atlas/scratch/..,x"), status: 400},
		{name: "Destination URI ending in %2e%2e joined with a second field", method: "MOVE", path: "/atlas/scratch/a", tok: scratch,
			hdr: h("destination", "https://storage.example.org/atlas/scratch/%2E%2e,x"), status: 400},
		{name: "Destination outside scratch joined with a second field that climbs back", method: "MOVE", path: "/atlas/scratch/a", tok: scratch,
			hdr: h("destination", "/atlas/protected/victim,x/../../scratch/y"), status: 400},
		{name: "Destination ending in . joined with a second field", method: "COPY", path: "/atlas/f", hdr: h("destination", "/atlas/scratch/.,x", "overwrite", "F"), status: 400},
	})
}

// TestEngineMethodOverride: a header that makes a backend run another
// method than the one the tier and scopes were chosen by is refused.
func TestEngineMethodOverride(t *testing.T) {
	env := newEngEnv(t, engOpts{routes: []policy.RouteConfig{{Prefix: "/atlas/", Require: policy.ProfileWLCG}}})
	const tok = "opaque-override"
	env.iss.setAnswer(tok, env.active(func(a map[string]any) { a["scope"] = "storage.read:/atlas" }))
	h := func(k, v string) map[string][]string { return map[string][]string{k: {v}} }
	runReqCases(t, env, tok, []reqCase{
		{name: "control: GET with read scope", method: "GET", path: "/atlas/f", status: 200},
		{name: "GET as DELETE", method: "GET", path: "/atlas/f", hdr: h("x-http-method-override", "DELETE"), status: 400},
		{name: "X-HTTP-Method", method: "GET", path: "/atlas/f", hdr: h("x-http-method", "PUT"), status: 400},
		{name: "X-Method-Override", method: "GET", path: "/atlas/f", hdr: h("x-method-override", "MOVE"), status: 400},
		{name: "lower-case method is another method", method: "GET", path: "/atlas/f", hdr: h("x-http-method-override", "delete"), status: 400},
		{name: "on a route without require", method: "POST", path: "/elsewhere", hdr: h("x-http-method-override", "DELETE"), status: 400},
		{name: "two fields", method: "GET", path: "/atlas/f", hdr: map[string][]string{"x-http-method-override": {"GET", "DELETE"}}, status: 400},
		{name: "its own method named again", method: "GET", path: "/atlas/f", hdr: h("x-http-method-override", "GET"), status: 200},
		// Rack reads HTTP_X_HTTP_METHOD_OVERRIDE, which CGI makes of either spelling.
		{name: "underscore spelling", method: "POST", path: "/atlas/f", hdr: h("x_http_method_override", "DELETE"), status: 400},
		{name: "one underscore", method: "POST", path: "/atlas/f", hdr: h("x-http_method-override", "DELETE"), status: 400},
		{name: "underscore X-Method-Override naming its own method", method: "GET", path: "/atlas/f", hdr: h("x_method_override", "GET"), status: 400},
		{name: "control: unrelated underscore header", method: "GET", path: "/atlas/f", hdr: h("x_request_id", "1"), status: 200},
		// Express's method-override, Symfony and Laravel also read the query.
		{name: "_method in the query", method: "GET", path: "/atlas/f?_method=DELETE", status: 400},
		{name: "_method after another parameter", method: "GET", path: "/atlas/f?a=1&_method=delete", status: 400},
		{name: "_method with an encoded name", method: "GET", path: "/atlas/f?%5F%6Dethod=PUT", status: 400},
		{name: "_method spelled as PHP folds it", method: "GET", path: "/atlas/f?.method=PUT", status: 400},
		{name: "_method with a bad escape", method: "GET", path: "/atlas/f?_method=%zz", status: 400},
		{name: "_method after a leading space (PHP drops it)", method: "GET", path: "/atlas/f?%20_method=DELETE", status: 400},
		{name: "_method after a leading +", method: "GET", path: "/atlas/f?+_method=DELETE", status: 400},
		{name: "_method cut at a NUL (PHP)", method: "GET", path: "/atlas/f?_method%00=DELETE", status: 400},
		{name: "_method cut at a NUL, then a bad escape", method: "GET", path: "/atlas/f?_method%00%zz=DELETE", status: 400},
		{name: "_method after a ;", method: "GET", path: "/atlas/f?a=1;_method=DELETE", status: 400},
		{name: "_method as an array", method: "GET", path: "/atlas/f?_method[]=DELETE", status: 400},
		{name: "_method naming its own method", method: "GET", path: "/atlas/f?_method=GET", status: 200},
		{name: "control: longer names", method: "GET", path: "/atlas/f?_methodical=DELETE&__method=PUT&_method_=PUT", status: 200},
		{name: "control: other parameters", method: "GET", path: "/atlas/f?x_method=DELETE&_methods=PUT&method=DELETE", status: 200},
	})
}

// TestEngineDestinationNamesThisServer is class 13: a Destination naming this
// server by another spelling is a local copy (read here and write there),
// not a push that only needs read.
func TestEngineDestinationNamesThisServer(t *testing.T) {
	env := newEngEnv(t, engOpts{routes: []policy.RouteConfig{{Prefix: "/atlas/", Require: policy.ProfileWLCG}}})
	const tok = "opaque-local-dest"
	env.iss.setAnswer(tok, env.active(func(a map[string]any) { a["scope"] = "storage.read:/atlas" }))
	dest := func(v string) map[string][]string { return map[string][]string{"destination": {v}} }
	runReqCases(t, env, tok, []reqCase{
		{name: "control: push to another fully qualified host", method: "COPY", path: "/atlas/f", hdr: dest("https://remote.example.net/atlas/f"), status: 200},
		{name: "control: the request's own host", method: "COPY", path: "/atlas/f", hdr: dest("https://storage.example.org/atlas/g"), status: 403},
		{name: "unqualified name", method: "COPY", path: "/atlas/f", hdr: dest("https://storage/atlas/g"), status: 403},
		{name: "IPv4 literal", method: "COPY", path: "/atlas/f", hdr: dest("https://192.0.2.10:8443/atlas/g"), status: 403},
		{name: "IPv6 literal", method: "COPY", path: "/atlas/f", hdr: dest("https://[2001:db8::1]/atlas/g"), status: 403},
		{name: "localhost", method: "COPY", path: "/atlas/f", hdr: dest("http://localhost:2880/atlas/g"), status: 403},
		{name: "same host on another port", method: "COPY", host: "storage.example.org:8443", path: "/atlas/f", hdr: dest("https://storage.example.org:2881/atlas/g"), status: 403},
		{name: "same host spelled with a trailing dot", method: "COPY", path: "/atlas/f", hdr: dest("https://STORAGE.example.org./atlas/g"), status: 403},
	})
}

// TestEngineLocalHosts is class 13's local_hosts: a route's or an issuer's
// other names of this server make a Destination on them local.
func TestEngineLocalHosts(t *testing.T) {
	const tok = "opaque-local-hosts"
	dest := func(v string) map[string][]string { return map[string][]string{"destination": {v}} }
	tests := []struct {
		name        string
		routeHosts  []string
		issuerHosts []string
		dest        string
		status      int
	}{
		{name: "no aliases: a push", dest: "https://dav.example.org/atlas/g", status: 200},
		{name: "route alias", routeHosts: []string{"DAV.example.org."}, dest: "https://dav.example.org/atlas/g", status: 403},
		{name: "issuer alias", issuerHosts: []string{"dav.example.org"}, dest: "https://Dav.Example.Org.:443/atlas/g", status: 403},
		{name: "alias of something else", routeHosts: []string{"other.example.org"}, issuerHosts: []string{"more.example.org"}, dest: "https://dav.example.org/atlas/g", status: 200},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := newEngEnv(t, engOpts{
				routes: []policy.RouteConfig{{Prefix: "/atlas/", Require: policy.ProfileWLCG, LocalHosts: tt.routeHosts}},
				issuer: func(ic *IssuerConfig) { ic.LocalHosts = tt.issuerHosts },
			})
			env.iss.setAnswer(tok, env.active(func(a map[string]any) { a["scope"] = "storage.read:/atlas" }))
			runReqCases(t, env, tok, []reqCase{{name: "COPY", method: "COPY", path: "/atlas/f", hdr: dest(tt.dest), status: tt.status}})
		})
	}
	t.Run("bad issuer alias", func(t *testing.T) {
		pol, err := policy.New(policy.Config{Tiers: policy.DefaultTiers(), LeaseMax: time.Minute})
		if err != nil {
			t.Fatal(err)
		}
		cache, err := leasecache.New(leasecache.Config{MaxMemoryMB: 8, MaxAge: time.Minute})
		if err != nil {
			t.Fatal(err)
		}
		defer func() { _ = cache.Close() }()
		_, err = New(context.Background(), Config{Policy: pol, Cache: cache, Issuers: []IssuerConfig{{
			Name: "x", Issuer: "https://x.example.org/", Mode: ModeIntrospection, LocalHosts: []string{"dav.example.org:443"},
			Introspection: issuer.IntrospectionConfig{Endpoint: "https://x.example.org/introspect", Auth: "none"},
		}}})
		if err == nil || !strings.Contains(err.Error(), "local_hosts") {
			t.Fatalf("New = %v, want a local_hosts error", err)
		}
	})
}

// TestTokenInQueryIsNotAccepted: SPEC §3, "Tokens in query strings are not
// accepted": a token the issuer vouches for, sent in the query or in a
// header other than Authorization, is no token (401, no issuer call).
func TestTokenInQueryIsNotAccepted(t *testing.T) {
	env := newEngEnv(t, engOpts{})
	const tok = "opaque-token-in-query-0123456789"
	env.iss.setAnswer(tok, env.active(nil))
	for _, tc := range []struct {
		name string
		path string
		h    engHeaders
	}{
		{"access_token in the query", "/f?access_token=" + tok, engHeaders{}},
		{"bearer in the query", "/f?bearer=" + tok + "&x=1", engHeaders{}},
		{"access_token header", "/f", engHeaders{"access_token": {tok}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := env.eng.Check(t.Context(), &Request{Method: "GET", Path: tc.path, Host: "storage.example.org", Headers: tc.h})
			if d.Allow || d.Status != 401 || d.Reason != ReasonNoToken {
				t.Fatalf("got %+v, want 401 no_token", d)
			}
		})
	}
	if n := env.calls(); n != 0 {
		t.Fatalf("the issuer was asked %d times", n)
	}
	if d := env.check("GET", "/f", tok); !d.Allow {
		t.Fatalf("the same token in Authorization: %+v, want allowed", d)
	}
}

// TestCheckKeepsNoRequest: once Check returns, the engine no longer reads
// the Request, even while the validation it started goes on (the envoy
// adapter recycles the struct the Request and its headers live in). The
// caller gives up during the issuer call; every header read after that
// is counted, and the Request is then rewritten with another token: the
// lease that fills is the first token's.
func TestCheckKeepsNoRequest(t *testing.T) {
	env := newEngEnv(t, engOpts{})
	h := holdFirstCall(env)
	first, second := "token-of-the-first-request", "token-written-over-it"
	hs := &lateReads{h: bearer(first)}
	r := &Request{Method: "GET", Path: "/f", Host: "storage.example.org", Headers: hs}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan Decision, 1)
	go func() { done <- env.eng.Check(ctx, r) }()
	<-h.inCall
	cancel()
	if d := <-done; d.Allow {
		t.Fatalf("the cancelled request = %+v, want no allow", d)
	}
	hs.returned.Store(true)
	over := &lateReads{h: bearer(second)}
	over.returned.Store(true)
	*r = Request{Method: "DELETE", Path: "/other", Host: "elsewhere.example.org", Headers: over}
	close(h.release)

	deadline := time.Now().Add(5 * time.Second)
	for {
		if _, o := env.cache.Lookup(leasecache.KeyOf(first), time.Minute); o == leasecache.Hit {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the first token's lease never filled")
		}
		time.Sleep(time.Millisecond)
	}
	// Join the flight if it is still going (it stored the lease before it
	// ended): its reads are all counted once this returns.
	_, _, _ = env.eng.group.Do(flightKey(engIssuerName, leasecache.KeyOf(first), env.cache.Generation()), func() (any, error) { return nil, nil })
	if n := hs.late.Load() + over.late.Load(); n != 0 {
		t.Errorf("%d header reads after Check returned", n)
	}
	if _, o := env.cache.Lookup(leasecache.KeyOf(second), time.Minute); o != leasecache.Miss {
		t.Fatalf("the token written over the request: lookup = %v, want Miss", o)
	}
	if got := env.calls(); got != 1 {
		t.Fatalf("issuer calls = %d, want 1", got)
	}
}

// lateReads counts the reads made once returned is set.
type lateReads struct {
	h        engHeaders
	returned atomic.Bool
	late     atomic.Int32
}

func (l *lateReads) UnderscoreName(match func(string) bool) string {
	if l.returned.Load() {
		l.late.Add(1)
	}
	return l.h.UnderscoreName(match)
}

func (l *lateReads) Get(name string) (string, int) {
	if l.returned.Load() {
		l.late.Add(1)
		return l.h.Get(name)
	}
	return l.h.Get(name)
}
