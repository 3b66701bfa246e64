package authz

import (
	"net/http"
	"strings"
	"testing"
)

func allowWithIdentity() Decision {
	return Decision{
		Allow: true, Status: http.StatusOK, Reason: ReasonAllowed,
		Identity: Identity{Subject: "alice", Scope: "storage.read:/"},
		Headers: []Header{
			{Name: "x-auth-subject", Value: "alice"},
			{Name: "x-auth-client-id", Value: ""},
			{Name: "x-auth-scope", Value: "storage.read:/"},
			{Name: "x-auth-issuer", Value: "https://issuer.example"},
		},
		StripAuthorization: true,
	}
}

// assertPassesNothing: a denial carries no identity of any kind.
func assertPassesNothing(t *testing.T, d *Decision) {
	t.Helper()
	if d.Allow || d.Identity != (Identity{}) || d.Headers != nil || d.StripAuthorization {
		t.Errorf("denial still passes something upstream: %+v", d)
	}
}

func TestAdapterRefusals(t *testing.T) {
	tests := []struct {
		name       string
		refuse     func(d *Decision)
		wantStatus int
		wantReason Reason
		wantWWW    string
		wantBody   string
	}{
		{
			name: "identity", refuse: func(d *Decision) { d.RefuseIdentity("storage") },
			wantStatus: 401, wantReason: ReasonInvalidToken,
			wantWWW:  `Bearer realm="storage", error="invalid_token", error_description="token claims cannot be passed upstream"`,
			wantBody: `{"error":"invalid_token","error_description":"token claims cannot be passed upstream"}`,
		},
		{
			name: "identity without realm", refuse: func(d *Decision) { d.RefuseIdentity("") },
			wantStatus: 401, wantReason: ReasonInvalidToken,
			wantWWW:  `Bearer error="invalid_token", error_description="token claims cannot be passed upstream"`,
			wantBody: `{"error":"invalid_token","error_description":"token claims cannot be passed upstream"}`,
		},
		{
			name: "underscore twin", refuse: func(d *Decision) { d.RefuseUnderscoreTwin("storage") },
			wantStatus: 400, wantReason: ReasonMalformed,
			wantWWW:  `Bearer realm="storage", error="invalid_request", error_description="request carries an underscore spelling of an identity header"`,
			wantBody: `{"error":"invalid_request","error_description":"request carries an underscore spelling of an identity header"}`,
		},
		{
			name: "invalid request", refuse: func(d *Decision) { *d = InvalidRequest("storage", "missing X-Original-Uri header") },
			wantStatus: 400, wantReason: ReasonMalformed,
			wantWWW:  `Bearer realm="storage", error="invalid_request", error_description="missing X-Original-Uri header"`,
			wantBody: `{"error":"invalid_request","error_description":"missing X-Original-Uri header"}`,
		},
		{
			name: "unavailable", refuse: func(d *Decision) { *d = Unavailable("internal error") },
			wantStatus: 503,
			wantBody:   `{"error":"temporarily_unavailable","error_description":"internal error"}`,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d := allowWithIdentity()
			tc.refuse(&d)
			assertPassesNothing(t, &d)
			if d.Status != tc.wantStatus || d.Reason != tc.wantReason || d.Challenge != tc.wantWWW || string(d.Body()) != tc.wantBody {
				t.Errorf("got %d %q %q %s; want %d %q %q %s", d.Status, d.Reason, d.Challenge, d.Body(),
					tc.wantStatus, tc.wantReason, tc.wantWWW, tc.wantBody)
			}
			if d.Status == http.StatusServiceUnavailable && d.RetryAfterSeconds() != "1" {
				t.Errorf("Retry-After %s, want 1", d.RetryAfterSeconds())
			}
		})
	}
}

