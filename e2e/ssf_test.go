package e2e

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jwk"
	"github.com/lestrrat-go/jwx/v2/jws"

	"github.com/leasegate/leasegate/e2e/internal/leasegate"
)

// No SSF transmitter runs here: a test issuer signs its JWT access tokens
// and its Security Event Tokens with one key, published through a real
// JWKS endpoint, and pushes SETs built on the examples of RFC 8935, CAEP
// 1.0 and RISC 1.0 to the built binary's listen.push (RFC 8935).

const ssfAudience = "https://leasegate-e2e.invalid/ssf"

type transmitter struct {
	*httptest.Server
	key  jwk.Key
	jtis atomic.Int64
}

func newTransmitter(t *testing.T) *transmitter {
	t.Helper()
	raw, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tr := &transmitter{}
	if tr.key, err = jwk.FromRaw(raw); err != nil {
		t.Fatal(err)
	}
	_ = tr.key.Set(jwk.KeyIDKey, "ssf-e2e-1")
	_ = tr.key.Set(jwk.AlgorithmKey, jwa.ES256)
	pub, err := tr.key.PublicKey()
	if err != nil {
		t.Fatal(err)
	}
	set := jwk.NewSet()
	_ = set.AddKey(pub)
	tr.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/jwks" {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/jwk-set+json")
		_ = json.NewEncoder(w).Encode(set)
	}))
	t.Cleanup(tr.Close)
	return tr
}

func (tr *transmitter) sign(t *testing.T, key jwk.Key, claims map[string]any, typ string) string {
	t.Helper()
	payload, err := json.Marshal(claims)
	if err != nil {
		t.Fatal(err)
	}
	h := jws.NewHeaders()
	_ = h.Set(jws.TypeKey, typ)
	out, err := jws.Sign(payload, jws.WithKey(jwa.ES256, key, jws.WithProtectedHeaders(h)))
	if err != nil {
		t.Fatal(err)
	}
	return string(out)
}

// accessToken is a JWT access token of sub with email.
func (tr *transmitter) accessToken(t *testing.T, sub, email string) string {
	now := time.Now()
	return tr.sign(t, tr.key, map[string]any{
		"iss": tr.URL, "sub": sub, "email": email, "aud": audStorage, "client_id": "ssf-e2e",
		"iat": now.Unix(), "exp": now.Add(time.Hour).Unix(), "scope": "read",
	}, "at+jwt")
}

// event is a SET of one event about subject, issued now.
func (tr *transmitter) event(t *testing.T, key jwk.Key, uri string, payload map[string]any, subID map[string]any) string {
	c := map[string]any{
		"iss": tr.URL, "aud": ssfAudience, "iat": time.Now().Unix(),
		"jti":    fmt.Sprintf("e2e-set-%d", tr.jtis.Add(1)),
		"events": map[string]any{uri: payload},
	}
	if subID != nil {
		c["sub_id"] = subID
	}
	return tr.sign(t, key, c, "secevent+jwt")
}

func b64url(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }

