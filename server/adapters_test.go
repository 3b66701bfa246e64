package server

// Differential tests of the two adapters (STYLE: two paths that must give
// one answer): envoy/ (gRPC ext_authz) and forwardauth (HTTP mode) are
// siblings that never import each other, so they are compared here, where
// both are wired.

import (
	"bufio"
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/leasegate/leasegate/authz"
	"github.com/leasegate/leasegate/envoy"
	"github.com/leasegate/leasegate/server/forwardauth"
)

// fixedChecker answers every check with one decision.
type fixedChecker struct{ decision authz.Decision }

func (f *fixedChecker) Check(context.Context, *authz.Request) authz.Decision { return f.decision }

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

// adapters are both adapters over one checker, with one realm.
type adapters struct {
	grpc *envoy.Server
	http http.Handler
}

func newAdapters(t *testing.T, mode, prefix, realm string, c authz.Decision) adapters {
	t.Helper()
	f := &fixedChecker{decision: c}
	log := slog.New(slog.DiscardHandler)
	g, err := envoy.New(envoy.Config{Engine: func() envoy.Checker { return f }, Realm: realm, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	h, err := forwardauth.New(forwardauth.Config{
		Mode: mode, PathPrefix: prefix, Realm: realm,
		Engine: func() forwardauth.Checker { return f }, Logger: log,
	})
	if err != nil {
		t.Fatal(err)
	}
	return adapters{grpc: g, http: h}
}

// identityCases are allow decisions whose identity a proxy can or cannot
// carry exactly (forwardauth's TestHTTPModeRefusesIdentityItCannotPass
// has the same cases).
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

// TestAdaptersAgreeOnIdentity: for the same decision, the gRPC adapter and
// HTTP mode both allow or both refuse, with one status.
func TestAdaptersAgreeOnIdentity(t *testing.T) {
	for _, tc := range identityCases {
		t.Run(tc.name, func(t *testing.T) {
			d := allowDecision()
			tc.mutate(&d)
			a := newAdapters(t, forwardauth.ModeEnvoy, "", "storage", d)
			resp, err := a.grpc.Check(t.Context(), envoyRequest("GET", "/f", ""))
			if err != nil {
				t.Fatal(err)
			}
			grpcStatus := http.StatusOK
			if resp.GetOkResponse() == nil {
				grpcStatus = int(resp.GetDeniedResponse().GetStatus().GetCode())
			}
			w := httptest.NewRecorder()
			a.http.ServeHTTP(w, httptest.NewRequest("GET", "/authz/f", nil))
			if grpcStatus != w.Code {
				t.Errorf("gRPC adapter answered %d, HTTP mode %d", grpcStatus, w.Code)
			}
			if want := map[bool]int{true: 200, false: 401}[tc.pass]; w.Code != want {
				t.Errorf("status %d, want %d", w.Code, want)
			}
		})
	}
}

// TestHTTPModeRefusesUnderscoreTwins: Traefik and Caddy overwrite
// X-Auth-Subject but pass a client's X_Auth_Subject on, which a backend
// folding "_" into "-" reads as the identity. They also copy it into the
// auth request, so leasegate refuses the allow (400), in every mode and as
// the gRPC adapter does for the same headers.
func TestHTTPModeRefusesUnderscoreTwins(t *testing.T) {
	tests := []struct {
		name       string
		header     string
		wantStatus int
	}{
		{"X_Auth_Subject", "X_Auth_Subject", http.StatusBadRequest},
		{"x-auth_scope", "x-auth_scope", http.StatusBadRequest},
		{"X_AUTH_CLIENT_ID", "X_AUTH_CLIENT_ID", http.StatusBadRequest},
		{"exact spelling, overwritten by the proxy", "X-Auth-Subject", http.StatusOK},
		{"unrelated underscore header", "X_Request_Id", http.StatusOK},
	}
	modes := map[string]string{
		forwardauth.ModeEnvoy:     "",
		forwardauth.ModeForwarded: "X-Forwarded-Method: GET\r\nX-Forwarded-Uri: /f\r\nX-Forwarded-Host: storage.example\r\n",
		forwardauth.ModeNginx:     "X-Original-Method: GET\r\nX-Original-URI: /f\r\nX-Original-Host: storage.example\r\n",
	}
	for _, mode := range []string{forwardauth.ModeEnvoy, forwardauth.ModeForwarded, forwardauth.ModeNginx} {
		a := newAdapters(t, mode, "/", "storage", allowDecision())
		srv := httptest.NewServer(a.http)
		for _, tc := range tests {
			t.Run(mode+"/"+tc.name, func(t *testing.T) {
				req := "GET /f HTTP/1.1\r\nHost: storage.example\r\n" + modes[mode] + tc.header + ": root\r\nConnection: close\r\n\r\n"
				if got := rawHTTP(t, srv.Listener.Addr().String(), req); got != tc.wantStatus {
					t.Errorf("status %d, want %d", got, tc.wantStatus)
				}
				// The gRPC adapter, given the same header, answers the same.
				er := envoyRequest("GET", "/f", "")
				er.Attributes.Request.Http.Headers[strings.ToLower(tc.header)] = "root"
				resp, err := a.grpc.Check(t.Context(), er)
				if err != nil {
					t.Fatal(err)
				}
				grpcStatus := http.StatusOK
				if resp.GetOkResponse() == nil {
					grpcStatus = int(resp.GetDeniedResponse().GetStatus().GetCode())
				}
				if grpcStatus != tc.wantStatus {
					t.Errorf("gRPC adapter answered %d, want %d like HTTP mode", grpcStatus, tc.wantStatus)
				}
			})
		}
		srv.Close()
	}
}

// TestAdaptersAgreeOnDenials: the denial vocabulary is authz's, so for the
// same decision both adapters send the same status, WWW-Authenticate,
// Retry-After and JSON body, the denials they make on their own included
// (an identity they cannot pass, an underscore twin), whatever the realm.
func TestAdaptersAgreeOnDenials(t *testing.T) {
	unpassable := allowDecision()
	unpassable.Headers[0].Value = "alice\r"
	engineDenial := func(status int, code, desc, scope string) authz.Decision {
		return authz.Decision{Status: status, Error: code, Description: desc, Scope: scope, Realm: "stòrage",
			Challenge: `Bearer realm="st??rage", error="` + code + `", error_description="` + desc + `"`}
	}
	tests := []struct {
		name     string
		decision authz.Decision
		twin     bool // the request carries X_Auth_Subject
	}{
		{name: "identity that cannot be passed", decision: unpassable},
		{name: "underscore twin", decision: allowDecision(), twin: true},
		{name: "engine 401", decision: engineDenial(401, authz.ErrCodeInvalidToken, "token is not active", "")},
		{name: "engine 403", decision: engineDenial(403, authz.ErrCodeInsufficientScope, "scope does not grant this request", "storage.read:/f")},
		{name: "engine 503", decision: authz.Decision{Status: 503, Description: "token issuer is unavailable", RetryAfter: 2500 * time.Millisecond}},
	}
	for _, realm := range []string{"storage", "stòrage \"q\"", ""} {
		for _, tc := range tests {
			t.Run(realm+"/"+tc.name, func(t *testing.T) {
				a := newAdapters(t, forwardauth.ModeEnvoy, "", realm, tc.decision)
				er := envoyRequest("GET", "/f", "")
				r := httptest.NewRequest("GET", "/authz/f", nil)
				if tc.twin {
					er.Attributes.Request.Http.Headers["x_auth_subject"] = "root"
					r.Header["X_auth_subject"] = []string{"root"}
				}
				resp, err := a.grpc.Check(t.Context(), er)
				if err != nil {
					t.Fatal(err)
				}
				dr := resp.GetDeniedResponse()
				if dr == nil {
					t.Fatal("gRPC adapter allowed")
				}
				grpcHeaders := map[string]string{}
				for _, o := range dr.GetHeaders() {
					grpcHeaders[http.CanonicalHeaderKey(o.GetHeader().GetKey())] = o.GetHeader().GetValue()
				}
				w := httptest.NewRecorder()
				a.http.ServeHTTP(w, r)
				if got := int(dr.GetStatus().GetCode()); got != w.Code {
					t.Errorf("status: gRPC %d, HTTP %d", got, w.Code)
				}
				for _, k := range []string{"Www-Authenticate", "Retry-After", "Content-Type", "Cache-Control"} {
					if g, h := grpcHeaders[k], w.Header().Get(k); g != h {
						t.Errorf("%s: gRPC %q, HTTP %q", k, g, h)
					}
				}
				if dr.GetBody() != w.Body.String() {
					t.Errorf("body: gRPC %s, HTTP %s", dr.GetBody(), w.Body)
				}
				if ch := w.Header().Get("WWW-Authenticate"); strings.ContainsAny(ch, "ò\\") || strings.Count(ch, `"`)%2 != 0 {
					t.Errorf("challenge %q is not quoted safely", ch)
				}
			})
		}
	}
}
