package envoy

import (
	"context"
	"maps"
	"slices"
	"strings"
	"sync"
	"testing"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"google.golang.org/grpc/codes"

	"github.com/leasegate/leasegate/authz"
)

// singleValued are the request headers SPEC §3 allows once: more than one
// field is 400. The engine refuses n > 1; the adapter's job is the count.
// Each has two values a wrong pick would judge differently.
var singleValued = []struct{ name, first, second string }{
	{"destination", "https://other.example.org/scratch/x", "/store/protected/victim"},
	{"source", "https://other.example.org/in", "/store/protected/in"},
	{"overwrite", "F", "T"},
	{"if-none-match", "*", `"etag-1"`},
	{"authorization", "Bearer a", "Bearer b"},
}

// headerShape builds one way the same fields can reach the adapter.
type headerShape struct {
	name string
	// build returns the http request carrying fields (name, value) in order.
	build func(fields [][2]string) *authv3.AttributeContext_HttpRequest
	// wantN and wantValue give what Get must return for a name carried by
	// vals (in order).
	wantN     func(vals []string) int
	wantValue func(vals []string) string
}

// lowerASCII lower-cases like Envoy (absl::AsciiStrToLower): ASCII letters
// only, every other byte (invalid UTF-8 included) kept.
func lowerASCII(s string) string {
	b := []byte(s)
	for i, c := range b {
		if 'A' <= c && c <= 'Z' {
			b[i] = c + 'a' - 'A'
		}
	}
	return string(b)
}

func joined(vals []string) string { return strings.Join(vals, ",") }
func count(vals []string) int     { return len(vals) }

// listRequest builds a header_map request; entry makes the i-th entry.
func listRequest(entry func(i int, k, v string) *corev3.HeaderValue) func([][2]string) *authv3.AttributeContext_HttpRequest {
	return func(fields [][2]string) *authv3.AttributeContext_HttpRequest {
		hm := &corev3.HeaderMap{}
		for i, f := range fields {
			hm.Headers = append(hm.Headers, entry(i, f[0], f[1]))
		}
		return &authv3.AttributeContext_HttpRequest{Method: "COPY", Path: "/store/a", Host: "storage.example", HeaderMap: hm}
	}
}

var headerShapes = []headerShape{
	{
		// Envoy's map: repeated fields arrive joined with "," as one entry,
		// so the count is 1 and the comma is the engine's to judge.
		name: "headers map, joined by Envoy",
		build: func(fields [][2]string) *authv3.AttributeContext_HttpRequest {
			m := map[string]string{}
			for _, f := range fields {
				k := lowerASCII(f[0])
				if old, ok := m[k]; ok {
					m[k] = old + "," + f[1]
				} else {
					m[k] = f[1]
				}
			}
			return &authv3.AttributeContext_HttpRequest{Method: "COPY", Path: "/store/a", Host: "storage.example", Headers: m}
		},
		wantN:     func(vals []string) int { return min(len(vals), 1) },
		wantValue: joined,
	},
	{
		// Not Envoy-built: keys that differ only in case are separate
		// fields; values joined in key order (upper case sorts first), so
		// the answer never depends on map iteration order.
		name: "headers map, keys differing in case",
		build: func(fields [][2]string) *authv3.AttributeContext_HttpRequest {
			m := map[string]string{}
			for _, f := range fields {
				k := lowerASCII(f[0])
				if _, ok := m[k]; ok { // the second field of a name
					k = strings.ToUpper(k[:1]) + k[1:]
				}
				m[k] = f[1]
			}
			return &authv3.AttributeContext_HttpRequest{Method: "COPY", Path: "/store/a", Host: "storage.example", Headers: m}
		},
		wantN: count,
		wantValue: func(vals []string) string {
			if len(vals) == 2 {
				return vals[1] + "," + vals[0]
			}
			return joined(vals)
		},
	},
	{
		name:      "header_map raw_value",
		build:     listRequest(func(_ int, k, v string) *corev3.HeaderValue { return &corev3.HeaderValue{Key: k, RawValue: []byte(v)} }),
		wantN:     count,
		wantValue: joined,
	},
	{
		name:      "header_map value",
		build:     listRequest(func(_ int, k, v string) *corev3.HeaderValue { return &corev3.HeaderValue{Key: k, Value: v} }),
		wantN:     count,
		wantValue: joined,
	},
	{
		name: "header_map value and raw_value mixed, names in any case",
		build: listRequest(func(i int, k, v string) *corev3.HeaderValue {
			if i%2 == 0 {
				return &corev3.HeaderValue{Key: strings.ToUpper(k), Value: v}
			}
			return &corev3.HeaderValue{Key: k, RawValue: []byte(v)}
		}),
		wantN:     count,
		wantValue: joined,
	},
}

