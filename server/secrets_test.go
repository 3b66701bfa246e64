package server

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/leasegate/leasegate/server/config"
)

// SPEC §1/§6: no token, secret or full token hash ever reaches a log line,
// a span or a metric; the admin surface needs its secret and never shows it.

const (
	secretAdmin  = "adm1n-S3cret-plugh-9876543210"
	secretClient = "cl1ent-S3cret-xyzzy-0123456789"
)

// fullHash matches a whole SHA-256 in hex; trace ids (32) and span ids (16)
// are shorter.
var fullHash = regexp.MustCompile(`[0-9a-fA-F]{64}`)

func writeSecret(t *testing.T, name, value string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(value+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func secretsConfig(endpoint, clientSecretFile, adminSecretFile string) string {
	return fmt.Sprintf(`
listen:
  grpc: "127.0.0.1:0"
  metrics: "127.0.0.1:0"
  admin: "127.0.0.1:0"
issuers:
  - name: fake
    issuer: "https://issuer.test"
    default_for_opaque: true
    introspection:
      endpoint: %q
      auth: client_secret_basic
      client_id: leasegate
      client_secret_file: %q
      timeout: 300ms
    circuit_breaker: { failures: 1000, open_for: 300ms }
tiers:
  read: { window: 100ms, stale_if_error: 30s }
lease:
  max: 10m
  max_memory_mb: 8
admin:
  secret_file: %q
log: { level: debug }
server:
  start_grace: 2s
  drain_timeout: 5s
`, endpoint, clientSecretFile, adminSecretFile)
}

func adminPost(t *testing.T, r *running, path, auth, body string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, "http://"+r.addrs.Admin+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	res, err := adminClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, string(b)
}

func sha256Hex(s string) string {
	h := sha256.Sum256([]byte(s))
	return hex.EncodeToString(h[:])
}

// spanText is everything a span exports, as text.
func spanText(spans tracetest.SpanStubs) string {
	var b strings.Builder
	for _, s := range spans {
		fmt.Fprintf(&b, "span %s status=%s %q\n", s.Name, s.Status.Code, s.Status.Description)
		for _, a := range s.Attributes {
			fmt.Fprintf(&b, "  %s=%s\n", a.Key, a.Value.String())
		}
		for _, e := range s.Events {
			fmt.Fprintf(&b, "  event %s\n", e.Name)
			for _, a := range e.Attributes {
				fmt.Fprintf(&b, "    %s=%s\n", a.Key, a.Value.String())
			}
		}
		for _, l := range s.Links {
			for _, a := range l.Attributes {
				fmt.Fprintf(&b, "  link %s=%s\n", a.Key, a.Value.String())
			}
		}
		if s.Resource != nil {
			for _, a := range s.Resource.Attributes() {
				fmt.Fprintf(&b, "  resource %s=%s\n", a.Key, a.Value.String())
			}
		}
	}
	return b.String()
}

func TestNoSecretsInLogsSpansOrMetrics(t *testing.T) {
	tokens := map[string]string{
		"allow":   "sekret-allow-token-4f1c9e",
		"garbage": "sekret-garbage-token-77aa01",
		"revoke":  "sekret-revoke-token-9b3e52",
		"bysha":   "sekret-bysha-token-0d0d0d",
		"fault":   "sekret-fault-token-12cd34",
		"down":    "sekret-down-token-5e6f70",
		// A JWT from an issuer nobody configured: refused locally.
		"jwt": base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"RS256","kid":"k"}`)) + "." +
			base64.RawURLEncoding.EncodeToString([]byte(`{"iss":"https://evil.example","sub":"sekret-sub"}`)) + ".c2VrcmV0LXNpZw",
	}
	basic := "Basic " + base64.StdEncoding.EncodeToString([]byte("leasegate:"+secretClient))
	fi := newFaultIssuerOpts(t, issuerOpts{keepAlive: true, basic: basic})
	for _, k := range []string{"allow", "revoke", "bysha", "fault", "down"} {
		fi.set(tokens[k], true)
	}
	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
	r := startConfigured(t, secretsConfig(fi.URL, writeSecret(t, "client", secretClient), writeSecret(t, "admin", secretAdmin)), tp)
	waitServing(t, r)

	want := func(what string, o outcome, status int) {
		t.Helper()
		if o.err != nil || o.httpStatus() != status {
			t.Errorf("%s: %v, want %d", what, o, status)
		}
	}
	get := func(tok string) outcome { return check(r, envoyRequest("GET", "/data/f", tok)) }
	del := func(tok string) outcome { return check(r, envoyRequest("DELETE", "/data/f", tok)) }

	// Allow (the issuer checks our client_secret_basic), hit, deny.
	want("allow", get(tokens["allow"]), 200)
	want("hit", get(tokens["allow"]), 200)
	want("allow critical", del(tokens["allow"]), 200)
	want("revoke-to-be", get(tokens["revoke"]), 200)
	want("bysha-to-be", get(tokens["bysha"]), 200)
	want("garbage", get(tokens["garbage"]), 401)
	want("garbage again (negative)", get(tokens["garbage"]), 401)
	want("unknown JWT issuer", get(tokens["jwt"]), 401)
	want("no token", get(""), 401)
	want("two credentials", get(tokens["allow"]+",Bearer "+tokens["garbage"]), 400)
	want("outside b64token", get(tokens["allow"]+"!"), 400)

	// Faults: 5xx (and a stale read), then down.
	fi.setMode(t, mode5xx)
	want("fault", del(tokens["fault"]), 503)
	stale := waitExpired(t, r, tokens["allow"])
	if stale.err != nil || stale.lease() != "stale" {
		t.Errorf("stale read: %v", stale)
	}
	fi.setMode(t, modeDown)
	want("down", del(tokens["down"]), 503)
	fi.setMode(t, modeHealthy)

	// Admin revoke: secret required, constant answers.
	revokeBody := fmt.Sprintf(`{"token":%q}`, tokens["revoke"])
	for _, c := range []struct {
		name, auth string
		status     int
	}{
		{name: "no secret", auth: "", status: 401},
		{name: "wrong secret", auth: "Bearer " + secretAdmin + "x", status: 401},
		{name: "secret prefix", auth: "Bearer " + secretAdmin[:len(secretAdmin)-1], status: 401},
		{name: "other scheme", auth: "Basic " + secretAdmin, status: 401},
		{name: "client secret", auth: "Bearer " + secretClient, status: 401},
		{name: "right secret", auth: "Bearer " + secretAdmin, status: 200},
	} {
		t.Run("revoke "+c.name, func(t *testing.T) {
			status, body := adminPost(t, r, "/revoke", c.auth, revokeBody)
			if status != c.status {
				t.Errorf("POST /revoke: %d %s, want %d", status, body, c.status)
			}
			if strings.Contains(body, secretAdmin) || strings.Contains(body, tokens["revoke"]) {
				t.Errorf("POST /revoke answer echoes a secret: %s", body)
			}
		})
	}
	before := fi.seen(tokens["revoke"])
	want("after revoke", get(tokens["revoke"]), 200)
	if fi.seen(tokens["revoke"]) != before+1 {
		t.Error("after an admin revoke the token did not go back to the issuer")
	}
	if status, body := adminPost(t, r, "/revoke", "Bearer "+secretAdmin, fmt.Sprintf(`{"token_sha256":%q}`, sha256Hex(tokens["bysha"]))); status != 200 {
		t.Errorf("revoke by hash: %d %s", status, body)
	}
	if status, body := adminPost(t, r, "/revoke", "Bearer "+secretAdmin, `{"subject":"alice","issuer":"fake"}`); status != 200 {
		t.Errorf("revoke by subject: %d %s", status, body)
	}
	want("after subject revoke", get(tokens["allow"]), 200)

	// /config (behind the admin secret) redacts both secrets.
	_, _, cfgText := httpGet(t, "http://"+r.addrs.Admin+"/config", "Authorization", "Bearer "+secretAdmin)
	var conf struct {
		Admin   map[string]any `json:"admin"`
		Issuers []struct {
			Introspection map[string]any `json:"introspection"`
		} `json:"issuers"`
	}
	if err := json.Unmarshal([]byte(cfgText), &conf); err != nil {
		t.Fatalf("/config: %v\n%s", err, cfgText)
	}
	if conf.Admin["secret"] != redacted {
		t.Errorf("/config admin.secret = %v, want %q", conf.Admin["secret"], redacted)
	}
	if len(conf.Issuers) != 1 || conf.Issuers[0].Introspection["client_secret"] != redacted {
		t.Errorf("/config issuers[0].introspection.client_secret is not %q: %s", redacted, cfgText)
	}

	// Now scan everything an operator can see.
	metricsText := adminGet(t, r, "/metrics")
	r.cancel() // drain, so every span has ended and every log line is written
	select {
	case err := <-r.done:
		r.done <- err // for cleanup
	case <-time.After(10 * time.Second):
		t.Fatal("server did not stop")
	}
	_ = tp.ForceFlush(t.Context())
	spans := exp.GetSpans()
	if len(spans) < 10 {
		t.Fatalf("only %d spans recorded", len(spans))
	}
	surfaces := map[string]string{
		"logs":     r.logs.String(),
		"spans":    spanText(spans),
		"/config":  cfgText,
		"/metrics": metricsText,
	}
	forbidden := map[string]string{
		"admin secret":      secretAdmin,
		"client secret":     secretClient,
		"basic credentials": strings.TrimPrefix(basic, "Basic "),
	}
	for k, tok := range tokens {
		forbidden["token "+k] = tok
		forbidden["sha256 of token "+k] = sha256Hex(tok)
	}
	for where, text := range surfaces {
		if text == "" {
			t.Errorf("%s: nothing captured", where)
			continue
		}
		for what, s := range forbidden {
			if strings.Contains(text, s) {
				t.Errorf("%s holds the %s:\n%s", where, what, grepLines(text, s))
			}
		}
		if m := fullHash.FindString(text); m != "" {
			t.Errorf("%s holds a full 64-hex hash %s:\n%s", where, m, grepLines(text, m))
		}
	}
	if !strings.Contains(surfaces["logs"], `"msg":"issuer fault"`) || !strings.Contains(surfaces["logs"], `"msg":"admin revoke"`) {
		t.Error("the logs scanned do not cover the fault and revoke paths")
	}
}

// The admin secret comes from ${ENV} or a file, never inline, and a
// non-loopback admin listener without one is refused.
func TestAdminSecretConfig(t *testing.T) {
	const base = `
listen:
  grpc: "127.0.0.1:0"
  metrics: "127.0.0.1:0"
  admin: %q
issuers:
  - name: fake
    issuer: "https://issuer.test"
    default_for_opaque: true
    introspection: { endpoint: "http://127.0.0.1:1/introspect", auth: none }
%s`
	secretFile := writeSecret(t, "admin", secretAdmin)
	env := map[string]string{"LEASEGATE_ADMIN_SECRET": secretAdmin}
	lookup := func(k string) (string, bool) { v, ok := env[k]; return v, ok }
	cases := []struct {
		name, admin, extra string
		problem            string // the field of the expected problem, "" for valid
	}{
		{name: "loopback, no secret", admin: "127.0.0.1:9191"},
		{name: "localhost, no secret", admin: "localhost:9191"},
		{name: "IPv6 loopback, no secret", admin: "[::1]:9191"},
		{name: "all interfaces, no secret", admin: "0.0.0.0:9191", problem: "listen.admin"},
		{name: "IPv6 all interfaces, no secret", admin: "[::]:9191", problem: "listen.admin"},
		{name: "empty host, no secret", admin: ":9191", problem: "listen.admin"},
		{name: "public address, no secret", admin: "192.0.2.10:9191", problem: "listen.admin"},
		{name: "host name, no secret", admin: "admin.example.org:9191", problem: "listen.admin"},
		{name: "all interfaces, secret from env", admin: "0.0.0.0:9191", extra: "admin: { secret: \"${LEASEGATE_ADMIN_SECRET}\" }"},
		{name: "all interfaces, secret file", admin: "0.0.0.0:9191", extra: fmt.Sprintf("admin: { secret_file: %q }", secretFile)},
		{name: "inline secret", admin: "127.0.0.1:9191", extra: "admin: { secret: \"" + secretAdmin + "\" }", problem: "admin.secret"},
		{name: "unset env", admin: "0.0.0.0:9191", extra: "admin: { secret: \"${LEASEGATE_NOT_SET}\" }", problem: "admin.secret"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := config.Parse("leasegate.yaml", []byte(fmt.Sprintf(base, tc.admin, tc.extra)), lookup)
			if tc.problem == "" {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				if strings.Contains(tc.extra, "admin") && cfg.Admin.Secret != secretAdmin {
					t.Errorf("admin secret not resolved")
				}
				return
			}
			var ps *config.Problems
			if !errors.As(err, &ps) {
				t.Fatalf("err = %v, want *Problems naming %s", err, tc.problem)
			}
			found := false
			for _, p := range ps.List {
				found = found || p.Field == tc.problem
			}
			if !found {
				t.Errorf("problems %v do not name %s", ps.List, tc.problem)
			}
			if strings.Contains(err.Error(), secretAdmin) {
				t.Errorf("the problem report quotes the secret: %v", err)
			}
		})
	}
}

// An issuer refusing our client credentials is an issuer fault (503), said
// in the warn log without the secret.
func TestWrongClientCredentials(t *testing.T) {
	fi := newFaultIssuerOpts(t, issuerOpts{keepAlive: true, basic: "Basic " + base64.StdEncoding.EncodeToString([]byte("leasegate:the-right-one"))})
	fi.set("tok", true)
	r := startConfigured(t, secretsConfig(fi.URL, writeSecret(t, "client", secretClient), writeSecret(t, "admin", secretAdmin)), nil)
	waitServing(t, r)
	wantUnavailable(t, "wrong client credentials", check(r, envoyRequest("DELETE", "/f", "tok")))
	logs := r.logs.String()
	if !strings.Contains(logs, "issuer rejected our client credentials (HTTP 401)") {
		t.Errorf("warn log does not say the credentials were rejected:\n%s", grepLines(logs, "issuer"))
	}
	if strings.Contains(logs, secretClient) {
		t.Error("the logs hold the client secret")
	}
}
