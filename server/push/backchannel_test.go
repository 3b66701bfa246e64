package push

import (
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/leasegate/leasegate/leasecache"
)

func TestBackchannelLogoutRevokes(t *testing.T) {
	sid := leasecache.NameOf("idp", leasecache.ClaimSession, "08a5019c-17e1-4977-8f42-65a12843ea02")
	tests := []struct {
		name string
		mod  func(map[string]any)
		hdr  map[string]any
		want []leasecache.Name
	}{
		{"sid only, typ JWT (ORY Hydra)", func(c map[string]any) { delete(c, "sub") }, map[string]any{"typ": "JWT"}, []leasecache.Name{sid}},
		{"sub only, typ logout+jwt", func(c map[string]any) { delete(c, "sid") }, map[string]any{"typ": "logout+jwt"},
			[]leasecache.Name{leasecache.NameOf("idp", leasecache.ClaimSubject, "248289761001")}},
		{"sub and sid: the session, and the user's leases that know none", nil, map[string]any{"typ": "application/logout+jwt"},
			[]leasecache.Name{sid, leasecache.NameOf("idp", leasecache.ClaimSessionlessSubject, "248289761001")}},
		{"no typ, aud a string, exp ahead", func(c map[string]any) { c["aud"] = testClientID; c["exp"] = c["iat"].(int64) + 120 }, nil,
			[]leasecache.Name{sid, leasecache.NameOf("idp", leasecache.ClaimSessionlessSubject, "248289761001")}},
		{"iat exactly clock_skew ago", func(c map[string]any) { c["iat"] = c["iat"].(int64) - 60 }, nil,
			[]leasecache.Name{sid, leasecache.NameOf("idp", leasecache.ClaimSessionlessSubject, "248289761001")}},
		{"iat exactly clock_skew ahead", func(c map[string]any) { c["iat"] = c["iat"].(int64) + 60 }, nil,
			[]leasecache.Name{sid, leasecache.NameOf("idp", leasecache.ClaimSessionlessSubject, "248289761001")}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			a := e.logout(t, e.key.sign(t, e.logoutClaims(tc.mod), tc.hdr))
			if a.status != 200 || a.body != nil || a.header.Get("Cache-Control") != "no-store" {
				t.Fatalf("answer %d %v %v, want 200, no body, no-store", a.status, a.body, a.header)
			}
			calls := e.rec.taken()
			if len(calls) != 1 || calls[0].source != SourceBackchannel || !slices.Equal(calls[0].names, tc.want) {
				t.Fatalf("revoked %+v, want %v from %s", calls, tc.want, SourceBackchannel)
			}
			if e.requests(SourceBackchannel, "accepted") != 1 || e.events(SourceBackchannel, "backchannel-logout") != 1 {
				t.Error("not counted as accepted")
			}
		})
	}
}

