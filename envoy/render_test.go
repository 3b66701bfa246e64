package envoy

import (
	"context"
	"testing"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/proto"

	"github.com/leasegate/leasegate/authz"
)

// TestHitResponseShared: every hit of a lease in a tier gets the same
// response message, equal to the one built from scratch for the same
// decision; another tier gets its own.
func TestHitResponseShared(t *testing.T) {
	is := newTestIssuer(t, false)
	eng := newRealEngine(t, is.URL)
	s := newTestServer(t, eng)
	ctx := context.Background()
	get := envoyRequest("GET", "/data/f", map[string]string{"authorization": "Bearer " + goodToken}, nil)
	put := envoyRequest("PUT", "/data/f", map[string]string{"authorization": "Bearer " + goodToken}, nil)
	miss, _ := s.Check(ctx, get)
	if meta(miss, "lease") != "miss" {
		t.Fatalf("first request: %v", miss)
	}
	a, _ := s.Check(ctx, get)
	b, _ := s.Check(ctx, get)
	if a != b || meta(a, "lease") != "hit" || meta(a, "tier") != "read" {
		t.Fatalf("two hits: %p %p (%v), want one shared hit response", a, b, a)
	}
	d := eng.Check(ctx, &authz.Request{Method: "GET", Path: "/data/f", Headers: authHeaders("Bearer " + goodToken)})
	if want := buildOK(&d); !proto.Equal(a, want) {
		t.Fatalf("shared response\n%v\nwant\n%v", a, want)
	}
	w, _ := s.Check(ctx, put) // a write inside its 5s window: a hit too
	if w == a || meta(w, "tier") != "write" || meta(w, "lease") != "hit" {
		t.Fatalf("write-tier hit: %v", w)
	}
	if again, _ := s.Check(ctx, get); again != a {
		t.Fatal("the read tier's response was replaced by the write tier's")
	}
}

// TestHitResponseComposesExtras: headers a decision adds past its view's
// (a route's own upstream headers) are composed around the shared part,
// which stays as it was.
func TestHitResponseComposesExtras(t *testing.T) {
	is := newTestIssuer(t, false)
	eng := newRealEngine(t, is.URL)
	plain := newTestServer(t, eng)
	extras := newTestServer(t, extraHeaders{eng, []authz.Header{{Name: "if-none-match", Value: "*"}, {Name: "x-drop", Value: ""}}})
	ctx := context.Background()
	req := envoyRequest("PUT", "/data/new", map[string]string{"authorization": "Bearer " + goodToken}, nil)
	plain.Check(ctx, req)
	base, _ := plain.Check(ctx, req)
	before := proto.Clone(base)
	got, _ := extras.Check(ctx, req)
	if codes.Code(got.GetStatus().GetCode()) != codes.OK || got == base {
		t.Fatalf("with extras: %v", got)
	}
	set := checkHeaderOptions(t, got.GetOkResponse().GetHeaders())
	if set["if-none-match"] != "*" || set["x-auth-subject"] != "alice" || len(set) != 5 {
		t.Fatalf("headers with extras: %v", set)
	}
	if rm := got.GetOkResponse().GetHeadersToRemove(); len(rm) != 1 || rm[0] != "x-drop" {
		t.Fatalf("headers_to_remove with extras: %v", rm)
	}
	if meta(got, "sub") != "alice" || meta(got, "lease") != "hit" {
		t.Fatalf("metadata with extras: %v", got.GetDynamicMetadata())
	}
	if again, _ := plain.Check(ctx, req); again != base || !proto.Equal(base, before) {
		t.Fatalf("the shared response changed:\n%v\nwas\n%v", base, before)
	}
}

// TestHitAllocations holds BenchmarkCheckHit's count: the adapter's one
// allocation (the request view) and the lease cache's two copies.
func TestHitAllocations(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector drops sync.Pool items at random")
	}
	is := newTestIssuer(t, false)
	s := newTestServer(t, newRealEngine(t, is.URL))
	req := envoyRequest("GET", "/data/f", map[string]string{"authorization": "Bearer " + goodToken, "x-forwarded-for": "10.0.0.1"}, nil)
	ctx := context.Background()
	s.Check(ctx, req)
	if n := testing.AllocsPerRun(200, func() {
		if resp, _ := s.Check(ctx, req); meta(resp, "lease") != "hit" {
			t.Fatalf("not a hit: %v", resp)
		}
	}); n > 3 {
		t.Fatalf("a hit allocates %v times, want at most 3", n)
	}
}

// extraHeaders appends headers to every allow of its engine, as a route
// with upstream headers of its own would.
type extraHeaders struct {
	eng   Checker
	extra []authz.Header
}

func (x extraHeaders) Check(ctx context.Context, r *authz.Request) authz.Decision {
	d := x.eng.Check(ctx, r)
	if d.Allow {
		d.Headers = append(d.Headers, x.extra...)
	}
	return d
}

type authHeaders string

func (h authHeaders) Get(name string) (string, int) {
	if name == "authorization" {
		return string(h), 1
	}
	return "", 0
}

func meta(r *authv3.CheckResponse, key string) string {
	return r.GetDynamicMetadata().GetFields()[key].GetStringValue()
}
