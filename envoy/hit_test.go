package envoy

import (
	"context"
	"testing"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"

	"github.com/leasegate/leasegate/authz"
)

// TestHitAllocations holds BenchmarkCheckHit's counts. Over gRPC (the
// handler's answer and the codec's marshalling): none (a recycled request
// view, the lease cache's memo, the kept encoding). Check, in process: the
// OK response (one allocation for its messages, two for
// dynamic_metadata's map).
func TestHitAllocations(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector drops sync.Pool items at random")
	}
	is := newTestIssuer(t, false)
	s := newTestServer(t, newRealEngine(t, is.URL))
	req := envoyRequest("GET", "/data/f", map[string]string{"authorization": "Bearer " + goodToken, "x-forwarded-for": "10.0.0.1"}, nil)
	// A query is read for a _method override (authz/request).
	withQuery := envoyRequest("GET", "/data/f?offset=10&limit=5;x=1", map[string]string{"authorization": "Bearer " + goodToken}, nil)
	ctx := context.Background()
	s.Check(ctx, req)
	s.Check(ctx, withQuery)
	c := Codec()
	tests := []struct {
		name string
		max  float64
		hit  func(t *testing.T)
	}{
		{"wire", 0, func(t *testing.T) {
			out := s.answer(ctx, req)
			if _, ok := out.(*encodedOK); !ok {
				t.Fatalf("not an encoded hit: %v", out)
			}
			if _, err := c.Marshal(out); err != nil {
				t.Fatal(err)
			}
		}},
		{"wire, with a query", 0, func(t *testing.T) {
			if _, ok := s.answer(ctx, withQuery).(*encodedOK); !ok {
				t.Fatal("not an encoded hit")
			}
		}},
		{"Check", 3, func(t *testing.T) {
			if resp, _ := s.Check(ctx, req); meta(resp, "lease") != "hit" {
				t.Fatalf("not a hit: %v", resp)
			}
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if n := testing.AllocsPerRun(200, func() { tc.hit(t) }); n > tc.max {
				t.Fatalf("a hit allocates %v times, want at most %v", n, tc.max)
			}
		})
	}
}

// TestHitWithRouteHeaders: headers a decision appends to a hit's (a
// route's own upstream headers) are rendered with the identity headers,
// and the lease's shared headers stay as they were for the next hit.
func TestHitWithRouteHeaders(t *testing.T) {
	is := newTestIssuer(t, false)
	eng := newRealEngine(t, is.URL)
	plain := newTestServer(t, eng)
	extras := newTestServer(t, extraHeaders{eng, []authz.Header{{Name: "if-none-match", Value: "*"}, {Name: "x-drop", Value: ""}}})
	ctx := context.Background()
	req := envoyRequest("PUT", "/data/new", map[string]string{"authorization": "Bearer " + goodToken}, nil)
	plain.Check(ctx, req)
	got, _ := extras.Check(ctx, req)
	set := checkHeaderOptions(t, got.GetOkResponse().GetHeaders())
	if meta(got, "lease") != "hit" || set["if-none-match"] != "*" || set["x-auth-subject"] != "alice" || len(set) != 5 {
		t.Fatalf("hit with route headers: %v (%v)", set, got)
	}
	if rm := got.GetOkResponse().GetHeadersToRemove(); len(rm) != 1 || rm[0] != "x-drop" {
		t.Fatalf("headers_to_remove: %v", rm)
	}
	again, _ := plain.Check(ctx, req)
	if set := checkHeaderOptions(t, again.GetOkResponse().GetHeaders()); len(set) != 4 || set["if-none-match"] != "" {
		t.Fatalf("the next plain hit: %v, want the four identity headers", set)
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

func meta(r *authv3.CheckResponse, key string) string {
	return r.GetDynamicMetadata().GetFields()[key].GetStringValue()
}

// TestUnpassableBeforeTwin: an allow whose identity cannot be passed and
// whose request also carries an underscore twin of it is refused for the
// identity (401), as HTTP mode refuses it, not for the twin (400).
func TestUnpassableBeforeTwin(t *testing.T) {
	d := allowDecision()
	d.Headers[0].Value = "alice\r"
	s := newTestServer(t, &fakeChecker{d: d})
	req := envoyRequest("GET", "/f", map[string]string{"authorization": "Bearer x", "x_auth_subject": "mallory"}, nil)
	resp, err := s.Check(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	if got := resp.GetDeniedResponse().GetStatus().GetCode(); got != 401 {
		t.Fatalf("status %v, want 401 (%v)", got, resp)
	}
}

// TestKeptEncodingFollowsHeaders: a hit answered by a kept encoding skips
// re-judging its headers only while they equal the encoding's. After a
// write into the view's shared headers in place (which no code may do),
// the next hit is judged again and refused, not sent the old encoding.
func TestKeptEncodingFollowsHeaders(t *testing.T) {
	is := newTestIssuer(t, false)
	last := &lastDecision{eng: newRealEngine(t, is.URL)}
	s := newTestServer(t, last)
	req := envoyRequest("GET", "/data/f", map[string]string{"authorization": "Bearer " + goodToken}, nil)
	ctx := context.Background()
	s.answer(ctx, req) // the miss
	s.answer(ctx, req) // the first hit, which keeps its encoding
	if _, ok := s.answer(ctx, req).(*encodedOK); !ok || last.d.Lease != authz.LeaseHit {
		t.Fatal("the second hit is not answered by the kept encoding")
	}
	last.d.Headers[0].Value = "alice\r\nx-auth-scope: storage.modify:/"
	out := s.answer(ctx, req)
	resp, ok := out.(*authv3.CheckResponse)
	if !ok || resp.GetDeniedResponse().GetStatus().GetCode() != 401 {
		t.Fatalf("after an in-place write: %v, want a 401", out)
	}
}

// lastDecision keeps the last decision of its engine.
type lastDecision struct {
	eng Checker
	d   authz.Decision
}

func (l *lastDecision) Check(ctx context.Context, r *authz.Request) authz.Decision {
	l.d = l.eng.Check(ctx, r)
	return l.d
}

// TestKeptEncodingTwin: a hit answered by a kept encoding still refuses a
// request header that is the twin of an identity header, when the "_" is
// on the operator's side (the encoding's names) as well as the client's.
func TestKeptEncodingTwin(t *testing.T) {
	is := newTestIssuer(t, false)
	s := newTestServer(t, newRealEngine(t, is.URL, func(c *authz.Config) { c.Upstream.Subject = "x_auth_subject" }))
	ctx := context.Background()
	plain := envoyRequest("GET", "/data/f", map[string]string{"authorization": "Bearer " + goodToken}, nil)
	s.answer(ctx, plain)
	s.answer(ctx, plain)
	if _, ok := s.answer(ctx, plain).(*encodedOK); !ok {
		t.Fatal("the second hit is not answered by the kept encoding")
	}
	for _, name := range []string{"x-auth-subject", "X_Auth-Subject"} {
		twin := envoyRequest("GET", "/data/f", map[string]string{"authorization": "Bearer " + goodToken, name: "root"}, nil)
		resp, ok := s.answer(ctx, twin).(*authv3.CheckResponse)
		if !ok || resp.GetDeniedResponse().GetStatus().GetCode() != 400 {
			t.Fatalf("hit with %s: %v, want a 400", name, resp)
		}
	}
}