// Every refusal is a 400 with error invalid_request and a description
// saying why, counted by its RFC 8935 code, and revokes nothing.
func TestBackchannelLogoutRefusals(t *testing.T) {
	other := newSigner(t, testKID) // same kid, another key: a forgery
	tests := []struct {
		name        string
		contentType string
		body        func(e *env) string
		desc        string // part of error_description
		outcome     string
	}{
		{"bad signature", "", func(e *env) string { return form(other.sign(t, e.logoutClaims(nil), nil)) }, "signature invalid", codeInvalidKey},
		{"unknown kid", "", func(e *env) string { return form(newSigner(t, "nope").sign(t, e.logoutClaims(nil), nil)) }, "unknown signing key", codeInvalidKey},
		{"alg none", "", func(e *env) string { return form(unsigned(e.logoutClaims(nil))) }, "algorithm not allowed", codeInvalidKey},
		{"wrong aud", "", func(e *env) string {
			return form(e.key.sign(t, e.logoutClaims(func(c map[string]any) { c["aud"] = []string{"someone-else"} }), nil))
		}, "aud does not name this receiver", codeInvalidAudience},
		{"no aud", "", func(e *env) string {
			return form(e.key.sign(t, e.logoutClaims(func(c map[string]any) { delete(c, "aud") }), nil))
		}, "aud", codeInvalidAudience},
		{"nonce present", "", func(e *env) string {
			return form(e.key.sign(t, e.logoutClaims(func(c map[string]any) { c["nonce"] = "n-0S6_WzA2Mj" }), nil))
		}, "must not carry nonce", codeInvalidRequest},
		{"no sub, no sid", "", func(e *env) string {
			return form(e.key.sign(t, e.logoutClaims(func(c map[string]any) { delete(c, "sub"); delete(c, "sid") }), nil))
		}, "sub, sid or both", codeInvalidRequest},
		{"empty sid, no sub", "", func(e *env) string {
			return form(e.key.sign(t, e.logoutClaims(func(c map[string]any) { delete(c, "sub"); c["sid"] = "" }), nil))
		}, "sub, sid or both", codeInvalidRequest},
		{"sid not a string", "", func(e *env) string {
			return form(e.key.sign(t, e.logoutClaims(func(c map[string]any) { c["sid"] = 42 }), nil))
		}, "must be strings", codeInvalidRequest},
		{"stale iat", "", func(e *env) string {
			return form(e.key.sign(t, e.logoutClaims(func(c map[string]any) { c["iat"] = c["iat"].(int64) - 61 }), nil))
		}, "too old", codeInvalidRequest},
		{"iat in the future", "", func(e *env) string {
			return form(e.key.sign(t, e.logoutClaims(func(c map[string]any) { c["iat"] = c["iat"].(int64) + 61 }), nil))
		}, "in the future", codeInvalidRequest},
		{"iat a string", "", func(e *env) string {
			return form(e.key.sign(t, e.logoutClaims(func(c map[string]any) { c["iat"] = "1234567890" }), nil))
		}, "iat is missing", codeInvalidRequest},
		{"expired", "", func(e *env) string {
			return form(e.key.sign(t, e.logoutClaims(func(c map[string]any) { c["exp"] = c["iat"] }), nil))
		}, "expired", codeInvalidRequest},
		{"no jti", "", func(e *env) string {
			return form(e.key.sign(t, e.logoutClaims(func(c map[string]any) { delete(c, "jti") }), nil))
		}, "jti", codeInvalidRequest},
		{"no events", "", func(e *env) string {
			return form(e.key.sign(t, e.logoutClaims(func(c map[string]any) { delete(c, "events") }), nil))
		}, "events is missing", codeInvalidRequest},
		{"events without the logout event (a SET)", "", func(e *env) string {
			return form(e.key.sign(t, e.logoutClaims(func(c map[string]any) {
				c["events"] = map[string]any{"https://schemas.openid.net/secevent/risc/event-type/account-disabled": map[string]any{}}
			}), nil))
		}, "lacks the back-channel logout event", codeInvalidRequest},
		{"typ of an access token", "", func(e *env) string { return form(e.key.sign(t, e.logoutClaims(nil), map[string]any{"typ": "at+jwt"})) }, "token type not accepted", codeInvalidRequest},
		{"typ of a SET", "", func(e *env) string {
			return form(e.key.sign(t, e.logoutClaims(nil), map[string]any{"typ": "secevent+jwt"}))
		}, "token type not accepted", codeInvalidRequest},
		{"issuer not configured", "", func(e *env) string {
			return form(e.key.sign(t, e.logoutClaims(func(c map[string]any) { c["iss"] = "https://elsewhere.example.org" }), nil))
		}, "not configured to push here", codeInvalidIssuer},
		{"issuer configured without back-channel logout", "", func(e *env) string {
			return form(e.key.sign(t, e.logoutClaims(func(c map[string]any) { c["iss"] = e.jwks.URL + "/quiet" }), nil))
		}, "not configured to push here", codeInvalidIssuer},
		{"wrong content type", "application/json", func(e *env) string { return form(e.key.sign(t, e.logoutClaims(nil), nil)) }, "Content-Type must be application/x-www-form-urlencoded", codeInvalidRequest},
		{"no content type", "-", func(e *env) string { return form(e.key.sign(t, e.logoutClaims(nil), nil)) }, "Content-Type", codeInvalidRequest},
		{"oversized body", "", func(e *env) string {
			return form(e.key.sign(t, e.logoutClaims(nil), nil)) + "&pad=" + strings.Repeat("x", MaxBodyBytes)
		}, "exceeds 65536 bytes", codeInvalidRequest},
		{"garbage token", "", func(*env) string { return form("not.a.jwt") }, "not a signed JWT", codeInvalidRequest},
		{"garbage body", "", func(*env) string { return "%zz\x00\xff" }, "exactly one logout_token", codeInvalidRequest},
		{"no logout_token", "", func(*env) string { return "token=abc" }, "exactly one logout_token", codeInvalidRequest},
		{"two logout_tokens", "", func(e *env) string {
			tok := e.key.sign(t, e.logoutClaims(nil), nil)
			return url.Values{"logout_token": {tok, tok}}.Encode()
		}, "exactly one logout_token", codeInvalidRequest},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			ct := "application/x-www-form-urlencoded"
			switch tc.contentType {
			case "-":
				ct = ""
			case "":
			default:
				ct = tc.contentType
			}
			a := e.post(t, PathBackchannel, ct, tc.body(e))
			assertRefused(t, a, 400, "error", "invalid_request", "error_description", tc.desc)
			if calls := e.rec.taken(); len(calls) != 0 {
				t.Fatalf("a refused logout revoked %+v", calls)
			}
			if got := e.requests(SourceBackchannel, tc.outcome); got != 1 {
				t.Errorf("outcome %s counted %v, want 1", tc.outcome, got)
			}
			if e.replay.held() != 0 {
				t.Errorf("a refused token's jti is remembered")
			}
		})
	}
}

