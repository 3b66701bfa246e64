package envoy

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/proto"

	"github.com/leasegate/leasegate/authz"
	"github.com/leasegate/leasegate/authz/issuer"
	"github.com/leasegate/leasegate/leasecache"
	"github.com/leasegate/leasegate/policy"
)

// ---- fakes and builders ----

// fakeChecker records the request it was given and answers a canned
// decision (or panics, to test the adapter's recovery).
type fakeChecker struct {
	mu    sync.Mutex
	got   *authz.Request
	calls int
	d     authz.Decision
	panic any
}

func (f *fakeChecker) Check(_ context.Context, r *authz.Request) authz.Decision {
	// A copy: the adapter recycles r once Check returns, as a Checker
	// may expect (authz.Engine.Check keeps no reference to it).
	got := *r
	if hv, ok := r.Headers.(*headerView); ok {
		view := *hv
		got.Headers = &view
	}
	f.mu.Lock()
	f.got, f.calls = &got, f.calls+1
	f.mu.Unlock()
	if f.panic != nil {
		panic(f.panic)
	}
	return f.d
}

func newTestServer(t testing.TB, c Checker, opts ...func(*Config)) *Server {
	t.Helper()
	cfg := Config{Engine: func() Checker { return c }, Realm: "leasegate-test",
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
	for _, o := range opts {
		o(&cfg)
	}
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// httpReq builds a CheckRequest around one attributes.request.http.
func httpReq(hr *authv3.AttributeContext_HttpRequest, ext map[string]string) *authv3.CheckRequest {
	return &authv3.CheckRequest{Attributes: &authv3.AttributeContext{
		Request:           &authv3.AttributeContext_Request{Http: hr},
		ContextExtensions: ext,
	}}
}

// rawHeaders is Envoy's encode_raw_headers shape: key + raw_value, value empty.
func rawHeaders(kv ...string) *corev3.HeaderMap {
	hm := &corev3.HeaderMap{}
	for i := 0; i+1 < len(kv); i += 2 {
		hm.Headers = append(hm.Headers, &corev3.HeaderValue{Key: kv[i], RawValue: []byte(kv[i+1])})
	}
	return hm
}

// envoyRequest is shaped like what Envoy sends: lower-case keys,
// pseudo-headers in the map, x-request-id, the raw path with its query.
func envoyRequest(method, path string, hdr map[string]string, ext map[string]string) *authv3.CheckRequest {
	h := map[string]string{
		":method":      method,
		":path":        path,
		":authority":   "storage.example",
		":scheme":      "https",
		"user-agent":   "curl/8.5.0",
		"accept":       "*/*",
		"x-request-id": "7f3c9a2e-req",
	}
	maps.Copy(h, hdr)
	return httpReq(&authv3.AttributeContext_HttpRequest{
		Id: "7f3c9a2e-req", Method: method, Path: path, Host: "storage.example",
		Scheme: "https", Protocol: "HTTP/1.1", Headers: h,
	}, ext)
}

// ---- request mapping ----

type headerWant struct {
	value string
	n     int
}

func TestCheckRequestMapping(t *testing.T) {
	tests := []struct {
		name                 string
		req                  *authv3.CheckRequest
		wantMethod, wantHost string
		wantPath, wantTier   string
		wantRequestID        string
		wantNoHeaders        bool
		wantHeaders          map[string]headerWant
	}{
		{
			name: "envoy headers map",
			req: envoyRequest("GET", "/data/a%2Fb?x=1&y", map[string]string{
				"authorization": "Bearer tok", "destination": "/d",
			}, nil),
			wantMethod: "GET", wantHost: "storage.example", wantPath: "/data/a%2Fb?x=1&y", wantRequestID: "7f3c9a2e-req",
			wantHeaders: map[string]headerWant{
				"authorization": {"Bearer tok", 1}, "destination": {"/d", 1}, "overwrite": {"", 0},
			},
		},
		{
			name:       "envoy-joined duplicate authorization is one field",
			req:        envoyRequest("GET", "/", map[string]string{"authorization": "Bearer a,Bearer b"}, nil),
			wantMethod: "GET", wantHost: "storage.example", wantPath: "/", wantRequestID: "7f3c9a2e-req",
			wantHeaders: map[string]headerWant{"authorization": {"Bearer a,Bearer b", 1}},
		},
		{
			name: "header_map raw_value",
			req: httpReq(&authv3.AttributeContext_HttpRequest{
				Method: "PUT", Path: "/f", Host: "h.example",
				HeaderMap: rawHeaders(":method", "PUT", "authorization", "Bearer raw", "x-request-id", "rid-raw"),
			}, nil),
			wantMethod: "PUT", wantHost: "h.example", wantPath: "/f", wantRequestID: "rid-raw",
			wantHeaders: map[string]headerWant{"authorization": {"Bearer raw", 1}},
		},
		{
			name: "header_map duplicate authorization counted",
			req: httpReq(&authv3.AttributeContext_HttpRequest{
				Method: "GET", Path: "/", Host: "h",
				HeaderMap: rawHeaders("authorization", "Bearer a", "accept", "*/*", "Authorization", "Bearer b"),
			}, nil),
			wantMethod: "GET", wantHost: "h", wantPath: "/",
			wantHeaders: map[string]headerWant{"authorization": {"Bearer a,Bearer b", 2}},
		},
		{
			name: "header_map value used when raw_value empty",
			req: httpReq(&authv3.AttributeContext_HttpRequest{
				Method: "GET", Path: "/", Host: "h",
				HeaderMap: &corev3.HeaderMap{Headers: []*corev3.HeaderValue{nil, {Key: "Authorization", Value: "Bearer v"}}},
			}, nil),
			wantMethod: "GET", wantHost: "h", wantPath: "/",
			wantHeaders: map[string]headerWant{"authorization": {"Bearer v", 1}},
		},
		{
			name: "header_map wins over the map",
			req: httpReq(&authv3.AttributeContext_HttpRequest{
				Method: "GET", Path: "/", Host: "h",
				Headers:   map[string]string{"authorization": "Bearer from-map"},
				HeaderMap: rawHeaders("authorization", "Bearer from-list"),
			}, nil),
			wantMethod: "GET", wantHost: "h", wantPath: "/",
			wantHeaders: map[string]headerWant{"authorization": {"Bearer from-list", 1}},
		},
		{
			name: "pseudo-header fallbacks from the map",
			req: httpReq(&authv3.AttributeContext_HttpRequest{Headers: map[string]string{
				":method": "DELETE", ":path": "/x?y", ":authority": "auth.example", "host": "ignored.example",
			}}, nil),
			wantMethod: "DELETE", wantHost: "auth.example", wantPath: "/x?y",
			wantHeaders: map[string]headerWant{":method": {"DELETE", 1}},
		},
		{
			name: "pseudo-header fallbacks from header_map",
			req: httpReq(&authv3.AttributeContext_HttpRequest{
				HeaderMap: rawHeaders(":method", "MKCOL", ":path", "/dir/", ":authority", "a.example"),
			}, nil),
			wantMethod: "MKCOL", wantHost: "a.example", wantPath: "/dir/",
		},
		{
			name: "host header when neither host nor authority",
			req: httpReq(&authv3.AttributeContext_HttpRequest{Method: "GET", Path: "/", Headers: map[string]string{
				"host": "h1.example",
			}}, nil),
			wantMethod: "GET", wantHost: "h1.example", wantPath: "/",
		},
		{
			name: "mixed-case map keys match case-insensitively",
			req: httpReq(&authv3.AttributeContext_HttpRequest{Method: "GET", Path: "/", Host: "h", Headers: map[string]string{
				"Authorization": "Bearer mixed", "X-Request-Id": "rid-mixed",
			}}, nil),
			wantMethod: "GET", wantHost: "h", wantPath: "/", wantRequestID: "rid-mixed",
			wantHeaders: map[string]headerWant{"authorization": {"Bearer mixed", 1}},
		},
		{
			name: "map keys differing only in case are two fields",
			req: httpReq(&authv3.AttributeContext_HttpRequest{Method: "GET", Path: "/", Host: "h", Headers: map[string]string{
				"Authorization": "Bearer a", "authorization": "Bearer a",
			}}, nil),
			wantMethod: "GET", wantHost: "h", wantPath: "/",
			wantHeaders: map[string]headerWant{"authorization": {"Bearer a,Bearer a", 2}},
		},
		{
			name:       "context_extensions tier",
			req:        envoyRequest("GET", "/", nil, map[string]string{TierHintKey: "critical", "other": "x"}),
			wantMethod: "GET", wantHost: "storage.example", wantPath: "/", wantTier: "critical", wantRequestID: "7f3c9a2e-req",
		},
		{
			name: "repeated x-request-id is not used",
			req: httpReq(&authv3.AttributeContext_HttpRequest{Id: "envoy-id", Method: "GET", Path: "/", Host: "h",
				HeaderMap: rawHeaders("x-request-id", "rid-a", "x-request-id", "rid-b")}, nil),
			wantMethod: "GET", wantHost: "h", wantPath: "/", wantRequestID: "envoy-id",
			wantHeaders: map[string]headerWant{"x-request-id": {"rid-a,rid-b", 2}},
		},
		{
			name: "header_map entry with equal value and raw_value",
			req: httpReq(&authv3.AttributeContext_HttpRequest{Method: "GET", Path: "/", Host: "h",
				HeaderMap: &corev3.HeaderMap{Headers: []*corev3.HeaderValue{{Key: "overwrite", Value: "F", RawValue: []byte("F")}}}}, nil),
			wantMethod: "GET", wantHost: "h", wantPath: "/",
			wantHeaders: map[string]headerWant{"overwrite": {"F", 1}},
		},
		{
			name: "repeated pseudo-headers are fine when Envoy set the fields",
			req: httpReq(&authv3.AttributeContext_HttpRequest{Method: "PUT", Path: "/p", Host: "h",
				HeaderMap: rawHeaders(":method", "GET", ":method", "PUT", ":authority", "a", ":authority", "b")}, nil),
			wantMethod: "PUT", wantHost: "h", wantPath: "/p",
		},
		{
			name: "http.id when no x-request-id header",
			req: httpReq(&authv3.AttributeContext_HttpRequest{Id: "envoy-id", Method: "GET", Path: "/", Host: "h",
				Headers: map[string]string{"accept": "*/*"}}, nil),
			wantMethod: "GET", wantHost: "h", wantPath: "/", wantRequestID: "envoy-id",
		},
		{name: "nil request", req: nil, wantNoHeaders: true},
		{name: "nil attributes", req: &authv3.CheckRequest{}, wantNoHeaders: true},
		{
			name:     "nil request attribute, tier still read",
			req:      &authv3.CheckRequest{Attributes: &authv3.AttributeContext{ContextExtensions: map[string]string{TierHintKey: "read"}}},
			wantTier: "read", wantNoHeaders: true,
		},
		{name: "nil http", req: &authv3.CheckRequest{Attributes: &authv3.AttributeContext{Request: &authv3.AttributeContext_Request{}}}, wantNoHeaders: true},
		{
			name:       "empty method stays empty",
			req:        httpReq(&authv3.AttributeContext_HttpRequest{Path: "/", Host: "h", Headers: map[string]string{"authorization": "Bearer t"}}, nil),
			wantMethod: "", wantHost: "h", wantPath: "/",
			wantHeaders: map[string]headerWant{"authorization": {"Bearer t", 1}},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := &fakeChecker{d: authz.Decision{Status: 401, Challenge: `Bearer realm="r"`}}
			resp, err := newTestServer(t, f).Check(t.Context(), tc.req)
			if err != nil || resp.GetStatus() == nil {
				t.Fatalf("Check = %v, %v; want a response with a status and nil error", resp, err)
			}
			if f.calls != 1 {
				t.Fatalf("engine called %d times, want 1", f.calls)
			}
			r := f.got
			if r.Method != tc.wantMethod || r.Host != tc.wantHost || r.Path != tc.wantPath || r.TierHint != tc.wantTier || r.RequestID != tc.wantRequestID {
				t.Errorf("request = {Method:%q Host:%q Path:%q TierHint:%q RequestID:%q}, want {%q %q %q %q %q}",
					r.Method, r.Host, r.Path, r.TierHint, r.RequestID,
					tc.wantMethod, tc.wantHost, tc.wantPath, tc.wantTier, tc.wantRequestID)
			}
			if tc.wantNoHeaders {
				if r.Headers != nil {
					t.Errorf("Headers = %v, want nil", r.Headers)
				}
				return
			}
			for name, w := range tc.wantHeaders {
				if v, n := r.Headers.Get(name); v != w.value || n != w.n {
					t.Errorf("Get(%q) = %q, %d; want %q, %d", name, v, n, w.value, w.n)
				}
			}
		})
	}
}

func TestCheckTooManyHeaderFields(t *testing.T) {
	tests := []struct {
		name string
		hr   *authv3.AttributeContext_HttpRequest
	}{
		{"header_map", func() *authv3.AttributeContext_HttpRequest {
			hm := &corev3.HeaderMap{Headers: make([]*corev3.HeaderValue, MaxHeaderFields+1)}
			for i := range hm.Headers {
				hm.Headers[i] = &corev3.HeaderValue{Key: "x-filler", RawValue: []byte("v")}
			}
			return &authv3.AttributeContext_HttpRequest{Method: "GET", Path: "/", HeaderMap: hm}
		}()},
		{"headers map", func() *authv3.AttributeContext_HttpRequest {
			m := make(map[string]string, MaxHeaderFields+1)
			for i := range MaxHeaderFields + 1 {
				m["x-filler-"+strconv.Itoa(i)] = "v"
			}
			return &authv3.AttributeContext_HttpRequest{Method: "GET", Path: "/", Headers: m}
		}()},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := &fakeChecker{d: authz.Decision{
				Status: 400, Error: authz.ErrCodeInvalidRequest, Description: "request has no method",
				Reason:    authz.ReasonMalformed,
				Challenge: `Bearer realm="r", error="invalid_request", error_description="request has no method"`,
				Realm:     "r", // the challenge's realm, which the adapter keeps
			}}
			resp, err := newTestServer(t, f).Check(t.Context(), httpReq(tc.hr, nil))
			if err != nil {
				t.Fatal(err)
			}
			if f.got.Method != "" || f.got.Headers != nil {
				t.Errorf("engine got Method %q, Headers %v; want a method-less request", f.got.Method, f.got.Headers)
			}
			dr := resp.GetDeniedResponse()
			if got := codes.Code(resp.GetStatus().GetCode()); got != codes.Unauthenticated || dr.GetStatus().GetCode() != typev3.StatusCode_BadRequest {
				t.Fatalf("got %v / %v, want UNAUTHENTICATED / 400", got, dr.GetStatus().GetCode())
			}
			h := checkHeaderOptions(t, dr.GetHeaders())
			if want := `Bearer realm="r", error="invalid_request", error_description="request has too many header fields"`; h["www-authenticate"] != want {
				t.Errorf("www-authenticate = %q, want %q", h["www-authenticate"], want)
			}
			if !strings.Contains(dr.GetBody(), "too many header fields") {
				t.Errorf("body = %s", dr.GetBody())
			}
		})
	}
}

