package authz

import (
	"net/http"
	"testing"
	"time"

	"github.com/leasegate/leasegate/policy"
)

// A MOVE or COPY touches two paths: the request path and its Destination
// (or, for a COPY pull, its Source). SPEC §1: "every matching route's
// require: ... applies" and "No spelling of a path or host may select a
// weaker route", so a target on this server brings its own routes'
// requirements and can only shorten the lease window. A target on another
// server is that server's business.

// targetRoutes: /data/ and /both/ need scopes, /admin/ is critical, /slow/
// caps the window, /vo/ needs scopes on this server's main name only and
// /alias/ on another of its names.
func targetRoutes() []policy.RouteConfig {
	return []policy.RouteConfig{
		{Prefix: "/admin/", Tier: policy.TierCritical},
		{Prefix: "/data/", Require: policy.ProfileWLCG, LocalHosts: []string{"dav.example.org"}},
		{Prefix: "/both/", Require: policy.ProfileWLCG},
		{Prefix: "/both/", Require: policy.ProfileSciTokens},
		{Prefix: "/vo/", Host: "storage.example.org", Require: policy.ProfileSciTokens},
		{Prefix: "/alias/", Host: "webdav.example.org", Require: policy.ProfileSciTokens},
		{Prefix: "/slow/", Window: durp(time.Second)},
	}
}

func durp(d time.Duration) *time.Duration { return &d }

// TestEngineTargetRequirements: the MOVE and COPY into, and COPY
// pull out of, a require: route from a public one, by path and by URI.
func TestEngineTargetRequirements(t *testing.T) {
	env := newEngEnv(t, engOpts{
		routes: targetRoutes(),
		issuer: func(ic *IssuerConfig) { ic.LocalHosts = []string{"webdav.example.org"} },
	})
	tokens := map[string]string{
		"openid": "openid",
		"data":   "storage.read:/data storage.modify:/data",
		"wlcg":   "storage.read:/ storage.modify:/",
		"sci":    "read:/ write:/",
		"both":   "storage.read:/ storage.modify:/ read:/ write:/",
	}
	for name, scope := range tokens {
		env.iss.setAnswer("opaque-tgt-"+name, env.active(func(a map[string]any) { a["scope"] = scope }))
	}
	dest := func(v string) map[string][]string { return map[string][]string{"destination": {v}} }
	src := func(v string) map[string][]string { return map[string][]string{"source": {v}} }
	const openid = "opaque-tgt-openid"
	runReqCases(t, env, openid, []reqCase{
		// MOVE
		{name: "control: MOVE within public paths", method: "MOVE", path: "/public/x", hdr: dest("/public/z"), status: 200},
		{name: "issue: MOVE into /data/ by path", method: "MOVE", path: "/public/x", hdr: dest("/data/secret"), status: 403, reason: ReasonScope},
		{name: "issue: MOVE into /data/ by this server's URI", method: "MOVE", path: "/public/x", hdr: dest("http://storage.example.org/data/secret"), status: 403},
		{name: "MOVE into /data/ spelled otherwise", method: "MOVE", path: "/public/x", hdr: dest("https://STORAGE.Example.org.:443/public/../%64ata;v=1/secret?x"), status: 403},
		{name: "MOVE into /data/ on localhost", method: "MOVE", path: "/public/x", hdr: dest("http://localhost:2880/data/secret"), status: 403},
		{name: "MOVE into /data/ on a name its route lists in local_hosts", method: "MOVE", path: "/public/x", hdr: dest("https://dav.example.org/data/secret"), status: 403},
		{name: "MOVE into /data/ with scopes on /data/ only", tok: "opaque-tgt-data", method: "MOVE", path: "/public/x", hdr: dest("/data/secret"), status: 403, reason: ReasonScope},
		{name: "MOVE into /data/ with scopes on both ends", tok: "opaque-tgt-wlcg", method: "MOVE", path: "/public/x", hdr: dest("/data/secret"), status: 200},
		{name: "MOVE out of /data/ (request route) still checked", tok: "opaque-tgt-data", method: "MOVE", path: "/data/secret", hdr: dest("/public/x"), status: 403},
		{name: "MOVE to another server is that server's business", method: "MOVE", path: "/public/x", hdr: dest("https://remote.example.net/data/secret"), status: 200},
		// COPY with Destination
		{name: "issue: COPY into /data/ by path", method: "COPY", path: "/public/y", hdr: dest("/data/secret"), status: 403},
		{name: "issue: COPY into /data/ by this server's URI", method: "COPY", path: "/public/y", hdr: dest("https://storage.example.org/data/secret"), status: 403},
		{name: "COPY into /data/ on an IP literal", method: "COPY", path: "/public/y", hdr: dest("http://192.0.2.10:8080/data/secret"), status: 403},
		{name: "COPY into /data/ with scopes on both ends", tok: "opaque-tgt-wlcg", method: "COPY", path: "/public/y", hdr: dest("/data/secret"), status: 200},
		{name: "COPY push to another server", method: "COPY", path: "/public/y", hdr: dest("https://remote.example.net/data/secret"), status: 200},
		// COPY with Source
		{name: "issue: COPY pulling /data/ by path", method: "COPY", path: "/public/y", hdr: src("/data/secret"), status: 403},
		{name: "issue: COPY pulling /data/ by this server's URI", method: "COPY", path: "/public/y", hdr: src("https://storage.example.org/data/secret"), status: 403},
		{name: "COPY pulling /data/ by an unqualified name", method: "COPY", path: "/public/y", hdr: src("https://storage/data/./secret"), status: 403},
		{name: "COPY pulling /data/ with scopes on /data/ only", tok: "opaque-tgt-data", method: "COPY", path: "/public/y", hdr: src("/data/secret"), status: 403},
		{name: "COPY pulling /data/ with scopes on both ends", tok: "opaque-tgt-wlcg", method: "COPY", path: "/public/y", hdr: src("/data/secret"), status: 200},
		{name: "COPY pull from another server", method: "COPY", path: "/public/y", hdr: src("https://remote.example.net/data/secret"), status: 200},
		// every profile accumulated is checked on both ends
		{name: "MOVE into /both/ with WLCG scopes only", tok: "opaque-tgt-wlcg", method: "MOVE", path: "/public/x", hdr: dest("/both/f"), status: 403},
		{name: "MOVE into /both/ with SciTokens scopes only", tok: "opaque-tgt-sci", method: "MOVE", path: "/public/x", hdr: dest("/both/f"), status: 403},
		{name: "MOVE into /both/ with both", tok: "opaque-tgt-both", method: "MOVE", path: "/public/x", hdr: dest("/both/f"), status: 200},
		// host: rules
		{name: "host rule matched by the request's host (target on an IP literal)", method: "MOVE", path: "/public/x", hdr: dest("http://192.0.2.10/vo/f"), status: 403},
		{name: "host rule matched by the request's host, with scopes", tok: "opaque-tgt-sci", method: "MOVE", path: "/public/x", hdr: dest("http://192.0.2.10/vo/f"), status: 200},
		{name: "host rule matched by the target's host (issuer local_hosts)", method: "MOVE", path: "/public/x", hdr: dest("https://webdav.example.org/alias/f"), status: 403},
		{name: "control: host rule for another host", method: "MOVE", path: "/public/x", hdr: dest("/alias/f"), status: 200},
	})
}

