package forwardauth

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/leasegate/leasegate/authz"
)

// fakeChecker records what the engine would have been asked.
type fakeChecker struct {
	mu       sync.Mutex
	calls    int
	got      authz.Request
	auth     string // Authorization as the engine saw it
	authN    int
	dest     string
	fields   map[string]headerCount // singleValued names as the engine saw them
	decision authz.Decision
	panics   bool
	panicV   any // the panic value when panics; "engine bug" when nil
}

// headerCount is what Headers.Get returned for one name.
type headerCount struct {
	value string
	n     int
}

// singleValued are the request headers SPEC §3 allows once; the engine
// refuses n > 1, HTTP mode's job is the count.
var singleValued = []string{"destination", "source", "overwrite", "if-none-match", "authorization"}

func (f *fakeChecker) Check(_ context.Context, r *authz.Request) authz.Decision {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls++
	f.got = *r
	f.auth, f.authN = r.Headers.Get("authorization")
	f.dest, _ = r.Headers.Get("destination")
	f.fields = map[string]headerCount{}
	for _, name := range singleValued {
		v, n := r.Headers.Get(name)
		f.fields[name] = headerCount{v, n}
	}
	if f.panics {
		if f.panicV != nil {
			panic(f.panicV)
		}
		panic("engine bug")
	}
	return f.decision
}

func allowDecision() authz.Decision {
	return authz.Decision{
		Allow:  true,
		Status: http.StatusOK,
		Headers: []authz.Header{
			{Name: "x-auth-subject", Value: "alice"},
			{Name: "x-auth-client-id", Value: ""},
			{Name: "x-auth-scope", Value: "storage.read:/"},
			{Name: "x-auth-issuer", Value: "https://issuer.example"},
		},
	}
}

func newTestHTTPMode(t *testing.T, mode, prefix string, f *fakeChecker) http.Handler {
	t.Helper()
	h, err := New(Config{
		Mode:       mode,
		PathPrefix: prefix,
		Realm:      "storage",
		Engine:     func() Checker { return f },
		Logger:     slog.New(slog.DiscardHandler),
	})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return h
}

// kv is one header field; a slice of them keeps repeats and order.
type kv struct{ name, value string }