// TestHeaderViewCountsSingleValuedHeaders: for each header SPEC §3 allows
// once, in every shape the adapter reads, the engine is told how many fields
// there were, and the value is never one of two fields picked silently.
func TestHeaderViewCountsSingleValuedHeaders(t *testing.T) {
	for _, shape := range headerShapes {
		for _, h := range singleValued {
			for _, vals := range [][]string{{h.first}, {h.first, h.second}, {h.first, h.second, h.first}} {
				if len(vals) == 3 && strings.Contains(shape.name, "keys differing in case") {
					continue // a map holds two spellings of a short name at most here
				}
				t.Run(shape.name+"/"+h.name+"/"+string(rune('0'+len(vals))), func(t *testing.T) {
					fields := [][2]string{{"accept", "*/*"}}
					for _, v := range vals {
						fields = append(fields, [2]string{h.name, v}, [2]string{"x-filler", "f"})
					}
					f := &fakeChecker{d: authz.Decision{Status: 401, Challenge: `Bearer realm="r"`}}
					if _, err := newTestServer(t, f).Check(t.Context(), httpReq(shape.build(fields), nil)); err != nil {
						t.Fatal(err)
					}
					if f.got == nil || f.got.Headers == nil {
						t.Fatalf("engine got no headers: %+v", f.got)
					}
					v, n := f.got.Headers.Get(h.name)
					if wantN, wantV := shape.wantN(vals), shape.wantValue(vals); n != wantN || v != wantV {
						t.Errorf("Get(%q) = %q, %d; want %q, %d", h.name, v, n, wantV, wantN)
					}
					if len(vals) > 1 && (v == h.first || v == h.second) {
						t.Errorf("Get(%q) = %q: one of %d fields picked", h.name, v, len(vals))
					}
				})
			}
		}
	}
}

// FuzzHeaderShapesAgree is the differential test of the two wire shapes:
// any list of fields, sent as Envoy's joined headers map or as header_map
// (raw_value or value), gives the same value for every name, with the true
// field count from header_map and 1 from the map.
func FuzzHeaderShapesAgree(f *testing.F) {
	f.Add("destination:/a\ndestination:https://x.example/b\noverwrite:F", "destination")
	f.Add("Overwrite:F\noverwrite:T\nOVERWRITE:", "overwrite")
	f.Add("if-none-match:*\nx:1\nif-none-match:\"e\"", "if-none-match")
	f.Add("a:\na:,\na:x,y", "a")
	f.Fuzz(func(t *testing.T, spec, probe string) {
		var fields [][2]string
		for line := range strings.SplitSeq(spec, "\n") {
			k, v, ok := strings.Cut(line, ":")
			if !ok || k == "" {
				continue
			}
			fields = append(fields, [2]string{k, v})
		}
		if len(fields) == 0 || len(fields) > 64 {
			t.Skip()
		}
		names := map[string][]string{lowerASCII(probe): nil}
		for _, fl := range fields {
			k := lowerASCII(fl[0])
			names[k] = append(names[k], fl[1])
		}
		views := map[string]headerView{}
		for _, shape := range []int{0, 2, 3} {
			hr := headerShapes[shape].build(fields)
			hv, problem := newHeaderView(hr.GetHeaders(), hr.GetHeaderMap())
			if problem != "" {
				t.Fatalf("%s: %s", headerShapes[shape].name, problem)
			}
			views[headerShapes[shape].name] = hv
		}
		for _, name := range slices.Sorted(maps.Keys(names)) {
			vals := names[name]
			var first string
			for i, shapeName := range slices.Sorted(maps.Keys(views)) {
				hv := views[shapeName]
				v, n := hv.Get(name)
				wantN := len(vals)
				if strings.HasPrefix(shapeName, "headers map") {
					wantN = min(wantN, 1)
				}
				if n != wantN {
					t.Errorf("%s: Get(%q) n = %d, want %d", shapeName, name, n, wantN)
				}
				if i == 0 {
					first = v
				} else if v != first {
					t.Errorf("%s: Get(%q) = %q, another shape gave %q", shapeName, name, v, first)
				}
			}
		}
	})
}

