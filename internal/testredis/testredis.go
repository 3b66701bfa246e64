//go:build unix

// Package testredis starts a real redis-server for the tests of the
// packages that wire the fleet store (authz, server). It follows the
// nginx-test pattern: without redis-server the test is skipped, or fails
// when LEASEGATE_E2E_REQUIRE is set (as make test sets it). Each server
// listens on a free loopback port, keeps nothing on disk and is killed at
// cleanup. leasecache/fleet has its own, fuller harness (Cluster, TLS,
// Sentinel).
//
// It is a test helper: import it only from _test.go files (`make lint`
// fails otherwise).
package testredis

import (
	"bufio"
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
)

// Server is one redis-server process.
type Server struct {
	port int
	dir  string

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{}
}

// Binary returns redis-server's path, or skips t (fails it under
// LEASEGATE_E2E_REQUIRE).
func Binary(t testing.TB) string {
	t.Helper()
	for _, p := range []string{"redis-server", "/usr/bin/redis-server"} {
		if path, err := exec.LookPath(p); err == nil {
			return path
		}
	}
	const why = "redis-server is not installed (apt-get install redis-server)"
	if os.Getenv("LEASEGATE_E2E_REQUIRE") != "" {
		t.Fatalf("LEASEGATE_E2E_REQUIRE is set: %s", why)
	}
	t.Skip(why)
	return ""
}

// Start starts redis-server with args on a free loopback port and kills it
// when the test ends.
func Start(t testing.TB, args ...string) *Server {
	t.Helper()
	bin := Binary(t)
	s := &Server{dir: t.TempDir()}
	var err error
	for range 4 {
		l, lerr := net.Listen("tcp", "127.0.0.1:0")
		if lerr != nil {
			t.Fatal(lerr)
		}
		s.port = l.Addr().(*net.TCPAddr).Port
		l.Close()
		if err = s.start(bin, args); err == nil {
			t.Cleanup(s.Kill)
			return s
		}
	}
	t.Fatal(err)
	return nil
}

// Addr is host:port.
func (s *Server) Addr() string { return "127.0.0.1:" + strconv.Itoa(s.port) }

func (s *Server) start(bin string, args []string) error {
	cmd := exec.Command(bin, append([]string{"--port", strconv.Itoa(s.port), "--bind", "127.0.0.1",
		"--save", "", "--appendonly", "no", "--dir", s.dir, "--logfile", filepath.Join(s.dir, "redis.log")}, args...)...)
	if err := cmd.Start(); err != nil {
		return err
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	s.mu.Lock()
	s.cmd, s.done = cmd, done
	s.mu.Unlock()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		select {
		case <-done:
			b, _ := os.ReadFile(filepath.Join(s.dir, "redis.log"))
			return fmt.Errorf("redis-server on %d exited:\n%s", s.port, b)
		default:
		}
		if s.ping() == nil {
			return nil
		}
	}
	s.Kill()
	return fmt.Errorf("redis-server on %d did not answer PING", s.port)
}

func (s *Server) ping() error {
	c, err := net.DialTimeout("tcp", s.Addr(), 200*time.Millisecond)
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
	if !strings.HasPrefix(line, "+PONG") {
		return fmt.Errorf("PING: %q", line)
	}
	return nil
}

func (s *Server) signal(sig syscall.Signal) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd != nil && s.cmd.Process != nil {
		_ = s.cmd.Process.Signal(sig)
	}
}

// Stop freezes the server (SIGSTOP): sockets stay open, nothing answers,
// as a hung or black-holed Redis. Cont resumes it.
func (s *Server) Stop() { s.signal(syscall.SIGSTOP) }

// Cont resumes a stopped server.
func (s *Server) Cont() { s.signal(syscall.SIGCONT) }

// Kill stops the server for good and waits for it to exit. Idempotent.
func (s *Server) Kill() {
	s.signal(syscall.SIGCONT)
	s.signal(syscall.SIGKILL)
	s.mu.Lock()
	done := s.done
	s.cmd, s.done = nil, nil
	s.mu.Unlock()
	if done != nil {
		<-done
	}
}