func TestHTTPModeOriginalRequest(t *testing.T) {
	tests := []struct {
		name    string
		mode    string
		prefix  string
		method  string
		target  string
		host    string
		headers []kv

		wantStatus  int
		wantProblem string // substring of the 400's error_description
		wantMethod  string
		wantPath    string
		wantHost    string
	}{
		{
			name: "envoy strips prefix and keeps raw query", mode: ModeEnvoy,
			method: "GET", target: "/authz/data/a%20b.txt?x=1&y=%2F", host: "storage.example",
			wantStatus: 200, wantMethod: "GET", wantPath: "/data/a%20b.txt?x=1&y=%2F", wantHost: "storage.example",
		},
		{
			name: "envoy root path", mode: ModeEnvoy,
			method: "PROPFIND", target: "/authz/", host: "storage.example",
			wantStatus: 200, wantMethod: "PROPFIND", wantPath: "/", wantHost: "storage.example",
		},
		{
			name: "envoy ignores injected X-Original and X-Forwarded headers", mode: ModeEnvoy,
			method: "DELETE", target: "/authz/data/f", host: "storage.example",
			headers: []kv{
				{"X-Original-Method", "GET"}, {"X-Original-URI", "/public/f"}, {"X-Original-Host", "other.example"},
				{"X-Forwarded-Method", "GET"}, {"X-Forwarded-Uri", "/public/f"}, {"X-Forwarded-Host", "other.example"},
			},
			wantStatus: 200, wantMethod: "DELETE", wantPath: "/data/f", wantHost: "storage.example",
		},
		{
			name: "envoy custom prefix", mode: ModeEnvoy, prefix: "/ext-authz",
			method: "PUT", target: "/ext-authz/up/f?over=1", host: "h",
			wantStatus: 200, wantMethod: "PUT", wantPath: "/up/f?over=1", wantHost: "h",
		},
		{
			name: "envoy slash prefix means none", mode: ModeEnvoy, prefix: "/",
			method: "GET", target: "/authz/f", host: "h",
			wantStatus: 200, wantMethod: "GET", wantPath: "/authz/f", wantHost: "h",
		},
		{
			name: "envoy path outside prefix", mode: ModeEnvoy,
			method: "GET", target: "/data/f", host: "h",
			wantStatus: 400, wantProblem: "path prefix",
		},
		{
			name: "envoy prefix must end at a segment", mode: ModeEnvoy,
			method: "GET", target: "/authzdata/f", host: "h",
			wantStatus: 400, wantProblem: "path prefix",
		},
		{
			name: "envoy bare prefix", mode: ModeEnvoy,
			method: "GET", target: "/authz?x=1", host: "h",
			wantStatus: 400, wantProblem: "path prefix",
		},
		{
			name: "nginx maps original method, uri and host", mode: ModeNginx,
			method: "GET", target: "/_leasegate", host: "leasegate",
			headers:    []kv{{"X-Original-Method", "DELETE"}, {"X-Original-URI", "/data/f?x=%2F"}, {"X-Original-Host", "storage.example"}},
			wantStatus: 200, wantMethod: "DELETE", wantPath: "/data/f?x=%2F", wantHost: "storage.example",
		},
		{
			name: "nginx header names are case-insensitive", mode: ModeNginx,
			method: "GET", target: "/", host: "h",
			headers:    []kv{{"x-original-method", "MKCOL"}, {"x-original-uri", "/d/"}, {"x-original-host", "storage.example"}},
			wantStatus: 200, wantMethod: "MKCOL", wantPath: "/d/", wantHost: "storage.example",
		},
		{
			// SPEC §4: the subrequest's own Host names leasegate, so it is
			// never a fallback.
			name: "nginx without X-Original-Host refuses", mode: ModeNginx,
			method: "GET", target: "/_leasegate", host: "storage.example:8443",
			headers:    []kv{{"X-Original-Method", "GET"}, {"X-Original-URI", "/f"}},
			wantStatus: 400, wantProblem: "missing X-Original-Host",
		},
		{
			name: "nginx empty X-Original-Host", mode: ModeNginx,
			method: "GET", target: "/", host: "h",
			headers:    []kv{{"X-Original-Method", "GET"}, {"X-Original-URI", "/f"}, {"X-Original-Host", ""}},
			wantStatus: 400, wantProblem: "empty X-Original-Host",
		},
		{
			name: "nginx X-Original-Host with a space", mode: ModeNginx,
			method: "GET", target: "/", host: "h",
			headers:    []kv{{"X-Original-Method", "GET"}, {"X-Original-URI", "/f"}, {"X-Original-Host", "a b"}},
			wantStatus: 400, wantProblem: "X-Original-Host is not a single host",
		},
		{
			name: "nginx keeps the port of X-Original-Host", mode: ModeNginx,
			method: "GET", target: "/", host: "leasegate",
			headers:    []kv{{"X-Original-Method", "GET"}, {"X-Original-URI", "/f"}, {"X-Original-Host", "storage.example:8443"}},
			wantStatus: 200, wantMethod: "GET", wantPath: "/f", wantHost: "storage.example:8443",
		},
		{
			name: "nginx ignores X-Forwarded headers", mode: ModeNginx,
			method: "GET", target: "/", host: "h",
			headers: []kv{
				{"X-Original-Method", "DELETE"}, {"X-Original-URI", "/f"}, {"X-Original-Host", "storage.example"},
				{"X-Forwarded-Method", "GET"}, {"X-Forwarded-Uri", "/g"}, {"X-Forwarded-Host", "other.example"},
			},
			wantStatus: 200, wantMethod: "DELETE", wantPath: "/f", wantHost: "storage.example",
		},
		{
			name: "nginx never uses the subrequest's own method", mode: ModeNginx,
			method: "GET", target: "/data/f", host: "h",
			headers:    []kv{{"X-Original-URI", "/data/f"}},
			wantStatus: 400, wantProblem: "missing X-Original-Method",
		},
		{
			name: "nginx missing X-Original-URI", mode: ModeNginx,
			method: "GET", target: "/data/f", host: "h",
			headers:    []kv{{"X-Original-Method", "GET"}},
			wantStatus: 400, wantProblem: "missing X-Original-Uri",
		},
		{
			name: "nginx empty X-Original-Method", mode: ModeNginx,
			method: "GET", target: "/", host: "h",
			headers:    []kv{{"X-Original-Method", ""}, {"X-Original-URI", "/f"}},
			wantStatus: 400, wantProblem: "empty X-Original-Method",
		},
		{
			name: "nginx duplicate X-Original-Method", mode: ModeNginx,
			method: "GET", target: "/", host: "h",
			headers:    []kv{{"X-Original-Method", "DELETE"}, {"X-Original-Method", "GET"}, {"X-Original-URI", "/f"}},
			wantStatus: 400, wantProblem: "more than one X-Original-Method",
		},
		{
			name: "nginx joined X-Original-Method", mode: ModeNginx,
			method: "GET", target: "/", host: "h",
			headers:    []kv{{"X-Original-Method", "GET, DELETE"}, {"X-Original-URI", "/f"}},
			wantStatus: 400, wantProblem: "conflicting values in X-Original-Method",
		},
		{
			name: "nginx method that is not a token", mode: ModeNginx,
			method: "GET", target: "/", host: "h",
			headers:    []kv{{"X-Original-Method", "GET /x"}, {"X-Original-URI", "/f"}},
			wantStatus: 400, wantProblem: "not an HTTP method",
		},
		{
			name: "nginx duplicate X-Original-URI", mode: ModeNginx,
			method: "GET", target: "/", host: "h",
			headers:    []kv{{"X-Original-Method", "GET"}, {"X-Original-URI", "/public"}, {"X-Original-URI", "/private"}},
			wantStatus: 400, wantProblem: "more than one X-Original-Uri",
		},
		{
			name: "nginx joined X-Original-URI", mode: ModeNginx,
			method: "GET", target: "/", host: "h",
			headers:    []kv{{"X-Original-Method", "GET"}, {"X-Original-URI", "/public, /private"}},
			wantStatus: 400, wantProblem: "origin-form",
		},
		{
			name: "nginx absolute URI", mode: ModeNginx,
			method: "GET", target: "/", host: "h",
			headers:    []kv{{"X-Original-Method", "GET"}, {"X-Original-URI", "http://other.example/f"}},
			wantStatus: 400, wantProblem: "origin-form",
		},
		{
			name: "nginx comma in URI path is fine", mode: ModeNginx,
			method: "GET", target: "/", host: "h",
			headers:    []kv{{"X-Original-Method", "GET"}, {"X-Original-URI", "/a,b/c"}, {"X-Original-Host", "h"}},
			wantStatus: 200, wantMethod: "GET", wantPath: "/a,b/c", wantHost: "h",
		},
		{
			name: "nginx duplicate X-Original-Host", mode: ModeNginx,
			method: "GET", target: "/", host: "h",
			headers:    []kv{{"X-Original-Method", "GET"}, {"X-Original-URI", "/f"}, {"X-Original-Host", "a"}, {"X-Original-Host", "b"}},
			wantStatus: 400, wantProblem: "more than one X-Original-Host",
		},
		{
			name: "forwarded maps method, uri and host", mode: ModeForwarded,
			method: "GET", target: "/", host: "127.0.0.1:9002",
			headers:    []kv{{"X-Forwarded-Method", "MOVE"}, {"X-Forwarded-Uri", "/a/b?c"}, {"X-Forwarded-Host", "storage.example"}, {"X-Forwarded-Proto", "https"}},
			wantStatus: 200, wantMethod: "MOVE", wantPath: "/a/b?c", wantHost: "storage.example",
		},
		{
			name: "forwarded ignores X-Original headers", mode: ModeForwarded,
			method: "GET", target: "/", host: "h",
			headers: []kv{
				{"X-Forwarded-Method", "DELETE"}, {"X-Forwarded-Uri", "/f"}, {"X-Forwarded-Host", "storage.example"},
				{"X-Original-Method", "GET"}, {"X-Original-URI", "/g"}, {"X-Original-Host", "other.example"},
			},
			wantStatus: 200, wantMethod: "DELETE", wantPath: "/f", wantHost: "storage.example",
		},
		{
			name: "forwarded without X-Forwarded-Host refuses", mode: ModeForwarded,
			method: "GET", target: "/", host: "127.0.0.1:9002",
			headers:    []kv{{"X-Forwarded-Method", "COPY"}, {"X-Forwarded-Uri", "/store/a"}, {"X-Forwarded-Proto", "https"}},
			wantStatus: 400, wantProblem: "missing X-Forwarded-Host",
		},
		{
			name: "forwarded duplicate X-Forwarded-Host", mode: ModeForwarded,
			method: "GET", target: "/", host: "h",
			headers:    []kv{{"X-Forwarded-Method", "GET"}, {"X-Forwarded-Uri", "/f"}, {"X-Forwarded-Host", "a"}, {"x-forwarded-host", "b"}},
			wantStatus: 400, wantProblem: "more than one X-Forwarded-Host",
		},
		{
			name: "forwarded missing uri", mode: ModeForwarded,
			method: "GET", target: "/", host: "h",
			headers:    []kv{{"X-Forwarded-Method", "GET"}},
			wantStatus: 400, wantProblem: "missing X-Forwarded-Uri",
		},
		{
			name: "forwarded host list", mode: ModeForwarded,
			method: "GET", target: "/", host: "h",
			headers:    []kv{{"X-Forwarded-Method", "GET"}, {"X-Forwarded-Uri", "/f"}, {"X-Forwarded-Host", "evil.example, storage.example"}},
			wantStatus: 400, wantProblem: "not a single host",
		},
		{
			name: "forwarded conflicting methods", mode: ModeForwarded,
			method: "GET", target: "/", host: "h",
			headers:    []kv{{"X-Forwarded-Method", "GET"}, {"X-Forwarded-Method", "DELETE"}, {"X-Forwarded-Uri", "/f"}},
			wantStatus: 400, wantProblem: "more than one X-Forwarded-Method",
		},
		{
			name: "auto picks nginx", mode: ModeAuto,
			method: "GET", target: "/_leasegate", host: "h",
			headers: []kv{
				{"X-Original-Method", "PUT"}, {"X-Original-URI", "/f"}, {"X-Original-Host", "storage.example"},
				{"X-Forwarded-Method", "GET"}, {"X-Forwarded-Host", "other.example"},
			},
			wantStatus: 200, wantMethod: "PUT", wantPath: "/f", wantHost: "storage.example",
		},
		{
			name: "auto picks forwarded", mode: ModeAuto,
			method: "GET", target: "/", host: "h",
			headers:    []kv{{"X-Forwarded-Method", "PUT"}, {"X-Forwarded-Uri", "/f"}, {"X-Forwarded-Host", "storage.example"}},
			wantStatus: 200, wantMethod: "PUT", wantPath: "/f", wantHost: "storage.example",
		},
		{
			name: "auto nginx needs X-Original-Host", mode: ModeAuto,
			method: "GET", target: "/_leasegate", host: "leasegate",
			headers:    []kv{{"X-Original-Method", "PUT"}, {"X-Original-URI", "/f"}, {"X-Forwarded-Host", "storage.example"}},
			wantStatus: 400, wantProblem: "missing X-Original-Host",
		},
		{
			name: "auto forwarded needs X-Forwarded-Host", mode: ModeAuto,
			method: "GET", target: "/", host: "leasegate",
			headers:    []kv{{"X-Forwarded-Uri", "/f"}, {"X-Forwarded-Method", "PUT"}, {"X-Original-Host", "storage.example"}},
			wantStatus: 400, wantProblem: "missing X-Forwarded-Host",
		},
		{
			// Only the method and URI headers choose a convention: load
			// balancers commonly add X-Forwarded-Host in front of Envoy.
			name: "auto: a host header alone does not choose", mode: ModeAuto,
			method: "DELETE", target: "/authz/f", host: "h",
			headers:    []kv{{"X-Forwarded-Host", "other.example"}, {"X-Original-Host", "other.example"}},
			wantStatus: 200, wantMethod: "DELETE", wantPath: "/f", wantHost: "h",
		},
		{
			name: "auto falls back to envoy", mode: ModeAuto,
			method: "DELETE", target: "/authz/f", host: "h",
			wantStatus: 200, wantMethod: "DELETE", wantPath: "/f", wantHost: "h",
		},
		{
			name: "auto with half the nginx headers refuses", mode: ModeAuto,
			method: "DELETE", target: "/authz/f", host: "h",
			headers:    []kv{{"X-Original-URI", "/f"}},
			wantStatus: 400, wantProblem: "missing X-Original-Method",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := &fakeChecker{decision: allowDecision()}
			h := newTestHTTPMode(t, tc.mode, tc.prefix, f)
			r := httptest.NewRequest(tc.method, "http://placeholder"+tc.target, nil)
			r.RequestURI = tc.target
			r.Host = tc.host
			for _, x := range tc.headers {
				r.Header[http.CanonicalHeaderKey(x.name)] = append(r.Header[http.CanonicalHeaderKey(x.name)], x.value)
			}
			w := httptest.NewRecorder()
			h.ServeHTTP(w, r)

			if w.Code != tc.wantStatus {
				t.Fatalf("status = %d, want %d (body %s)", w.Code, tc.wantStatus, w.Body)
			}
			if tc.wantStatus == http.StatusBadRequest {
				if f.calls != 0 {
					t.Errorf("engine was asked %d times, want 0", f.calls)
				}
				assertInvalidRequest(t, w, tc.wantProblem)
				return
			}
			if f.calls != 1 {
				t.Fatalf("engine calls = %d, want 1", f.calls)
			}
			if f.got.Method != tc.wantMethod || f.got.Path != tc.wantPath || f.got.Host != tc.wantHost {
				t.Errorf("engine saw %s %s host %q, want %s %s host %q",
					f.got.Method, f.got.Path, f.got.Host, tc.wantMethod, tc.wantPath, tc.wantHost)
			}
			if f.got.TierHint != "" {
				t.Errorf("TierHint = %q, want none in HTTP mode", f.got.TierHint)
			}
		})
	}
}