// TestEngineTargetTier: the tier and window of a MOVE or COPY are the
// strictest of the request path's and the local target's first route.
func TestEngineTargetTier(t *testing.T) {
	env := newEngEnv(t, engOpts{routes: targetRoutes()})
	const tok = "opaque-tgt-tier"
	env.iss.setAnswer(tok, env.active(nil))
	dest := func(v string) map[string][]string { return map[string][]string{"destination": {v}} }
	src := func(v string) map[string][]string { return map[string][]string{"source": {v}} }
	runReqCases(t, env, tok, []reqCase{
		{name: "control: MOVE within public paths", method: "MOVE", path: "/public/x", hdr: dest("/public/z"), status: 200, tier: policy.TierWrite},
		{name: "MOVE into /admin/", method: "MOVE", path: "/public/x", hdr: dest("/admin/x"), status: 200, tier: policy.TierCritical},
		{name: "MOVE into /admin/ by URI", method: "MOVE", path: "/public/x", hdr: dest("https://storage.example.org/%61dmin/x"), status: 200, tier: policy.TierCritical},
		{name: "COPY into /admin/", method: "COPY", path: "/public/x", hdr: dest("/admin/x"), status: 200, tier: policy.TierCritical},
		{name: "COPY pulling /admin/", method: "COPY", path: "/public/x", hdr: src("http://localhost/admin/x"), status: 200, tier: policy.TierCritical},
		{name: "COPY push to /admin/ on another server", method: "COPY", path: "/public/x", hdr: dest("https://remote.example.net/admin/x"), status: 200, tier: policy.TierWrite},
		{name: "a route window keeps the tier", method: "MOVE", path: "/public/x", hdr: dest("/slow/x"), status: 200, tier: policy.TierWrite},
	})

	t.Run("windows", func(t *testing.T) {
		env := newEngEnv(t, engOpts{routes: targetRoutes()})
		env.iss.setAnswer(tok, env.active(nil))
		steps := []struct {
			at        time.Duration // since the previous step
			dest      string
			wantLease LeaseOutcome
			wantCalls int64
		}{
			{dest: "/public/b", wantLease: LeaseMiss, wantCalls: 1},
			{dest: "/public/b", wantLease: LeaseHit, wantCalls: 1},
			{dest: "/admin/b", wantLease: LeaseMiss, wantCalls: 2}, // window 0
			{dest: "/admin/b", wantLease: LeaseMiss, wantCalls: 3},
			{at: 2 * time.Second, dest: "https://storage.example.org/public/b", wantLease: LeaseHit, wantCalls: 3}, // write: 5s
			{dest: "/slow/b", wantLease: LeaseMiss, wantCalls: 4},                                                  // 1s
			{dest: "https://remote.example.net/admin/b", wantLease: LeaseHit, wantCalls: 4},                        // not ours
		}
		for i, s := range steps {
			env.clock.Advance(s.at)
			d := env.eng.Check(t.Context(), &Request{Method: "MOVE", Host: "storage.example.org", Path: "/public/a",
				Headers: engHeaders{"authorization": {"Bearer " + tok}, "destination": {s.dest}}})
			if !d.Allow || d.Lease != s.wantLease || env.calls() != s.wantCalls {
				t.Fatalf("step %d (Destination %s): allow=%v lease=%s calls=%d (%s); want lease=%s calls=%d",
					i, s.dest, d.Allow, d.Lease, env.calls(), d.Reason, s.wantLease, s.wantCalls)
			}
		}
	})

	t.Run("stale_if_error is the smaller of both tiers'", func(t *testing.T) {
		// write may serve stale for a minute; bulk has a shorter window but
		// a longer stale allowance, which a MOVE from a write path into
		// /bulk/ must not inherit.
		tiers := policy.DefaultTiers()
		tiers[1].StaleIfError = time.Minute
		tiers = append(tiers, policy.TierConfig{Name: "bulk", Window: 2 * time.Second, StaleIfError: 5 * time.Minute})
		routes := append(targetRoutes(), policy.RouteConfig{Prefix: "/bulk/", Tier: "bulk"}, policy.RouteConfig{Prefix: "/nostale/", Tier: policy.TierRead})
		env := newEngEnv(t, engOpts{tiers: tiers, routes: routes})
		env.iss.setAnswer(tok, env.active(nil))
		move := func(path, dest string) Decision {
			return env.eng.Check(t.Context(), &Request{Method: "MOVE", Host: "storage.example.org", Path: path,
				Headers: engHeaders{"authorization": {"Bearer " + tok}, "destination": {dest}}})
		}
		if d := move("/public/a", "/public/b"); !d.Allow {
			t.Fatalf("first MOVE = %+v", d)
		}
		env.clock.Advance(10 * time.Second)
		env.iss.setFault(func(w http.ResponseWriter, _ *http.Request) { http.Error(w, "down", http.StatusBadGateway) })
		if d := move("/public/a", "/public/b"); !d.Allow || d.Lease != LeaseStale {
			t.Fatalf("control: MOVE within public paths at +10s = %+v, want a stale allow", d)
		}
		if d := move("/public/a", "/admin/b"); d.Allow || d.Status != http.StatusServiceUnavailable || d.Tier != policy.TierCritical {
			t.Fatalf("MOVE into /admin/ = %+v, want 503 in tier critical", d)
		}
		if d := move("/public/a", "/nostale/b"); d.Allow || d.Status != http.StatusServiceUnavailable || d.Tier != policy.TierWrite {
			t.Fatalf("MOVE into a read route without stale_if_error = %+v, want 503 in tier write", d)
		}
		env.clock.Advance(110 * time.Second)
		if d := move("/bulk/a", "/bulk/b"); !d.Allow || d.Lease != LeaseStale || d.Tier != "bulk" {
			t.Fatalf("control: MOVE within /bulk/ at +2m = %+v, want a stale allow in tier bulk", d)
		}
		if d := move("/public/a", "/bulk/b"); d.Allow || d.Status != http.StatusServiceUnavailable || d.Tier != "bulk" {
			t.Fatalf("MOVE into /bulk/ at +2m = %+v, want 503 in tier bulk (no stale allowance beyond write's minute)", d)
		}
	})
}
