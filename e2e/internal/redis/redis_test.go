package redis

import (
	"context"
	"errors"
	"net"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"
)

func need(t *testing.T) {
	t.Helper()
	if _, err := Binary(); err != nil {
		if os.Getenv("LEASEGATE_E2E_REQUIRE") != "" {
			t.Fatalf("%v", err)
		}
		t.Skip(err)
	}
}

func ctxT(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

func startT(t *testing.T, o Options) *Server {
	t.Helper()
	if o.Dir == "" {
		o.Dir = t.TempDir()
	}
	s, err := Start(ctxT(t, 20*time.Second), o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return s
}

// TestServerRestartEmpty: persistence is off, so a restart on the same
// port comes back with no keys.
func TestServerRestartEmpty(t *testing.T) {
	t.Parallel()
	need(t)
	s := startT(t, Options{})
	ctx := ctxT(t, 20*time.Second)
	if _, err := s.Do(ctx, "SET", "k", "v"); err != nil {
		t.Fatal(err)
	}
	if v, err := s.Do(ctx, "CONFIG", "GET", "save"); err != nil || flatten(nil, v)[1] != "" {
		t.Errorf("CONFIG GET save = %v, %v; want empty", v, err)
	}
	pid := s.Pid()
	if err := s.Restart(ctx); err != nil {
		t.Fatal(err)
	}
	if s.Pid() == pid {
		t.Error("Restart kept the pid")
	}
	if v, err := s.Do(ctx, "GET", "k"); err != nil || v != nil {
		t.Errorf("GET k after restart = %v, %v; want nil", v, err)
	}
}

// TestServerStopCont: a SIGSTOPped server keeps its socket open and
// answers nothing until SIGCONT.
func TestServerStopCont(t *testing.T) {
	t.Parallel()
	need(t)
	s := startT(t, Options{})
	ctx := ctxT(t, 20*time.Second)
	c, err := Dial(ctx, s.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := s.Stop(); err != nil {
		t.Fatal(err)
	}
	short, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancel()
	if _, err := c.Do(short, "PING"); err == nil {
		t.Fatal("a stopped server answered PING")
	} else if ne := (net.Error)(nil); !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("PING on a stopped server: %v, want a timeout", err)
	}
	if err := s.Cont(); err != nil {
		t.Fatal(err)
	}
	if err := s.Ping(ctx); err != nil {
		t.Fatalf("PING after SIGCONT: %v", err)
	}
}

// TestProxyBlackHole: through the proxy PING works; black-holed, the
// connection stays open and nothing comes back; healed, a new connection
// works again.
func TestProxyBlackHole(t *testing.T) {
	t.Parallel()
	need(t)
	s := startT(t, Options{})
	ctx := ctxT(t, 20*time.Second)
	p, err := NewProxy(s.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	c, err := Dial(ctx, p.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if v, err := c.String(ctx, "PING"); err != nil || v != "PONG" {
		t.Fatalf("PING through the proxy: %q %v", v, err)
	}
	p.BlackHole()
	short, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancel()
	if _, err := c.Do(short, "PING"); err == nil {
		t.Fatal("PING answered through a black hole")
	} else if ne := (net.Error)(nil); !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("PING through a black hole: %v, want a timeout (the link must stay open)", err)
	}
	// A new connection is accepted but gets nothing either.
	c2, err := Dial(ctx, p.Addr())
	if err != nil {
		t.Fatalf("dial a black-holed proxy: %v", err)
	}
	defer c2.Close()
	short2, cancel2 := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancel2()
	if _, err := c2.Do(short2, "PING"); err == nil {
		t.Fatal("a new connection got through a black hole")
	}
	p.Heal()
	c3, err := Dial(ctx, p.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c3.Close()
	if v, err := c3.String(ctx, "PING"); err != nil || v != "PONG" {
		t.Fatalf("PING after Heal: %q %v", v, err)
	}
}

// TestScan finds every key of every type, and what each holds.
func TestScan(t *testing.T) {
	t.Parallel()
	need(t)
	s := startT(t, Options{})
	ctx := ctxT(t, 20*time.Second)
	for _, cmd := range [][]string{
		{"SET", "str", "needle-1"},
		{"HSET", "h", "f", "needle-2"},
		{"XADD", "st", "*", "k", "needle-3"},
		{"RPUSH", "l", "needle-4"},
		{"SADD", "s", "needle-5"},
		{"ZADD", "z", "1", "needle-6"},
	} {
		if _, err := s.Do(ctx, cmd...); err != nil {
			t.Fatal(cmd, err)
		}
	}
	for i := range 2500 { // more than one SCAN page
		if _, err := s.Do(ctx, "SET", "bulk:"+strconv.Itoa(i), "v"); err != nil {
			t.Fatal(err)
		}
	}
	es, err := Scan(ctx, s.Addr())
	if err != nil {
		t.Fatal(err)
	}
	if len(es) != 2506 {
		t.Errorf("Scan found %d keys, want 2506", len(es))
	}
	for i := 1; i <= 6; i++ {
		n := "needle-" + strconv.Itoa(i)
		found := false
		for _, e := range es {
			if e.Contains(n) {
				found = true
			}
		}
		if !found {
			t.Errorf("Scan did not find %s", n)
		}
	}
}

// TestCluster: three masters join, every slot is served, and Cluster.Scan
// sees keys on every node; a node restarted empty rejoins.
func TestCluster(t *testing.T) {
	t.Parallel()
	need(t)
	ctx := ctxT(t, 60*time.Second)
	c, err := StartCluster(ctx, t.TempDir(), 3)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	// {a}, {b}, {c} … land on different slots; write each on its owner.
	written := 0
	for _, tag := range []string{"a", "b", "c", "d", "e", "f", "g", "h"} {
		key := "{" + tag + "}k"
		for _, n := range c.Nodes {
			if _, err := n.Do(ctx, "SET", key, "needle-"+tag); err == nil {
				written++
				break
			} else if !strings.HasPrefix(err.Error(), "redis: MOVED") {
				t.Fatal(err)
			}
		}
	}
	if written != 8 {
		t.Fatalf("wrote %d of 8 keys", written)
	}
	es, err := c.Scan(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(es) != 8 {
		t.Errorf("Cluster.Scan found %d keys, want 8", len(es))
	}
	if err := c.Nodes[1].Restart(ctx); err != nil {
		t.Fatal(err)
	}
	if err := c.WaitOK(ctx); err != nil {
		t.Fatal(err)
	}
	if es, err = c.Scan(ctx); err != nil || len(es) >= 8 {
		t.Errorf("after restarting a node empty: %d keys (%v), want fewer than 8", len(es), err)
	}
}
