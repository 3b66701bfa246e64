package envoy

import (
	"context"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/leasegate/leasegate/authz"
)

// TestWireMatchesCheck: what the gRPC handler sends decodes to exactly
// what Check returns for the same request, hits (encoded once per view and
// shape) and everything else, whether the server runs the adapter's codec
// or gRPC's own, with and without strip_authorization.
func TestWireMatchesCheck(t *testing.T) {
	bearer := map[string]string{"authorization": "Bearer " + goodToken}
	with := func(k, v string) map[string]string {
		return map[string]string{"authorization": "Bearer " + goodToken, k: v}
	}
	reqs := map[string]*authv3.CheckRequest{
		"read hit":                      envoyRequest("GET", "/data/f", bearer, nil),
		"read hit, other method":        envoyRequest("HEAD", "/data/f", bearer, nil),
		"write hit":                     envoyRequest("PUT", "/data/f", bearer, nil),
		"tier hint hit":                 envoyRequest("GET", "/data/f", bearer, map[string]string{TierHintKey: "write"}),
		"storage route hit":             envoyRequest("GET", "/store/f", bearer, nil),
		"storage route hit, client INM": envoyRequest("GET", "/store/f", with("if-none-match", `"abc"`), nil),
		"storage route hit, INM *":      envoyRequest("GET", "/store/f", with("if-none-match", "*"), nil),
		"critical tier (no window)":     envoyRequest("DELETE", "/data/f", bearer, nil),
		"storage route, denied":         envoyRequest("PUT", "/store/f", bearer, nil),
		"unknown token":                 envoyRequest("GET", "/data/f", map[string]string{"authorization": "Bearer nobody"}, nil),
		"underscore twin":               envoyRequest("GET", "/data/f", with("x_auth_subject", "forged"), nil),
	}
	// Hits whose answer is kept: everything but the client's own ETag.
	kept := func(name string) bool { return strings.Contains(name, "hit") && !strings.Contains(name, "client INM") }
	setups := map[string]struct {
		opts  []grpc.ServerOption
		strip bool
	}{
		"adapter codec":        {opts: ServerOptions(100)},
		"grpc codec":           {},
		"adapter codec, strip": {opts: ServerOptions(100), strip: true},
	}
	for name, setup := range setups {
		t.Run(name, func(t *testing.T) {
			is := newTestIssuer(t, false)
			s := newTestServer(t, newRealEngine(t, is.URL, func(c *authz.Config) { c.StripAuthorization = setup.strip }))
			client := serveOn(t, grpc.NewServer(setup.opts...), s)
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
					if _, enc := s.answer(ctx, req).(*encodedOK); enc != kept(rname) {
						t.Errorf("%s: answered with an encoding: %v, want %v", rname, enc, kept(rname))
					}
				}
			}
		})
	}
}

// TestWireInterceptorSeesMessages: a unary interceptor gets Check's
// request and response messages, and the client the same answer.
func TestWireInterceptorSeesMessages(t *testing.T) {
	is := newTestIssuer(t, false)
	s := newTestServer(t, newRealEngine(t, is.URL))
	var seen []string
	icpt := func(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
		resp, err := h(ctx, req)
		seen = append(seen, fmt.Sprintf("%s %T %T", info.FullMethod, req, resp))
		return resp, err
	}
	client := serveOn(t, grpc.NewServer(append(ServerOptions(100), grpc.UnaryInterceptor(icpt))...), s)
	req := envoyRequest("GET", "/data/f", map[string]string{"authorization": "Bearer " + goodToken}, nil)
	s.Check(t.Context(), req)
	for range 2 {
		got, err := client.Check(t.Context(), req)
		if err != nil {
			t.Fatal(err)
		}
		if want, _ := s.Check(t.Context(), req); !proto.Equal(got, want) || meta(want, "lease") != "hit" {
			t.Fatalf("got %v, want %v", got, want)
		}
	}
	want := "/envoy.service.auth.v3.Authorization/Check *authv3.CheckRequest *authv3.CheckResponse"
	if len(seen) != 2 || seen[0] != want || seen[1] != want {
		t.Fatalf("the interceptor saw %q, want %q twice", seen, want)
	}
}