// ---- response mapping ----

func allowDecision() authz.Decision {
	return authz.Decision{
		Allow: true, Status: 200, Reason: authz.ReasonAllowed, Tier: "read", Lease: authz.LeaseHit,
		Issuer: "hydra", TokenID: "0123abcd",
		Identity: authz.Identity{Subject: "alice", ClientID: "cli", Scope: "storage.read:/ openid", Issuer: "https://idp.example/"},
		Headers: []authz.Header{
			{Name: "x-auth-subject", Value: "alice"}, {Name: "x-auth-client-id", Value: "cli"},
			{Name: "x-auth-scope", Value: "storage.read:/ openid"}, {Name: "x-auth-issuer", Value: "https://idp.example/"},
		},
	}
}

// denial mirrors what authz.Engine returns for each SPEC §3 row.
func denial(status int, reason authz.Reason, code, desc, scope, challenge string, retry time.Duration) authz.Decision {
	return authz.Decision{
		Status: status, Reason: reason, Error: code, Description: desc, Scope: scope,
		Challenge: challenge, RetryAfter: retry, Tier: "write", Lease: authz.LeaseMiss,
	}
}

func TestCheckResponseMapping(t *testing.T) {
	const realm = `Bearer realm="leasegate-test"`
	stripped := allowDecision()
	stripped.StripAuthorization = true
	stripped.Headers[1].Value = "" // no client_id from the issuer
	stripped.Identity.ClientID = ""
	stale := allowDecision()
	stale.Lease, stale.Reason = authz.LeaseStale, authz.ReasonStale
	many := allowDecision() // more headers than okParts preallocates
	many.Headers = append(many.Headers, authz.Header{Name: "x-auth-extra-1", Value: "e1"},
		authz.Header{Name: "x-auth-extra-2", Value: ""}, authz.Header{Name: "x-auth-extra-3", Value: "e3"})

	tests := []struct {
		name        string
		d           authz.Decision
		wantCode    codes.Code
		wantHTTP    typev3.StatusCode // 0 for allow
		wantWWW     string            // "" means absent
		wantBody    map[string]string
		wantRetry   string
		wantSet     map[string]string // upstream headers on OK
		wantRemove  []string
		wantMeta    map[string]string
		wantNoMetas []string
	}{
		{
			name: "allowed", d: allowDecision(), wantCode: codes.OK,
			wantSet: map[string]string{
				"x-auth-subject": "alice", "x-auth-client-id": "cli",
				"x-auth-scope": "storage.read:/ openid", "x-auth-issuer": "https://idp.example/",
			},
			wantMeta: map[string]string{
				"sub": "alice", "client_id": "cli", "scope": "storage.read:/ openid",
				"iss": "https://idp.example/", "tier": "read", "lease": "hit",
			},
		},
		{
			name: "allowed, empty identity value removed, authorization stripped", d: stripped, wantCode: codes.OK,
			wantSet: map[string]string{
				"x-auth-subject": "alice", "x-auth-scope": "storage.read:/ openid", "x-auth-issuer": "https://idp.example/",
			},
			wantRemove: []string{"x-auth-client-id", "authorization"},
			wantMeta:   map[string]string{"sub": "alice", "client_id": "", "lease": "hit"},
		},
		{
			name: "allowed stale", d: stale, wantCode: codes.OK,
			wantSet:  map[string]string{"x-auth-subject": "alice", "x-auth-client-id": "cli", "x-auth-scope": "storage.read:/ openid", "x-auth-issuer": "https://idp.example/"},
			wantMeta: map[string]string{"lease": "stale"},
		},
		{
			name: "allowed, more upstream headers than preallocated", d: many, wantCode: codes.OK,
			wantSet: map[string]string{
				"x-auth-subject": "alice", "x-auth-client-id": "cli", "x-auth-scope": "storage.read:/ openid",
				"x-auth-issuer": "https://idp.example/", "x-auth-extra-1": "e1", "x-auth-extra-3": "e3",
			},
			wantRemove: []string{"x-auth-extra-2"},
		},
		{
			name:     "no token",
			d:        denial(401, authz.ReasonNoToken, "", "", "", realm, 0),
			wantCode: codes.Unauthenticated, wantHTTP: typev3.StatusCode_Unauthorized, wantWWW: realm,
			wantBody: map[string]string{"error": "unauthorized"},
			wantMeta: map[string]string{"tier": "write", "lease": "miss", "reason": "no_token"}, wantNoMetas: []string{"sub"},
		},
		{
			name: "malformed request",
			d: denial(400, authz.ReasonMalformed, "invalid_request", "more than one credential", "",
				realm+`, error="invalid_request", error_description="more than one credential"`, 0),
			wantCode: codes.Unauthenticated, wantHTTP: typev3.StatusCode_BadRequest,
			wantWWW:  realm + `, error="invalid_request", error_description="more than one credential"`,
			wantBody: map[string]string{"error": "invalid_request", "error_description": "more than one credential"},
			wantMeta: map[string]string{"reason": "malformed_request"},
		},
		{
			name: "invalid token",
			d: denial(401, authz.ReasonInactive, "invalid_token", "token is not active", "",
				realm+`, error="invalid_token", error_description="token is not active"`, 0),
			wantCode: codes.Unauthenticated, wantHTTP: typev3.StatusCode_Unauthorized,
			wantWWW:  realm + `, error="invalid_token", error_description="token is not active"`,
			wantBody: map[string]string{"error": "invalid_token", "error_description": "token is not active"},
			wantMeta: map[string]string{"reason": "inactive"},
		},
		{
			name: "insufficient scope",
			d: denial(403, authz.ReasonScope, "insufficient_scope", "scope does not grant this request", "storage.create:/data",
				realm+`, error="insufficient_scope", error_description="scope does not grant this request", scope="storage.create:/data"`, 0),
			wantCode: codes.PermissionDenied, wantHTTP: typev3.StatusCode_Forbidden,
			wantWWW:  realm + `, error="insufficient_scope", error_description="scope does not grant this request", scope="storage.create:/data"`,
			wantBody: map[string]string{"error": "insufficient_scope", "error_description": "scope does not grant this request"},
			wantMeta: map[string]string{"reason": "insufficient_scope"},
		},
		{
			name:     "issuer unavailable",
			d:        denial(503, authz.ReasonIssuerUnavailable, "", "token issuer is unavailable", "", "", 2500*time.Millisecond),
			wantCode: codes.Unavailable, wantHTTP: typev3.StatusCode_ServiceUnavailable,
			wantBody:  map[string]string{"error": "temporarily_unavailable", "error_description": "token issuer is unavailable"},
			wantRetry: "3",
			wantMeta:  map[string]string{"reason": "issuer_unavailable"},
		},
		{
			name:     "denial with a status Envoy has no name for becomes 403",
			d:        denial(499, authz.ReasonScope, "", "", "", realm, 0),
			wantCode: codes.PermissionDenied, wantHTTP: typev3.StatusCode_Forbidden, wantWWW: realm,
			wantBody: map[string]string{"error": "access_denied"},
		},
		{
			name:     "denial without a status fails closed with 503",
			d:        authz.Decision{},
			wantCode: codes.Unavailable, wantHTTP: typev3.StatusCode_ServiceUnavailable,
			wantBody: map[string]string{"error": "access_denied"}, wantRetry: "1",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			resp, err := newTestServer(t, &fakeChecker{d: tc.d}).Check(t.Context(), envoyRequest("GET", "/", nil, nil))
			if err != nil {
				t.Fatalf("error = %v, want nil (a denial is a response)", err)
			}
			checkWire(t, resp)
			if got := codes.Code(resp.GetStatus().GetCode()); got != tc.wantCode {
				t.Errorf("gRPC status = %v, want %v", got, tc.wantCode)
			}
			for k, v := range tc.wantMeta {
				if got, ok := resp.GetDynamicMetadata().GetFields()[k]; !ok || got.GetStringValue() != v {
					t.Errorf("dynamic_metadata[%q] = %v, want %q", k, got, v)
				}
			}
			for _, k := range tc.wantNoMetas {
				if _, ok := resp.GetDynamicMetadata().GetFields()[k]; ok {
					t.Errorf("dynamic_metadata has %q on a denial", k)
				}
			}
			if tc.wantCode == codes.OK {
				ok := resp.GetOkResponse()
				if ok == nil {
					t.Fatalf("http_response = %T, want ok_response", resp.GetHttpResponse())
				}
				if got := checkHeaderOptions(t, ok.GetHeaders()); !maps.Equal(got, tc.wantSet) {
					t.Errorf("upstream headers = %v, want %v", got, tc.wantSet)
				}
				if !slices.Equal(ok.GetHeadersToRemove(), tc.wantRemove) {
					t.Errorf("headers_to_remove = %q, want %q", ok.GetHeadersToRemove(), tc.wantRemove)
				}
				return
			}
			dr := resp.GetDeniedResponse()
			if dr == nil {
				t.Fatalf("http_response = %T, want denied_response", resp.GetHttpResponse())
			}
			if dr.GetStatus().GetCode() != tc.wantHTTP {
				t.Errorf("HTTP status = %v, want %v", dr.GetStatus().GetCode(), tc.wantHTTP)
			}
			h := checkHeaderOptions(t, dr.GetHeaders())
			if www, ok := h["www-authenticate"]; www != tc.wantWWW || ok != (tc.wantWWW != "") {
				t.Errorf("www-authenticate = %q (present %v), want %q", www, ok, tc.wantWWW)
			}
			if h["content-type"] != "application/json" || h["cache-control"] != "no-store" {
				t.Errorf("content-type %q, cache-control %q", h["content-type"], h["cache-control"])
			}
			if ra, ok := h["retry-after"]; ra != tc.wantRetry || ok != (tc.wantRetry != "") {
				t.Errorf("retry-after = %q (present %v), want %q", ra, ok, tc.wantRetry)
			}
			var body map[string]string
			if err := json.Unmarshal([]byte(dr.GetBody()), &body); err != nil {
				t.Fatalf("body %q is not a JSON object of strings: %v", dr.GetBody(), err)
			}
			if !maps.Equal(body, tc.wantBody) {
				t.Errorf("body = %v, want %v", body, tc.wantBody)
			}
		})
	}
}

