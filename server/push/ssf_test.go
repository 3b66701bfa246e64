package push

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/leasegate/leasegate/leasecache"
)

// set loads testdata/sets/name (a SET built from the examples of RFC
// 8935, CAEP 1.0 and RISC 1.0) for e's issuer and receiver, issued now.
func (e *env) set(t *testing.T, name string, mod func(map[string]any)) map[string]any {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join("testdata", "sets", name))
	if err != nil {
		t.Fatal(err)
	}
	raw = bytes.ReplaceAll(bytes.ReplaceAll(raw, []byte("{{iss}}"), []byte(e.iss)), []byte("{{aud}}"), []byte(testAudience))
	var c map[string]any
	if err := json.Unmarshal(raw, &c); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	c["iat"] = e.clock.Now().Unix()
	if mod != nil {
		mod(c)
	}
	return c
}

var setHeader = map[string]any{"typ": "secevent+jwt"}

func (e *env) push(t *testing.T, tok string) answer {
	t.Helper()
	return e.post(t, PathSSF, "application/secevent+jwt", tok)
}

func TestSSFEvents(t *testing.T) {
	name := func(c leasecache.Claim, v string) leasecache.Name { return leasecache.NameOf("idp", c, v) }
	const sess = "dMTlD|1600802906337.16|16008.16"
	tests := []struct {
		file   string
		want   []leasecache.Name // nil: nothing revoked
		events []string
	}{
		{"rfc8935-scim-create.json", nil, []string{"unknown"}},
		{"ssf-verification.json", nil, []string{"unknown"}},
		{"caep-session-revoked-opaque.json", []leasecache.Name{name(leasecache.ClaimSession, sess)}, []string{"session-revoked"}},
		{"caep-session-revoked-complex.json", []leasecache.Name{name(leasecache.ClaimSessionlessSubject, sess), name(leasecache.ClaimSession, sess)}, []string{"session-revoked"}},
		{"caep-credential-change.json", []leasecache.Name{name(leasecache.ClaimSubject, "jane.smith@example.com")}, []string{"credential-change"}},
		{"risc-account-disabled.json", []leasecache.Name{name(leasecache.ClaimSubject, "7375626A656374")}, []string{"account-disabled"}},
		{"risc-credential-compromise-email.json", []leasecache.Name{name(leasecache.ClaimEmail, "jane.smith@example.com")}, []string{"credential-compromise"}},
		{"risc-mixed.json", []leasecache.Name{name(leasecache.ClaimEmail, "ops@example.org")}, []string{"account-disabled", "unknown"}},
	}
	for _, tc := range tests {
		t.Run(tc.file, func(t *testing.T) {
			e := newEnv(t)
			a := e.push(t, e.key.sign(t, e.set(t, tc.file, nil), setHeader))
			if a.status != 202 || a.body != nil {
				t.Fatalf("answer %d %v, want 202 and no body", a.status, a.body)
			}
			calls := e.rec.taken()
			switch {
			case tc.want == nil && len(calls) != 0:
				t.Fatalf("revoked %+v, want nothing", calls)
			case tc.want != nil && (len(calls) != 1 || calls[0].source != SourceSSF || !slices.Equal(calls[0].names, tc.want)):
				t.Fatalf("revoked %+v, want %v from %s", calls, tc.want, SourceSSF)
			}
			for _, ev := range tc.events {
				if e.events(SourceSSF, ev) < 1 {
					t.Errorf("event %s not counted", ev)
				}
			}
			if e.requests(SourceSSF, outcomeAccepted) != 1 {
				t.Error("not counted as accepted")
			}
			assertRefused(t, e.push(t, e.key.sign(t, e.set(t, tc.file, nil), setHeader)), 400, "err", "invalid_request", "description", "replayed")
		})
	}
}