func assertInvalidRequest(t *testing.T, w *httptest.ResponseRecorder, problem string) {
	t.Helper()
	ch := w.Header().Get("WWW-Authenticate")
	if !strings.HasPrefix(ch, `Bearer realm="storage", error="invalid_request", error_description="`) || !strings.Contains(ch, problem) {
		t.Errorf("WWW-Authenticate = %q, want invalid_request mentioning %q", ch, problem)
	}
	var body struct {
		Error            string `json:"error"`
		ErrorDescription string `json:"error_description"`
	}
	if err := json.Unmarshal(w.Body.Bytes(), &body); err != nil {
		t.Fatalf("body %q: %v", w.Body, err)
	}
	if body.Error != "invalid_request" || !strings.Contains(body.ErrorDescription, problem) {
		t.Errorf("body = %+v, want invalid_request mentioning %q", body, problem)
	}
	if ct := w.Header().Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type = %q", ct)
	}
	if w.Header().Get("X-Auth-Subject") != "" {
		t.Errorf("a 400 carries identity headers")
	}
}

func TestHTTPModeHeadersReachEngine(t *testing.T) {
	tests := []struct {
		name     string
		headers  []kv
		wantAuth string
		wantN    int
		wantDest string
	}{
		{name: "none", wantN: 0},
		{name: "one bearer", headers: []kv{{"Authorization", "Bearer abc"}}, wantAuth: "Bearer abc", wantN: 1},
		{
			name:     "two authorization fields are counted and joined",
			headers:  []kv{{"authorization", "Bearer a"}, {"AUTHORIZATION", "Bearer b"}},
			wantAuth: "Bearer a,Bearer b", wantN: 2,
		},
		{
			name:     "webdav destination",
			headers:  []kv{{"Authorization", "Bearer t"}, {"Destination", "https://storage.example/d/f"}},
			wantAuth: "Bearer t", wantN: 1, wantDest: "https://storage.example/d/f",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := &fakeChecker{decision: allowDecision()}
			h := newTestHTTPMode(t, ModeEnvoy, "", f)
			r := httptest.NewRequest("COPY", "/authz/d/src", nil)
			for _, x := range tc.headers {
				k := http.CanonicalHeaderKey(x.name)
				r.Header[k] = append(r.Header[k], x.value)
			}
			h.ServeHTTP(httptest.NewRecorder(), r)
			if f.auth != tc.wantAuth || f.authN != tc.wantN || f.dest != tc.wantDest {
				t.Errorf("engine saw authorization %q ×%d, destination %q; want %q ×%d, %q",
					f.auth, f.authN, f.dest, tc.wantAuth, tc.wantN, tc.wantDest)
			}
		})
	}
}