// recordingChecker passes requests to the real engine and records what the
// engine was able to read of the single-valued headers.
type recordingChecker struct {
	inner Checker
	mu    sync.Mutex
	seen  map[string]headerWant
}

func (r *recordingChecker) Check(ctx context.Context, req *authz.Request) authz.Decision {
	r.mu.Lock()
	r.seen = map[string]headerWant{}
	if req.Headers != nil {
		for _, h := range singleValued {
			v, n := req.Headers.Get(h.name)
			r.seen[h.name] = headerWant{v, n}
		}
	}
	r.mu.Unlock()
	return r.inner.Check(ctx, req)
}

// TestDuplicateSingleValuedHeadersReachEngine sends, over a real gRPC
// connection to the adapter in front of the real engine, a COPY with two
// fields of each single-valued header in every shape, and checks the count
// the engine is given. The engine's refusal of n > 1 (400, SPEC §3) is the
// engine's rule and is tested there; this proves the count it relies on
// survives the wire and the adapter.
func TestDuplicateSingleValuedHeadersReachEngine(t *testing.T) {
	is := newTestIssuer(t, false)
	rec := &recordingChecker{inner: newRealEngine(t, is.URL)}
	client := serveGRPC(t, newTestServer(t, rec))
	for _, shape := range headerShapes {
		for _, h := range singleValued {
			t.Run(shape.name+"/"+h.name, func(t *testing.T) {
				fields := [][2]string{{"authorization", "Bearer " + readerToken}, {h.name, h.first}, {h.name, h.second}}
				if h.name == "authorization" {
					fields = fields[1:]
				}
				resp, err := client.Check(t.Context(), httpReq(shape.build(fields), nil))
				if err != nil {
					t.Fatal(err)
				}
				checkWire(t, resp)
				rec.mu.Lock()
				got := rec.seen[h.name]
				rec.mu.Unlock()
				vals := []string{h.first, h.second}
				if want := (headerWant{shape.wantValue(vals), shape.wantN(vals)}); got != want {
					t.Errorf("engine read %q = %q ×%d, want %q ×%d", h.name, got.value, got.n, want.value, want.n)
				}
			})
		}
	}
}

// TestCheckRefusesAmbiguousHeaderFields: what the adapter itself cannot read
// unambiguously is a 400 invalid_request, decided before any lookup.
func TestCheckRefusesAmbiguousHeaderFields(t *testing.T) {
	const realm = `Bearer realm="leasegate-test", error="invalid_request", error_description="`
	tests := []struct {
		name     string
		hr       *authv3.AttributeContext_HttpRequest
		wantDesc string
	}{
		{
			name: "header_map entry with different value and raw_value",
			hr: &authv3.AttributeContext_HttpRequest{Method: "COPY", Path: "/store/a", Host: "storage.example",
				HeaderMap: &corev3.HeaderMap{Headers: []*corev3.HeaderValue{
					{Key: "authorization", RawValue: []byte("Bearer " + goodToken)},
					{Key: "destination", Value: "https://other.example.org/x", RawValue: []byte("/store/protected")},
				}}},
			wantDesc: "header_map entry has both value and raw_value",
		},
		{
			name: "two :method entries and no method field",
			hr: &authv3.AttributeContext_HttpRequest{Path: "/data/f", Host: "storage.example",
				HeaderMap: rawHeaders(":method", "GET", ":method", "DELETE", "authorization", "Bearer "+goodToken)},
			wantDesc: "more than one :method header",
		},
		{
			name: "two :path entries and no path field",
			hr: &authv3.AttributeContext_HttpRequest{Method: "GET", Host: "storage.example",
				HeaderMap: rawHeaders(":path", "/public/f", ":path", "/store/f", "authorization", "Bearer "+goodToken)},
			wantDesc: "more than one :path header",
		},
		{
			name: "two :authority entries and no host field",
			hr: &authv3.AttributeContext_HttpRequest{Method: "GET", Path: "/data/f",
				HeaderMap: rawHeaders(":authority", "storage.example", ":authority", "other.example", "authorization", "Bearer "+goodToken)},
			wantDesc: "more than one :authority header",
		},
		{
			name: "two host entries and no authority",
			hr: &authv3.AttributeContext_HttpRequest{Method: "GET", Path: "/data/f",
				HeaderMap: rawHeaders("host", "storage.example", "Host", "other.example", "authorization", "Bearer "+goodToken)},
			wantDesc: "more than one Host header",
		},
		{
			name: "map-joined :authority",
			hr: &authv3.AttributeContext_HttpRequest{Method: "GET", Path: "/data/f", Headers: map[string]string{
				":authority": "storage.example,other.example", "authorization": "Bearer " + goodToken,
			}},
			wantDesc: "host is not a single host",
		},
	}
	is := newTestIssuer(t, false)
	s := newTestServer(t, newRealEngine(t, is.URL))
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			resp, err := s.Check(t.Context(), httpReq(tc.hr, nil))
			if err != nil {
				t.Fatal(err)
			}
			checkWire(t, resp)
			dr := resp.GetDeniedResponse()
			if codes.Code(resp.GetStatus().GetCode()) != codes.Unauthenticated || dr.GetStatus().GetCode() != typev3.StatusCode_BadRequest {
				t.Fatalf("got %v / %v, want UNAUTHENTICATED / 400", resp.GetStatus(), dr.GetStatus().GetCode())
			}
			if www := checkHeaderOptions(t, dr.GetHeaders())["www-authenticate"]; www != realm+tc.wantDesc+`"` {
				t.Errorf("www-authenticate = %q, want description %q", www, tc.wantDesc)
			}
			if is.calls.Load() != 0 {
				t.Errorf("issuer called %d times for a malformed request", is.calls.Load())
			}
		})
	}
}

