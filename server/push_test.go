//go:build unix

package server

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jwk"
	"github.com/lestrrat-go/jwx/v2/jws"
	"google.golang.org/grpc/codes"

	"github.com/leasegate/leasegate/internal/testredis"
	"github.com/leasegate/leasegate/server/config"
)

// Push revocation through Run (SPEC §9): an issuer that introspects its
// tokens (each with its sid and email, as ORY Hydra reports them under
// ext) and publishes the key its logout tokens and SETs are signed with.

type pushIssuer struct {
	*httptest.Server
	key   jwk.Key
	calls atomic.Int64 // introspections
	mu    sync.Mutex
	toks  map[string][2]string // token → sid, email
	n     atomic.Int64
}

func newPushIssuer(t *testing.T) *pushIssuer {
	t.Helper()
	raw, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	p := &pushIssuer{toks: map[string][2]string{}}
	if p.key, err = jwk.FromRaw(raw); err != nil {
		t.Fatal(err)
	}
	_ = p.key.Set(jwk.KeyIDKey, "push-1")
	pub, _ := p.key.PublicKey()
	set := jwk.NewSet()
	_ = set.AddKey(pub)
	p.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		if r.URL.Path == "/jwks" {
			_ = json.NewEncoder(w).Encode(set)
			return
		}
		p.calls.Add(1)
		_ = r.ParseForm()
		p.mu.Lock()
		id, ok := p.toks[r.PostForm.Get("token")]
		p.mu.Unlock()
		if !ok {
			io.WriteString(w, `{"active":false}`)
			return
		}
		fmt.Fprintf(w, `{"active":true,"sub":"alice","client_id":"portal","scope":"read","exp":%d,"ext":{"sid":%q,"email":%q}}`,
			time.Now().Add(time.Hour).Unix(), id[0], id[1])
	}))
	t.Cleanup(p.Close)
	return p
}

func (p *pushIssuer) token(tok, sid, email string) {
	p.mu.Lock()
	p.toks[tok] = [2]string{sid, email}
	p.mu.Unlock()
}

// sign signs claims with the issuer's key, from iss at now, with a fresh
// jti.
func (p *pushIssuer) sign(t *testing.T, claims map[string]any, typ string) string {
	t.Helper()
	claims["iss"] = p.URL
	claims["iat"] = time.Now().Unix()
	claims["jti"] = fmt.Sprintf("jti-%d", p.n.Add(1))
	payload, _ := json.Marshal(claims)
	h := jws.NewHeaders()
	_ = h.Set(jws.TypeKey, typ)
	out, err := jws.Sign(payload, jws.WithKey(jwa.ES256, p.key, jws.WithProtectedHeaders(h)))
	if err != nil {
		t.Fatal(err)
	}
	return string(out)
}

func (p *pushIssuer) logoutToken(t *testing.T, sid string) string {
	return p.sign(t, map[string]any{"aud": "portal", "sid": sid,
		"events": map[string]any{"http://schemas.openid.net/event/backchannel-logout": map[string]any{}}}, "logout+jwt")
}

func (p *pushIssuer) set(t *testing.T, email string) string {
	return p.sign(t, map[string]any{"aud": "https://leasegate.test", "events": map[string]any{
		"https://schemas.openid.net/secevent/risc/event-type/account-disabled": map[string]any{"subject": map[string]any{"format": "email", "email": email}},
	}}, "secevent+jwt")
}

func pushYAML(p *pushIssuer, extra string) string {
	return fmt.Sprintf(`
listen:
  grpc: "127.0.0.1:0"
  admin: "127.0.0.1:0"
  metrics: "127.0.0.1:0"
%s
issuers:
  - name: idp
    issuer: %q
    default_for_opaque: true
    introspection: { endpoint: "%s/introspect", auth: none, timeout: 1s }
    jwks_uri: "%s/jwks"
    backchannel_logout: { client_ids: [portal] }
    ssf: { audience: "https://leasegate.test" }
tiers:
  read: { window: 60s }
lease: { max: 10m, max_memory_mb: 8 }
server: { start_grace: 2s, drain_timeout: 5s }
`, extra, p.URL, p.URL, p.URL)
}

