package storage

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"
)

// child is one foreground server process this package started, in its own
// process group and killed by the kernel if the test process dies.
type child struct {
	name string
	cmd  *exec.Cmd
	out  *lockedBuffer
	done chan struct{}
	err  error
	logs func() string // what to show when it fails (stdout/stderr and log files)
	once sync.Once
}

// startChild starts cmd and waits until addr accepts connections.
func startChild(ctx context.Context, name string, cmd *exec.Cmd, addr string, logs func() string) (*child, error) {
	c := &child{name: name, cmd: cmd, out: &lockedBuffer{}, done: make(chan struct{})}
	c.logs = func() string {
		s := c.out.String()
		if logs != nil {
			s += logs()
		}
		return lastLines([]byte(s), 40)
	}
	cmd.Stdout, cmd.Stderr = c.out, c.out
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Setpgid = true
	cmd.SysProcAttr.Pdeathsig = syscall.SIGKILL
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	go func() {
		c.err = cmd.Wait()
		close(c.done)
	}()
	ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	for {
		conn, err := net.DialTimeout("tcp", addr, 100*time.Millisecond)
		if err == nil {
			conn.Close()
			return c, nil
		}
		select {
		case <-c.done:
			return nil, fmt.Errorf("%s exited before listening on %s: %v\n%s", name, addr, c.err, c.logs())
		case <-ctx.Done():
			c.stop()
			return nil, fmt.Errorf("%s did not listen on %s: %w\n%s", name, addr, ctx.Err(), c.logs())
		case <-time.After(25 * time.Millisecond):
		}
	}
}

// stop sends SIGTERM and, after 5 s, kills the process group it started.
func (c *child) stop() {
	c.once.Do(func() {
		_ = c.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-c.done:
		case <-time.After(5 * time.Second):
			_ = syscall.Kill(-c.cmd.Process.Pid, syscall.SIGKILL)
			<-c.done
		}
	})
}

// running reports whether the process has not exited.
func (c *child) running() bool {
	select {
	case <-c.done:
		return false
	default:
		return true
	}
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.b.Len() > 4<<20 {
		return len(p), nil // enough to diagnose; never grow without bound
	}
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// FreeAddr is a free loopback address ("127.0.0.1:port"). Another process
// may take the port before the caller binds it; callers retry on a start
// failure.
func FreeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

// render applies each replacement to the shipped example, each exactly
// once, so a changed example breaks the test loudly instead of silently
// running something else.
func render(example string, replace [][2]string) ([]byte, error) {
	raw, err := os.ReadFile(example)
	if err != nil {
		return nil, err
	}
	s := string(raw)
	for _, r := range replace {
		if n := strings.Count(s, r[0]); n != 1 {
			return nil, fmt.Errorf("%s: %q occurs %d times, want 1 (update the harness with the example)", example, r[0], n)
		}
		s = strings.Replace(s, r[0], r[1], 1)
	}
	return []byte(s), nil
}