// TestEncodedHitsPerShape: one view keeps one encoding per keepable shape
// in use, at most maxEncodings, the oldest dropped first; each decodes to
// its decision's message. A miss, and a hit passing the client's own
// If-None-Match on, get none.
func TestEncodedHitsPerShape(t *testing.T) {
	is := newTestIssuer(t, false)
	eng := newRealEngine(t, is.URL)
	ctx := t.Context()
	check := func(method, path, hint, inm string) authz.Decision {
		hdr := map[string]string{"authorization": "Bearer " + goodToken}
		if inm != "" {
			hdr["if-none-match"] = inm
		}
		c := new(checkCall)
		if p := c.fill(envoyRequest(method, path, hdr, map[string]string{TierHintKey: hint})); p != "" {
			t.Fatal(p)
		}
		return eng.Check(ctx, &c.req)
	}
	if d := check("GET", "/data/f", "", ""); encodedHit(&d) != nil {
		t.Fatalf("a miss was encoded: %+v", d)
	}
	if d := check("GET", "/store/f", "", `"etag"`); d.View == nil || encodedHit(&d) != nil {
		t.Fatalf("a hit with the client's If-None-Match was encoded (or no hit): %+v", d)
	}
	shapes := []struct{ method, path string }{{"GET", "/data/f"}, {"PUT", "/data/f"}, {"GET", "/store/f"}, {"HEAD", "/store/f"}}
	var view *authz.LeaseView
	for i, sh := range shapes {
		hint := ""
		if sh.method == "HEAD" {
			hint = "write" // the storage route's write shape
		}
		d := check(sh.method, sh.path, hint, "")
		e := encodedHit(&d)
		if e == nil || d.View == nil || view != nil && d.View != view {
			t.Fatalf("%d: not an encoded hit of the one view: %+v", i, d)
		}
		view = d.View
		var got authv3.CheckResponse
		if err := proto.Unmarshal(e.wire.Materialize(), &got); err != nil {
			t.Fatal(err)
		}
		if want := okOf(&d); !proto.Equal(&got, want) {
			t.Fatalf("%d: encoding %v, want %v", i, &got, want)
		}
		if again := check(sh.method, sh.path, hint, ""); encodedHit(&again) != e {
			t.Fatalf("%d: the same shape was encoded again", i)
		}
	}
	if n := len(view.Memo().(encodings)); n != len(shapes) {
		t.Fatalf("the view keeps %d encodings, want %d", n, len(shapes))
	}
}

// TestEncodingsDropTheOldest: past maxEncodings shapes, a view keeps the
// newest; an answer too large to keep is built, not kept.
func TestEncodingsDropTheOldest(t *testing.T) {
	d := allowDecision()
	d.Lease, d.View = authz.LeaseHit, new(authz.LeaseView)
	var order []*encodedOK
	for i := range maxEncodings + 2 {
		d.Tier = fmt.Sprintf("tier-%d", i)
		order = append(order, encodedHit(&d))
	}
	if kept := d.View.Memo().(encodings); !slices.Equal(kept, order[len(order)-maxEncodings:]) {
		t.Fatalf("kept %d encodings, not the newest %d", len(kept), maxEncodings)
	}
	d.Tier = order[len(order)-1].shape.tier
	if encodedHit(&d) != order[len(order)-1] {
		t.Fatal("the newest encoding was not reused")
	}
	d.Identity.Scope = strings.Repeat("s", maxEncodedBytes)
	big := encodedHit(&d)
	if big == nil || !proto.Equal(big, okOf(&d)) {
		t.Fatalf("an answer over maxEncodedBytes was not encoded for its hit: %v", big)
	}
	if kept := d.View.Memo().(encodings); slices.Contains(kept, big) {
		t.Fatal("an answer over maxEncodedBytes was kept")
	}
}