// checkWire asserts what holds for every response: a status, proto
// validation passes, it marshals.
func checkWire(t *testing.T, resp *authv3.CheckResponse) {
	t.Helper()
	if resp == nil || resp.GetStatus() == nil {
		t.Fatalf("response %v has no status", resp)
	}
	if err := resp.ValidateAll(); err != nil {
		t.Errorf("ValidateAll: %v", err)
	}
	if _, err := proto.Marshal(resp); err != nil {
		t.Errorf("Marshal: %v", err)
	}
	if (codes.Code(resp.GetStatus().GetCode()) == codes.OK) != (resp.GetOkResponse() != nil) {
		t.Errorf("status %v with http_response %T", resp.GetStatus().GetCode(), resp.GetHttpResponse())
	}
}

// checkHeaderOptions asserts every option overwrites (append_action and the
// deprecated append both) and returns the headers as a map.
func checkHeaderOptions(t *testing.T, opts []*corev3.HeaderValueOption) map[string]string {
	t.Helper()
	m := map[string]string{}
	for _, o := range opts {
		k := o.GetHeader().GetKey()
		if o.GetAppendAction() != corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD {
			t.Errorf("%s: append_action = %v, want OVERWRITE_IF_EXISTS_OR_ADD", k, o.GetAppendAction())
		}
		//lint:ignore SA1019 older Envoys read only append; both are set so every version agrees
		app := o.GetAppend()
		if app == nil || app.GetValue() {
			t.Errorf("%s: append = %v, want explicit false", k, app)
		}
		if _, dup := m[k]; dup {
			t.Errorf("%s set twice", k)
		}
		m[k] = o.GetHeader().GetValue()
	}
	return m
}

