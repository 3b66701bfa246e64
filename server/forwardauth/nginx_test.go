//go:build unix

package forwardauth

// End-to-end proof of HTTP mode through a real nginx (auth_request), with
// the real engine, lease cache and policy behind it, for both the test
// template and the shipped examples/nginx/storage-gateway.conf.
//
// nginx is found on PATH or at /usr/sbin/nginx; when missing and running as
// root it is installed with apt-get (Debian's `nginx` package has
// auth_request). Otherwise the tests skip, or fail when LEASEGATE_E2E_REQUIRE
// is set.

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"text/template"
	"time"

	"github.com/leasegate/leasegate/authz"
	"github.com/leasegate/leasegate/authz/issuer"
	"github.com/leasegate/leasegate/leasecache"
	"github.com/leasegate/leasegate/policy"
)

const (
	e2eRealm  = "storage-test"
	e2eIssuer = "https://issuer.test"
)

var (
	nginxOnce    sync.Once
	nginxPath    string
	nginxProblem string
	nginxVersion string
)

// requireNginx returns an nginx binary with auth_request, installing it when
// it can, or skips (fails under LEASEGATE_E2E_REQUIRE).
func requireNginx(t *testing.T) string {
	t.Helper()
	nginxOnce.Do(func() { nginxPath, nginxVersion, nginxProblem = findNginx() })
	if nginxProblem != "" {
		if os.Getenv("LEASEGATE_E2E_REQUIRE") != "" {
			t.Fatalf("LEASEGATE_E2E_REQUIRE is set: %s", nginxProblem)
		}
		t.Skip(nginxProblem)
	}
	t.Logf("using %s (%s)", nginxPath, nginxVersion)
	return nginxPath
}

func findNginx() (path, version, problem string) {
	lookup := func() string {
		if p, err := exec.LookPath("nginx"); err == nil {
			return p
		}
		if _, err := os.Stat("/usr/sbin/nginx"); err == nil {
			return "/usr/sbin/nginx"
		}
		return ""
	}
	path = lookup()
	if path == "" {
		if os.Geteuid() != 0 {
			return "", "", "nginx is not installed and the test is not root, so it cannot apt-get install it"
		}
		if _, err := exec.LookPath("apt-get"); err != nil {
			return "", "", "nginx is not installed and there is no apt-get to install it"
		}
		if out, err := aptInstallNginx(); err != nil {
			return "", "", fmt.Sprintf("apt-get install nginx: %v\n%s", err, lastLines(out, 20))
		}
		if path = lookup(); path == "" {
			return "", "", "apt-get installed nginx but no nginx binary was found"
		}
	}
	out, err := exec.Command(path, "-V").CombinedOutput()
	if err != nil {
		return "", "", fmt.Sprintf("%s -V: %v\n%s", path, err, out)
	}
	if !bytes.Contains(out, []byte("http_auth_request_module")) {
		return "", "", path + " was built without the auth_request module (--with-http_auth_request_module)"
	}
	version, _, _ = strings.Cut(string(out), "\n")
	return path, strings.TrimSpace(version), ""
}

// aptInstallNginx installs Debian's nginx (in bookworm nginx-light is only a
// metapackage over it). The image's policy-rc.d keeps the service from
// starting; nothing here starts a system nginx.
func aptInstallNginx() ([]byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	apt := func(args ...string) ([]byte, error) {
		cmd := exec.CommandContext(ctx, "apt-get", append([]string{"-o", "DPkg::Lock::Timeout=300", "-q"}, args...)...)
		cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
		return cmd.CombinedOutput()
	}
	install := []string{"install", "-y", "--no-install-recommends", "nginx"}
	out, err := apt(install...)
	if err == nil {
		return out, nil
	}
	// Stale package lists: refresh once and retry.
	if upd, err := apt("update"); err != nil {
		return append(out, upd...), fmt.Errorf("apt-get update: %w", err)
	}
	return apt(install...)
}