// TestOKShapeEqualSeesEveryField: equal compares every field of okShape,
// every string of its struct and slice fields too, and the response shows
// each, so a decision that renders differently never reuses an encoding.
func TestOKShapeEqualSeesEveryField(t *testing.T) {
	d := allowDecision()
	d.Tier, d.Lease, d.StripAuthorization = "read", authz.LeaseHit, true
	base := shapeOf(&d)
	fresh := func() okShape {
		o := shapeOf(&d)
		o.headers = slices.Clone(o.headers)
		return o
	}
	// Each way to change one thing in a shape; a new field with no case
	// fails the test.
	var changes []string
	change := map[string]func(*okShape){}
	typ := reflect.TypeFor[okShape]()
	for i := range typ.NumField() {
		f := typ.Field(i)
		add := func(name string, fn func(reflect.Value)) {
			changes = append(changes, name)
			change[name] = func(o *okShape) {
				fn(reflect.NewAt(f.Type, reflect.ValueOf(o).Elem().Field(i).Addr().UnsafePointer()).Elem())
			}
		}
		switch f.Type.Kind() {
		case reflect.Bool:
			add(f.Name, func(v reflect.Value) { v.SetBool(!v.Bool()) })
		case reflect.String:
			add(f.Name, func(v reflect.Value) { v.SetString(v.String() + "x") })
		case reflect.Struct:
			for j := range f.Type.NumField() {
				add(f.Name+"."+f.Type.Field(j).Name, func(v reflect.Value) { v.Field(j).SetString(v.Field(j).String() + "x") })
			}
		case reflect.Slice:
			el := f.Type.Elem()
			for j := range el.NumField() {
				add(f.Name+"[1]."+el.Field(j).Name, func(v reflect.Value) { v.Index(1).Field(j).SetString(v.Index(1).Field(j).String() + "x") })
			}
			add(f.Name+" longer", func(v reflect.Value) {
				extra := reflect.New(el).Elem()
				for j := range el.NumField() {
					extra.Field(j).SetString("x-extra")
				}
				v.Set(reflect.Append(v, extra))
			})
		default:
			t.Fatalf("field %s of kind %v: teach this test to change it", f.Name, f.Type.Kind())
		}
	}
	for _, name := range changes {
		t.Run(name, func(t *testing.T) {
			other := fresh()
			change[name](&other)
			if base.equal(&other) || other.equal(&base) {
				t.Fatalf("shapes differing in %s are equal", name)
			}
			if proto.Equal(okResponse(&base), okResponse(&other)) {
				t.Fatalf("the response does not show %s", name)
			}
		})
	}
	if same := fresh(); !base.equal(&same) {
		t.Fatal("equal shapes in different slices are not equal")
	}
}

