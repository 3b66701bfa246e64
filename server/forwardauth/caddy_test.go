//go:build unix

package forwardauth

// HTTP mode through a real Caddy (forward_auth, leasegate in forwarded
// mode) beside the nginx tests, and both shipped storage-gateway proxy
// configs (examples/storage/nginx/xrootd.conf, examples/storage/caddy/
// Caddyfile) with an echo upstream in XRootD's place, so the test sees
// exactly which headers reach the storage.
//
// Caddy is found on PATH; when missing and running as root it is installed
// with apt-get (Debian's caddy package, 2.6 in Debian 12). Otherwise the
// tests skip, or fail when LEASEGATE_E2E_REQUIRE is set.

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/leasegate/leasegate/policy"
)

var (
	caddyOnce    sync.Once
	caddyPath    string
	caddyProblem string
)

func requireCaddy(t *testing.T) string {
	t.Helper()
	caddyOnce.Do(func() { caddyPath, caddyProblem = findCaddy() })
	if caddyProblem != "" {
		if os.Getenv("LEASEGATE_E2E_REQUIRE") != "" {
			t.Fatalf("LEASEGATE_E2E_REQUIRE is set: %s", caddyProblem)
		}
		t.Skip(caddyProblem)
	}
	return caddyPath
}

func findCaddy() (string, string) {
	if p, err := exec.LookPath("caddy"); err == nil {
		return p, ""
	}
	if os.Geteuid() != 0 {
		return "", "caddy is not installed and the test is not root, so it cannot apt-get install it"
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	apt := func(args ...string) ([]byte, error) {
		cmd := exec.CommandContext(ctx, "apt-get", append([]string{"-o", "DPkg::Lock::Timeout=300", "-q"}, args...)...)
		cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
		return cmd.CombinedOutput()
	}
	if _, err := apt("install", "-y", "--no-install-recommends", "caddy"); err != nil {
		// Stale package lists: refresh once and retry.
		if _, err := apt("update"); err != nil {
			return "", "apt-get update failed"
		}
		if out, err := apt("install", "-y", "--no-install-recommends", "caddy"); err != nil {
			return "", fmt.Sprintf("apt-get install caddy: %v\n%s", err, lastLines(out, 20))
		}
	}
	p, err := exec.LookPath("caddy")
	if err != nil {
		return "", "apt-get installed caddy but no caddy binary was found"
	}
	return p, ""
}

// startCaddy runs caddy in the foreground as our child with its state in
// dir, and stops it when the test ends.
func startCaddy(t *testing.T, bin, dir, conf string, port int) {
	t.Helper()
	var out bytes.Buffer
	var mu sync.Mutex
	cmd := exec.Command(bin, "run", "--config", conf, "--adapter", "caddyfile")
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + dir, "XDG_DATA_HOME=" + dir, "XDG_CONFIG_HOME=" + dir}
	w := writerFunc(func(b []byte) (int, error) { mu.Lock(); defer mu.Unlock(); return out.Write(b) })
	cmd.Stdout, cmd.Stderr = w, w
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start caddy: %v", err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	logs := func() string { mu.Lock(); defer mu.Unlock(); return lastLines(out.Bytes(), 30) }
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-done
		}
		if t.Failed() {
			t.Logf("caddy log:\n%s", logs())
		}
	})
	deadline := time.Now().Add(15 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", port), 100*time.Millisecond)
		if err == nil {
			c.Close()
			return
		}
		select {
		case err := <-done:
			done <- err
			t.Fatalf("caddy exited: %v\n%s", err, logs())
		case <-time.After(25 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("caddy did not listen on %d within 15s\n%s", port, logs())
		}
	}
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(b []byte) (int, error) { return f(b) }

// renderExample applies each replacement to a shipped example, each
// exactly once, and writes it to dst.
func renderExample(t *testing.T, example, dst string, replace map[string]string) {
	t.Helper()
	raw, err := os.ReadFile(example)
	if err != nil {
		t.Fatal(err)
	}
	conf := string(raw)
	for old, repl := range replace {
		if n := strings.Count(conf, old); n != 1 {
			t.Fatalf("%s: %q occurs %d times, want 1 (update the test with the example)", example, old, n)
		}
		conf = strings.Replace(conf, old, repl, 1)
	}
	writeFile(t, dst, []byte(conf))
}

// storageRoutes are the storage examples' routes: everything under
// wlcg_storage, one area conditional_create (a backend honouring
// If-None-Match: * assumed).
var storageRoutes = []policy.RouteConfig{
	{Prefix: "/cc/", Require: policy.ProfileWLCG, ConditionalCreate: true},
	{Prefix: "/", Require: policy.ProfileWLCG},
}

// TestStorageProxyConfigs runs the shipped storage-gateway proxy configs,
// nginx and Caddy, through one scenario.
func TestStorageProxyConfigs(t *testing.T) {
	examples := filepath.Join("..", "..", "examples", "storage")
	proxies := []struct {
		name  string
		mode  string
		start func(t *testing.T, dir string, port int, s *e2eStack) e2eClient
	}{
		{
			name: "caddy", mode: ModeForwarded,
			start: func(t *testing.T, dir string, port int, s *e2eStack) e2eClient {
				bin := requireCaddy(t)
				pool := writeCert(t, dir)
				renderExample(t, filepath.Join(examples, "caddy", "Caddyfile"), filepath.Join(dir, "Caddyfile"), map[string]string{
					"admin localhost:2019":            "admin off",
					"storage.example.org {":           fmt.Sprintf("https://127.0.0.1:%d {", port),
					"forward_auth 127.0.0.1:9002 {":   "forward_auth " + s.leasegate.Listener.Addr().String() + " {",
					"reverse_proxy 127.0.0.1:8080 {":  "reverse_proxy " + s.upstream.Listener.Addr().String() + " {",
					"/etc/grid-security/hostcert.pem": filepath.Join(dir, "hostcert.pem"),
					"/etc/grid-security/hostkey.pem":  filepath.Join(dir, "hostkey.pem"),
				})
				startCaddy(t, bin, dir, filepath.Join(dir, "Caddyfile"), port)
				return tlsClient(t, pool, port)
			},
		},
		{
			name: "nginx", mode: ModeNginx,
			start: func(t *testing.T, dir string, port int, s *e2eStack) e2eClient {
				bin := requireNginx(t)
				pool := writeExampleConfig(t, dir, filepath.Join(examples, "nginx", "xrootd.conf"), map[string]string{
					"listen 443 ssl;":        fmt.Sprintf("listen 127.0.0.1:%d ssl;", port),
					"server 127.0.0.1:9002;": "server " + s.leasegate.Listener.Addr().String() + ";",
					"server 127.0.0.1:8080;": "server " + s.upstream.Listener.Addr().String() + ";",
				})
				startNginx(t, bin, dir, filepath.Join(dir, "nginx.conf"), port)
				return tlsClient(t, pool, port)
			},
		},
	}
	for _, p := range proxies {
		t.Run(p.name, func(t *testing.T) {
			s := newModeStack(t, p.mode, storageRoutes)
			dir := t.TempDir()
			port := freePort(t)
			c := p.start(t, dir, port, s)
			checkStorageProxyFlow(t, c, s)
		})
	}
}

// writeCert writes a self-signed pair for storage.example.org into dir.
func writeCert(t *testing.T, dir string) *x509.CertPool {
	t.Helper()
	certPEM, keyPEM := selfSignedCert(t)
	writeFile(t, filepath.Join(dir, "hostcert.pem"), certPEM)
	writeFile(t, filepath.Join(dir, "hostkey.pem"), keyPEM)
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(certPEM)
	return pool
}

func tlsClient(t *testing.T, pool *x509.CertPool, port int) e2eClient {
	t.Helper()
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, ServerName: "storage.example.org"}}
	t.Cleanup(tr.CloseIdleConnections)
	return e2eClient{base: fmt.Sprintf("https://127.0.0.1:%d", port), client: &http.Client{Timeout: 10 * time.Second, Transport: tr}}
}