func TestCheckRefusesIdentityEnvoyCannotCarry(t *testing.T) {
	tests := []struct {
		name      string
		realm     string
		mutate    func(*authz.Decision)
		wantWWW   string
		wantInLog string
	}{
		{"CRLF in subject", "leasegate-test", func(d *authz.Decision) { d.Headers[0].Value = "alice\r\nx-admin: 1" },
			`Bearer realm="leasegate-test", error="invalid_token", error_description="token claims cannot be passed upstream"`, "x-auth-subject"},
		{"NUL in scope", "", func(d *authz.Decision) { d.Headers[2].Value = "a\x00b" },
			`Bearer error="invalid_token", error_description="token claims cannot be passed upstream"`, "x-auth-scope"},
		{"invalid UTF-8 in client id", "r", func(d *authz.Decision) { d.Headers[1].Value = "\xff\xfe" },
			`Bearer realm="r", error="invalid_token", error_description="token claims cannot be passed upstream"`, "x-auth-client-id"},
		{"oversized scope", "r", func(d *authz.Decision) { d.Headers[2].Value = strings.Repeat("s", authz.MaxHeaderValueBytes+1) },
			`Bearer realm="r", error="invalid_token", error_description="token claims cannot be passed upstream"`, "x-auth-scope"},
		{"bad header name", "r", func(d *authz.Decision) { d.Headers[3].Name = "x-auth\nissuer" },
			`Bearer realm="r", error="invalid_token", error_description="token claims cannot be passed upstream"`, "x-auth"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d := allowDecision()
			tc.mutate(&d)
			var logs bytes.Buffer
			s := newTestServer(t, &fakeChecker{d: d}, func(c *Config) {
				c.Realm = tc.realm
				c.Logger = slog.New(slog.NewTextHandler(&logs, nil))
			})
			resp, err := s.Check(t.Context(), envoyRequest("GET", "/", nil, nil))
			if err != nil {
				t.Fatal(err)
			}
			checkWire(t, resp)
			if codes.Code(resp.GetStatus().GetCode()) != codes.Unauthenticated || resp.GetDeniedResponse().GetStatus().GetCode() != typev3.StatusCode_Unauthorized {
				t.Fatalf("got %v, want UNAUTHENTICATED 401", resp.GetStatus())
			}
			if www := checkHeaderOptions(t, resp.GetDeniedResponse().GetHeaders())["www-authenticate"]; www != tc.wantWWW {
				t.Errorf("www-authenticate = %q, want %q", www, tc.wantWWW)
			}
			if _, ok := resp.GetDynamicMetadata().GetFields()["sub"]; ok {
				t.Error("refused identity still in dynamic_metadata")
			}
			if !strings.Contains(logs.String(), tc.wantInLog) || !strings.Contains(logs.String(), "0123abcd") {
				t.Errorf("log %q lacks header name or token id", logs.String())
			}
		})
	}
}