func TestHTTPModeResponses(t *testing.T) {
	tests := []struct {
		name     string
		mode     string
		decision authz.Decision
		panics   bool

		wantStatus  int
		wantHeaders map[string]string // "" means present with an empty value
		wantAbsent  []string
		wantError   string // JSON body "error"; "" means empty body
	}{
		{
			name: "allow is exactly 200 with identity headers", mode: ModeEnvoy, decision: allowDecision(),
			wantStatus: 200,
			wantHeaders: map[string]string{
				"X-Auth-Subject": "alice", "X-Auth-Client-Id": "", "X-Auth-Scope": "storage.read:/",
				"X-Auth-Issuer": "https://issuer.example", "Cache-Control": "no-store",
			},
			wantAbsent: []string{"WWW-Authenticate", "Content-Type", hdrEnvoyRemove},
		},
		{
			name: "allow with strip_authorization in envoy mode", mode: ModeEnvoy,
			decision:    func() authz.Decision { d := allowDecision(); d.StripAuthorization = true; return d }(),
			wantStatus:  200,
			wantHeaders: map[string]string{"X-Auth-Subject": "alice", hdrEnvoyRemove: "authorization"},
		},
		{
			name: "strip_authorization is Envoy's header only", mode: ModeNginx,
			decision:   func() authz.Decision { d := allowDecision(); d.StripAuthorization = true; return d }(),
			wantStatus: 200, wantHeaders: map[string]string{"X-Auth-Subject": "alice"},
			wantAbsent: []string{hdrEnvoyRemove},
		},
		{
			name: "400 invalid_request", mode: ModeEnvoy,
			decision: authz.Decision{
				Status: 400, Error: "invalid_request", Description: "more than one credential",
				Challenge: `Bearer realm="storage", error="invalid_request", error_description="more than one credential"`,
			},
			wantStatus: 400, wantError: "invalid_request",
			wantHeaders: map[string]string{
				"WWW-Authenticate": `Bearer realm="storage", error="invalid_request", error_description="more than one credential"`,
				"Content-Type":     "application/json", "Cache-Control": "no-store",
			},
			wantAbsent: []string{"X-Auth-Subject", "Retry-After"},
		},
		{
			name:       "401 no token",
			mode:       ModeNginx,
			decision:   authz.Decision{Status: 401, Challenge: `Bearer realm="storage"`},
			wantStatus: 401, wantError: "unauthorized",
			wantHeaders: map[string]string{"WWW-Authenticate": `Bearer realm="storage"`, "Content-Type": "application/json"},
			wantAbsent:  []string{"X-Auth-Subject", "Retry-After"},
		},
		{
			name: "403 insufficient_scope", mode: ModeForwarded,
			decision: authz.Decision{
				Status: 403, Error: "insufficient_scope", Scope: "storage.modify:/d",
				Challenge: `Bearer realm="storage", error="insufficient_scope", scope="storage.modify:/d"`,
				// A denial never carries identity, whatever else is set.
				Headers: []authz.Header{{Name: "x-auth-subject", Value: "alice"}},
			},
			wantStatus: 403, wantError: "insufficient_scope",
			wantHeaders: map[string]string{"WWW-Authenticate": `Bearer realm="storage", error="insufficient_scope", scope="storage.modify:/d"`},
			wantAbsent:  []string{"X-Auth-Subject"},
		},
		{
			name:       "503 with Retry-After",
			mode:       ModeEnvoy,
			decision:   authz.Decision{Status: 503, Description: "token issuer is unavailable", RetryAfter: 2500 * time.Millisecond},
			wantStatus: 503, wantError: "temporarily_unavailable",
			wantHeaders: map[string]string{"Retry-After": "3", "Content-Type": "application/json", "Cache-Control": "no-store"},
			wantAbsent:  []string{"WWW-Authenticate", "X-Auth-Subject"},
		},
		{
			name: "denial without a status fails closed", mode: ModeEnvoy,
			decision:   authz.Decision{Status: 0},
			wantStatus: 503, wantError: "temporarily_unavailable",
			wantHeaders: map[string]string{"Retry-After": "1"},
		},
		{
			name: "denial with a success status fails closed", mode: ModeEnvoy,
			decision:   authz.Decision{Status: 200, Headers: allowDecision().Headers},
			wantStatus: 503, wantError: "temporarily_unavailable",
			wantAbsent: []string{"X-Auth-Subject"},
		},
		{
			name: "panic is 503, never 200", mode: ModeEnvoy, decision: allowDecision(), panics: true,
			wantStatus: 503, wantError: "temporarily_unavailable",
			wantHeaders: map[string]string{"Retry-After": "1"},
			wantAbsent:  []string{"X-Auth-Subject"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := &fakeChecker{decision: tc.decision, panics: tc.panics}
			srv := httptest.NewServer(newTestHTTPMode(t, tc.mode, "", f))
			defer srv.Close()
			req, err := http.NewRequest("GET", srv.URL+"/authz/f", nil)
			if err != nil {
				t.Fatal(err)
			}
			req.Header.Set("X-Original-Method", "GET")
			req.Header.Set("X-Original-URI", "/f")
			req.Header.Set("X-Original-Host", "storage.example")
			req.Header.Set("X-Forwarded-Method", "GET")
			req.Header.Set("X-Forwarded-Uri", "/f")
			req.Header.Set("X-Forwarded-Host", "storage.example")
			resp, err := srv.Client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()

			if resp.StatusCode != tc.wantStatus {
				t.Fatalf("status = %d, want %d", resp.StatusCode, tc.wantStatus)
			}
			for k, want := range tc.wantHeaders {
				got, ok := resp.Header[http.CanonicalHeaderKey(k)]
				if !ok || len(got) != 1 || got[0] != want {
					t.Errorf("%s = %q (present %v), want exactly %q", k, got, ok, want)
				}
			}
			for _, k := range tc.wantAbsent {
				if v, ok := resp.Header[http.CanonicalHeaderKey(k)]; ok {
					t.Errorf("%s = %q, want absent", k, v)
				}
			}
			if tc.wantError == "" {
				if len(body) != 0 {
					t.Errorf("body = %q, want empty", body)
				}
				return
			}
			var got struct {
				Error string `json:"error"`
			}
			if err := json.Unmarshal(body, &got); err != nil || got.Error != tc.wantError {
				t.Errorf("body = %q (%v), want error %q", body, err, tc.wantError)
			}
		})
	}
}

