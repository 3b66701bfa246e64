// Package hydra runs a real ORY Hydra (the version pinned in e2e/go.mod,
// built by e2e/build-hydra.sh) as a child process and drives its admin and
// public APIs, so leasegate's end-to-end tests and demos can use a real
// OAuth 2.0 issuer: clients, client_credentials tokens (opaque or JWT), the
// authorization-code flow with login and consent accepted through the admin
// API (access, refresh and ID tokens; see AuthCodeFlow), revocation,
// introspection, JWKS and signing-key rotation. It also provides
// CountingProxy, which counts the calls leasegate makes to the issuer.
//
// Hydra runs with an in-memory database: everything it knows (clients,
// tokens, keys) is lost when it stops. The package is Unix-only.
package hydra

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Paths of the Hydra endpoints the harness and its users need.
const (
	IntrospectPath = "/admin/oauth2/introspect"
	JWKSPath       = "/.well-known/jwks.json"
	TokenPath      = "/oauth2/token"
	RevokePath     = "/oauth2/revoke"
	DiscoveryPath  = "/.well-known/openid-configuration"
	readyPath      = "/health/ready"
)

// Defaults applied when the matching Options field is zero.
const (
	DefaultReadyTimeout = 30 * time.Second
	DefaultStopTimeout  = 10 * time.Second
)

// Options configures Start. The zero value runs Hydra with opaque access
// tokens and its default token lifetime (1h).
type Options struct {
	// JWT makes JWT the server-wide access-token strategy
	// (STRATEGIES_ACCESS_TOKEN=jwt), with scopes in both the "scope" string
	// and the "scp" array claim (STRATEGIES_JWT_SCOPE_CLAIM=both). A client
	// can still override it with ClientOptions.AccessTokenStrategy.
	JWT bool
	// AccessTokenTTL sets TTL_ACCESS_TOKEN; zero keeps Hydra's default.
	AccessTokenTTL time.Duration
	// ReadyTimeout bounds the wait for /health/ready on both ports;
	// zero means DefaultReadyTimeout.
	ReadyTimeout time.Duration
	// StopTimeout is how long Stop waits after SIGTERM before SIGKILL;
	// zero means DefaultStopTimeout.
	StopTimeout time.Duration
	// Binary is the hydra executable; empty means Binary().
	Binary string
	// Log, when set, also receives Hydra's stdout and stderr (for example
	// an *os.File). The output is always kept in memory too; see Logs.
	Log io.Writer
	// Env holds extra KEY=VALUE entries for Hydra's environment, added after
	// the harness's own so they take precedence.
	Env []string
}

// Server is a running (or stopped) Hydra child process. Its ports, issuer
// and system secret stay fixed for its lifetime, so Restart brings the
// issuer back at the same URLs. Methods are safe for concurrent use.
type Server struct {
	opts       Options
	bin        string
	secret     string
	publicPort int
	adminPort  int
	logs       *logBuffer
	http       *http.Client

	mu   sync.Mutex
	proc *process // nil while stopped
}

// process is one run of the hydra binary.
type process struct {
	cmd  *exec.Cmd
	done chan struct{} // closed once cmd.Wait has returned
	err  error         // cmd.Wait's result, readable after done
}

// Start launches `hydra serve all --dev --sqa-opt-out` on free loopback
// ports and returns once the admin and public /health/ready endpoints answer
// 200. ctx bounds only the startup; the process runs until Stop. On failure
// nothing is left running and the error includes the tail of Hydra's log.
func Start(ctx context.Context, opts Options) (*Server, error) {
	bin := opts.Binary
	if bin == "" {
		var err error
		if bin, err = Binary(); err != nil {
			return nil, err
		}
	}
	secret, err := randomHex(32)
	if err != nil {
		return nil, fmt.Errorf("hydra: system secret: %w", err)
	}
	s := &Server{
		opts:   opts,
		bin:    bin,
		secret: secret,
		logs:   newLogBuffer(4 << 20),
		http:   &http.Client{Timeout: 10 * time.Second},
	}
	// Free ports are found by binding :0 and closing, so another process can
	// grab one before Hydra binds it; retry with fresh ports when that happens.
	const attempts = 3
	for i := 1; ; i++ {
		if s.publicPort, s.adminPort, err = freePorts(); err != nil {
			return nil, fmt.Errorf("hydra: %w", err)
		}
		err = s.launch(ctx)
		if err == nil {
			return s, nil
		}
		if i == attempts || !errors.Is(err, errAddrInUse) || ctx.Err() != nil {
			return nil, err
		}
	}
}