func TestCheckSkipsUnnamedUpstreamHeaders(t *testing.T) {
	d := allowDecision()
	d.Headers = append(d.Headers, authz.Header{Name: "", Value: "x"}, authz.Header{Name: "", Value: ""})
	resp, _ := newTestServer(t, &fakeChecker{d: d}).Check(t.Context(), envoyRequest("GET", "/", nil, nil))
	checkWire(t, resp)
	if n := len(resp.GetOkResponse().GetHeaders()); n != 4 || len(resp.GetOkResponse().GetHeadersToRemove()) != 0 {
		t.Errorf("headers %v, remove %v; want the 4 named ones only", resp.GetOkResponse().GetHeaders(), resp.GetOkResponse().GetHeadersToRemove())
	}
}

func TestCheckFaultsFailClosed(t *testing.T) {
	const secret = "eyJhbGciOiJSUzI1NiJ9.c2VjcmV0LXRva2Vu.sig"
	tests := []struct {
		name   string
		engine func() Checker
	}{
		{"panic with a token in the value", func() Checker { return &fakeChecker{panic: "bad header Bearer " + secret} }},
		{"runtime panic", func() Checker { return &fakeChecker{panic: errors.New(secret)} }},
		{"no engine", func() Checker { return nil }},
		{"typed nil engine", func() Checker { return (*authz.Engine)(nil) }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var logs bytes.Buffer
			s, err := New(Config{Engine: tc.engine, Logger: slog.New(slog.NewJSONHandler(&logs, nil))})
			if err != nil {
				t.Fatal(err)
			}
			req := envoyRequest("GET", "/", map[string]string{"authorization": "Bearer " + secret}, nil)
			resp, err := s.Check(t.Context(), req)
			if err != nil {
				t.Fatalf("error = %v, want nil", err)
			}
			checkWire(t, resp)
			if codes.Code(resp.GetStatus().GetCode()) != codes.Unavailable || resp.GetDeniedResponse().GetStatus().GetCode() != typev3.StatusCode_ServiceUnavailable {
				t.Errorf("got %v, want UNAVAILABLE 503", resp.GetStatus())
			}
			if h := checkHeaderOptions(t, resp.GetDeniedResponse().GetHeaders()); h["retry-after"] == "" {
				t.Error("no retry-after on 503")
			}
			if strings.Contains(logs.String(), secret) || strings.Contains(logs.String(), "c2VjcmV0") {
				t.Errorf("log contains the token: %s", logs.String())
			}
			if logs.Len() == 0 {
				t.Error("fault not logged")
			}
		})
	}
}