// TestEncodedOKThroughAnyCodec: an encodedOK is the answer its decision's
// message is, through the adapter's codec, protobuf-go and protojson; and
// what a codec does to the message it is handed (Reset) leaves the
// encoding alone.
func TestEncodedOKThroughAnyCodec(t *testing.T) {
	d := allowDecision()
	d.Lease = authz.LeaseHit
	want := okOf(&d)
	e := encode(shapeOf(&d))
	if e == nil {
		t.Fatal("encode failed")
	}
	viaCodec, err := Codec().Marshal(e)
	if err != nil {
		t.Fatal(err)
	}
	viaProto, err := proto.Marshal(e)
	if err != nil {
		t.Fatal(err)
	}
	for name, b := range map[string][]byte{"adapter codec": viaCodec.Materialize(), "protobuf-go": viaProto} {
		var got authv3.CheckResponse
		if err := proto.Unmarshal(b, &got); err != nil || !proto.Equal(&got, want) {
			t.Errorf("%s: decodes to %v (%v), want %v", name, &got, err, want)
		}
	}
	js, err := protojson.Marshal(e)
	if err != nil {
		t.Fatal(err)
	}
	var got authv3.CheckResponse
	if err := protojson.Unmarshal(js, &got); err != nil || !proto.Equal(&got, want) {
		t.Errorf("protojson: %s (%v)", js, err)
	}
	proto.Reset(e)
	again, err := proto.Marshal(e)
	var after authv3.CheckResponse
	if err != nil || proto.Unmarshal(again, &after) != nil || !proto.Equal(&after, want) {
		t.Errorf("after Reset protobuf-go sends %v (%v), want %v", &after, err, want)
	}
	if s := fmt.Sprint(e); strings.Contains(s, d.Identity.Subject) {
		t.Errorf("an encoding prints its identity: %s", s)
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

// TestEncodingsConcurrentEviction: hits of more shapes than a view keeps,
// at once, through both codecs: every answer is its own decision's while
// the view's encodings are replaced under them.
func TestEncodingsConcurrentEviction(t *testing.T) {
	view := new(authz.LeaseView)
	decisions := make([]authz.Decision, maxEncodings+3)
	for i := range decisions {
		d := allowDecision()
		d.Lease, d.View, d.Tier = authz.LeaseHit, view, fmt.Sprintf("tier-%d", i)
		decisions[i] = d
	}
	var wg sync.WaitGroup
	for g := range 6 {
		wg.Go(func() {
			for i := range 300 {
				d := decisions[(g+i)%len(decisions)]
				e := encodedHit(&d)
				b, err := proto.Marshal(e) // ProtoReflect: a new message each time
				if i%2 == 0 {
					var bs mem.BufferSlice
					bs, err = Codec().Marshal(e)
					b = bs.Materialize()
				}
				var got authv3.CheckResponse
				if err != nil || proto.Unmarshal(b, &got) != nil || !proto.Equal(&got, okOf(&d)) {
					t.Errorf("%s: got %v (%v)", d.Tier, &got, err)
					return
				}
			}
		})
	}
	wg.Wait()
	if n := len(view.Memo().(encodings)); n != maxEncodings {
		t.Fatalf("the view keeps %d encodings, want %d", n, maxEncodings)
	}
}

// FuzzWireHit: hostile methods, paths, tier hints and headers on a token
// the issuer says is active. Whatever the gRPC handler answers, a kept
// encoding or a message, carries a status and decodes to what Check
// returns for the same request.
func FuzzWireHit(f *testing.F) {
	f.Add("GET", "/data/f", "x-forwarded-for", "10.0.0.1", "", uint8(0))
	f.Add("GET", "/store/f", "if-none-match", `"abc"`, "", uint8(0))
	f.Add("HEAD", "/store/f", "If-None-Match", "*", "write", uint8(1))
	f.Add("PUT", "/data/f", "x_auth_subject", "root", "read", uint8(2))
	f.Add("GET", "/data/f", "X-Auth-Scope", "storage.modify:/", "critical", uint8(2))
	f.Add("MOVE", "/store/a", "destination", "/store/b", "", uint8(1))
	f.Add("DELETE", "/%2e%2e/", "authorization", "Bearer other", "nope", uint8(0))
	is := newTestIssuer(f, false)
	s := newTestServer(f, newRealEngine(f, is.URL))
	c := Codec()
	f.Fuzz(func(t *testing.T, method, path, name, value, hint string, shape uint8) {
		hr := &authv3.AttributeContext_HttpRequest{Method: method, Path: path, Host: "storage.example"}
		switch shape % 3 {
		case 0: // Envoy's map
			hr.Headers = map[string]string{"authorization": "Bearer " + goodToken, name: value}
		case 1: // the raw header list
			hr.HeaderMap = rawHeaders("authorization", "Bearer "+goodToken, name, value)
		case 2: // mixed-case map keys
			hr.Headers = map[string]string{"Authorization": "Bearer " + goodToken, strings.ToUpper(name): value}
		}
		req := httpReq(hr, map[string]string{TierHintKey: hint})
		ctx := t.Context()
		s.Check(ctx, req) // the lease and its view
		want, _ := s.Check(ctx, req)
		out, err := c.Marshal(s.answer(ctx, req))
		if err != nil {
			t.Fatalf("marshal: %v", err)
		}
		var got authv3.CheckResponse
		if err := proto.Unmarshal(out.Materialize(), &got); err != nil {
			t.Fatalf("the wire's bytes do not decode: %v", err)
		}
		if got.GetStatus() == nil {
			t.Fatal("answer without status")
		}
		if !proto.Equal(&got, want) {
			t.Fatalf("the wire sent\n%v\nCheck returns\n%v", &got, want)
		}
	})
}
