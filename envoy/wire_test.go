package envoy

import (
	"bytes"
	"context"
	"reflect"
	"strings"
	"sync"
	"testing"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"

	"github.com/leasegate/leasegate/authz"
)

// TestWireMatchesCheck: what the gRPC handler sends decodes to exactly
// what Check returns for the same request, hits (encoded once per view and
// shape) and everything else, whether the server runs the adapter's codec
// or gRPC's own.
func TestWireMatchesCheck(t *testing.T) {
	servers := map[string]*grpc.Server{
		"adapter codec": grpc.NewServer(ServerOptions(100)...),
		"grpc codec":    grpc.NewServer(),
	}
	bearer := map[string]string{"authorization": "Bearer " + goodToken}
	with := func(k, v string) map[string]string {
		return map[string]string{"authorization": "Bearer " + goodToken, k: v}
	}
	reqs := map[string]*authv3.CheckRequest{
		"read hit":                  envoyRequest("GET", "/data/f", bearer, nil),
		"read hit, other method":    envoyRequest("HEAD", "/data/f", bearer, nil),
		"write hit":                 envoyRequest("PUT", "/data/f", bearer, nil),
		"critical tier (no window)": envoyRequest("DELETE", "/data/f", bearer, nil),
		"storage route hit":         envoyRequest("GET", "/store/f", bearer, nil),
		"storage route, client INM": envoyRequest("GET", "/store/f", with("if-none-match", `"abc"`), nil),
		"storage route, denied":     envoyRequest("PUT", "/store/f", bearer, nil),
		"tier hint":                 envoyRequest("GET", "/data/f", bearer, map[string]string{TierHintKey: "write"}),
		"unknown token":             envoyRequest("GET", "/data/f", map[string]string{"authorization": "Bearer nobody"}, nil),
		"underscore twin":           envoyRequest("GET", "/data/f", with("x_auth_subject", "forged"), nil),
	}
	for name, g := range servers {
		t.Run(name, func(t *testing.T) {
			is := newTestIssuer(t, false)
			s := newTestServer(t, newRealEngine(t, is.URL))
			client := serveOn(t, g, s)
			ctx := t.Context()
			for _, req := range reqs { // the leases, in process
				s.Check(ctx, req)
			}
			for round := range 3 { // the second and third reuse the encodings
				for rname, req := range reqs {
					got, err := client.Check(ctx, req)
					if err != nil {
						t.Fatalf("%s: %v", rname, err)
					}
					want, _ := s.Check(ctx, req)
					if strings.Contains(rname, "hit") && meta(want, "lease") != "hit" {
						t.Errorf("%s: lease %q, want a hit", rname, meta(want, "lease"))
					}
					if !proto.Equal(got, want) {
						t.Errorf("%s, round %d: the wire sent\n%v\nCheck returns\n%v", rname, round, got, want)
					}
				}
			}
		})
	}
}

// TestEncodedHitsPerShape: one view keeps one encoding per shape in use,
// at most maxEncodings; every encoding decodes to its decision's message,
// and a decision that is no hit gets none.
func TestEncodedHitsPerShape(t *testing.T) {
	is := newTestIssuer(t, false)
	eng := newRealEngine(t, is.URL)
	ctx := t.Context()
	check := func(method, path string, hdr map[string]string) authz.Decision {
		c := new(checkCall)
		if p := c.fill(envoyRequest(method, path, hdr, nil)); p != "" {
			t.Fatal(p)
		}
		return eng.Check(ctx, &c.req)
	}
	bearer := map[string]string{"authorization": "Bearer " + goodToken}
	if d := check("GET", "/data/f", bearer); encodedHit(&d) != nil {
		t.Fatalf("a miss was encoded: %+v", d)
	}
	var view *authz.LeaseView
	seen := map[*encodedOK]bool{}
	for i, inm := range []string{"", `"a"`, `"b"`, `"c"`, `"d"`, `"e"`, ""} {
		hdr := map[string]string{"authorization": "Bearer " + goodToken}
		if inm != "" {
			hdr["if-none-match"] = inm
		}
		d := check("GET", "/store/f", hdr)
		e := encodedHit(&d)
		if e == nil || d.View == nil {
			t.Fatalf("%d: hit not encoded: %+v", i, d)
		}
		if view != nil && d.View != view {
			t.Fatalf("%d: another view for the same lease", i)
		}
		view = d.View
		var got authv3.CheckResponse
		if err := proto.Unmarshal(e.wire.Materialize(), &got); err != nil {
			t.Fatal(err)
		}
		if want := okOf(&d); !proto.Equal(&got, want) {
			t.Fatalf("%d: encoding %v, want %v", i, &got, want)
		}
		if seen[e] {
			t.Fatalf("%d: If-None-Match %q reused another shape's encoding", i, inm)
		}
		seen[e] = true
		if n := len(view.Memo().(encodings)); n > maxEncodings {
			t.Fatalf("%d: %d encodings kept, want at most %d", i, n, maxEncodings)
		}
	}
	d := check("GET", "/store/f", map[string]string{"authorization": "Bearer " + goodToken, "if-none-match": `"e"`})
	if e := encodedHit(&d); !seen[e] {
		t.Fatal("a shape still kept was encoded again")
	}
}