func TestNewRequiresEngine(t *testing.T) {
	if _, err := New(Config{}); !errors.Is(err, ErrNoEngine) {
		t.Errorf("New(Config{}) error = %v, want ErrNoEngine", err)
	}
}

func TestCheckCallsEngineFuncEveryRequest(t *testing.T) {
	a := &fakeChecker{d: allowDecision()}
	b := &fakeChecker{d: denial(401, authz.ReasonNoToken, "", "", "", `Bearer realm="r"`, 0)}
	var cur atomic.Pointer[fakeChecker]
	cur.Store(a)
	s, _ := New(Config{Engine: func() Checker { return cur.Load() }})
	r1, _ := s.Check(t.Context(), envoyRequest("GET", "/", nil, nil))
	cur.Store(b)
	r2, _ := s.Check(t.Context(), envoyRequest("GET", "/", nil, nil))
	if codes.Code(r1.GetStatus().GetCode()) != codes.OK || codes.Code(r2.GetStatus().GetCode()) != codes.Unauthenticated {
		t.Errorf("statuses %v, %v: the swapped engine was not used", r1.GetStatus(), r2.GetStatus())
	}
}

// ---- the real engine ----

const (
	goodToken   = "good-token.Zx81qQ"
	readerToken = "reader-token.storage"
	brokeToken  = "issuer-fails-for-this"
)

// testIssuer is an RFC 7662 introspection endpoint: goodToken and
// readerToken are active, brokeToken makes it fail with 500, anything else
// is inactive. It counts calls.
type testIssuer struct {
	*httptest.Server
	calls atomic.Int64
}

func newTestIssuer(t testing.TB, alwaysInactive bool) *testIssuer {
	t.Helper()
	is := &testIssuer{}
	is.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		is.calls.Add(1)
		body, _ := io.ReadAll(r.Body)
		form, _ := url.ParseQuery(string(body))
		tok := form.Get("token")
		w.Header().Set("Content-Type", "application/json")
		exp := time.Now().Add(time.Hour).Unix()
		switch {
		case alwaysInactive:
			_, _ = io.WriteString(w, `{"active":false}`)
		case tok == goodToken:
			_ = json.NewEncoder(w).Encode(map[string]any{"active": true, "sub": "alice", "client_id": "cli", "scope": "openid storage.read:/", "exp": exp})
		case tok == readerToken:
			_ = json.NewEncoder(w).Encode(map[string]any{"active": true, "sub": "bob", "scope": "storage.read:/", "exp": exp})
		case tok == brokeToken:
			w.WriteHeader(http.StatusInternalServerError)
		default:
			_, _ = io.WriteString(w, `{"active":false}`)
		}
	}))
	t.Cleanup(is.Close)
	return is
}

