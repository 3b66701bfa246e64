//go:build unix

package server

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"

	"github.com/leasegate/leasegate/internal/testredis"
	"github.com/leasegate/leasegate/server/config"
)

// Fleet mode through Run: replicas are whole servers sharing one fake
// issuer and one real Redis.

func fleetYAML(t *testing.T, issuerURL, redisAddr, loss string) string {
	t.Helper()
	secret := filepath.Join(t.TempDir(), "fleet.key")
	if err := os.WriteFile(secret, []byte("server-fleet-test-secret-0123456789abcdef\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf(testConfigTmpl, issuerURL, "60s") + fmt.Sprintf(`
fleet:
  redis:
    addresses: [%q]
  secret_file: %q
  on_store_loss: %s
  timeout: 100ms
  health_interval: 200ms
`, redisAddr, secret, loss)
}

func allowed(t *testing.T, r *running, tok string) bool {
	t.Helper()
	resp, err := r.client.Check(context.Background(), envoyRequest("GET", "/data/f", tok))
	if err != nil {
		t.Fatal(err)
	}
	return codes.Code(resp.GetStatus().GetCode()) == codes.OK
}

func postRevoke(t *testing.T, r *running, body string) (int, map[string]any) {
	t.Helper()
	res, err := adminClient.Post("http://"+r.addrs.Admin+"/revoke", "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var out map[string]any
	_ = json.NewDecoder(res.Body).Decode(&out)
	return res.StatusCode, out
}

// refusedWithin polls r until tok is refused, failing after d.
func refusedWithin(t *testing.T, r *running, tok string, d time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	for allowed(t, r, tok) {
		if time.Since(start) > d {
			t.Fatalf("%s still allowed %v after the revoke", tok, time.Since(start))
		}
		time.Sleep(time.Millisecond)
	}
	return time.Since(start)
}

func TestFleetRunSharesLeasesAndRevocations(t *testing.T) {
	rs := testredis.Start(t)
	iss := newFakeIssuer(t)
	yaml := fleetYAML(t, iss.URL, rs.Addr(), "standalone")
	a, b := startConfigured(t, yaml, nil), startConfigured(t, yaml, nil)
	waitServing(t, a)
	waitServing(t, b)
	for _, tok := range []string{"fleet-a", "fleet-b", "fleet-c"} {
		iss.set(tok, true)
	}

	before := iss.calls.Load()
	if !allowed(t, a, "fleet-a") || !allowed(t, b, "fleet-a") {
		t.Fatal("fleet-a refused")
	}
	if n := iss.calls.Load() - before; n != 1 {
		t.Fatalf("two replicas asked the issuer %d times for one token, want 1", n)
	}

	conf := getConfig(t, b)
	f, _ := conf["fleet"].(map[string]any)
	if f["mode"] != "connected" || f["store_up"] != true || f["revocation_delay_p99"] == nil || f["on_store_loss"] != "standalone" {
		t.Errorf("GET /config fleet = %v", f)
	}

	// By token on A, refused on B; by token_sha256; by subject.
	revokes := []struct{ tok, body string }{
		{"fleet-a", `{"token":"fleet-a"}`},
		{"fleet-b", fmt.Sprintf(`{"token_sha256":%q}`, sha256hex("fleet-b"))},
		{"fleet-c", `{"subject":"alice","issuer":"fake"}`},
	}
	for _, rv := range revokes {
		allowed(t, a, rv.tok)
		if !allowed(t, b, rv.tok) {
			t.Fatalf("%s refused on B before the revoke", rv.tok)
		}
		iss.set(rv.tok, false)
		if code, out := postRevoke(t, a, rv.body); code != http.StatusOK {
			t.Fatalf("revoke %s = %d %v", rv.body, code, out)
		}
		d := refusedWithin(t, b, rv.tok, 100*time.Millisecond)
		t.Logf("%s: refused on B %v after /revoke on A answered", rv.body, d)
	}
	if !strings.Contains(metricsText(t, b), "leasegate_fleet_revocations_total{source=\"admin\"} 3") {
		t.Errorf("B's metrics do not count 3 revocations:\n%s", grepLines(metricsText(t, b), "leasegate_fleet"))
	}
}

func sha256hex(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

func metricsText(t *testing.T, r *running) string {
	t.Helper()
	res, err := adminClient.Get("http://" + r.addrs.Admin + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return string(b)
}

// TestFleetRunStoreDown: with Redis gone, /revoke still revokes locally
// and answers 503 fleet_store_unavailable; /config, /metrics and
// readiness say so.
func TestFleetRunStoreDown(t *testing.T) {
	rs := testredis.Start(t)
	iss := newFakeIssuer(t)
	iss.set("fleet-down", true)
	a := startConfigured(t, fleetYAML(t, iss.URL, rs.Addr(), "standalone"), nil)
	waitServing(t, a)
	if !allowed(t, a, "fleet-down") {
		t.Fatal("refused")
	}
	rs.Kill()
	deadline := time.Now().Add(5 * time.Second)
	for getConfig(t, a)["fleet"].(map[string]any)["store_up"] != false {
		if time.Now().After(deadline) {
			t.Fatal("the store never went down in /config")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if f := getConfig(t, a)["fleet"].(map[string]any); f["mode"] != "standalone" {
		t.Errorf("mode %v, want standalone", f["mode"])
	}
	if !strings.Contains(metricsText(t, a), "leasegate_fleet_store_up 0") {
		t.Error("leasegate_fleet_store_up is not 0")
	}
	iss.set("fleet-down", false)
	code, out := postRevoke(t, a, `{"token":"fleet-down"}`)
	if code != http.StatusServiceUnavailable || out["error"] != "fleet_store_unavailable" || out["revoked_locally"] != true {
		t.Fatalf("revoke with the store down = %d %v", code, out)
	}
	if allowed(t, a, "fleet-down") {
		t.Fatal("the local revoke did not stand")
	}
}

// TestFleetRunStartsCutOff: a replica that cannot reach Redis at start
// serves as on_store_loss says; deny makes it unready.
func TestFleetRunStartsCutOff(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := l.Addr().String()
	l.Close()
	iss := newFakeIssuer(t)
	iss.set("fleet-cutoff", true)
	for _, c := range []struct {
		loss      string
		wantAllow bool
		wantReady int
	}{
		{"standalone", true, http.StatusOK},
		{"deny", false, http.StatusServiceUnavailable},
	} {
		t.Run(c.loss, func(t *testing.T) {
			r := startConfigured(t, fleetYAML(t, iss.URL, dead, c.loss), nil)
			waitServing(t, r)
			if got := allowed(t, r, "fleet-cutoff"); got != c.wantAllow {
				t.Errorf("allowed = %v, want %v", got, c.wantAllow)
			}
			if f := getConfig(t, r)["fleet"].(map[string]any); f["mode"] != c.loss || f["store_up"] != false {
				t.Errorf("fleet in /config = %v", f)
			}
			deadline := time.Now().Add(5 * time.Second)
			for {
				res, err := adminClient.Get("http://" + r.addrs.Admin + "/readyz")
				if err != nil {
					t.Fatal(err)
				}
				res.Body.Close()
				if res.StatusCode == c.wantReady {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("/readyz = %d, want %d", res.StatusCode, c.wantReady)
				}
				time.Sleep(20 * time.Millisecond)
			}
		})
	}
}

func TestFleetConfigProblems(t *testing.T) {
	yaml := fmt.Sprintf(testConfigTmpl, "http://127.0.0.1:1/introspect", "60s") + `
fleet:
  redis:
    addresses: []
  on_store_loss: sometimes
  timeout: -1s
  unknown: 1
`
	_, err := config.Parse("fleet.yaml", []byte(yaml), func(string) (string, bool) { return "", false })
	if err == nil {
		t.Fatal("accepted")
	}
	for _, want := range []string{
		"fleet.unknown: unknown key",
		"fleet.redis.addresses: at least one address",
		"fleet.on_store_loss: \"sometimes\"",
		"fleet.timeout:",
		"fleet.secret_file: is required",
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("problems lack %q:\n%v", want, err)
		}
	}
}