// Every refusal is a 400 with RFC 8935's err and description, and
// revokes nothing.
func TestSSFRefusals(t *testing.T) {
	other := newSigner(t, testKID)
	const file = "risc-account-disabled.json"
	tests := []struct {
		name        string
		contentType string
		body        func(e *env) string
		code, desc  string
	}{
		{"bad signature", "", func(e *env) string { return other.sign(t, e.set(t, file, nil), setHeader) }, "invalid_key", "signature invalid"},
		{"unknown kid", "", func(e *env) string { return newSigner(t, "k2").sign(t, e.set(t, file, nil), setHeader) }, "invalid_key", "unknown signing key"},
		{"wrong aud", "", func(e *env) string {
			return e.key.sign(t, e.set(t, file, func(c map[string]any) { c["aud"] = "https://sp.example.com/caep" }), setHeader)
		}, "invalid_audience", "aud"},
		{"aud is a client id (logout token audience)", "", func(e *env) string {
			return e.key.sign(t, e.set(t, file, func(c map[string]any) { c["aud"] = testClientID }), setHeader)
		}, "invalid_audience", "aud"},
		{"unknown issuer", "", func(e *env) string {
			return e.key.sign(t, e.set(t, file, func(c map[string]any) { c["iss"] = "https://idp.example.com/" }), setHeader)
		}, "invalid_issuer", "not configured"},
		{"no typ", "", func(e *env) string { return e.key.sign(t, e.set(t, file, nil), nil) }, "invalid_request", "secevent+jwt"},
		{"typ of a logout token", "", func(e *env) string { return e.key.sign(t, e.set(t, file, nil), map[string]any{"typ": "logout+jwt"}) }, "invalid_request", "secevent+jwt"},
		{"iat in the future", "", func(e *env) string {
			return e.key.sign(t, e.set(t, file, func(c map[string]any) { c["iat"] = c["iat"].(int64) + 61 }), setHeader)
		}, "invalid_request", "future"},
		{"no iat", "", func(e *env) string {
			return e.key.sign(t, e.set(t, file, func(c map[string]any) { delete(c, "iat") }), setHeader)
		}, "invalid_request", "iat"},
		{"no jti", "", func(e *env) string {
			return e.key.sign(t, e.set(t, file, func(c map[string]any) { delete(c, "jti") }), setHeader)
		}, "invalid_request", "jti"},
		{"jti too long", "", func(e *env) string {
			return e.key.sign(t, e.set(t, file, func(c map[string]any) { c["jti"] = strings.Repeat("j", maxJTIBytes+1) }), setHeader)
		}, "invalid_request", "jti"},
		{"no events", "", func(e *env) string {
			return e.key.sign(t, e.set(t, file, func(c map[string]any) { delete(c, "events") }), setHeader)
		}, "invalid_request", "events"},
		{"event payload not an object", "", func(e *env) string {
			return e.key.sign(t, e.set(t, file, func(c map[string]any) {
				c["events"] = map[string]any{"https://schemas.openid.net/secevent/risc/event-type/account-disabled": "x"}
			}), setHeader)
		}, "invalid_request", "not an object"},
		{"known event without a subject", "", func(e *env) string {
			return e.key.sign(t, e.set(t, file, func(c map[string]any) {
				c["events"] = map[string]any{"https://schemas.openid.net/secevent/risc/event-type/account-disabled": map[string]any{"reason": "hijacking"}}
			}), setHeader)
		}, "invalid_request", "no subject"},
		{"iss_sub of another issuer", "", func(e *env) string {
			return e.key.sign(t, e.set(t, "caep-credential-change.json", func(c map[string]any) {
				c["sub_id"] = map[string]any{"format": "iss_sub", "iss": "https://idp.example.com/3456789/", "sub": "jane"}
			}), setHeader)
		}, "invalid_request", "another issuer"},
		{"unsupported subject format", "", func(e *env) string {
			return e.key.sign(t, e.set(t, "caep-credential-change.json", func(c map[string]any) {
				c["sub_id"] = map[string]any{"format": "phone_number", "phone_number": "+12065550100"}
			}), setHeader)
		}, "invalid_request", "not supported"},
		{"opaque subject of an event that is not session-revoked", "", func(e *env) string {
			return e.key.sign(t, e.set(t, "caep-credential-change.json", func(c map[string]any) {
				c["sub_id"] = map[string]any{"format": "opaque", "id": "x"}
			}), setHeader)
		}, "invalid_request", "opaque"},
		{"email subject without an email", "", func(e *env) string {
			return e.key.sign(t, e.set(t, "risc-credential-compromise-email.json", func(c map[string]any) {
				c["events"] = map[string]any{"https://schemas.openid.net/secevent/risc/event-type/credential-compromise": map[string]any{"subject": map[string]any{"format": "email"}}}
			}), setHeader)
		}, "invalid_request", "without an email"},
		{"wrong content type", "application/jwt", func(e *env) string { return e.key.sign(t, e.set(t, file, nil), setHeader) }, "invalid_request", "Content-Type must be application/secevent+jwt"},
		{"oversized body", "", func(e *env) string {
			return e.key.sign(t, e.set(t, file, nil), setHeader) + strings.Repeat(" ", MaxBodyBytes)
		}, "invalid_request", "exceeds"},
		{"garbage", "", func(*env) string { return "\x00garbage\xff" }, "invalid_request", "secevent+jwt"},
		{"a JSON SET, unsigned", "", func(e *env) string {
			b, _ := json.Marshal(e.set(t, file, nil))
			return string(b)
		}, "invalid_request", "secevent+jwt"},
		{"alg none", "", func(e *env) string {
			h, _ := json.Marshal(map[string]any{"alg": "none", "typ": "secevent+jwt"})
			p, _ := json.Marshal(e.set(t, file, nil))
			return b64(h) + "." + b64(p) + "."
		}, "invalid_key", "algorithm not allowed"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			ct := "application/secevent+jwt"
			if tc.contentType != "" {
				ct = tc.contentType
			}
			assertRefused(t, e.post(t, PathSSF, ct, tc.body(e)), 400, "err", tc.code, "description", tc.desc)
			if calls := e.rec.taken(); len(calls) != 0 {
				t.Fatalf("a refused SET revoked %+v", calls)
			}
			if e.requests(SourceSSF, tc.code) != 1 {
				t.Errorf("outcome %s not counted", tc.code)
			}
			if e.replay.held() != 0 {
				t.Error("a refused SET's jti is remembered")
			}
		})
	}
}