func TestHTTPModeNoEngineFailsClosed(t *testing.T) {
	h, err := New(Config{Engine: func() Checker { return nil }, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest("GET", "/authz/f", nil))
	if w.Code != http.StatusServiceUnavailable || w.Header().Get("Retry-After") == "" {
		t.Errorf("status %d Retry-After %q, want 503 with Retry-After", w.Code, w.Header().Get("Retry-After"))
	}
}

// failingBody fails the test if anything reads it.
type failingBody struct{ t *testing.T }

func (b failingBody) Read([]byte) (int, error) {
	b.t.Error("request body was read")
	return 0, errors.New("must not be read")
}

func TestHTTPModeNeverReadsBody(t *testing.T) {
	f := &fakeChecker{decision: allowDecision()}
	h := newTestHTTPMode(t, ModeEnvoy, "", f)
	r := httptest.NewRequest("PUT", "/authz/f", io.NopCloser(failingBody{t}))
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	if w.Code != http.StatusOK {
		t.Errorf("status = %d", w.Code)
	}
}

func TestHTTPModeConfigErrors(t *testing.T) {
	engine := func() Checker { return &fakeChecker{} }
	tests := []struct {
		name string
		cfg  Config
		want string
	}{
		{name: "unknown mode", cfg: Config{Mode: "haproxy", Engine: engine}, want: "not one of"},
		{name: "no engine", cfg: Config{Mode: ModeNginx}, want: "Engine is required"},
		{name: "relative prefix", cfg: Config{PathPrefix: "authz", Engine: engine}, want: "absolute path"},
		{name: "prefix with query", cfg: Config{PathPrefix: "/authz?x", Engine: engine}, want: "absolute path"},
		{name: "prefix with space", cfg: Config{PathPrefix: "/a z", Engine: engine}, want: "absolute path"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h, err := New(tc.cfg)
			if err == nil || !strings.Contains(err.Error(), tc.want) || h != nil {
				t.Errorf("New = %v, %v; want error containing %q", h, err, tc.want)
			}
		})
	}
}

