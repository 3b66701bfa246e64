package authz

import (
	"testing"

	"github.com/leasegate/leasegate/policy"
)

// TestJoinedDestinationLeavesRoute: Envoy's headers map joins two
// Destination fields "/atlas" and "x" into "/atlas,x". leasegate reads one
// path, /atlas,x, a sibling of /atlas that the route "/atlas/" does not
// match (whole-segment matching), so the route's require: is not applied,
// while a backend that takes the first field (net/http, nginx, Apache)
// moves onto /atlas itself, replacing the protected collection.
func TestJoinedDestinationLeavesRoute(t *testing.T) {
	env := newEngEnv(t, engOpts{routes: []policy.RouteConfig{{Prefix: "/atlas/", Require: policy.ProfileWLCG}}})
	const tok = "opaque-joined-outside"
	env.iss.setAnswer(tok, env.active(func(a map[string]any) { a["scope"] = "storage.modify:/elsewhere" }))
	const commaScope = "opaque-joined-comma-scope"
	env.iss.setAnswer(commaScope, env.active(func(a map[string]any) { a["scope"] = "storage.modify:/atlas/x,y" }))
	dest := func(v string) map[string][]string { return map[string][]string{"destination": {v}} }
	runReqCases(t, env, tok, []reqCase{
		{name: "control: MOVE onto /atlas", method: "MOVE", path: "/elsewhere/a", hdr: dest("/atlas"), status: 403},
		{name: "control: MOVE into /atlas", method: "MOVE", path: "/elsewhere/a", hdr: dest("/atlas/c"), status: 403},
		{name: "control: two Destination fields", method: "MOVE", path: "/elsewhere/a", hdr: map[string][]string{"destination": {"/atlas", "x"}}, status: 400},
		// Envoy's join of "/atlas" and "x": must not be allowed.
		{name: "/atlas and x joined by Envoy", method: "MOVE", path: "/elsewhere/a", hdr: dest("/atlas,x"), status: 400},
		{name: "/atlas and an empty second field joined by Envoy", method: "MOVE", path: "/elsewhere/a", hdr: dest("/atlas,"), status: 400},
		// The same for a pull: the backend copies the whole /atlas tree
		// into /elsewhere, where the token may read it back.
		{name: "control: COPY pull from /atlas", method: "COPY", path: "/elsewhere/copy", hdr: map[string][]string{"source": {"/atlas"}}, status: 403},
		{name: "Source /atlas and x joined by Envoy", method: "COPY", path: "/elsewhere/copy", hdr: map[string][]string{"source": {"/atlas,x"}}, status: 400},
		{name: "URI /atlas and x joined by Envoy", method: "MOVE", path: "/elsewhere/a", hdr: dest("https://storage.example.org/atlas,x"), status: 400},
		// Envoy's join of "/atlas/x,y/.." (the first field itself has a
		// ",") and "z": read as one, a path inside /atlas/x,y; the backend
		// moves onto /atlas.
		{name: "control: comma scope MOVE onto /atlas", method: "MOVE", path: "/atlas/x,y/a", tok: commaScope, hdr: dest("/atlas"), status: 403},
		// A name with a "," is one value only percent-encoded.
		{name: "control: comma scope MOVE within /atlas/x,y", method: "MOVE", path: "/atlas/x,y/a", tok: commaScope, hdr: dest("/atlas/x%2Cy/b"), status: 200},
		{name: "a raw comma in one field reads as two", method: "MOVE", path: "/atlas/x,y/a", tok: commaScope, hdr: dest("/atlas/x,y/b"), status: 400},
		{name: "control: /atlas/x,y/.. alone (refused: a dot segment after a comma)", method: "MOVE", path: "/atlas/x,y/a", tok: commaScope, hdr: dest("/atlas/x,y/.."), status: 400},
		{name: "/atlas/x,y/.. and z joined by Envoy", method: "MOVE", path: "/atlas/x,y/a", tok: commaScope, hdr: dest("/atlas/x,y/..,z"), status: 400},
	})
}

// TestJoinedDestinationLeavesStricterRoute: on a site where every path is
// a storage route, the sibling reading still escapes a nested route that
// is stricter than its parent: "/atlas/protected" + "x" reads as
// /atlas/protected,x, which /atlas/protected/ (tier critical) does not
// match, so a MOVE onto the protected collection is answered from a
// write-tier lease, and is checked against no lifetime limit of its own.
func TestJoinedDestinationLeavesStricterRoute(t *testing.T) {
	env := newEngEnv(t, engOpts{routes: []policy.RouteConfig{
		{Prefix: "/atlas/protected/", Tier: policy.TierCritical, Require: policy.ProfileWLCG},
		{Prefix: "/atlas/", Require: policy.ProfileWLCG},
	}})
	const tok = "opaque-joined-nested"
	env.iss.setAnswer(tok, env.active(func(a map[string]any) { a["scope"] = "storage.modify:/atlas" }))
	dest := func(v string) map[string][]string { return map[string][]string{"destination": {v}} }
	runReqCases(t, env, tok, []reqCase{
		{name: "control: MOVE onto /atlas/protected is critical", method: "MOVE", path: "/atlas/a", hdr: dest("/atlas/protected"), status: 200, tier: policy.TierCritical},
		{name: "/atlas/protected and x joined by Envoy", method: "MOVE", path: "/atlas/a", hdr: dest("/atlas/protected,x"), status: 400},
	})
}
