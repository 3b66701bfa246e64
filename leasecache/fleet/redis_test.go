//go:build unix

package fleet

// Real Redis for the tests: redis-server and redis-cli from Debian
// (redis-server, redis-tools), found on PATH or in /usr/bin. When missing
// and running as root they are installed with apt-get; otherwise the
// tests skip, or fail when LEASEGATE_E2E_REQUIRE is set (as make test
// sets it). Every server listens on a free loopback port, keeps nothing
// on disk, and is killed at cleanup.

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/redis/rueidis"
)

var (
	redisOnce    sync.Once
	redisBin     string // redis-server
	redisCLI     string
	redisSent    string // redis-sentinel, "" when missing
	redisProblem string
)

// requireRedis returns redis-server's path, installing it when it can, or
// skips (fails under LEASEGATE_E2E_REQUIRE).
func requireRedis(t testing.TB) string {
	t.Helper()
	redisOnce.Do(func() { redisProblem = findRedis() })
	if redisProblem != "" {
		if os.Getenv("LEASEGATE_E2E_REQUIRE") != "" {
			t.Fatalf("LEASEGATE_E2E_REQUIRE is set: %s", redisProblem)
		}
		t.Skip(redisProblem)
	}
	return redisBin
}

func findRedis() string {
	lookup := func(name string) string {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
		if _, err := os.Stat("/usr/bin/" + name); err == nil {
			return "/usr/bin/" + name
		}
		return ""
	}
	redisBin, redisCLI = lookup("redis-server"), lookup("redis-cli")
	if redisBin == "" || redisCLI == "" {
		if os.Geteuid() != 0 {
			return "redis-server or redis-cli is not installed and the test is not root, so it cannot apt-get install them"
		}
		if _, err := exec.LookPath("apt-get"); err != nil {
			return "redis-server is not installed and there is no apt-get to install it"
		}
		if out, err := aptInstall("redis-server", "redis-tools", "redis-sentinel"); err != nil {
			return fmt.Sprintf("apt-get install redis-server: %v\n%s", err, out)
		}
		if redisBin, redisCLI = lookup("redis-server"), lookup("redis-cli"); redisBin == "" || redisCLI == "" {
			return "apt-get installed redis-server but no redis-server or redis-cli was found"
		}
	}
	redisSent = lookup("redis-sentinel")
	return ""
}

// aptInstall installs Debian packages; the image's policy-rc.d keeps the
// system service from starting.
func aptInstall(pkgs ...string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	apt := func(args ...string) ([]byte, error) {
		cmd := exec.CommandContext(ctx, "apt-get", append([]string{"-o", "DPkg::Lock::Timeout=300", "-q"}, args...)...)
		cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
		return cmd.CombinedOutput()
	}
	install := append([]string{"install", "-y", "--no-install-recommends"}, pkgs...)
	out, err := apt(install...)
	if err == nil {
		return out, nil
	}
	if upd, err := apt("update"); err != nil {
		return append(out, upd...), fmt.Errorf("apt-get update: %w", err)
	}
	return apt(install...)
}

// redisServer is one redis-server process.
type redisServer struct {
	port int
	dir  string
	args []string // beyond the port and persistence flags
	tls  bool     // the port speaks TLS (args carry the tls-* flags)

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{} // closed when cmd has exited
}

func (r *redisServer) addr() string { return "127.0.0.1:" + strconv.Itoa(r.port) }

// startRedis starts redis-server on a free loopback port, waits for it,
// and kills it when the test ends.
func startRedis(t testing.TB, args ...string) *redisServer {
	t.Helper()
	requireRedis(t)
	r, err := newRedis(t.TempDir(), false, args...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.kill)
	return r
}

// newRedis starts a server keeping its files in dir; tlsPort makes the
// port speak TLS only (args carry the tls-* flags).
func newRedis(dir string, tlsPort bool, args ...string) (*redisServer, error) {
	r := &redisServer{dir: dir, args: args, tls: tlsPort}
	var err error
	for attempt := 0; attempt < 4; attempt++ {
		l, lerr := net.Listen("tcp", "127.0.0.1:0")
		if lerr != nil {
			return nil, lerr
		}
		r.port = l.Addr().(*net.TCPAddr).Port
		l.Close()
		if err = r.start(); err == nil {
			return r, nil
		}
	}
	return nil, err
}

func (r *redisServer) start() error {
	portFlag := "--port"
	if r.tls {
		portFlag = "--tls-port"
	}
	args := []string{portFlag, strconv.Itoa(r.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
		"--dir", r.dir, "--logfile", filepath.Join(r.dir, "redis.log")}
	if r.tls {
		args = append(args, "--port", "0")
	}
	cmd := exec.Command(redisBin, append(args, r.args...)...)
	cmd.Dir = r.dir
	if err := cmd.Start(); err != nil {
		return err
	}
	done := make(chan struct{})
	var waitErr error
	go func() { waitErr = cmd.Wait(); close(done) }()
	r.mu.Lock()
	r.cmd, r.done = cmd, done
	r.mu.Unlock()
	ready := func() bool {
		if !r.tls {
			return r.ping() == nil
		}
		c, err := net.DialTimeout("tcp", r.addr(), 200*time.Millisecond)
		if err == nil {
			c.Close()
		}
		return err == nil
	}
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-done:
			return fmt.Errorf("redis-server on %d exited: %v\n%s", r.port, waitErr, r.log())
		default:
		}
		if ready() {
			return nil
		}
		time.Sleep(20 * time.Millisecond)
	}
	_ = cmd.Process.Kill()
	<-done
	return fmt.Errorf("redis-server on %d did not answer PING\n%s", r.port, r.log())
}

