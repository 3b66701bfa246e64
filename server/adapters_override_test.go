package server

import (
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"

	"github.com/leasegate/leasegate/authz"
	"github.com/leasegate/leasegate/authz/request"
	"github.com/leasegate/leasegate/envoy"
	"github.com/leasegate/leasegate/server/forwardauth"
)

// normalizingChecker reads a request as the engine does first
// (request.Normalize): 400 for what that refuses, else an allow.
type normalizingChecker struct{}

func (normalizingChecker) Check(_ context.Context, r *authz.Request) authz.Decision {
	if _, problem := request.Normalize(r.Method, r.Host, r.Path, r.Headers); problem != "" {
		return authz.InvalidRequest("storage", problem)
	}
	return allowDecision()
}

// TestAdaptersCarryMethodOverride: a method-override header reaches the
// engine's judgement through each adapter's header view, the Envoy
// headers map, raw header_map and net/http's, in every spelling a
// backend folding "_" into "-" reads as the header.
func TestAdaptersCarryMethodOverride(t *testing.T) {
	log := slog.New(slog.DiscardHandler)
	g, err := envoy.New(envoy.Config{Engine: func() envoy.Checker { return normalizingChecker{} }, Realm: "storage", Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	h, err := forwardauth.New(forwardauth.Config{Mode: forwardauth.ModeForwarded, Realm: "storage",
		Engine: func() forwardauth.Checker { return normalizingChecker{} }, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	defer srv.Close()
	tests := []struct{ name, value string }{
		{"", ""}, // control: no override
		{"X-HTTP-Method-Override", "DELETE"},
		{"X-HTTP-Method-Override", "POST"},
		{"X_HTTP_Method_Override", "DELETE"},
		{"X-Method_Override", "PUT"},
		{"X-HTTP-Method", "DELETE"},
	}
	for _, tc := range tests {
		t.Run(tc.name+"="+tc.value, func(t *testing.T) {
			want := http.StatusBadRequest
			if tc.name == "" || !strings.Contains(tc.name, "_") && tc.value == "POST" {
				want = http.StatusOK
			}
			er := envoyRequest("POST", "/f", "")
			rq := rawRequest(raw(":method", "POST"), raw(":path", "/f"), raw(":authority", "storage.example.org"))
			line := ""
			if tc.name != "" {
				er.Attributes.Request.Http.Headers[strings.ToLower(tc.name)] = tc.value
				hm := rq.Attributes.Request.Http.HeaderMap
				hm.Headers = append(hm.Headers, raw(tc.name, tc.value))
				line = tc.name + ": " + tc.value + "\r\n"
			}
			for shape, req := range map[string]*authv3.CheckRequest{"headers": er, "header_map": rq} {
				if got := grpcStatus(t, g, req); got != want {
					t.Errorf("gRPC, %s: %d, want %d", shape, got, want)
				}
			}
			req := "GET /authz HTTP/1.1\r\nHost: leasegate\r\nX-Forwarded-Method: POST\r\nX-Forwarded-Uri: /f\r\n" +
				"X-Forwarded-Host: storage.example.org\r\n" + line + "Connection: close\r\n\r\n"
			if got := rawHTTP(t, srv.Listener.Addr().String(), req); got != want {
				t.Errorf("HTTP mode: %d, want %d", got, want)
			}
		})
	}
}

// grpcStatus is the HTTP status the gRPC adapter's answer gives the client.
func grpcStatus(t *testing.T, g *envoy.Server, req *authv3.CheckRequest) int {
	t.Helper()
	resp, err := g.Check(t.Context(), req)
	if err != nil {
		t.Fatal(err)
	}
	if resp.GetOkResponse() != nil {
		return http.StatusOK
	}
	return int(resp.GetDeniedResponse().GetStatus().GetCode())
}