// TestSSFEventsThroughTheBinary: leased JWT access tokens of two users;
// CAEP credential-change (iss_sub) makes the first user's token a miss,
// RISC credential-compromise (email, another case) the second's; an
// unknown event type is accepted and counted; forged, mistyped or
// misaddressed SETs are refused with RFC 8935's codes and revoke nothing.
func TestSSFEventsThroughTheBinary(t *testing.T) {
	t.Parallel()
	bin := leasegateBin(t)
	ctx := testCtx(t, time.Minute)
	tr := newTransmitter(t)
	s := &stack{}
	iss := leasegate.Issuer{
		Name: "caep-idp", Issuer: tr.URL, Mode: "jwt", JWKSURI: tr.URL + "/jwks", Audiences: []string{audStorage},
		SSF: &leasegate.SSF{Audience: ssfAudience},
	}
	cfg := s.baseConfig(iss, backchannelTiers())
	cfg.Listen.Push = "127.0.0.1:0"
	p := s.startLeasegate(t, ctx, bin, cfg, nil)
	client, err := leasegate.Dial(p.GRPCAddr())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Close() })
	pushURL := "http://" + p.Addrs().Push + "/ssf/events"

	jane, bob := tr.accessToken(t, "jane", "jane@example.org"), tr.accessToken(t, "bob", "bob@example.org")
	s.mu.Lock()
	s.issued = append(s.issued, issuedToken{"JWT access token", jane}, issuedToken{"JWT access token", bob})
	s.mu.Unlock()
	lease := func(tok string) string {
		t.Helper()
		res, err := client.Check(testCtx(t, 5*time.Second), leasegate.Request{Method: "GET", Path: "/data/x", Token: tok})
		if err != nil || !res.Allowed() {
			t.Fatalf("read: %v %v", res, err)
		}
		return res.Lease()
	}
	for _, tok := range []string{jane, bob} {
		if l := lease(tok); l != "miss" {
			t.Fatalf("first read %s", l)
		}
		if l := lease(tok); l != "hit" {
			t.Fatalf("second read %s", l)
		}
	}
	push := func(name, contentType, set string, want int, wantBody string) {
		t.Helper()
		code, body, err := postPush(ctx, pushURL, contentType, set)
		if err != nil || code != want || !strings.Contains(body, wantBody) {
			t.Fatalf("%s: %d %q %v, want %d %q", name, code, body, err, want, wantBody)
		}
	}

	other, _ := jwk.FromRaw(mustKey(t))
	_ = other.Set(jwk.KeyIDKey, "ssf-e2e-1")
	refusals := []struct {
		name, contentType, set, body string
	}{
		{"forged (same kid, another key)", "application/secevent+jwt",
			tr.event(t, other, "https://schemas.openid.net/secevent/caep/event-type/credential-change", map[string]any{"credential_type": "password", "change_type": "update"},
				map[string]any{"format": "iss_sub", "iss": tr.URL, "sub": "jane"}), `"err":"invalid_key"`},
		{"wrong content type", "application/jwt", tr.event(t, tr.key, "https://schemas.openid.net/secevent/caep/event-type/session-revoked", map[string]any{},
			map[string]any{"format": "email", "email": "jane@example.org"}), `"err":"invalid_request"`},
		{"an access token", "application/secevent+jwt", jane, `"err":"invalid_request"`},
	}
	for _, r := range refusals {
		push(r.name, r.contentType, r.set, 400, r.body)
	}
	if l := lease(jane); l != "hit" {
		t.Fatalf("jane after refused SETs: %s, want hit", l)
	}

	push("CAEP credential-change", "application/secevent+jwt", tr.event(t, tr.key,
		"https://schemas.openid.net/secevent/caep/event-type/credential-change",
		map[string]any{"credential_type": "fido2-roaming", "change_type": "create", "initiating_entity": "user", "event_timestamp": time.Now().UnixMilli()},
		map[string]any{"format": "iss_sub", "iss": tr.URL, "sub": "jane"}), 202, "")
	if l := lease(jane); l != "miss" {
		t.Errorf("jane after credential-change: %s, want miss", l)
	}
	if l := lease(bob); l != "hit" {
		t.Errorf("bob after jane's credential-change: %s, want hit", l)
	}
	push("RISC credential-compromise by email", "application/secevent+jwt", tr.event(t, tr.key,
		"https://schemas.openid.net/secevent/risc/event-type/credential-compromise",
		map[string]any{"subject": map[string]any{"format": "email", "email": "Bob@Example.ORG"}, "credential_type": "password"}, nil), 202, "")
	if l := lease(bob); l != "miss" {
		t.Errorf("bob after credential-compromise by email: %s, want miss", l)
	}
	push("SCIM create (not acted on)", "application/secevent+jwt", tr.event(t, tr.key, "urn:ietf:params:scim:event:create",
		map[string]any{"ref": "https://scim.example.com/Users/44f6142df96bd6ab61e7521d9"}, nil), 202, "")
	if l := lease(jane); l != "hit" {
		t.Errorf("jane after an unknown event: %s, want hit", l)
	}

	m, err := p.Metrics(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for labels, want := range map[[2]string]float64{
		{"ssf", "credential-change"}: 1, {"ssf", "credential-compromise"}: 1, {"ssf", "unknown"}: 1,
	} {
		if got := m.Sum("leasegate_push_events_total", map[string]string{"receiver": labels[0], "event": labels[1]}); got != want {
			t.Errorf("leasegate_push_events_total%v = %v, want %v", labels, got, want)
		}
	}
	if got := m.Sum("leasegate_push_requests_total", map[string]string{"receiver": "ssf", "outcome": "invalid_key"}); got != 1 {
		t.Errorf("invalid_key refusals %v, want 1", got)
	}
	// The admin listener does not serve the receivers while listen.push is set.
	if code, _, _ := postPush(ctx, p.AdminURL()+"/ssf/events", "application/secevent+jwt", jane); code == 202 || code == 400 {
		t.Errorf("admin listener answered the SSF receiver: %d", code)
	}
}

func mustKey(t *testing.T) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}