func lastLines(b []byte, n int) string {
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

// nginxIssuer is an RFC 7662 introspection endpoint whose tokens can be
// revoked and which can be made to fail, counting calls per token.
type nginxIssuer struct {
	*httptest.Server
	mu     sync.Mutex
	tokens map[string]nginxToken
	calls  map[string]int
	down   bool
}

type nginxToken struct {
	sub, scope string
	revoked    bool
}

func newNginxIssuer(t *testing.T) *nginxIssuer {
	iss := &nginxIssuer{tokens: map[string]nginxToken{}, calls: map[string]int{}}
	iss.Server = httptest.NewServer(http.HandlerFunc(iss.introspect))
	t.Cleanup(iss.Close)
	return iss
}

func (f *nginxIssuer) introspect(w http.ResponseWriter, r *http.Request) {
	tok := r.PostFormValue("token")
	f.mu.Lock()
	f.calls[tok]++
	down := f.down
	info, known := f.tokens[tok]
	f.mu.Unlock()
	if down {
		http.Error(w, "maintenance", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	if !known || info.revoked {
		_, _ = io.WriteString(w, `{"active":false}`)
		return
	}
	_ = json.NewEncoder(w).Encode(map[string]any{
		"active": true, "sub": info.sub, "client_id": "gateway-client", "scope": info.scope,
		"iss": e2eIssuer, "exp": time.Now().Add(time.Hour).Unix(), "token_type": "Bearer",
	})
}

func (f *nginxIssuer) add(tok, sub, scope string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.tokens[tok] = nginxToken{sub: sub, scope: scope}
}

func (f *nginxIssuer) revoke(tok string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	info := f.tokens[tok]
	info.revoked = true
	f.tokens[tok] = info
}

func (f *nginxIssuer) setDown(down bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.down = down
}

func (f *nginxIssuer) callsFor(tok string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls[tok]
}

// echoUpstream stands in for the storage gateway: it answers with what it
// received, so the test sees exactly which identity headers got through.
type echoUpstream struct {
	*httptest.Server
	mu   sync.Mutex
	seen []echoed
}

type echoed struct {
	Method  string              `json:"method"`
	URI     string              `json:"uri"`
	Headers map[string][]string `json:"headers"`
	// IfNoneMatch and Authorization as the upstream received them (nil
	// when absent).
	IfNoneMatch   []string `json:"if_none_match"`
	Authorization []string `json:"authorization"`
}

func newEchoUpstream(t *testing.T) *echoUpstream {
	up := &echoUpstream{}
	up.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		e := echoed{Method: r.Method, URI: r.RequestURI, Headers: map[string][]string{},
			IfNoneMatch: r.Header.Values("If-None-Match"), Authorization: r.Header.Values("Authorization")}
		for k, v := range r.Header {
			// Underscore spellings too: some backends fold "_" into "-".
			if lk := strings.ToLower(k); strings.HasPrefix(strings.ReplaceAll(lk, "_", "-"), "x-auth-") {
				e.Headers[lk] = v
			}
		}
		up.mu.Lock()
		up.seen = append(up.seen, e)
		up.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(e)
	}))
	t.Cleanup(up.Close)
	return up
}

func (u *echoUpstream) requests() []echoed {
	u.mu.Lock()
	defer u.mu.Unlock()
	return append([]echoed(nil), u.seen...)
}

// e2eStack is leasegate (HTTP mode, nginx convention, real engine) with its
// issuer and the upstream nginx proxies to.
type e2eStack struct {
	issuer    *nginxIssuer
	upstream  *echoUpstream
	leasegate *httptest.Server
}

func newE2EStack(t *testing.T) *e2eStack {
	t.Helper()
	return newModeStack(t, ModeNginx, []policy.RouteConfig{{Prefix: "/store/", Require: policy.ProfileSciTokens}})
}

