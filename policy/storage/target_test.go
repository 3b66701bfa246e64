package storage

import (
	"testing"
	"time"

	"github.com/leasegate/leasegate/policy"
)

// targetIssuerHosts are the issuer local_hosts the target tests pass.
var targetIssuerHosts = []string{"webdav.example.org"}

// targetPolicy is policy's own targetPolicy (policy/target_test.go): a route
// of every kind a Destination or Source can land in.
func targetPolicy(t testing.TB) *policy.Policy {
	t.Helper()
	dur := func(d time.Duration) *time.Duration { return &d }
	tiers := policy.DefaultTiers()
	tiers[0].StaleIfError = time.Minute
	tiers[1].StaleIfError = 30 * time.Second
	tiers = append(tiers, policy.TierConfig{Name: "bulk", Window: 2 * time.Second, StaleIfError: 5 * time.Minute})
	p, err := policy.New(policy.Config{
		Tiers:    tiers,
		LeaseMax: 10 * time.Minute,
		Routes: []policy.RouteConfig{
			{Prefix: "/atlas/upload/", Tier: policy.TierCritical},
			{Prefix: "/atlas/", Require: policy.ProfileWLCG},
			{Prefix: "/data/", Require: policy.ProfileWLCG, LocalHosts: []string{"dav.example.org"}},
			{Prefix: "/sci/", Require: policy.ProfileSciTokens},
			{Prefix: "/both/x/", Require: policy.ProfileSciTokens, Window: dur(2 * time.Second)},
			{Prefix: "/both/", Require: policy.ProfileWLCG},
			{Prefix: "/vo/", Host: "storage.example.org:8443", Tier: policy.TierCritical},
			{Prefix: "/vo/", Host: "storage.example.org", Require: policy.ProfileWLCG},
			{Prefix: "/alias/", Host: "webdav.example.org", Require: policy.ProfileSciTokens},
			{Prefix: "/search", Methods: []string{"POST"}, Tier: policy.TierRead},
			{Prefix: "/slow/", Window: dur(20 * time.Second)},
			{Prefix: "/bulk/", Tier: "bulk"},
			{Prefix: "/admin/", Tier: policy.TierCritical},
			{Prefix: "/", Host: "[2001:db8::1]", Require: policy.ProfileSciTokens},
		},
	})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return p
}

func mustTarget(t testing.TB, v string) policy.Target {
	t.Helper()
	if v == "" {
		return policy.Target{}
	}
	tg, err := policy.ParseTarget(v)
	if err != nil {
		t.Fatalf("ParseTarget(%q): %v", v, err)
	}
	return tg
}

// TestAddTargetsAgreesWithAuthorizeStorage: the storage check covers both
// ends of a MOVE or COPY for every profile policy.AddTargets accumulated,
// and a target AddTargets found remote is remote to Authorize too.
func TestAddTargetsAgreesWithAuthorizeStorage(t *testing.T) {
	p := targetPolicy(t)
	tests := []struct {
		name      string
		method    string
		path      string
		dest, src string
		scope     string
		allow     bool
	}{
		{name: "MOVE into /data/: openid", method: "MOVE", path: "/public/x", dest: "/data/s", scope: "openid"},
		{name: "MOVE into /data/: the target only", method: "MOVE", path: "/public/x", dest: "/data/s", scope: "storage.modify:/data"},
		{name: "MOVE into /data/: both ends", method: "MOVE", path: "/public/x", dest: "/data/s", scope: "storage.modify:/data storage.modify:/public", allow: true},
		{name: "COPY into /data/: read here, write there", method: "COPY", path: "/public/x", dest: "https://dav.example.org/data/s", scope: "storage.read:/public storage.create:/data", allow: false},
		{name: "COPY into /data/ with modify", method: "COPY", path: "/public/x", dest: "https://dav.example.org/data/s", scope: "storage.read:/public storage.modify:/data", allow: true},
		{name: "COPY pulling /data/: read there only", method: "COPY", path: "/public/x", src: "/data/s", scope: "storage.read:/data"},
		{name: "COPY pulling /data/: read there, write here", method: "COPY", path: "/public/x", src: "/data/s", scope: "storage.read:/data storage.modify:/public", allow: true},
		{name: "COPY push of /data/ to another server", method: "COPY", path: "/data/s", dest: "https://remote.example.net/public/x", scope: "storage.read:/data", allow: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			n, err := policy.Normalize(tc.method, "storage.example.org", tc.path)
			if err != nil {
				t.Fatal(err)
			}
			m := p.Classify(n, "")
			p.AddTargets(&m, mustTarget(t, tc.dest), mustTarget(t, tc.src), targetIssuerHosts)
			if m.Require == 0 {
				t.Fatalf("no requirement accumulated")
			}
			sr := Request{Request: n, Destination: tc.dest, Source: tc.src, RouteLocalHosts: m.LocalHosts, IssuerLocalHosts: targetIssuerHosts}
			allowed := true
			for profile := range m.Require.All() {
				allowed = allowed && Authorize(profile, sr, tc.scope, "/", "").Allow
			}
			if allowed != tc.allow {
				t.Fatalf("allowed = %v, want %v", allowed, tc.allow)
			}
		})
	}
}