// A SET older than lease.max plus the skew cannot matter: every lease
// validated before its event has expired. It is accepted, applies
// nothing and is not remembered; one just inside is applied.
func TestSSFStaleSET(t *testing.T) {
	e := newEnv(t)
	old := func(by time.Duration) func(map[string]any) {
		return func(c map[string]any) {
			c["iat"] = e.clock.Now().Add(-by).Unix()
			c["jti"] = by.String()
		}
	}
	const file = "risc-account-disabled.json"
	if a := e.push(t, e.key.sign(t, e.set(t, file, old(11*time.Minute+time.Second)), setHeader)); a.status != 202 {
		t.Fatalf("stale SET: %d %v", a.status, a.body)
	}
	if n := len(e.rec.taken()); n != 0 || e.replay.held() != 0 {
		t.Fatalf("stale SET: %d revocations, %d remembered; want none", n, e.replay.held())
	}
	if a := e.push(t, e.key.sign(t, e.set(t, file, old(11*time.Minute)), setHeader)); a.status != 202 || len(e.rec.taken()) != 1 {
		t.Fatalf("SET at the edge: %d, %d revocations", a.status, len(e.rec.taken()))
	}
}

// A store that cannot take the revocation is RFC 8935's "general HTTP
// error": 503 with Retry-After, so the transmitter sends it again, and
// the resend is applied.
func TestSSFStoreDown(t *testing.T) {
	e := newEnv(t)
	tok := e.key.sign(t, e.set(t, "risc-account-disabled.json", nil), setHeader)
	e.rec.fail = true
	a := e.push(t, tok)
	assertRefused(t, a, 503, "err", "temporarily_unavailable", "description", "fleet")
	if a.header.Get("Retry-After") == "" {
		t.Error("no Retry-After")
	}
	e.rec.fail = false
	if a := e.push(t, tok); a.status != 202 {
		t.Fatalf("resend: %d %v", a.status, a.body)
	}
}