// checkStorageProxyFlow is one ordered scenario against a storage proxy.
func checkStorageProxyFlow(t *testing.T, c e2eClient, s *e2eStack) {
	const (
		jobTok     = "job-token"
		readerTok  = "reader-token"
		creatorTok = "creator-token"
		freshTok   = "fresh-token"
	)
	iss := s.issuer
	iss.add(jobTok, "alice", "storage.read:/ storage.modify:/data")
	iss.add(readerTok, "bob", "storage.read:/data")
	iss.add(creatorTok, "carol", "storage.create:/cc storage.create:/data")
	iss.add(freshTok, "dave", "storage.read:/")

	last := func() echoed {
		t.Helper()
		seen := s.upstream.requests()
		if len(seen) == 0 {
			t.Fatal("nothing reached the upstream")
		}
		return seen[len(seen)-1]
	}

	// Allowed, with leasegate's identity: the client's forged identity
	// headers are overwritten and the token does not reach the storage.
	r := c.do(t, "GET", "/data/file.txt", bearer(jobTok),
		kv{"X-Auth-Subject", "forged"}, kv{"X-Auth-Scope", "storage.modify:/"}, kv{"X-Forwarded-Method", "DELETE"}, kv{"X-Original-Method", "HEAD"})
	if r.status != http.StatusOK {
		t.Fatalf("GET with a job token: status %d, body %s", r.status, r.body)
	}
	e := r.echoed(t)
	want := map[string][]string{
		"x-auth-subject": {"alice"}, "x-auth-client-id": {"gateway-client"},
		"x-auth-scope": {"storage.read:/ storage.modify:/data"}, "x-auth-issuer": {e2eIssuer},
	}
	if e.Method != "GET" || fmt.Sprint(e.Headers) != fmt.Sprint(want) || e.Authorization != nil {
		t.Errorf("upstream saw %s with %v, Authorization %q; want GET with exactly %v and no Authorization", e.Method, e.Headers, e.Authorization, want)
	}
	if len(e.IfNoneMatch) > 1 || len(e.IfNoneMatch) == 1 && e.IfNoneMatch[0] != "" {
		t.Errorf("a GET without If-None-Match reached the upstream with %q", e.IfNoneMatch)
	}

	// A client's cache validator passes unchanged (the proxy copies the
	// If-None-Match leasegate answers, which is the client's own here).
	if r := c.do(t, "GET", "/data/file.txt", bearer(jobTok), kv{"If-None-Match", `"v1"`}); r.status != http.StatusOK {
		t.Errorf("GET with If-None-Match: status %d", r.status)
	} else if e := r.echoed(t); fmt.Sprint(e.IfNoneMatch) != `["v1"]` {
		t.Errorf("upstream If-None-Match %q, want the client's [\"v1\"]", e.IfNoneMatch)
	}

	// Conditional create: on the conditional_create area a create-only
	// plain PUT passes with If-None-Match: * added; elsewhere it is 403.
	if r := c.do(t, "PUT", "/cc/new.root", bearer(creatorTok)); r.status != http.StatusOK {
		t.Errorf("create-only plain PUT on the conditional area: status %d, body %s", r.status, r.body)
	} else if e := last(); e.Method != "PUT" || fmt.Sprint(e.IfNoneMatch) != "[*]" {
		t.Errorf("upstream saw %s with If-None-Match %q, want PUT with exactly [*]", e.Method, e.IfNoneMatch)
	}
	if r := c.do(t, "PUT", "/cc/etag.root", bearer(creatorTok), kv{"If-None-Match", `"v1"`}); r.status != http.StatusOK {
		t.Errorf("create-only PUT with an entity tag on the conditional area: status %d", r.status)
	} else if e := last(); fmt.Sprint(e.IfNoneMatch) != "[*]" {
		t.Errorf("upstream If-None-Match %q, want [*] replacing the client's entity tag", e.IfNoneMatch)
	}
	before := len(s.upstream.requests())
	r = c.do(t, "PUT", "/data/new.root", bearer(creatorTok))
	if ch := r.one(t, "WWW-Authenticate"); r.status != http.StatusForbidden || !strings.Contains(ch, `scope="storage.modify:/data/new.root"`) {
		t.Errorf("create-only plain PUT elsewhere: status %d, WWW-Authenticate %q; want 403 naming storage.modify:/data/new.root", r.status, ch)
	}
	if r := c.do(t, "PUT", "/data/new.root", bearer(creatorTok), kv{"If-None-Match", "*"}); r.status != http.StatusOK {
		t.Errorf("create-only PUT with If-None-Match: * elsewhere: status %d", r.status)
	} else if e := last(); fmt.Sprint(e.IfNoneMatch) != "[*]" {
		t.Errorf("upstream If-None-Match %q, want [*]", e.IfNoneMatch)
	}
	if r := c.do(t, "PROPFIND", "/data/new.root", bearer(creatorTok), kv{"Depth", "0"}); r.status != http.StatusOK {
		t.Errorf("create-only PROPFIND Depth: 0 (the stat before an upload): status %d", r.status)
	}
	if r := c.do(t, "PROPFIND", "/data/", bearer(creatorTok), kv{"Depth", "1"}); r.status != http.StatusForbidden {
		t.Errorf("create-only PROPFIND Depth: 1 (a listing): status %d, want 403", r.status)
	}
	// A modify token overwrites: no condition is added.
	if r := c.do(t, "PUT", "/data/file.txt", bearer(jobTok)); r.status != http.StatusOK {
		t.Errorf("modify PUT: status %d", r.status)
	} else if e := last(); len(e.IfNoneMatch) == 1 && e.IfNoneMatch[0] != "" || len(e.IfNoneMatch) > 1 {
		t.Errorf("a modify PUT reached the upstream with If-None-Match %q", e.IfNoneMatch)
	}

	// No token: 401 with exactly the RFC 6750 challenge.
	r = c.do(t, "GET", "/data/file.txt")
	if got := r.header.Values("WWW-Authenticate"); r.status != http.StatusUnauthorized || len(got) != 1 || got[0] != `Bearer realm="`+e2eRealm+`"` {
		t.Errorf("no token: status %d, WWW-Authenticate %q; want 401 with exactly Bearer realm=%q", r.status, got, e2eRealm)
	}
	// Scope refused: 403 with the scope that would grant it.
	r = c.do(t, "DELETE", "/data/file.txt", bearer(readerTok))
	if ch := r.one(t, "WWW-Authenticate"); r.status != http.StatusForbidden || !strings.Contains(ch, `error="insufficient_scope"`) || !strings.Contains(ch, `scope="storage.modify:/data/file.txt"`) {
		t.Errorf("DELETE with a read token: status %d, WWW-Authenticate %q; want 403 naming storage.modify:/data/file.txt", r.status, ch)
	}
	if n := len(s.upstream.requests()); n != before+3 {
		t.Errorf("%d requests reached the upstream since the refused PUT, want 3 (the allowed ones)", n-before)
	}

	// Issuer down and no lease: 503 with Retry-After.
	iss.setDown(true)
	r = c.do(t, "GET", "/data/file.txt", bearer(freshTok))
	if r.status != http.StatusServiceUnavailable || r.one(t, "Retry-After") == "" {
		t.Errorf("issuer down: status %d, Retry-After %q; want 503 with Retry-After", r.status, r.header.Get("Retry-After"))
	}
	iss.setDown(false)

	// leasegate unreachable: closed, 503 with Retry-After.
	before = len(s.upstream.requests())
	s.leasegate.Close()
	r = c.do(t, "GET", "/data/file.txt", bearer(readerTok))
	if r.status != http.StatusServiceUnavailable || r.header.Get("Retry-After") != "5" {
		t.Errorf("leasegate down: status %d, Retry-After %q; want 503 with Retry-After 5", r.status, r.header.Get("Retry-After"))
	}
	if n := len(s.upstream.requests()); n != before {
		t.Errorf("%d requests reached the upstream while leasegate was down", n-before)
	}
}