// newModeStack is newE2EStack for any HTTP mode and routes.
func newModeStack(t *testing.T, mode string, routes []policy.RouteConfig) *e2eStack {
	t.Helper()
	s := &e2eStack{issuer: newNginxIssuer(t), upstream: newEchoUpstream(t)}
	pol, err := policy.New(policy.Config{
		Tiers:    policy.DefaultTiers(),
		LeaseMax: 10 * time.Minute,
		Routes:   routes,
	})
	if err != nil {
		t.Fatalf("policy: %v", err)
	}
	cache, err := leasecache.New(leasecache.Config{MaxMemoryMB: 8})
	if err != nil {
		t.Fatalf("leasecache: %v", err)
	}
	t.Cleanup(func() { _ = cache.Close() })
	logger := slog.New(slog.DiscardHandler)
	eng, err := authz.New(context.Background(), authz.Config{
		Realm:  e2eRealm,
		Policy: pol,
		Cache:  cache,
		Issuers: []authz.IssuerConfig{{
			Name: "test", Issuer: e2eIssuer, Mode: authz.ModeIntrospection, DefaultForOpaque: true,
			Introspection: issuer.IntrospectionConfig{Endpoint: s.issuer.URL, Auth: issuer.AuthNone},
		}},
		Upstream: authz.UpstreamHeaderNames{
			Subject: "x-auth-subject", ClientID: "x-auth-client-id", Scope: "x-auth-scope", Issuer: "x-auth-issuer",
		},
		Logger: logger,
	})
	if err != nil {
		t.Fatalf("engine: %v", err)
	}
	t.Cleanup(eng.Close)
	h, err := New(Config{
		Mode: mode, Realm: e2eRealm, Logger: logger,
		Engine: func() Checker { return eng },
	})
	if err != nil {
		t.Fatalf("http mode: %v", err)
	}
	s.leasegate = httptest.NewServer(h)
	t.Cleanup(s.leasegate.Close)
	return s
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// startNginx runs nginx in the foreground as our child, in its own process
// group, and stops it when the test ends.
func startNginx(t *testing.T, bin, dir, conf string, port int) {
	t.Helper()
	errLog := filepath.Join(dir, "error.log")
	var out bytes.Buffer
	cmd := exec.Command(bin, "-p", dir+"/", "-c", conf, "-e", errLog, "-g", "daemon off;")
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start nginx: %v", err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	logs := func() string {
		b, _ := os.ReadFile(errLog)
		return out.String() + lastLines(b, 30)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			// The master did not stop its workers: end the whole group we started.
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-done
		}
		if t.Failed() {
			t.Logf("nginx log:\n%s", logs())
		}
	})
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", port), 100*time.Millisecond)
		if err == nil {
			c.Close()
			return
		}
		select {
		case err := <-done:
			done <- err
			t.Fatalf("nginx exited: %v\n%s", err, logs())
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("nginx did not listen on %d within 10s\n%s", port, logs())
		}
	}
}

// nginxUser runs workers as root when the test is root, so they can use
// the private temp dir; otherwise nginx ignores the directive anyway.
func nginxUser() string {
	if os.Geteuid() == 0 {
		return "root"
	}
	return ""
}

type e2eResponse struct {
	status int
	header http.Header
	body   []byte
}

// one returns the single value of header name, failing on repeats.
func (r e2eResponse) one(t *testing.T, name string) string {
	t.Helper()
	v := r.header.Values(name)
	if len(v) > 1 {
		t.Errorf("%s sent %d times: %q", name, len(v), v)
	}
	if len(v) == 0 {
		return ""
	}
	return v[0]
}

func (r e2eResponse) echoed(t *testing.T) echoed {
	t.Helper()
	var e echoed
	if err := json.Unmarshal(r.body, &e); err != nil {
		t.Fatalf("upstream answer %q: %v", r.body, err)
	}
	return e
}

type e2eClient struct {
	base   string
	client *http.Client
}

func (c e2eClient) do(t *testing.T, method, path string, headers ...kv) e2eResponse {
	t.Helper()
	var body io.Reader
	if method == "PUT" {
		body = strings.NewReader("file content")
	}
	req, err := http.NewRequest(method, c.base+path, body)
	if err != nil {
		t.Fatal(err)
	}
	for _, h := range headers {
		if h.name == "Host" {
			req.Host = h.value
			continue
		}
		req.Header.Add(h.name, h.value)
	}
	resp, err := c.client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: reading body: %v", method, path, err)
	}
	return e2eResponse{resp.StatusCode, resp.Header, b}
}

func bearer(tok string) kv { return kv{"Authorization", "Bearer " + tok} }