// Restart starts Hydra again on the same ports with the same issuer and
// system secret after Stop (it stops a running process first). The
// in-memory database starts empty: clients must be created again, earlier
// tokens are unknown and JWT signing keys are new.
func (s *Server) Restart(ctx context.Context) error {
	if err := s.Stop(); err != nil {
		return err
	}
	// The previous listeners are closed once Stop returns, but retry briefly
	// in case the kernel has not released the ports yet.
	var err error
	for i := 0; i < 5; i++ {
		if err = s.launch(ctx); err == nil || !errors.Is(err, errAddrInUse) {
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(200 * time.Millisecond):
		}
	}
	return err
}

// Stop terminates the Hydra process this Server started (SIGTERM to its
// process group, SIGKILL after Options.StopTimeout) and waits for it to
// exit. Stopping a stopped Server is a no-op.
func (s *Server) Stop() error {
	s.mu.Lock()
	p := s.proc
	s.proc = nil
	s.mu.Unlock()
	if p == nil {
		return nil
	}
	return p.stop(durationOr(s.opts.StopTimeout, DefaultStopTimeout))
}

// Running reports whether the Hydra process is up (started and not exited).
func (s *Server) Running() bool {
	s.mu.Lock()
	p := s.proc
	s.mu.Unlock()
	if p == nil {
		return false
	}
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

// PublicURL is the base URL of Hydra's public port, without trailing slash.
func (s *Server) PublicURL() string { return "http://127.0.0.1:" + strconv.Itoa(s.publicPort) }

// AdminURL is the base URL of Hydra's admin port, without trailing slash.
func (s *Server) AdminURL() string { return "http://127.0.0.1:" + strconv.Itoa(s.adminPort) }

// Issuer is the exact "iss" value Hydra puts in tokens, introspection
// answers and discovery: the public base URL, without trailing slash.
func (s *Server) Issuer() string { return s.PublicURL() }

// IntrospectURL is the RFC 7662 endpoint on the admin port. It needs no
// client authentication (Hydra expects the admin port to be protected by
// the network).
func (s *Server) IntrospectURL() string { return s.AdminURL() + IntrospectPath }

// JWKSURL is the public JSON Web Key Set, which lists the signing keys of
// JWT access tokens and ID tokens.
func (s *Server) JWKSURL() string { return s.PublicURL() + JWKSPath }

// TokenURL is the OAuth 2.0 token endpoint on the public port.
func (s *Server) TokenURL() string { return s.PublicURL() + TokenPath }

// Logs returns Hydra's captured stdout and stderr (the most recent few
// MiB), across restarts.
func (s *Server) Logs() string { return s.logs.String() }

// launch starts one hydra process and waits for readiness.
func (s *Server) launch(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.proc != nil {
		return errors.New("hydra: already running")
	}
	var out io.Writer = s.logs
	if s.opts.Log != nil {
		out = io.MultiWriter(s.logs, s.opts.Log)
	}
	cmd := exec.Command(s.bin, "serve", "all", "--dev", "--sqa-opt-out")
	cmd.Env = s.env()
	cmd.Stdout = out
	cmd.Stderr = out
	cmd.SysProcAttr = sysProcAttr()
	// Hydra spawns no children, but never let a stray pipe holder block Wait.
	cmd.WaitDelay = 5 * time.Second
	mark := s.logs.Len()
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("hydra: start %s: %w", s.bin, err)
	}
	p := &process{cmd: cmd, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()

	if err := s.waitReady(ctx, p); err != nil {
		_ = p.stop(durationOr(s.opts.StopTimeout, DefaultStopTimeout))
		log := s.logs.Since(mark)
		if strings.Contains(log, "address already in use") {
			err = fmt.Errorf("%w: %w", errAddrInUse, err)
		}
		return fmt.Errorf("hydra: %w\n--- hydra log (tail) ---\n%s", err, tail(log, 4096))
	}
	s.proc = p
	return nil
}

func (s *Server) env() []string {
	env := []string{
		"DSN=memory",
		"SECRETS_SYSTEM=" + s.secret,
		"URLS_SELF_ISSUER=" + s.Issuer(),
		"SERVE_PUBLIC_HOST=127.0.0.1",
		"SERVE_PUBLIC_PORT=" + strconv.Itoa(s.publicPort),
		"SERVE_ADMIN_HOST=127.0.0.1",
		"SERVE_ADMIN_PORT=" + strconv.Itoa(s.adminPort),
		// The authorization-code flow's login and consent "UI": nothing
		// listens there, AuthCodeFlow accepts the challenges via the admin API.
		"URLS_LOGIN=" + LoginURL,
		"URLS_CONSENT=" + ConsentURL,
		"URLS_ERROR=" + ErrorURL,
	}
	// Only a few inherited variables: Hydra reads its whole configuration
	// from the environment, so stray DSN=… or SERVE_… must not leak in.
	for _, k := range []string{"PATH", "HOME", "TMPDIR", "TZ"} {
		if v, ok := os.LookupEnv(k); ok {
			env = append(env, k+"="+v)
		}
	}
	if s.opts.JWT {
		env = append(env, "STRATEGIES_ACCESS_TOKEN=jwt", "STRATEGIES_JWT_SCOPE_CLAIM=both")
	}
	if s.opts.AccessTokenTTL > 0 {
		env = append(env, "TTL_ACCESS_TOKEN="+s.opts.AccessTokenTTL.String())
	}
	return append(env, s.opts.Env...)
}

func (s *Server) waitReady(ctx context.Context, p *process) error {
	ctx, cancel := context.WithTimeout(ctx, durationOr(s.opts.ReadyTimeout, DefaultReadyTimeout))
	defer cancel()
	urls := []string{s.AdminURL() + readyPath, s.PublicURL() + readyPath}
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		if s.ready(ctx, urls) {
			return nil
		}
		select {
		case <-p.done:
			return fmt.Errorf("exited before becoming ready: %v", p.err)
		case <-ctx.Done():
			return fmt.Errorf("not ready: %w", ctx.Err())
		case <-tick.C:
		}
	}
}