// TestSetDescription: the challenge keeps the realm, error and scope of
// the denial it rewrites, and the new description is quoted like any other.
func TestSetDescription(t *testing.T) {
	var d Decision
	d.deny("r", http.StatusBadRequest, ReasonMalformed, ErrCodeInvalidRequest, "request has no method", "")
	d.SetDescription("request has too many header fields")
	if want := `Bearer realm="r", error="invalid_request", error_description="request has too many header fields"`; d.Challenge != want {
		t.Errorf("challenge %q, want %q", d.Challenge, want)
	}
	if want := `{"error":"invalid_request","error_description":"request has too many header fields"}`; string(d.Body()) != want {
		t.Errorf("body %s, want %s", d.Body(), want)
	}
	d.deny("r", http.StatusForbidden, ReasonScope, ErrCodeInsufficientScope, "no", "storage.read:/a")
	d.SetDescription(`say "why"`)
	if want := `Bearer realm="r", error="insufficient_scope", error_description="say ?why?", scope="storage.read:/a"`; d.Challenge != want {
		t.Errorf("challenge %q, want %q", d.Challenge, want)
	}
	u := Unavailable("internal error")
	u.SetDescription("not ready")
	if u.Challenge != "" || u.Description != "not ready" {
		t.Errorf("a 503 got challenge %q, description %q", u.Challenge, u.Description)
	}
}

func TestUnpassableHeader(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(d *Decision)
		want   string
	}{
		{"plain identity", func(*Decision) {}, ""},
		{"empty value", func(d *Decision) { d.Headers[1].Value = "" }, ""},
		{"non-ASCII UTF-8", func(d *Decision) { d.Headers[0].Value = "zoë@example.org" }, ""},
		{"tab", func(d *Decision) { d.Headers[0].Value = "a\tb" }, ""},
		{"unnamed header is skipped", func(d *Decision) { d.Headers[1] = Header{Value: "a\r\nb"} }, ""},
		{"trailing CR", func(d *Decision) { d.Headers[0].Value = "alice\r" }, "x-auth-subject"},
		{"LF", func(d *Decision) { d.Headers[2].Value = "a\nb" }, "x-auth-scope"},
		{"NUL", func(d *Decision) { d.Headers[0].Value = "alice\x00" }, "x-auth-subject"},
		{"not UTF-8", func(d *Decision) { d.Headers[1].Value = "\xff\xfe" }, "x-auth-client-id"},
		{"at the limit", func(d *Decision) { d.Headers[3].Value = strings.Repeat("i", MaxHeaderValueBytes) }, ""},
		{"over the limit", func(d *Decision) { d.Headers[3].Value = strings.Repeat("i", MaxHeaderValueBytes+1) }, "x-auth-issuer"},
		{"bad name", func(d *Decision) { d.Headers[3].Name = "x-auth\nissuer" }, "x-auth\nissuer"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d := allowWithIdentity()
			tc.mutate(&d)
			if got := d.UnpassableHeader(); got != tc.want {
				t.Errorf("UnpassableHeader() = %q, want %q", got, tc.want)
			}
		})
	}
}

func TestUnderscoreTwin(t *testing.T) {
	d := &Decision{Allow: true, Headers: []Header{{Name: "x-auth-subject"}, {Name: "x_custom_id"}, {Name: ""}}}
	tests := []struct{ name, want string }{
		{"x_auth_subject", "x-auth-subject"},
		{"X_AUTH_SUBJECT", "x-auth-subject"},
		{"x-auth_subject", "x-auth-subject"},
		{"x-auth-subject", ""}, // the name itself: overwritten by the proxy
		{"X-Auth-Subject", ""},
		{"x-custom-id", "x_custom_id"}, // a configured name with "_" has twins too
		{"x_custom_id", ""},
		{"x_auth_subjectx", ""},
		{"x_auth_\u017fubject", ""},
		{"", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := d.UnderscoreTwin(tc.name); got != tc.want {
				t.Errorf("UnderscoreTwin(%q) = %q, want %q", tc.name, got, tc.want)
			}
		})
	}
}