func TestNginxAuthRequest(t *testing.T) {
	bin := requireNginx(t)
	tmpl := template.Must(template.ParseFiles(filepath.Join("testdata", "nginx", "nginx.conf.tmpl")))
	examplePath := filepath.Join("..", "..", "examples", "nginx", "storage-gateway.conf")

	configs := []struct {
		name string
		// setup writes nginx.conf into dir and returns the client to use.
		setup func(t *testing.T, dir string, port int, s *e2eStack) e2eClient
	}{
		{
			name: "test template",
			setup: func(t *testing.T, dir string, port int, s *e2eStack) e2eClient {
				var b bytes.Buffer
				err := tmpl.Execute(&b, map[string]any{
					"User": nginxUser(), "Dir": dir, "Port": port,
					"Leasegate": s.leasegate.Listener.Addr().String(), "Storage": s.upstream.Listener.Addr().String(),
				})
				if err != nil {
					t.Fatal(err)
				}
				writeFile(t, filepath.Join(dir, "nginx.conf"), b.Bytes())
				return e2eClient{base: fmt.Sprintf("http://127.0.0.1:%d", port), client: &http.Client{Timeout: 10 * time.Second}}
			},
		},
		{
			name: "shipped example",
			setup: func(t *testing.T, dir string, port int, s *e2eStack) e2eClient {
				pool := writeExampleConfig(t, dir, examplePath, map[string]string{
					"listen 443 ssl;":        fmt.Sprintf("listen 127.0.0.1:%d ssl;", port),
					"server 127.0.0.1:9002;": "server " + s.leasegate.Listener.Addr().String() + ";",
					"server 127.0.0.1:8080;": "server " + s.upstream.Listener.Addr().String() + ";",
				})
				tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, ServerName: "storage.example.org"}}
				t.Cleanup(tr.CloseIdleConnections)
				return e2eClient{base: fmt.Sprintf("https://127.0.0.1:%d", port), client: &http.Client{Timeout: 10 * time.Second, Transport: tr}}
			},
		},
	}
	for _, cfg := range configs {
		t.Run(cfg.name, func(t *testing.T) {
			s := newE2EStack(t)
			dir := t.TempDir()
			port := freePort(t)
			c := cfg.setup(t, dir, port, s)
			startNginx(t, bin, dir, filepath.Join(dir, "nginx.conf"), port)
			checkAuthRequestFlow(t, c, s)
		})
	}
}