// TestHeaderNamesFoldASCIIOnly: header names are ASCII tokens (RFC 9110
// §5.1); a name that matches only under Unicode case folding is another
// header, one no proxy or backend would read as Destination or Source.
func TestHeaderNamesFoldASCIIOnly(t *testing.T) {
	tests := []struct {
		name  string
		hr    *authv3.AttributeContext_HttpRequest
		probe string
		want  headerWant
	}{
		{
			name: "header_map long s", probe: "destination", want: headerWant{"/store/b", 1},
			hr: &authv3.AttributeContext_HttpRequest{Method: "COPY", Path: "/a", Host: "h",
				HeaderMap: rawHeaders("de\u017ftination", "https://other.example.org/x", "Destination", "/store/b")},
		},
		{
			name: "mixed-case map long s", probe: "source", want: headerWant{"", 0},
			hr: &authv3.AttributeContext_HttpRequest{Method: "COPY", Path: "/a", Host: "h",
				Headers: map[string]string{"\u017fOURCE": "https://other.example.org/x", "Accept": "*/*"}},
		},
		{
			name: "header_map ASCII case still folds", probe: "source", want: headerWant{"/in", 1},
			hr: &authv3.AttributeContext_HttpRequest{Method: "COPY", Path: "/a", Host: "h",
				HeaderMap: rawHeaders("SoUrCe", "/in")},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := &fakeChecker{d: authz.Decision{Status: 401}}
			if _, err := newTestServer(t, f).Check(t.Context(), httpReq(tc.hr, nil)); err != nil {
				t.Fatal(err)
			}
			if v, n := f.got.Headers.Get(tc.probe); v != tc.want.value || n != tc.want.n {
				t.Errorf("Get(%q) = %q, %d; want %q, %d", tc.probe, v, n, tc.want.value, tc.want.n)
			}
		})
	}
}