func (r *redisServer) log() string {
	b, _ := os.ReadFile(filepath.Join(r.dir, "redis.log"))
	return lastLines(string(b), 20)
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

// ping speaks RESP by hand: no client library between the test and the
// server's liveness.
func (r *redisServer) ping() error {
	c, err := net.DialTimeout("tcp", r.addr(), 200*time.Millisecond)
	if err != nil {
		return err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(500 * time.Millisecond))
	if _, err := io.WriteString(c, "PING\r\n"); err != nil {
		return err
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return err
	}
	if !strings.HasPrefix(line, "+PONG") && !strings.HasPrefix(line, "-NOAUTH") {
		return fmt.Errorf("PING: %q", line)
	}
	return nil
}

func (r *redisServer) signal(sig syscall.Signal) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.cmd != nil && r.cmd.Process != nil {
		_ = r.cmd.Process.Signal(sig)
	}
}

// kill stops the server for good (SIGCONT first, so a stopped one dies)
// and waits for it to exit.
func (r *redisServer) kill() {
	r.signal(syscall.SIGCONT)
	r.signal(syscall.SIGKILL)
	r.mu.Lock()
	done := r.done
	r.cmd, r.done = nil, nil
	r.mu.Unlock()
	if done != nil {
		<-done
	}
}

// restartEmpty kills the server and starts a new, empty one on the same
// port, as a crashed Redis without persistence comes back.
func (r *redisServer) restartEmpty(t testing.TB) {
	t.Helper()
	r.kill()
	var err error
	for i := 0; i < 50; i++ {
		if err = r.start(); err == nil {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatal(err)
}

// cli runs redis-cli against the server.
func (r *redisServer) cli(args ...string) (string, error) {
	out, err := exec.Command(redisCLI, append([]string{"-h", "127.0.0.1", "-p", strconv.Itoa(r.port)}, args...)...).CombinedOutput()
	return strings.TrimSpace(string(out)), err
}

// redisCluster is three primaries joined with redis-cli --cluster create.
type redisCluster struct {
	nodes []*redisServer
}

func (c *redisCluster) addrs() []string {
	var a []string
	for _, n := range c.nodes {
		a = append(a, n.addr())
	}
	return a
}

func startCluster(t testing.TB) *redisCluster {
	t.Helper()
	requireRedis(t)
	c, err := newCluster(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.kill)
	return c
}

func newCluster(dir string) (*redisCluster, error) {
	c := &redisCluster{}
	for i := range 3 {
		d := filepath.Join(dir, strconv.Itoa(i))
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, err
		}
		n, err := newRedis(d, false, "--cluster-enabled", "yes",
			"--cluster-config-file", filepath.Join(d, "nodes.conf"), "--cluster-node-timeout", "2000")
		if err != nil {
			c.kill()
			return nil, err
		}
		c.nodes = append(c.nodes, n)
	}
	args := append([]string{"--cluster", "create"}, c.addrs()...)
	args = append(args, "--cluster-replicas", "0", "--cluster-yes")
	if out, err := exec.Command(redisCLI, args...).CombinedOutput(); err != nil {
		c.kill()
		return nil, fmt.Errorf("redis-cli --cluster create: %v\n%s", err, out)
	}
	deadline := time.Now().Add(20 * time.Second)
	for _, n := range c.nodes {
		for {
			info, _ := n.cli("cluster", "info")
			if strings.Contains(info, "cluster_state:ok") {
				break
			}
			if time.Now().After(deadline) {
				c.kill()
				return nil, fmt.Errorf("cluster did not become ok: %s", info)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	return c, nil
}

func (c *redisCluster) kill() {
	for _, n := range c.nodes {
		n.kill()
	}
}

// rawClient is a plain client for the tests' own reads and writes.
func rawClient(t testing.TB, addrs ...string) rueidis.Client {
	t.Helper()
	c, err := rueidis.NewClient(rueidis.ClientOption{InitAddress: addrs, DisableCache: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

// proxy forwards TCP to a Redis and can black-hole the link: connections
// stay open and accepted, bytes stop flowing both ways.
type proxy struct {
	l      net.Listener
	target string

	mu    sync.Mutex
	hole  bool
	cond  *sync.Cond
	conns []net.Conn
}

func startProxy(t testing.TB, target string) *proxy {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &proxy{l: l, target: target}
	p.cond = sync.NewCond(&p.mu)
	go p.serve()
	t.Cleanup(p.close)
	return p
}

func (p *proxy) addr() string { return p.l.Addr().String() }

func (p *proxy) serve() {
	for {
		c, err := p.l.Accept()
		if err != nil {
			return
		}
		u, err := net.Dial("tcp", p.target)
		if err != nil {
			c.Close()
			continue
		}
		p.mu.Lock()
		p.conns = append(p.conns, c, u)
		p.mu.Unlock()
		go p.pump(c, u)
		go p.pump(u, c)
	}
}

// pump copies src to dst, holding each chunk while the link is black-holed
// (a partition delays, then delivers, as TCP retransmission would).
func (p *proxy) pump(dst, src net.Conn) {
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			p.mu.Lock()
			for p.hole {
				p.cond.Wait()
			}
			p.mu.Unlock()
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			if !errors.Is(err, net.ErrClosed) {
				dst.Close()
			}
			return
		}
	}
}

func (p *proxy) blackhole(on bool) {
	p.mu.Lock()
	p.hole = on
	p.mu.Unlock()
	p.cond.Broadcast()
}

func (p *proxy) close() {
	p.l.Close()
	p.blackhole(false)
	p.mu.Lock()
	for _, c := range p.conns {
		c.Close()
	}
	p.mu.Unlock()
}