// TestOKShapeEqualSeesEveryField: equal compares every field of okShape,
// so a decision that renders differently never reuses an encoding.
func TestOKShapeEqualSeesEveryField(t *testing.T) {
	d := allowDecision()
	d.Tier, d.Lease, d.StripAuthorization = "read", authz.LeaseHit, true
	base := shapeOf(&d)
	typ := reflect.TypeFor[okShape]()
	for i := range typ.NumField() {
		t.Run(typ.Field(i).Name, func(t *testing.T) {
			other := shapeOf(&d)
			other.headers = append([]authz.Header(nil), other.headers...)
			f := reflect.ValueOf(&other).Elem().Field(i)
			switch f.Kind() {
			case reflect.Bool:
				setUnexported(f, reflect.ValueOf(!f.Bool()))
			case reflect.String:
				setUnexported(f, reflect.ValueOf(f.String()+"x").Convert(f.Type()))
			case reflect.Slice:
				other.headers[1].Value += "x"
			case reflect.Struct:
				other.id.Scope += "x"
			default:
				t.Fatalf("field of kind %v: teach this test to change it", f.Kind())
			}
			if base.equal(&other) || other.equal(&base) {
				t.Fatalf("shapes differing in %s are equal", typ.Field(i).Name)
			}
			if proto.Equal(okResponse(&base), okResponse(&other)) {
				t.Fatalf("the response does not show %s", typ.Field(i).Name)
			}
		})
	}
	same := shapeOf(&d)
	same.headers = append([]authz.Header(nil), same.headers...)
	if !base.equal(&same) {
		t.Fatal("equal shapes in different slices are not equal")
	}
}

// setUnexported sets the unexported field f (addressable) to v.
func setUnexported(f, v reflect.Value) {
	reflect.NewAt(f.Type(), f.Addr().UnsafePointer()).Elem().Set(v)
}

// TestEncodedOKThroughAnyCodec: an encodedOK is the same bytes whether the
// adapter's codec or protobuf-go marshals it.
func TestEncodedOKThroughAnyCodec(t *testing.T) {
	d := allowDecision()
	d.Lease = authz.LeaseHit
	e := encode(shapeOf(&d))
	if e == nil {
		t.Fatal("encode failed")
	}
	want, err := proto.Marshal(okOf(&d))
	if err != nil {
		t.Fatal(err)
	}
	viaProto, err := proto.Marshal(e)
	if err != nil {
		t.Fatal(err)
	}
	viaCodec, err := Codec().Marshal(e)
	if err != nil {
		t.Fatal(err)
	}
	for name, b := range map[string][]byte{"protobuf-go": viaProto, "adapter codec": viaCodec.Materialize()} {
		var got authv3.CheckResponse
		if err := proto.Unmarshal(b, &got); err != nil {
			t.Fatal(err)
		}
		if !proto.Equal(&got, okOf(&d)) {
			t.Errorf("%s: decodes to %v", name, &got)
		}
		if !bytes.Equal(b, e.wire.Materialize()) {
			t.Errorf("%s: %d bytes, not the encoding's %d", name, len(b), e.wire.Len())
		}
	}
	if len(want) != e.wire.Len() {
		t.Errorf("encoding is %d bytes, protobuf-go's %d", e.wire.Len(), len(want))
	}
}

// TestWireHitAllocations holds BenchmarkCheckHit/wire's count: the request
// view and the lease cache's two copies (bigcache's Get); the response and
// its marshalling allocate nothing.
func TestWireHitAllocations(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector drops sync.Pool items at random")
	}
	is := newTestIssuer(t, false)
	s := newTestServer(t, newRealEngine(t, is.URL))
	req := envoyRequest("GET", "/data/f", map[string]string{"authorization": "Bearer " + goodToken, "x-forwarded-for": "10.0.0.1"}, nil)
	ctx := context.Background()
	s.Check(ctx, req)
	c := Codec()
	if n := testing.AllocsPerRun(200, func() {
		if _, ok := s.answer(ctx, req).(*encodedOK); !ok {
			t.Fatal("not an encoded hit")
		}
		if _, err := c.Marshal(s.answer(ctx, req)); err != nil {
			t.Fatal(err)
		}
	}); n > 6 {
		t.Fatalf("two hits allocate %v times, want at most 6 (3 each)", n)
	}
}

// TestWireConcurrentHits: hits of one lease on several tiers at once share
// and replace the view's encodings; each answer is its own request's.
func TestWireConcurrentHits(t *testing.T) {
	is := newTestIssuer(t, false)
	s := newTestServer(t, newRealEngine(t, is.URL))
	ctx := t.Context()
	bearer := map[string]string{"authorization": "Bearer " + goodToken}
	reqs := []*authv3.CheckRequest{
		envoyRequest("GET", "/data/f", bearer, nil),
		envoyRequest("PUT", "/data/f", bearer, nil),
		envoyRequest("GET", "/data/f", bearer, map[string]string{TierHintKey: "write"}),
		envoyRequest("GET", "/store/f", map[string]string{"authorization": "Bearer " + goodToken, "if-none-match": `"x"`}, nil),
		envoyRequest("GET", "/store/f", bearer, nil),
	}
	want := make([]*authv3.CheckResponse, len(reqs))
	for i, r := range reqs {
		s.Check(ctx, r)
		want[i], _ = s.Check(ctx, r)
	}
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 200 {
				k := (g + i) % len(reqs)
				b, err := Codec().Marshal(s.answer(ctx, reqs[k]))
				if err != nil {
					t.Error(err)
					return
				}
				var got authv3.CheckResponse
				if err := proto.Unmarshal(b.Materialize(), &got); err != nil || !proto.Equal(&got, want[k]) {
					t.Errorf("request %d: got %v (%v), want %v", k, &got, err, want[k])
					return
				}
			}
		})
	}
	wg.Wait()
}
