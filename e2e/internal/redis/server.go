// Package redis runs real Debian redis-server processes for the fleet
// end-to-end tests (SPEC §8): a standalone server or a three-node Cluster
// on free loopback ports, with the faults the tests inject — kill and
// restart empty, SIGSTOP/SIGCONT (a hung server with open sockets), and a
// TCP proxy that black-holes one client's link — and a scan of every key
// and value, so a test can prove nothing in Redis identifies a token.
// It speaks RESP itself (resp.go) and imports no Redis client library.
package redis

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// ErrMissing reports that redis-server (or redis-cli) is not installed.
var ErrMissing = errors.New("redis-server not found: apt-get install -y redis-server redis-tools (make deps does it)")

// Binary returns the redis-server executable: $LEASEGATE_REDIS_SERVER,
// redis-server on PATH, or /usr/bin/redis-server. The error wraps
// ErrMissing.
func Binary() (string, error) { return find("LEASEGATE_REDIS_SERVER", "redis-server") }

// CLI returns the redis-cli executable, like Binary.
func CLI() (string, error) { return find("LEASEGATE_REDIS_CLI", "redis-cli") }

func find(env, name string) (string, error) {
	if p := os.Getenv(env); p != "" {
		return p, nil
	}
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	p := "/usr/bin/" + name
	if _, err := os.Stat(p); err == nil {
		return p, nil
	}
	return "", fmt.Errorf("%s: %w", name, ErrMissing)
}

// Options configures Start.
type Options struct {
	// Dir is the server's working directory (must exist); a temp dir.
	Dir string
	// Cluster starts the node with --cluster-enabled yes (nodes.conf in Dir).
	Cluster bool
	// Args are extra redis-server arguments, e.g. "--maxmemory-policy",
	// "allkeys-lru".
	Args []string
}

// Server is one redis-server process on 127.0.0.1:Port. Kill and Restart
// keep the port, so clients configured with Addr reconnect to the new
// process. Methods are safe for concurrent use.
type Server struct {
	bin  string
	opts Options
	port int

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{}
	out  *bytes.Buffer
}

// Start launches redis-server on a free loopback port with persistence off
// (--save "" --appendonly no) and waits until it answers PING.
func Start(ctx context.Context, o Options) (*Server, error) {
	bin, err := Binary()
	if err != nil {
		return nil, err
	}
	if o.Dir == "" {
		return nil, errors.New("redis: Options.Dir is empty")
	}
	// A port found free can be taken by another process before redis
	// binds it: then try another one.
	for attempt := 0; ; attempt++ {
		port, err := freePort(o.Cluster)
		if err != nil {
			return nil, err
		}
		s := &Server{bin: bin, opts: o, port: port}
		err = s.start(ctx)
		if err == nil {
			return s, nil
		}
		if attempt == 4 || !strings.Contains(s.Log(), "Address already in use") {
			return nil, err
		}
	}
}

// freePort finds a free loopback port; for a Cluster node port+10000 (the
// cluster bus) must be free too.
func freePort(cluster bool) (int, error) {
	for range 50 {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return 0, fmt.Errorf("redis: free port: %w", err)
		}
		port := ln.Addr().(*net.TCPAddr).Port
		ln.Close()
		if !cluster {
			return port, nil
		}
		if port+10000 > 65535 {
			continue
		}
		bus, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port+10000))
		if err != nil {
			continue
		}
		bus.Close()
		return port, nil
	}
	return 0, errors.New("redis: no free port (with a free cluster bus port)")
}