// A replayed logout token is refused for as long as it could be accepted,
// and then it is refused as too old; the memory is pruned past that.
func TestBackchannelLogoutReplay(t *testing.T) {
	e := newEnv(t)
	tok := e.key.sign(t, e.logoutClaims(nil), nil)
	if a := e.logout(t, tok); a.status != 200 {
		t.Fatalf("first: %d %v", a.status, a.body)
	}
	e.clock.Advance(59 * time.Second)
	assertRefused(t, e.logout(t, tok), 400, "error", "invalid_request", "error_description", "replayed")
	e.clock.Advance(2 * time.Second)
	assertRefused(t, e.logout(t, tok), 400, "error", "invalid_request", "error_description", "too old")
	if n := len(e.rec.taken()); n != 1 {
		t.Fatalf("%d revocations, want 1", n)
	}
	if e.requests(SourceBackchannel, outcomeReplayed) != 1 {
		t.Error("replay not counted")
	}
	// Another token remembered now prunes the first one.
	if a := e.logout(t, e.key.sign(t, e.logoutClaims(nil), nil)); a.status != 200 {
		t.Fatalf("second token: %d %v", a.status, a.body)
	}
	if n := e.replay.held(); n != 1 {
		t.Fatalf("replay memory holds %d, want 1 (the first is past its horizon)", n)
	}
}

// When the fleet's store cannot take the revocation, the logout fails
// (400, temporarily_unavailable), the local revoke stands, and the jti is
// forgotten so that the issuer's resend is applied.
func TestBackchannelLogoutStoreDown(t *testing.T) {
	e := newEnv(t)
	tok := e.key.sign(t, e.logoutClaims(nil), nil)
	e.rec.fail = true
	assertRefused(t, e.logout(t, tok), 400, "error", "temporarily_unavailable", "error_description", "fleet")
	e.rec.fail = false
	if a := e.logout(t, tok); a.status != 200 {
		t.Fatalf("resend: %d %v", a.status, a.body)
	}
	if n := len(e.rec.taken()); n != 2 {
		t.Fatalf("%d revocations, want 2 (the failed one and the resend)", n)
	}
	if e.requests(SourceBackchannel, outcomeUnavailable) != 1 {
		t.Error("unavailable not counted")
	}
}

func TestBackchannelOnlyPOST(t *testing.T) {
	e := newEnv(t)
	for _, m := range []string{"GET", "PUT"} {
		req := newRequest(m, PathBackchannel)
		w := serve(e, req)
		if w.Code != 405 {
			t.Errorf("%s: %d, want 405", m, w.Code)
		}
	}
}

func form(tok string) string { return url.Values{"logout_token": {tok}}.Encode() }