// A key set that cannot be fetched is no verdict on the SET: 503.
func TestSSFKeysUnreachable(t *testing.T) {
	e := newEnv(t)
	tok := e.key.sign(t, e.set(t, "risc-account-disabled.json", nil), setHeader)
	e.jwks.Close()
	rcv, err := New(context.Background(), Config{
		Issuers: []IssuerConfig{{Name: "idp", Issuer: e.iss, JWKSURI: e.jwks.URL + "/jwks", Audience: testAudience}},
		Revoker: e.rec, Now: e.clock.Now, Logger: slog.New(slog.DiscardHandler),
	})
	if err != nil {
		t.Fatal(err)
	}
	defer rcv.Close()
	e.rcv = rcv
	assertRefused(t, e.push(t, tok), 503, "err", "temporarily_unavailable", "description", "keys")
	if len(e.rec.taken()) != 0 {
		t.Fatal("revoked without a verified signature")
	}
}

// The log line of a push revocation names the receiver, the issuer and
// what it revoked, and never the token; each request is one server span.
func TestPushLogAndSpan(t *testing.T) {
	e := newEnv(t)
	var logs bytes.Buffer
	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
	rcv, err := New(context.Background(), Config{
		Issuers: []IssuerConfig{{Name: "idp", Issuer: e.iss, JWKSURI: e.jwks.URL + "/jwks", ClientIDs: []string{testClientID}, Audience: testAudience}},
		Revoker: e.rec, Now: e.clock.Now, Logger: slog.New(slog.NewJSONHandler(&logs, nil)), TracerProvider: tp,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer rcv.Close()
	e.rcv = rcv
	logoutTok := e.key.sign(t, e.logoutClaims(nil), nil)
	setTok := e.key.sign(t, e.set(t, "risc-credential-compromise-email.json", nil), setHeader)
	e.logout(t, logoutTok)
	e.push(t, setTok)
	e.push(t, setTok) // refused: replayed
	req := httptest.NewRequest("POST", PathSSF, strings.NewReader(setTok))
	req.Header.Set("Content-Type", "application/secevent+jwt")
	req.Header.Set("Traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
	serve(e, req)

	out := logs.String()
	for _, tok := range []string{logoutTok, setTok} {
		sig := tok[strings.LastIndex(tok, ".")+1:]
		if strings.Contains(out, tok) || strings.Contains(out, sig) {
			t.Fatal("a token is in the log")
		}
	}
	for _, want := range []string{`"source":"backchannel"`, `"sid=08a5019c-17e1-4977-8f42-65a12843ea02"`, `"sub without sid=248289761001"`,
		`"source":"ssf"`, `"email=jane.smith@example.com"`, `"issuer":"idp"`, `"error_description":"token already received (jti replayed)"`} {
		if !strings.Contains(out, want) {
			t.Errorf("log lacks %s:\n%s", want, out)
		}
	}
	var spans tracetest.SpanStubs
	for _, s := range exp.GetSpans() {
		if strings.HasPrefix(s.Name, "push.") { // and a JWKS fetch, a client span
			spans = append(spans, s)
		}
	}
	if len(spans) != 4 {
		t.Fatalf("%d receiver spans, want 4", len(spans))
	}
	outcomes := map[string]string{}
	for _, s := range spans {
		for _, a := range s.Attributes {
			if a.Key == "leasegate.push.outcome" {
				outcomes[s.Name] += a.Value.AsString() + " "
			}
		}
	}
	if outcomes["push.backchannel"] != "accepted " || outcomes["push.ssf"] != "accepted replayed replayed " {
		t.Errorf("span outcomes %v", outcomes)
	}
	if got := spans[3].Parent.TraceID().String(); got != "4bf92f3577b34da6a3ce929d0e0e4736" {
		t.Errorf("span not parented by traceparent: trace %s", got)
	}
}
