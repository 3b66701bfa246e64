package authz

import (
	"context"
	"slices"
	"testing"

	"github.com/leasegate/leasegate/policy"
)

// TestEngineConditionalCreate: the upstream If-None-Match a storage route's
// allow carries (SPEC §5, conditional creation). "*" whenever the allow
// rests on storage.create for a PUT, whether the client sent the condition
// or a conditional_create route added it; the client's own value
// otherwise, so a proxy copying the header from the answer changes
// nothing; no such header off storage routes.
func TestEngineConditionalCreate(t *testing.T) {
	env := newEngEnv(t, engOpts{routes: []policy.RouteConfig{
		{Prefix: "/dcache/", Require: policy.ProfileWLCG, ConditionalCreate: true},
		{Prefix: "/xrootd/", Require: policy.ProfileWLCG},
	}})
	const creator, modifier = "create-only-token", "modify-token"
	env.iss.setAnswer(creator, env.active(func(a map[string]any) {
		a["scope"] = "storage.create:/dcache/atlas storage.create:/xrootd/atlas"
	}))
	env.iss.setAnswer(modifier, env.active(func(a map[string]any) {
		a["scope"] = "storage.modify:/dcache/atlas storage.read:/dcache/atlas"
	}))
	absent := "<absent>"
	tests := []struct {
		name, method, path, tok string
		hdr                     map[string][]string
		status                  int
		inm                     string // the if-none-match upstream header; absent for none
	}{
		{name: "create-only plain PUT on a conditional route", method: "PUT", path: "/dcache/atlas/new", tok: creator, status: 200, inm: "*"},
		{name: "create-only plain PUT elsewhere", method: "PUT", path: "/xrootd/atlas/new", tok: creator, status: 403},
		{name: "create-only PUT with the client's condition", method: "PUT", path: "/xrootd/atlas/new", tok: creator,
			hdr: map[string][]string{"if-none-match": {"*"}}, status: 200, inm: "*"},
		{name: "create-only PUT with an entity tag on a conditional route", method: "PUT", path: "/dcache/atlas/f", tok: creator,
			hdr: map[string][]string{"if-none-match": {`"v1"`}}, status: 200, inm: "*"},
		{name: "modify PUT keeps its overwrite", method: "PUT", path: "/dcache/atlas/f", tok: modifier, status: 200, inm: ""},
		{name: "modify PUT keeps the client's entity tag", method: "PUT", path: "/dcache/atlas/f", tok: modifier,
			hdr: map[string][]string{"if-none-match": {`"v1"`}}, status: 200, inm: `"v1"`},
		{name: "GET keeps the client's cache validator", method: "GET", path: "/dcache/atlas/f", tok: modifier,
			hdr: map[string][]string{"if-none-match": {`"v1"`}}, status: 200, inm: `"v1"`},
		{name: "create-only stats the upload target", method: "PROPFIND", path: "/dcache/atlas/new", tok: creator,
			hdr: map[string][]string{"depth": {"0"}}, status: 200, inm: ""},
		{name: "create-only cannot list", method: "PROPFIND", path: "/dcache/atlas/", tok: creator,
			hdr: map[string][]string{"depth": {"1"}}, status: 403},
		// Two Depth fields (raw header_map): a backend may honour either,
		// so the first "0" does not make it a stat.
		{name: "create-only cannot list behind a second Depth", method: "PROPFIND", path: "/dcache/atlas/", tok: creator,
			hdr: map[string][]string{"depth": {"0", "infinity"}}, status: 403},
		{name: "create-only cannot delete on a conditional route", method: "DELETE", path: "/dcache/atlas/f", tok: creator, status: 403},
		{name: "no storage route, no such header", method: "GET", path: "/public/f", tok: modifier,
			hdr: map[string][]string{"if-none-match": {`"v1"`}}, status: 200, inm: absent},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := bearer(tc.tok)
			for k, v := range tc.hdr {
				h[k] = v
			}
			d := env.eng.Check(context.Background(), &Request{Method: tc.method, Path: tc.path, Host: "storage.example.org", Headers: h})
			if d.Status != tc.status {
				t.Fatalf("status %d (%s), want %d", d.Status, d.Description, tc.status)
			}
			if !d.Allow {
				if d.Headers != nil {
					t.Errorf("a denial carries upstream headers %v", d.Headers)
				}
				return
			}
			got := absent
			if i := slices.IndexFunc(d.Headers, func(h Header) bool { return h.Name == HeaderIfNoneMatch }); i >= 0 {
				got = d.Headers[i].Value
			}
			if got != tc.inm {
				t.Errorf("upstream if-none-match %q, want %q (headers %v)", got, tc.inm, d.Headers)
			}
			// Only a value the client sent and the allow passes on is
			// ClientChosen; the identity's, "" and "*" are not.
			clientOwn := got != absent && got != "" && got != IfNoneMatchCreate && slices.Contains(tc.hdr["if-none-match"], got)
			for _, h := range d.Headers {
				if ClientChosen(h) != (clientOwn && h.Name == HeaderIfNoneMatch) {
					t.Errorf("ClientChosen(%v) = %v", h, ClientChosen(h))
				}
			}
		})
	}
}