// checkAuthRequestFlow runs one ordered scenario; each step depends on the
// lease state the previous ones left.
func checkAuthRequestFlow(t *testing.T, c e2eClient, s *e2eStack) {
	const (
		tok       = "good-token-1"
		readerTok = "reader-token"
		freshTok  = "fresh-token"
	)
	s.issuer.add(tok, "alice", "read:/ write:/")
	s.issuer.add(readerTok, "bob", "read:/store")
	s.issuer.add(freshTok, "carol", "read:/")
	iss := s.issuer

	// A valid token reaches the upstream with leasegate's identity; the
	// client's forged identity headers (underscore spellings included,
	// which a backend folding "_" into "-" would read) and X-Original-* do
	// not.
	r := c.do(t, "GET", "/data/file.txt?x=1", bearer(tok),
		kv{"X-Auth-Subject", "forged"}, kv{"X-Auth-Scope", "storage.modify:/"}, kv{"X-Original-Method", "HEAD"},
		kv{"X_Auth_Subject", "forged"}, kv{"X-Auth_Issuer", "forged"})
	if r.status != http.StatusOK {
		t.Fatalf("GET with valid token: status %d, body %s", r.status, r.body)
	}
	e := r.echoed(t)
	wantIdentity := map[string][]string{
		"x-auth-subject": {"alice"}, "x-auth-client-id": {"gateway-client"},
		"x-auth-scope": {"read:/ write:/"}, "x-auth-issuer": {e2eIssuer},
	}
	if e.Method != "GET" || e.URI != "/data/file.txt?x=1" || fmt.Sprint(e.Headers) != fmt.Sprint(wantIdentity) {
		t.Errorf("upstream saw %s %s with %v; want GET /data/file.txt?x=1 with exactly %v", e.Method, e.URI, e.Headers, wantIdentity)
	}
	if n := iss.callsFor(tok); n != 1 {
		t.Errorf("issuer calls after first GET = %d, want 1", n)
	}
	// A second read is a lease hit.
	if r := c.do(t, "HEAD", "/data/file.txt", bearer(tok)); r.status != http.StatusOK {
		t.Errorf("HEAD within the read window: status %d", r.status)
	}
	if n := iss.callsFor(tok); n != 1 {
		t.Errorf("issuer calls after lease hit = %d, want 1", n)
	}

	// An absolute-form request line (RFC 9112 §3.2.2, what a client sends to
	// a proxy) still gives leasegate an origin-form X-Original-URI. Sent by
	// using nginx as the client's HTTP proxy; plain HTTP only.
	if strings.HasPrefix(c.base, "http://") {
		const absTok = "absolute-form-token"
		iss.add(absTok, "dave", "read:/")
		proxy, err := url.Parse(c.base)
		if err != nil {
			t.Fatal(err)
		}
		tr := &http.Transport{Proxy: http.ProxyURL(proxy)}
		defer tr.CloseIdleConnections()
		pc := e2eClient{base: "http://storage.test", client: &http.Client{Timeout: 10 * time.Second, Transport: tr}}
		r := pc.do(t, "GET", "/data/abs.txt?q=1", bearer(absTok))
		if r.status != http.StatusOK {
			t.Errorf("absolute-form GET: status %d, body %s", r.status, r.body)
		} else if e := r.echoed(t); e.URI != "/data/abs.txt?q=1" || fmt.Sprint(e.Headers["x-auth-subject"]) != "[dave]" {
			t.Errorf("absolute-form GET: upstream saw %s with %v", e.URI, e.Headers)
		}
	}

	// The original host reaches leasegate (X-Original-Host): a COPY whose
	// absolute Destination names this server is a local write, refused for
	// a read-only token, while one naming another server is a push. Were
	// leasegate to see the subrequest's own Host instead, both would look
	// remote and the first would be allowed.
	host := "storage.test"
	if strings.HasPrefix(c.base, "https://") {
		host = "storage.example.org"
	}
	r = c.do(t, "COPY", "/store/run1/in.root", bearer(readerTok), kv{"Host", host},
		kv{"Destination", "https://" + host + "/store/run1/copy.root"})
	if ch := r.one(t, "WWW-Authenticate"); r.status != http.StatusForbidden || !strings.Contains(ch, `scope="write:/store/run1/copy.root"`) {
		t.Errorf("COPY onto this server with a read-only token: status %d, WWW-Authenticate %q; want 403 for write:/store/run1/copy.root", r.status, ch)
	}
	if r := c.do(t, "COPY", "/store/run1/in.root", bearer(readerTok), kv{"Host", host},
		kv{"Destination", "https://remote.example.net/scratch/copy.root"}); r.status != http.StatusOK {
		t.Errorf("COPY to another server (push) with a read token: status %d, want 200", r.status)
	}

	// No token: 401 with the RFC 6750 challenge, and nothing reaches the
	// upstream.
	before := len(s.upstream.requests())
	r = c.do(t, "GET", "/data/file.txt")
	if got := r.header.Values("WWW-Authenticate"); r.status != http.StatusUnauthorized || len(got) != 1 || got[0] != `Bearer realm="`+e2eRealm+`"` {
		t.Errorf("no token: status %d, WWW-Authenticate %q; want 401 with exactly Bearer realm=%q", r.status, got, e2eRealm)
	}
	if ct := r.header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("401 content-type %q", ct)
	}

	// Revoked at the issuer: a read within the window still passes (no
	// issuer call), the critical DELETE is refused at once, and forging
	// X-Original-Method does not turn it into a GET.
	iss.revoke(tok)
	if r := c.do(t, "GET", "/data/file.txt", bearer(tok)); r.status != http.StatusOK {
		t.Errorf("GET with revoked token within the read window: status %d, want 200 (lease hit)", r.status)
	}
	if n := iss.callsFor(tok); n != 1 {
		t.Errorf("issuer calls after post-revocation GET = %d, want 1 (lease hit)", n)
	}
	r = c.do(t, "DELETE", "/data/file.txt", bearer(tok),
		kv{"X-Original-Method", "GET"}, kv{"X-Original-URI", "/public/file.txt"})
	if ch := r.one(t, "WWW-Authenticate"); r.status != http.StatusUnauthorized || !strings.Contains(ch, `error="invalid_token"`) {
		t.Errorf("DELETE with revoked token: status %d, WWW-Authenticate %q; want 401 invalid_token", r.status, ch)
	}
	if n := iss.callsFor(tok); n != 2 {
		t.Errorf("issuer calls after DELETE = %d, want 2 (window 0 asks every time)", n)
	}
	// The inactive answer voided the lease: reads stop too, without asking
	// the issuer again (negative lease).
	if r := c.do(t, "GET", "/data/file.txt", bearer(tok)); r.status != http.StatusUnauthorized {
		t.Errorf("GET after the issuer said inactive: status %d, want 401", r.status)
	}
	if n := iss.callsFor(tok); n != 2 {
		t.Errorf("issuer calls after negative-lease GET = %d, want 2", n)
	}

	// Scope refused: 403 keeps its challenge through nginx.
	r = c.do(t, "PUT", "/store/run1/out.root", bearer(readerTok))
	ch := r.one(t, "WWW-Authenticate")
	if r.status != http.StatusForbidden || !strings.Contains(ch, `error="insufficient_scope"`) || !strings.Contains(ch, `scope="write:/store/run1/out.root"`) {
		t.Errorf("PUT without write scope: status %d, WWW-Authenticate %q; want 403 insufficient_scope for write:/store/run1/out.root", r.status, ch)
	}
	if r := c.do(t, "GET", "/store/run1/in.root", bearer(readerTok)); r.status != http.StatusOK {
		t.Errorf("GET with read scope: status %d", r.status)
	}

	// Malformed credentials: leasegate's 400 survives nginx's "any other
	// status is a 500".
	r = c.do(t, "GET", "/data/file.txt", kv{"Authorization", "Bearer a,b"})
	if ch := r.one(t, "WWW-Authenticate"); r.status != http.StatusBadRequest || !strings.Contains(ch, `error="invalid_request"`) {
		t.Errorf("two credentials: status %d, WWW-Authenticate %q; want 400 invalid_request", r.status, ch)
	}

	// Issuer down and no lease: 503 with Retry-After, not nginx's 500.
	iss.setDown(true)
	r = c.do(t, "GET", "/data/file.txt", bearer(freshTok))
	if r.status != http.StatusServiceUnavailable || r.one(t, "Retry-After") == "" {
		t.Errorf("issuer down: status %d, Retry-After %q; want 503 with Retry-After", r.status, r.header.Get("Retry-After"))
	}
	iss.setDown(false)

	// leasegate unreachable: still closed, 503.
	s.leasegate.Close()
	r = c.do(t, "GET", "/data/file.txt", bearer(readerTok))
	if r.status != http.StatusServiceUnavailable || r.header.Get("Retry-After") != "5" {
		t.Errorf("leasegate down: status %d, Retry-After %q; want 503 with Retry-After 5", r.status, r.header.Get("Retry-After"))
	}

	// Only the allowed requests reached the upstream.
	var allowed []string
	for _, e := range s.upstream.requests()[before:] {
		allowed = append(allowed, e.Method+" "+e.URI)
	}
	if want := []string{"GET /data/file.txt", "GET /store/run1/in.root"}; fmt.Sprint(allowed) != fmt.Sprint(want) {
		t.Errorf("upstream received %q after the first allow, want %q", allowed, want)
	}
}