// newRealEngine wires policy, lease cache and engine as the server does.
func newRealEngine(t testing.TB, issuerURL string, opts ...func(*authz.Config)) *authz.Engine {
	t.Helper()
	pol, err := policy.New(policy.Config{
		Tiers:    policy.DefaultTiers(),
		LeaseMax: 5 * time.Minute,
		Routes:   []policy.RouteConfig{{Prefix: "/store/", Require: policy.ProfileWLCG}},
	})
	if err != nil {
		t.Fatal(err)
	}
	cache, err := leasecache.New(leasecache.Config{MaxMemoryMB: 8})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cfg := authz.Config{
		Realm:  "leasegate-test",
		Policy: pol,
		Cache:  cache,
		Issuers: []authz.IssuerConfig{{
			Name: "idp", Issuer: issuerURL, Mode: authz.ModeIntrospection, DefaultForOpaque: true,
			Introspection:   issuer.IntrospectionConfig{Endpoint: issuerURL + "/introspect", Auth: issuer.AuthNone, Timeout: 2 * time.Second},
			BreakerFailures: 1000, BreakerOpenFor: time.Second,
		}},
		Upstream: authz.UpstreamHeaderNames{Subject: "x-auth-subject", ClientID: "x-auth-client-id", Scope: "x-auth-scope", Issuer: "x-auth-issuer"},
		Logger:   slog.New(slog.NewTextHandler(io.Discard, nil)),
	}
	for _, o := range opts {
		o(&cfg)
	}
	e, err := authz.New(ctx, cfg)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close(); cancel() })
	return e
}

// serveGRPC serves s on 127.0.0.1:0 and returns a client over a real
// connection.
func serveGRPC(t *testing.T, s *Server) authv3.AuthorizationClient {
	t.Helper()
	return serveOn(t, grpc.NewServer(), s)
}

// serveOn serves s on g at 127.0.0.1:0 and returns a client.
func serveOn(t *testing.T, g *grpc.Server, s *Server) authv3.AuthorizationClient {
	t.Helper()
	return authv3.NewAuthorizationClient(serveConn(t, g, s))
}

// serveConn serves s on g at 127.0.0.1:0 and returns a connection to it.
func serveConn(t *testing.T, g *grpc.Server, s *Server) *grpc.ClientConn {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s.Register(g)
	done := make(chan struct{})
	go func() { defer close(done); _ = g.Serve(lis) }()
	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close(); g.Stop(); <-done })
	return conn
}

