package server

import (
	"fmt"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
)

// lifetimeTmpl is a served configuration with a route limit and a global
// one (%s: the introspection endpoint, lease.max_token_lifetime).
const lifetimeTmpl = `
listen: { grpc: "127.0.0.1:0", admin: "127.0.0.1:0" }
issuers:
  - name: fake
    issuer: "https://issuer.test"
    default_for_opaque: true
    introspection: { endpoint: "%s", auth: none, timeout: 500ms }
routes:
  - prefix: /short/
    max_token_lifetime: 1h
lease:
  max: 10m
  max_memory_mb: 8
  max_token_lifetime: %s
server: { start_grace: 2s, drain_timeout: 5s }
`

// TestServedLifetimePolicy: the YAML keys reach the engine and GET
// /config; a reload changes the policy without dropping leases. The fake
// issuer answers without iat, so a limit refuses its tokens, saying which.
func TestServedLifetimePolicy(t *testing.T) {
	iss := newFakeIssuer(t)
	iss.set("tok", true)
	r := startConfigured(t, fmt.Sprintf(lifetimeTmpl, iss.URL, "0s"), nil)
	waitServing(t, r)

	if o := check(r, envoyRequest("GET", "/data/f", "tok")); o.code() != codes.OK {
		t.Fatalf("GET /data/ without a limit there: %v", o)
	}
	o := check(r, envoyRequest("GET", "/short/f", "tok"))
	if o.httpStatus() != 401 || !strings.Contains(o.deniedHeader("www-authenticate"), `error_description="token has no iat, which the lifetime policy (route /short/: 1h) requires"`) {
		t.Fatalf("GET /short/: %v, challenge %q", o, o.deniedHeader("www-authenticate"))
	}
	tl, _ := getConfig(t, r)["token_lifetime"].(map[string]any)
	routes, _ := tl["routes"].([]any)
	if g, _ := tl["global"].(map[string]any); g["max_token_lifetime"] != "none" || len(routes) != 1 ||
		fmt.Sprint(routes[0]) != "map[max_token_lifetime:1h max_token_lifetime_seconds:3600 prefix:/short/ source:route /short/]" {
		t.Fatalf("/config token_lifetime = %v", tl)
	}

	if !reloadWith(t, r, fmt.Sprintf(lifetimeTmpl, iss.URL, "12h")) {
		t.Fatal("reload refused")
	}
	calls := iss.calls.Load()
	o = check(r, envoyRequest("GET", "/data/f", "tok"))
	if o.httpStatus() != 401 || !strings.Contains(o.deniedHeader("www-authenticate"), "(global: 12h)") {
		t.Fatalf("GET /data/ under the reloaded global limit: %v, challenge %q", o, o.deniedHeader("www-authenticate"))
	}
	if n := iss.calls.Load() - calls; n != 0 {
		t.Errorf("%d issuer calls: the lease knows the issuer gave no iat and refuses from it", n)
	}
	tl, _ = getConfig(t, r)["token_lifetime"].(map[string]any)
	if g, _ := tl["global"].(map[string]any); g["max_token_lifetime"] != "12h" {
		t.Fatalf("/config token_lifetime after reload = %v", tl)
	}
}