// FuzzHTTPModeNginxHeaders: whatever a misconfigured proxy lets through,
// the engine only ever sees one method token, one origin-form target and the
// host from X-Original-Host (never the subrequest's own Host), and nothing
// panics.
func FuzzHTTPModeNginxHeaders(f *testing.F) {
	f.Add("GET", "/data/f?x=1", "storage.example", "")
	f.Add("GET, DELETE", "/a, /b", "a, b", "GET")
	f.Add("", "", "", "")
	f.Add("DEL\x00ETE", "/\x7f", "h\tx", "PUT")
	f.Fuzz(func(t *testing.T, method, uri, host, method2 string) {
		fc := &fakeChecker{decision: allowDecision()}
		h, err := New(Config{Mode: ModeAuto, Engine: func() Checker { return fc }, Logger: slog.New(slog.DiscardHandler)})
		if err != nil {
			t.Fatal(err)
		}
		r := httptest.NewRequest("GET", "/authz/x", nil)
		r.Host = "leasegate.internal"
		r.Header["X-Original-Method"] = []string{method}
		if method2 != "" {
			r.Header["X-Original-Method"] = append(r.Header["X-Original-Method"], method2)
		}
		r.Header["X-Original-Uri"] = []string{uri}
		r.Header["X-Original-Host"] = []string{host}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		switch w.Code {
		case http.StatusOK:
			if fc.calls != 1 || !isToken(fc.got.Method) || strings.Contains(fc.got.Method, ",") ||
				!strings.HasPrefix(fc.got.Path, "/") || !isURIText(fc.got.Path) || method2 != "" ||
				fc.got.Host != host || host == "" || strings.Contains(host, ",") {
				t.Fatalf("allowed with method %q path %q host %q (second method %q, X-Original-Host %q)",
					fc.got.Method, fc.got.Path, fc.got.Host, method2, host)
			}
		case http.StatusBadRequest:
			if fc.calls != 0 {
				t.Fatalf("400 after asking the engine")
			}
		default:
			t.Fatalf("status %d", w.Code)
		}
	})
}