func (s *Server) start(ctx context.Context) error {
	args := []string{
		"--port", strconv.Itoa(s.port), "--bind", "127.0.0.1",
		"--save", "", "--appendonly", "no",
		"--dir", s.opts.Dir, "--daemonize", "no", "--loglevel", "warning",
		"--logfile", "", "--protected-mode", "no",
	}
	if s.opts.Cluster {
		args = append(args, "--cluster-enabled", "yes", "--cluster-config-file",
			filepath.Join(s.opts.Dir, "nodes.conf"), "--cluster-node-timeout", "2000")
	}
	args = append(args, s.opts.Args...)
	cmd := exec.Command(s.bin, args...)
	cmd.SysProcAttr = sysProcAttr()
	out := &bytes.Buffer{}
	cmd.Stdout, cmd.Stderr = syncWriter{&s.mu, out}, syncWriter{&s.mu, out}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("redis: start %s: %w", s.bin, err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	s.mu.Lock()
	s.cmd, s.done, s.out = cmd, done, out
	s.mu.Unlock()

	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	for {
		if err := s.Ping(ctx); err == nil {
			return nil
		}
		select {
		case <-done:
			return fmt.Errorf("redis: redis-server exited at start: %s", s.Log())
		case <-ctx.Done():
			s.Kill()
			return fmt.Errorf("redis: redis-server never answered PING: %w (log: %s)", ctx.Err(), s.Log())
		case <-time.After(20 * time.Millisecond):
		}
	}
}

type syncWriter struct {
	mu *sync.Mutex
	b  *bytes.Buffer
}

func (w syncWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}

// Addr is host:port.
func (s *Server) Addr() string { return "127.0.0.1:" + strconv.Itoa(s.port) }

// Port is the server's port.
func (s *Server) Port() int { return s.port }

// Log is what the current process wrote.
func (s *Server) Log() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.out == nil {
		return ""
	}
	return s.out.String()
}

// Pid is the current process id (0 when none runs).
func (s *Server) Pid() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		return 0
	}
	return s.cmd.Process.Pid
}

// Ping dials, sends PING and wants PONG.
func (s *Server) Ping(ctx context.Context) error {
	pctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	c, err := Dial(pctx, s.Addr())
	if err != nil {
		return err
	}
	defer c.Close()
	v, err := c.String(pctx, "PING")
	if err != nil {
		return err
	}
	if v != "PONG" {
		return fmt.Errorf("redis: PING answered %q", v)
	}
	return nil
}

// Do runs one command on a fresh connection.
func (s *Server) Do(ctx context.Context, args ...string) (any, error) {
	c, err := Dial(ctx, s.Addr())
	if err != nil {
		return nil, err
	}
	defer c.Close()
	return c.Do(ctx, args...)
}

// Kill SIGKILLs the server (a crash: every key is gone, persistence is
// off) and waits for it to exit. Killing a dead server is a no-op.
func (s *Server) Kill() {
	s.mu.Lock()
	cmd, done := s.cmd, s.done
	s.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	_ = cmd.Process.Kill()
	<-done
}

// Restart kills the server and starts a new, empty one on the same port
// (a Cluster node keeps its nodes.conf, so it rejoins with its slots but
// no data).
func (s *Server) Restart(ctx context.Context) error {
	s.Kill()
	return s.start(ctx)
}

// Stop sends SIGSTOP: the server hangs with every socket open.
func (s *Server) Stop() error { return s.signal(syscall.SIGSTOP) }

// Cont sends SIGCONT after Stop.
func (s *Server) Cont() error { return s.signal(syscall.SIGCONT) }

func (s *Server) signal(sig syscall.Signal) error {
	pid := s.Pid()
	if pid == 0 {
		return errors.New("redis: no server running")
	}
	if err := syscall.Kill(pid, sig); err != nil {
		return fmt.Errorf("redis: signal %v: %w", sig, err)
	}
	return nil
}

// KillClients runs CLIENT KILL TYPE normal: every normal client is
// disconnected (the caller's own connection is skipped).
func (s *Server) KillClients(ctx context.Context) (int64, error) {
	v, err := s.Do(ctx, "CLIENT", "KILL", "TYPE", "normal", "SKIPME", "yes")
	if err != nil {
		return 0, err
	}
	n, _ := v.(int64)
	return n, nil
}

// Close kills the server (with SIGCONT first, in case it was stopped).
func (s *Server) Close() {
	_ = s.Cont()
	s.Kill()
}