func TestCheckWithRealEngineOverGRPC(t *testing.T) {
	is := newTestIssuer(t, false)
	eng := newRealEngine(t, is.URL)
	client := serveGRPC(t, newTestServer(t, eng))
	realm := `Bearer realm="leasegate-test"`

	tests := []struct {
		name     string
		req      *authv3.CheckRequest
		wantCode codes.Code
		wantHTTP typev3.StatusCode
		wantWWW  string
		wantSet  map[string]string
		wantMeta map[string]string
	}{
		{
			name: "envoy-shaped allow overwrites a forged x-auth-subject",
			req: envoyRequest("GET", "/data/f.txt?x=1", map[string]string{
				"authorization": "Bearer " + goodToken, "x-auth-subject": "forged", "x-auth-issuer": "forged",
			}, nil),
			wantCode: codes.OK,
			wantSet: map[string]string{
				"x-auth-subject": "alice", "x-auth-client-id": "cli", "x-auth-scope": "openid storage.read:/", "x-auth-issuer": is.URL,
			},
			wantMeta: map[string]string{"sub": "alice", "client_id": "cli", "iss": is.URL, "tier": "read"},
		},
		{
			name:     "scheme is case-insensitive",
			req:      envoyRequest("HEAD", "/data/f.txt", map[string]string{"authorization": "bearer " + goodToken}, nil),
			wantCode: codes.OK, wantMeta: map[string]string{"lease": "hit", "tier": "read"},
		},
		{
			name: "header_map only",
			req: httpReq(&authv3.AttributeContext_HttpRequest{
				HeaderMap: rawHeaders(":method", "GET", ":path", "/data/g", ":authority", "storage.example",
					"Authorization", "Bearer "+goodToken, "x-auth-subject", "forged"),
			}, nil),
			wantCode: codes.OK,
			wantSet: map[string]string{
				"x-auth-subject": "alice", "x-auth-client-id": "cli", "x-auth-scope": "openid storage.read:/", "x-auth-issuer": is.URL,
			},
		},
		{
			name: "no token", req: envoyRequest("GET", "/data/f", nil, nil),
			wantCode: codes.Unauthenticated, wantHTTP: typev3.StatusCode_Unauthorized, wantWWW: realm,
			wantMeta: map[string]string{"reason": "no_token"},
		},
		{
			name:     "envoy-joined duplicate authorization",
			req:      envoyRequest("GET", "/data/f", map[string]string{"authorization": "Bearer a,Bearer b"}, nil),
			wantCode: codes.Unauthenticated, wantHTTP: typev3.StatusCode_BadRequest,
			wantWWW: realm + `, error="invalid_request", error_description="more than one credential"`,
		},
		{
			name: "duplicate authorization in header_map",
			req: httpReq(&authv3.AttributeContext_HttpRequest{Method: "GET", Path: "/", Host: "h",
				HeaderMap: rawHeaders("authorization", "Bearer "+goodToken, "authorization", "Bearer "+goodToken)}, nil),
			wantCode: codes.Unauthenticated, wantHTTP: typev3.StatusCode_BadRequest,
			wantWWW: realm + `, error="invalid_request", error_description="more than one Authorization header"`,
		},
		{
			name:     "no http attributes",
			req:      &authv3.CheckRequest{Attributes: &authv3.AttributeContext{}},
			wantCode: codes.Unauthenticated, wantHTTP: typev3.StatusCode_BadRequest,
			wantWWW: realm + `, error="invalid_request", error_description="request has no method"`,
		},
		{
			name:     "inactive token",
			req:      envoyRequest("GET", "/data/f", map[string]string{"authorization": "Bearer revoked-token"}, nil),
			wantCode: codes.Unauthenticated, wantHTTP: typev3.StatusCode_Unauthorized,
			wantWWW: realm + `, error="invalid_token", error_description="token is not active"`,
		},
		{
			name:     "policy refuses",
			req:      envoyRequest("PUT", "/store/new.root", map[string]string{"authorization": "Bearer " + readerToken}, nil),
			wantCode: codes.PermissionDenied, wantHTTP: typev3.StatusCode_Forbidden,
		},
		{
			name:     "issuer fails",
			req:      envoyRequest("DELETE", "/data/f", map[string]string{"authorization": "Bearer " + brokeToken}, nil),
			wantCode: codes.Unavailable, wantHTTP: typev3.StatusCode_ServiceUnavailable,
			wantMeta: map[string]string{"reason": "issuer_unavailable", "tier": "critical"},
		},
		{
			name:     "context_extensions picks the tier",
			req:      envoyRequest("GET", "/data/f", map[string]string{"authorization": "Bearer " + goodToken}, map[string]string{TierHintKey: "critical"}),
			wantCode: codes.OK, wantMeta: map[string]string{"tier": "critical", "lease": "miss"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			resp, err := client.Check(t.Context(), tc.req)
			if err != nil {
				t.Fatalf("Check over gRPC: %v", err)
			}
			checkWire(t, resp)
			if got := codes.Code(resp.GetStatus().GetCode()); got != tc.wantCode {
				t.Fatalf("gRPC status = %v (%s), want %v", got, resp.GetStatus().GetMessage(), tc.wantCode)
			}
			for k, v := range tc.wantMeta {
				if got := resp.GetDynamicMetadata().GetFields()[k].GetStringValue(); got != v {
					t.Errorf("dynamic_metadata[%q] = %q, want %q", k, got, v)
				}
			}
			if tc.wantCode == codes.OK {
				got := checkHeaderOptions(t, resp.GetOkResponse().GetHeaders())
				if tc.wantSet != nil && !maps.Equal(got, tc.wantSet) {
					t.Errorf("upstream headers = %v, want %v", got, tc.wantSet)
				}
				return
			}
			dr := resp.GetDeniedResponse()
			if dr.GetStatus().GetCode() != tc.wantHTTP {
				t.Errorf("HTTP status = %v, want %v", dr.GetStatus().GetCode(), tc.wantHTTP)
			}
			h := checkHeaderOptions(t, dr.GetHeaders())
			if tc.wantWWW != "" && h["www-authenticate"] != tc.wantWWW {
				t.Errorf("www-authenticate = %q, want %q", h["www-authenticate"], tc.wantWWW)
			}
			if tc.wantHTTP == typev3.StatusCode_ServiceUnavailable && h["retry-after"] == "" {
				t.Error("503 without retry-after")
			}
			if tc.wantHTTP == typev3.StatusCode_Forbidden && !strings.Contains(h["www-authenticate"], `error="insufficient_scope"`) {
				t.Errorf("403 challenge %q lacks insufficient_scope", h["www-authenticate"])
			}
			if !json.Valid([]byte(dr.GetBody())) || h["content-type"] != "application/json" {
				t.Errorf("body %q, content-type %q", dr.GetBody(), h["content-type"])
			}
		})
	}
}

func TestCheckCancelledContextFailsClosed(t *testing.T) {
	is := newTestIssuer(t, false)
	s := newTestServer(t, newRealEngine(t, is.URL))
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	resp, err := s.Check(ctx, envoyRequest("GET", "/data/f", map[string]string{"authorization": "Bearer " + goodToken}, nil))
	if err != nil {
		t.Fatal(err)
	}
	checkWire(t, resp)
	if codes.Code(resp.GetStatus().GetCode()) != codes.Unavailable || resp.GetDeniedResponse().GetStatus().GetCode() != typev3.StatusCode_ServiceUnavailable {
		t.Errorf("got %v, want UNAVAILABLE 503", resp.GetStatus())
	}
	if is.calls.Load() != 0 {
		t.Errorf("issuer called %d times for a cancelled request", is.calls.Load())
	}
}

// BenchmarkCheckHit is the hot path: adapter plus real engine on a lease
// hit, in process. "wire" is what the gRPC server runs per hit (the
// handler's answer and the codec's marshalling), "message" the in-process
// Check, which builds its response.
func BenchmarkCheckHit(b *testing.B) {
	is := newTestIssuer(b, false)
	s := newTestServer(b, newRealEngine(b, is.URL))
	req := envoyRequest("GET", "/data/file.root?x=1", map[string]string{
		"authorization":   "Bearer " + goodToken,
		"traceparent":     "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
		"accept-encoding": "gzip",
		"x-forwarded-for": "10.0.0.1",
	}, nil)
	ctx := context.Background()
	if resp, _ := s.Check(ctx, req); codes.Code(resp.GetStatus().GetCode()) != codes.OK {
		b.Fatalf("warm-up: %v", resp.GetStatus())
	}
	calls := is.calls.Load()
	b.Run("wire", func(b *testing.B) {
		c := Codec()
		b.ReportAllocs()
		for b.Loop() {
			out, err := c.Marshal(s.answer(ctx, req))
			if err != nil || out.Len() == 0 {
				b.Fatal("no answer", err)
			}
			out.Free()
		}
	})
	b.Run("message", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			resp, _ := s.Check(ctx, req)
			if resp.GetStatus().GetCode() != 0 {
				b.Fatal("not OK")
			}
		}
	})
	if is.calls.Load() != calls {
		b.Fatal("the issuer was called: not a lease hit")
	}
}