// TestHTTPModeCountsSingleValuedHeaders sends repeated fields on the wire,
// in different spellings, and checks that the engine is told how many there
// were (the engine refuses n > 1 for these, SPEC §3) and never handed one
// field of several.
func TestHTTPModeCountsSingleValuedHeaders(t *testing.T) {
	values := map[string][2]string{
		"destination":   {"https://other.example.org/scratch/x", "/store/protected/victim"},
		"source":        {"https://other.example.org/in", "/store/protected/in"},
		"overwrite":     {"F", "T"},
		"if-none-match": {"*", `"etag-1"`},
		"authorization": {"Bearer a", "Bearer b"},
	}
	modes := []struct {
		mode, target, extra string
	}{
		{ModeEnvoy, "/authz/store/a", ""},
		{ModeNginx, "/_leasegate", "X-Original-Method: COPY\r\nX-Original-URI: /store/a\r\nX-Original-Host: storage.example\r\n"},
		{ModeForwarded, "/", "X-Forwarded-Method: COPY\r\nX-Forwarded-Uri: /store/a\r\nX-Forwarded-Host: storage.example\r\n"},
	}
	spellings := []struct {
		name  string
		lines func(name string, v [2]string) string
		want  func(v [2]string) headerCount
	}{
		{
			name:  "one field",
			lines: func(name string, v [2]string) string { return name + ": " + v[0] + "\r\n" },
			want:  func(v [2]string) headerCount { return headerCount{v[0], 1} },
		},
		{
			name: "two fields, different case",
			lines: func(name string, v [2]string) string {
				return http.CanonicalHeaderKey(name) + ": " + v[0] + "\r\nAccept: */*\r\n" + strings.ToUpper(name) + ": " + v[1] + "\r\n"
			},
			want: func(v [2]string) headerCount { return headerCount{v[0] + "," + v[1], 2} },
		},
		{
			name: "three fields, one empty",
			lines: func(name string, v [2]string) string {
				return name + ": " + v[1] + "\r\n" + name + ":\r\n" + name + ": " + v[0] + "\r\n"
			},
			want: func(v [2]string) headerCount { return headerCount{v[1] + ",," + v[0], 3} },
		},
		{
			// One field holding a list is one field; its comma is the
			// engine's to judge.
			name:  "one field with a comma",
			lines: func(name string, v [2]string) string { return name + ": " + v[0] + ", " + v[1] + "\r\n" },
			want:  func(v [2]string) headerCount { return headerCount{v[0] + ", " + v[1], 1} },
		},
	}
	for _, m := range modes {
		f := &fakeChecker{decision: allowDecision()}
		srv := httptest.NewServer(newTestHTTPMode(t, m.mode, "", f))
		for _, name := range singleValued {
			for _, sp := range spellings {
				t.Run(m.mode+"/"+name+"/"+sp.name, func(t *testing.T) {
					req := "GET " + m.target + " HTTP/1.1\r\nHost: leasegate\r\n" + m.extra + sp.lines(name, values[name]) + "Connection: close\r\n\r\n"
					if status := rawHTTP(t, srv.Listener.Addr().String(), req); status != http.StatusOK {
						t.Fatalf("status %d, want 200 from the fake engine", status)
					}
					f.mu.Lock()
					got := f.fields[name]
					f.mu.Unlock()
					if want := sp.want(values[name]); got != want {
						t.Errorf("engine read %s = %q ×%d, want %q ×%d", name, got.value, got.n, want.value, want.n)
					}
				})
			}
		}
		srv.Close()
	}
}