func postPush(t *testing.T, addr, path, contentType, body string) (int, map[string]any) {
	t.Helper()
	res, err := adminClient.Post("http://"+addr+path, contentType, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var out map[string]any
	_ = json.NewDecoder(res.Body).Decode(&out)
	return res.StatusCode, out
}

func logoutForm(tok string) string { return url.Values{"logout_token": {tok}}.Encode() }

// read checks a GET and reports its lease outcome and whether the issuer
// was asked.
func (p *pushIssuer) read(t *testing.T, r *running, tok string) (lease string, asked bool) {
	t.Helper()
	before := p.calls.Load()
	o := check(r, envoyRequest("GET", "/f", tok))
	if o.err != nil || o.code() != codes.OK {
		t.Fatalf("read %s: %v", tok, o)
	}
	return o.lease(), p.calls.Load() > before
}

// A logout of one session makes that session's lease a miss and leaves
// another session of the same user leased; a SET naming the user's email
// does the same to the lease with that email. The receivers need no admin
// secret, /revoke still does; replays are refused over HTTP.
func TestPushThroughRun(t *testing.T) {
	t.Setenv("LG_PUSH_ADMIN_SECRET", "admin-secret-for-the-push-test")
	p := newPushIssuer(t)
	p.token("tok-s1", "s1", "alice@example.org")
	p.token("tok-s2", "s2", "other@example.org")
	r := startConfigured(t, pushYAML(p, "")+`admin: { secret: "${LG_PUSH_ADMIN_SECRET}" }`, nil)
	waitServing(t, r)
	for _, tok := range []string{"tok-s1", "tok-s2"} {
		if l, _ := p.read(t, r, tok); l != "miss" {
			t.Fatalf("first read of %s: %s", tok, l)
		}
	}
	if code, _ := postRevoke(t, r, `{"subject":"alice","issuer":"idp"}`); code != http.StatusUnauthorized {
		t.Fatalf("/revoke without the secret: %d", code)
	}

	logout := p.logoutToken(t, "s1")
	if code, out := postPush(t, r.addrs.Admin, "/backchannel-logout", "application/x-www-form-urlencoded", logoutForm(logout)); code != 200 {
		t.Fatalf("logout: %d %v", code, out)
	}
	if l, asked := p.read(t, r, "tok-s1"); l != "miss" || !asked {
		t.Errorf("session s1 after its logout: %s, asked %v; want a miss validated with the issuer", l, asked)
	}
	if l, asked := p.read(t, r, "tok-s2"); l != "hit" || asked {
		t.Errorf("session s2 after s1's logout: %s, asked %v; want a hit", l, asked)
	}
	if code, out := postPush(t, r.addrs.Admin, "/backchannel-logout", "application/x-www-form-urlencoded", logoutForm(logout)); code != 400 || out["error"] != "invalid_request" {
		t.Errorf("replayed logout: %d %v", code, out)
	}

	if code, out := postPush(t, r.addrs.Admin, "/ssf/events", "application/secevent+jwt", p.set(t, "Other@Example.org")); code != 202 {
		t.Fatalf("SET: %d %v", code, out)
	}
	if l, asked := p.read(t, r, "tok-s2"); l != "miss" || !asked {
		t.Errorf("tok-s2 after a SET naming its email: %s, asked %v", l, asked)
	}
	if l, _ := p.read(t, r, "tok-s1"); l != "hit" {
		t.Errorf("tok-s1 after a SET naming another email: %s", l)
	}
	m := metricsText(t, r)
	for _, want := range []string{
		`leasegate_push_requests_total{outcome="accepted",receiver="backchannel"} 1`,
		`leasegate_push_requests_total{outcome="replayed",receiver="backchannel"} 1`,
		`leasegate_push_events_total{event="account-disabled",receiver="ssf"} 1`,
	} {
		if !strings.Contains(m, want) {
			t.Errorf("metrics lack %s:\n%s", want, grepLines(m, "leasegate_push"))
		}
	}
	if logs := r.logs.String(); strings.Contains(logs, logout) || !strings.Contains(logs, `"sid=s1"`) {
		t.Errorf("the log holds the logout token, or does not name the session")
	}
}

// With listen.push the receivers are served there and only there.
func TestPushListener(t *testing.T) {
	p := newPushIssuer(t)
	r := startConfigured(t, pushYAML(p, `  push: "127.0.0.1:0"`), nil)
	waitServing(t, r)
	if r.addrs.Push == "" {
		t.Fatal("no push address reported")
	}
	form := logoutForm(p.logoutToken(t, "s9"))
	if code, out := postPush(t, r.addrs.Push, "/backchannel-logout", "application/x-www-form-urlencoded", form); code != 200 {
		t.Fatalf("logout on listen.push: %d %v", code, out)
	}
	if code, _ := postPush(t, r.addrs.Admin, "/backchannel-logout", "application/x-www-form-urlencoded", form); code != http.StatusMethodNotAllowed && code != http.StatusNotFound {
		t.Errorf("logout on the admin listener while listen.push is set: %d", code)
	}
	res, err := adminClient.Get("http://" + r.addrs.Push + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusNotFound {
		t.Errorf("listen.push serves /metrics: %d", res.StatusCode)
	}
}

// Fleet mode: a logout posted to one replica voids the session's lease on
// the other, which counts it as a back-channel revocation.
func TestPushFleet(t *testing.T) {
	rs := testredis.Start(t)
	p := newPushIssuer(t)
	p.token("tok-f", "sf", "")
	yaml := fleetYAML(t, p.URL, rs.Addr(), "standalone") // for its fleet block and secret file
	conf := pushYAML(p, "") + yaml[strings.Index(yaml, "\nfleet:"):]
	a, b := startConfigured(t, conf, nil), startConfigured(t, conf, nil)
	waitServing(t, a)
	waitServing(t, b)
	p.read(t, a, "tok-f")
	if l, asked := p.read(t, b, "tok-f"); l != "hit" || asked {
		t.Fatalf("B's first read: %s, asked %v; want a hit on the lease A shared", l, asked)
	}
	if code, out := postPush(t, a.addrs.Admin, "/backchannel-logout", "application/x-www-form-urlencoded", logoutForm(p.logoutToken(t, "sf"))); code != 200 {
		t.Fatalf("logout on A: %d %v", code, out)
	}
	deadline := time.Now().Add(time.Second)
	for {
		if l, asked := p.read(t, b, "tok-f"); l != "hit" {
			if !asked {
				t.Fatalf("B's read after the logout: %s without the issuer", l)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("B still serves the logged-out session's lease from its cache")
		}
		time.Sleep(2 * time.Millisecond)
	}
	if m := metricsText(t, b); !strings.Contains(m, `leasegate_fleet_revocations_total{source="backchannel"} 1`) {
		t.Errorf("B does not count the back-channel revocation:\n%s", grepLines(m, "leasegate_fleet_revocations"))
	}
}

func TestPushConfigProblems(t *testing.T) {
	p := newPushIssuer(t)
	yaml := strings.Replace(pushYAML(p, `  push: "127.0.0.1:notaport"`), "client_ids: [portal]", `client_ids: [""]`, 1)
	yaml = strings.Replace(yaml, `jwks_uri: "`+p.URL+`/jwks"`, `jwks_uri: "ftp://keys.example/jwks"`, 1)
	_, err := config.Parse("push.yaml", []byte(yaml), func(string) (string, bool) { return "", false })
	if err == nil {
		t.Fatal("accepted")
	}
	for _, want := range []string{
		"listen.push:",
		"issuers[0].backchannel_logout.client_ids: must not contain an empty string",
		"issuers[0].jwks_uri:",
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("problems lack %q:\n%v", want, err)
		}
	}
}

// A reload changes which clients' logout tokens are accepted; the jti
// memory survives it, so a token accepted before is still a replay.
func TestPushReload(t *testing.T) {
	p := newPushIssuer(t)
	r := startConfigured(t, pushYAML(p, ""), nil)
	waitServing(t, r)
	logout := p.logoutToken(t, "s1")
	if code, out := postPush(t, r.addrs.Admin, "/backchannel-logout", "application/x-www-form-urlencoded", logoutForm(logout)); code != 200 {
		t.Fatalf("logout: %d %v", code, out)
	}
	if !reloadWith(t, r, strings.Replace(pushYAML(p, ""), "client_ids: [portal]", "client_ids: [portal, kiosk]", 1)) {
		t.Fatalf("reload refused:\n%s", r.logs.String())
	}
	if code, out := postPush(t, r.addrs.Admin, "/backchannel-logout", "application/x-www-form-urlencoded", logoutForm(logout)); code != 400 || !strings.Contains(fmt.Sprint(out["error_description"]), "replayed") {
		t.Errorf("replay after the reload: %d %v", code, out)
	}
	kiosk := p.sign(t, map[string]any{"aud": "kiosk", "sub": "alice",
		"events": map[string]any{"http://schemas.openid.net/event/backchannel-logout": map[string]any{}}}, "logout+jwt")
	if code, out := postPush(t, r.addrs.Admin, "/backchannel-logout", "application/x-www-form-urlencoded", logoutForm(kiosk)); code != 200 {
		t.Errorf("logout for the client the reload added: %d %v", code, out)
	}
	if !reloadWith(t, r, strings.Replace(strings.Replace(pushYAML(p, ""), "    backchannel_logout: { client_ids: [portal] }\n", "", 1), "    ssf: { audience: \"https://leasegate.test\" }\n", "", 1)) {
		t.Fatalf("reload refused:\n%s", r.logs.String())
	}
	if code, _ := postPush(t, r.addrs.Admin, "/backchannel-logout", "application/x-www-form-urlencoded", logoutForm(p.logoutToken(t, "s2"))); code != http.StatusNotFound {
		t.Errorf("logout after a reload that turned the receivers off: %d, want 404", code)
	}
}