func (s *Server) ready(ctx context.Context, urls []string) bool {
	for _, u := range urls {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
		if err != nil {
			return false
		}
		resp, err := s.http.Do(req)
		if err != nil {
			return false
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return false
		}
	}
	return true
}

// stop signals the process group and waits for the process to exit.
func (p *process) stop(grace time.Duration) error {
	select {
	case <-p.done:
		return nil
	default:
	}
	// The group id is the child's pid (Setpgid). A pid is not reused while
	// the child is unreaped; the window between the done check above and the
	// reaping in Wait is negligible for a test harness.
	pgid := p.cmd.Process.Pid
	_ = syscall.Kill(-pgid, syscall.SIGTERM)
	select {
	case <-p.done:
		return nil
	case <-time.After(grace):
	}
	select {
	case <-p.done:
		return nil
	default:
		_ = syscall.Kill(-pgid, syscall.SIGKILL)
	}
	select {
	case <-p.done:
		return nil
	case <-time.After(grace):
		return fmt.Errorf("hydra: pid %d did not exit after SIGKILL", pgid)
	}
}

var errAddrInUse = errors.New("port already in use")

// freePorts returns two distinct free loopback ports.
func freePorts() (int, int, error) {
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	var ports []int
	for range 2 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return 0, 0, fmt.Errorf("find free port: %w", err)
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports[0], ports[1], nil
}

func randomHex(n int) (string, error) {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return hex.EncodeToString(b), nil
}

func durationOr(d, def time.Duration) time.Duration {
	if d > 0 {
		return d
	}
	return def
}

func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return "…" + s[len(s)-n:]
}