// TestNginxModeHostHeader drives leasegate's nginx mode directly (no nginx
// in front, so a header can be left out) with the real engine: SPEC §4 makes
// X-Original-Host required, because the subrequest's own Host names
// leasegate and would make every absolute Destination look remote.
func TestNginxModeHostHeader(t *testing.T) {
	const readerTok = "reader-token"
	s := newE2EStack(t)
	s.issuer.add(readerTok, "bob", "read:/store")
	copyOnto := func(extra ...kv) []kv {
		return append([]kv{
			bearer(readerTok), {"X-Original-Method", "COPY"}, {"X-Original-URI", "/store/run1/in.root"},
			{"Destination", "https://storage.example.org/store/protected/victim.root"},
		}, extra...)
	}
	tests := []struct {
		name       string
		headers    []kv
		wantStatus int
		wantInWWW  string
	}{
		{
			name: "without X-Original-Host", headers: copyOnto(),
			wantStatus: http.StatusBadRequest, wantInWWW: "missing X-Original-Host",
		},
		{
			name: "with X-Original-Host naming the Destination's host", headers: copyOnto(kv{"X-Original-Host", "storage.example.org"}),
			wantStatus: http.StatusForbidden, wantInWWW: `scope="write:/store/protected/victim.root"`,
		},
		{
			name: "port of the original host kept", headers: copyOnto(kv{"X-Original-Host", "storage.example.org:443"}),
			wantStatus: http.StatusForbidden, wantInWWW: `scope="write:/store/protected/victim.root"`,
		},
	}
	c := e2eClient{base: s.leasegate.URL, client: s.leasegate.Client()}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before := s.issuer.callsFor(readerTok)
			r := c.do(t, "GET", "/_leasegate", tc.headers...)
			if ch := r.one(t, "WWW-Authenticate"); r.status != tc.wantStatus || !strings.Contains(ch, tc.wantInWWW) {
				t.Errorf("status %d, WWW-Authenticate %q; want %d with %q", r.status, ch, tc.wantStatus, tc.wantInWWW)
			}
			if tc.wantStatus == http.StatusBadRequest && s.issuer.callsFor(readerTok) != before {
				t.Error("the issuer was asked about a request refused as malformed")
			}
		})
	}
}