// TestCheckRefusesUnderscoreTwins: an allow whose request carries an
// underscore spelling of an identity header (which Envoy's overwrite does
// not touch and a "_"-folding backend reads as the identity) is a 400.
func TestCheckRefusesUnderscoreTwins(t *testing.T) {
	is := newTestIssuer(t, false)
	client := serveGRPC(t, newTestServer(t, newRealEngine(t, is.URL)))
	tests := []struct {
		name     string
		req      *authv3.CheckRequest
		wantHTTP typev3.StatusCode // 0: allowed
	}{
		{
			name:     "headers map x_auth_subject",
			req:      envoyRequest("GET", "/data/f", map[string]string{"authorization": "Bearer " + goodToken, "x_auth_subject": "root"}, nil),
			wantHTTP: typev3.StatusCode_BadRequest,
		},
		{
			name: "header_map X-Auth_Scope",
			req: httpReq(&authv3.AttributeContext_HttpRequest{Method: "GET", Path: "/data/f", Host: "storage.example",
				HeaderMap: rawHeaders("authorization", "Bearer "+goodToken, "X-Auth_Scope", "storage.modify:/")}, nil),
			wantHTTP: typev3.StatusCode_BadRequest,
		},
		{
			name: "header_map x_auth_client_id",
			req: httpReq(&authv3.AttributeContext_HttpRequest{Method: "GET", Path: "/data/f", Host: "storage.example",
				HeaderMap: rawHeaders("x_auth_client_id", "admin-cli", "authorization", "Bearer "+goodToken)}, nil),
			wantHTTP: typev3.StatusCode_BadRequest,
		},
		{
			name: "exact spelling is overwritten, not refused",
			req:  envoyRequest("GET", "/data/f", map[string]string{"authorization": "Bearer " + goodToken, "x-auth-subject": "root"}, nil),
		},
		{
			name: "other underscore headers are fine",
			req: envoyRequest("GET", "/data/f", map[string]string{
				"authorization": "Bearer " + goodToken, "x_request_id": "r", "x_auth_subjects": "s", "x_auth": "a",
			}, nil),
		},
		{
			name:     "a denial stays its own denial",
			req:      envoyRequest("GET", "/data/f", map[string]string{"x_auth_subject": "root"}, nil),
			wantHTTP: typev3.StatusCode_Unauthorized,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			resp, err := client.Check(t.Context(), tc.req)
			if err != nil {
				t.Fatal(err)
			}
			checkWire(t, resp)
			if tc.wantHTTP == 0 {
				if resp.GetOkResponse() == nil {
					t.Fatalf("denied %v, want allowed", resp.GetDeniedResponse().GetStatus())
				}
				return
			}
			dr := resp.GetDeniedResponse()
			if dr.GetStatus().GetCode() != tc.wantHTTP {
				t.Fatalf("HTTP status %v, want %v", dr.GetStatus().GetCode(), tc.wantHTTP)
			}
			if _, ok := resp.GetDynamicMetadata().GetFields()["sub"]; ok {
				t.Error("refused request still carries the identity in dynamic_metadata")
			}
			if www := checkHeaderOptions(t, dr.GetHeaders())["www-authenticate"]; tc.wantHTTP == typev3.StatusCode_BadRequest &&
				www != `Bearer realm="leasegate-test", error="invalid_request", error_description="request carries an underscore spelling of an identity header"` {
				t.Errorf("www-authenticate = %q", www)
			}
		})
	}
}

// TestUnderscoreTwinEitherWay: a twin is found whichever side has the "_"
// (the request's name or an operator's identity header name), in either
// shape of headers; names without any "_" are not twins.
func TestUnderscoreTwinEitherWay(t *testing.T) {
	dash := &authz.Decision{Allow: true, Headers: []authz.Header{{Name: "x-auth-subject", Value: "alice"}}}
	under := &authz.Decision{Allow: true, Headers: []authz.Header{{Name: "x_auth_subject", Value: "alice"}}}
	tests := []struct {
		name string
		m    map[string]string
		list *corev3.HeaderMap
		d    *authz.Decision
		want string
	}{
		{name: "request _, identity -", m: map[string]string{"x_auth_subject": "r"}, d: dash, want: "x_auth_subject"},
		{name: "request -, identity _", m: map[string]string{"x-auth-subject": "r"}, d: under, want: "x-auth-subject"},
		{name: "mixed case, identity _", m: map[string]string{"X-Auth-Subject": "r"}, d: under, want: "X-Auth-Subject"},
		{name: "list, request -, identity _", list: rawHeaders("X-Auth-Subject", "r"), d: under, want: "X-Auth-Subject"},
		{name: "list, request _, identity -", list: rawHeaders("a", "b", "x_AUTH_subject", "r"), d: dash, want: "x_AUTH_subject"},
		{name: "same spelling", m: map[string]string{"x-auth-subject": "r"}, d: dash},
		{name: "no _ anywhere", m: map[string]string{"x-auth-subjec": "r", "authorization": "b"}, d: dash},
		{name: "_ elsewhere", m: map[string]string{"x_other_name": "r"}, d: dash},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h, problem := newHeaderView(tc.m, tc.list)
			if problem != "" {
				t.Fatal(problem)
			}
			if got := h.underscoreTwin(tc.d, namesHaveUnderscore(tc.d.Headers)); got != tc.want {
				t.Fatalf("underscoreTwin = %q, want %q", got, tc.want)
			}
		})
	}
}