// rawHTTP writes req as is to addr and returns the response status.
func rawHTTP(t *testing.T, addr, req string) int {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := io.WriteString(c, req); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// TestHTTPModePanicLogOmitsValue: a panic while deciding is logged by its
// type and stack, never its value, which may hold the request's token.
func TestHTTPModePanicLogOmitsValue(t *testing.T) {
	const secret = "eyJhbGciOiJSUzI1NiJ9.c2VjcmV0LXRva2Vu.sig"
	tests := []struct {
		name     string
		value    any
		wantType string
	}{
		{"string holding a token", "bad header Bearer " + secret, "string"},
		{"error holding a token", errors.New("cannot parse " + secret), "*errors.errorString"},
		{"long value", strings.Repeat("x", 4096) + secret, "string"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var logs strings.Builder
			f := &fakeChecker{decision: allowDecision(), panics: true, panicV: tc.value}
			h, err := New(Config{Engine: func() Checker { return f },
				Logger: slog.New(slog.NewJSONHandler(&logs, nil))})
			if err != nil {
				t.Fatal(err)
			}
			r := httptest.NewRequest("GET", "/authz/f", nil)
			r.Header.Set("Authorization", "Bearer "+secret)
			w := httptest.NewRecorder()
			h.ServeHTTP(w, r)
			if w.Code != http.StatusServiceUnavailable {
				t.Errorf("status %d, want 503", w.Code)
			}
			out := logs.String()
			if strings.Contains(out, secret) || strings.Contains(out, "c2VjcmV0") {
				t.Errorf("log holds the token: %s", out)
			}
			if !strings.Contains(out, `"panic_type":"`+tc.wantType+`"`) || !strings.Contains(out, `"stack":"`) {
				t.Errorf("log lacks panic_type %q or the stack: %.500s", tc.wantType, out)
			}
		})
	}
}

// identityCases are allow decisions whose identity a proxy can or cannot
// carry exactly.
var identityCases = []struct {
	name   string
	mutate func(d *authz.Decision)
	pass   bool
}{
	{"plain identity", func(*authz.Decision) {}, true},
	{"empty client id", func(d *authz.Decision) { d.Headers[1].Value = "" }, true},
	{"non-ASCII UTF-8 subject", func(d *authz.Decision) { d.Headers[0].Value = "zoë@example.org" }, true},
	{"subject with a trailing CR", func(d *authz.Decision) { d.Headers[0].Value = "alice\r" }, false},
	{"subject with a header injection", func(d *authz.Decision) { d.Headers[0].Value = "bob\r\nX-Auth-Scope: storage.modify:/" }, false},
	{"scope with LF", func(d *authz.Decision) { d.Headers[2].Value = "storage.read:/\nstorage.modify:/" }, false},
	{"subject with NUL", func(d *authz.Decision) { d.Headers[0].Value = "alice\x00" }, false},
	{"subject not UTF-8", func(d *authz.Decision) { d.Headers[0].Value = "alice\xff" }, false},
	{"issuer over 16 KiB", func(d *authz.Decision) { d.Headers[3].Value = "https://" + strings.Repeat("i", 16<<10) }, false},
}

// TestHTTPModeRefusesIdentityItCannotPass: net/http would write "alice\r"
// as "alice " and the proxy read "alice"; an identity that cannot be passed
// exactly is refused (401 invalid_token), as on the gRPC path.
func TestHTTPModeRefusesIdentityItCannotPass(t *testing.T) {
	for _, tc := range identityCases {
		t.Run(tc.name, func(t *testing.T) {
			d := allowDecision()
			tc.mutate(&d)
			srv := httptest.NewServer(newTestHTTPMode(t, ModeEnvoy, "", &fakeChecker{decision: d}))
			defer srv.Close()
			resp, err := srv.Client().Get(srv.URL + "/authz/f")
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if !tc.pass {
				ch := resp.Header.Get("WWW-Authenticate")
				if resp.StatusCode != http.StatusUnauthorized || !strings.Contains(ch, `error="invalid_token"`) {
					t.Errorf("status %d, WWW-Authenticate %q; want 401 invalid_token", resp.StatusCode, ch)
				}
				for k := range resp.Header {
					if strings.HasPrefix(k, "X-Auth-") {
						t.Errorf("refused identity still sent: %s = %q", k, resp.Header[k])
					}
				}
				return
			}
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("status %d, want 200", resp.StatusCode)
			}
			for _, h := range d.Headers {
				if got := resp.Header.Values(h.Name); len(got) != 1 || got[0] != h.Value {
					t.Errorf("%s = %q, want exactly %q", h.Name, got, h.Value)
				}
			}
		})
	}
}