// TestNginxExampleConfigSyntax checks the shipped example with `nginx -t`,
// addresses untouched, only the certificate paths pointed at a test pair.
func TestNginxExampleConfigSyntax(t *testing.T) {
	bin := requireNginx(t)
	dir := t.TempDir()
	writeExampleConfig(t, dir, filepath.Join("..", "..", "examples", "nginx", "storage-gateway.conf"), nil)
	out, err := exec.Command(bin, "-t", "-p", dir+"/", "-c", filepath.Join(dir, "nginx.conf"), "-e", filepath.Join(dir, "error.log")).CombinedOutput()
	if err != nil || !bytes.Contains(out, []byte("test is successful")) {
		b, _ := os.ReadFile(filepath.Join(dir, "error.log"))
		t.Fatalf("nginx -t: %v\n%s%s", err, out, b)
	}
}

// writeExampleConfig puts the example, with each replacement applied (each
// must match exactly once) and the certificate paths pointed at a fresh
// self-signed pair, inside a minimal nginx.conf in dir. It returns a pool
// trusting the certificate.
func writeExampleConfig(t *testing.T, dir, example string, replace map[string]string) *x509.CertPool {
	t.Helper()
	raw, err := os.ReadFile(example)
	if err != nil {
		t.Fatal(err)
	}
	certPEM, keyPEM := selfSignedCert(t)
	certFile, keyFile := filepath.Join(dir, "hostcert.pem"), filepath.Join(dir, "hostkey.pem")
	writeFile(t, certFile, certPEM)
	writeFile(t, keyFile, keyPEM)
	all := map[string]string{
		"/etc/grid-security/hostcert.pem": certFile,
		"/etc/grid-security/hostkey.pem":  keyFile,
	}
	for k, v := range replace {
		all[k] = v
	}
	conf := string(raw)
	for old, repl := range all {
		if n := strings.Count(conf, old); n != 1 {
			t.Fatalf("example: %q occurs %d times, want 1 (update the test with the example)", old, n)
		}
		conf = strings.Replace(conf, old, repl, 1)
	}
	site := filepath.Join(dir, "storage-gateway.conf")
	writeFile(t, site, []byte(conf))
	var user string
	if u := nginxUser(); u != "" {
		user = "user " + u + ";\n"
	}
	main := fmt.Sprintf(`%sworker_processes 1;
pid %[2]s/nginx.pid;
error_log %[2]s/error.log info;
events { worker_connections 64; }
http {
    access_log %[2]s/access.log;
    client_body_temp_path %[2]s/client_body;
    proxy_temp_path %[2]s/proxy;
    fastcgi_temp_path %[2]s/fastcgi;
    uwsgi_temp_path %[2]s/uwsgi;
    scgi_temp_path %[2]s/scgi;
    default_type application/octet-stream;
    include %[3]s;
}
`, user, dir, site)
	writeFile(t, filepath.Join(dir, "nginx.conf"), []byte(main))
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(certPEM)
	return pool
}

func selfSignedCert(t *testing.T) (certPEM, keyPEM []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "storage.example.org"},
		DNSNames:     []string{"storage.example.org"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder})
}

func writeFile(t *testing.T, path string, b []byte) {
	t.Helper()
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
}
