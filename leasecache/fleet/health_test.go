//go:build unix

package fleet

import (
	"errors"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestHungStore: a SIGSTOPped Redis (sockets open, no answers). An
// operation in flight fails within Timeout; the store is down within
// 2 s; while down, operations fail at once; SIGCONT brings it back.
func TestHungStore(t *testing.T) {
	srv := startRedis(t)
	e := newEnv(t, "standalone", []string{srv.addr()}, nil)
	a, rec := e.open(t, nil)
	k := tokenKey(a, "hung")
	if err := a.Store(bg, k, testLease("leo"), time.Minute, a.Position(), stampNow(t, a)); err != nil {
		t.Fatal(err)
	}
	const slack = 50 * time.Millisecond

	srv.signal(syscall.SIGSTOP)
	stopped := time.Now()
	start := time.Now()
	_, o, err := a.Lookup(bg, k)
	if took := time.Since(start); !errors.Is(err, ErrUnavailable) || o != Unavailable || took > DefaultTimeout+slack {
		t.Errorf("Lookup on a hung store: %v %v after %v, want an error within %v", o, err, took, DefaultTimeout)
	}
	for a.Up() {
		if time.Since(stopped) > 2*time.Second {
			t.Fatal("still up 2 s after SIGSTOP")
		}
		time.Sleep(5 * time.Millisecond)
	}
	down := time.Since(stopped)
	t.Logf("down %v after SIGSTOP", down)
	rec.waitFor(t, time.Second, "Health(false)", func() bool { return len(rec.ups) > 0 && !rec.ups[len(rec.ups)-1] })
	for name, op := range map[string]func() error{
		"Lookup":        func() error { _, _, err := a.Lookup(bg, k); return err },
		"Store":         func() error { return a.Store(bg, k, testLease("leo"), time.Minute, a.Position(), 0) },
		"StoreNegative": func() error { return a.StoreNegative(bg, k, time.Minute, a.Position()) },
		"Acquire":       func() error { _, _, err := a.Acquire(bg, k, time.Second); return err },
		"Wait":          func() error { _, _, err := a.Wait(bg, k, time.Time{}); return err },
	} {
		// errDown is returned before any command is sent: a hung server
		// would instead answer with the Timeout's deadline error.
		if err := op(); !errors.Is(err, ErrUnavailable) || !errors.Is(err, errDown) {
			t.Errorf("%s while known down: %v; want %v without waiting on the network", name, err, errDown)
		}
	}
	// A revoke is tried even while down, and fails within Timeout. (Its
	// commands may still run when the server wakes: a revoke that timed
	// out can take effect later.)
	start = time.Now()
	if err := a.Revoke(bg, tokenKey(a, "hung-revoked")); !errors.Is(err, ErrUnavailable) || time.Since(start) > DefaultTimeout+slack {
		t.Errorf("Revoke on a hung store: %v after %v", err, time.Since(start))
	}
	if err := a.RevokeSubject(bg, "hydra", "leo"); !errors.Is(err, ErrUnavailable) {
		t.Errorf("RevokeSubject on a hung store: %v", err)
	}

	srv.signal(syscall.SIGCONT)
	resumed := time.Now()
	for !a.Up() {
		if time.Since(resumed) > 5*time.Second {
			t.Fatal("not up 5 s after SIGCONT")
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Logf("up %v after SIGCONT", time.Since(resumed))
	if _, o, err := a.Lookup(bg, k); err != nil || o != Hit {
		t.Errorf("after SIGCONT: %v %v", o, err)
	}
}

// TestEvictionPolicy: Open refuses a server that could evict the log.
func TestEvictionPolicy(t *testing.T) {
	srv := startRedis(t, "--user", "nocfg", "on", ">pw", "~*", "&*", "+@all", "-config")
	e := newEnv(t, "standalone", []string{srv.addr()}, rawClient(t, srv.addr()))
	cases := []struct {
		policy string
		allow  bool
		user   string // one that may not run CONFIG: INFO must say it
		refuse bool
	}{
		{policy: "noeviction"},
		{policy: "volatile-lru"},
		{policy: "volatile-lfu"},
		{policy: "volatile-random"},
		{policy: "volatile-ttl"},
		{policy: "allkeys-lru", refuse: true},
		{policy: "allkeys-lfu", refuse: true},
		{policy: "allkeys-random", refuse: true},
		{policy: "allkeys-lru", allow: true},
		{policy: "allkeys-lru", user: "nocfg", refuse: true},
		{policy: "volatile-lru", user: "nocfg"},
	}
	for _, c := range cases {
		name := c.policy
		if c.allow {
			name += "/allow_eviction"
		}
		if c.user != "" {
			name += "/no CONFIG"
		}
		t.Run(name, func(t *testing.T) {
			if err := e.raw.Do(bg, e.raw.B().ConfigSet().ParameterValue().ParameterValue("maxmemory-policy", c.policy).Build()).Error(); err != nil {
				t.Fatal(err)
			}
			cfg := e.config(func(cfg *Config) {
				cfg.AllowEviction = c.allow
				if c.user != "" {
					cfg.Username, cfg.Password = c.user, "pw"
				}
			})
			s, err := Open(bg, cfg, Hooks{})
			if s != nil {
				s.Close()
			}
			if c.refuse != (err != nil) {
				t.Fatalf("Open: %v, want refused %v", err, c.refuse)
			}
			if c.refuse && (!errors.Is(err, ErrEvictionPolicy) || !strings.Contains(err.Error(), c.policy)) {
				t.Fatalf("Open: %v", err)
			}
			if err != nil {
				t.Log(err)
			}
		})
	}
	t.Run("cluster, one node", func(t *testing.T) {
		c := startCluster(t)
		n := c.nodes[1]
		if out, err := n.cli("config", "set", "maxmemory-policy", "allkeys-lru"); err != nil {
			t.Fatal(out, err)
		}
		ce := newEnv(t, "cluster", c.addrs(), nil)
		_, err := Open(bg, ce.config(nil), Hooks{})
		if !errors.Is(err, ErrEvictionPolicy) || !strings.Contains(err.Error(), n.addr()) {
			t.Fatalf("Open: %v", err)
		}
		t.Log(err)
	})
}

// TestACL: a user confined to the prefix, with only the commands the
// package sends (README "Running a fleet" prints this list), can do
// everything; a wrong password cannot connect.
func TestACL(t *testing.T) {
	acl := strings.Fields(aclRules)
	srv := startRedis(t, append([]string{"--user", "leasegate", "on", ">s3cret", "~lgt*"}, acl...)...)
	e := newEnv(t, "standalone", []string{srv.addr()}, nil)
	as := func(c *Config) { c.Username, c.Password = "leasegate", "s3cret" }
	a, _ := e.open(t, as)
	b, rec := e.open(t, as)
	k := tokenKey(a, "acl")
	if err := a.Store(bg, k, testLease("mia"), time.Minute, a.Position(), stampNow(t, a)); err != nil {
		t.Fatal(err)
	}
	if _, o, err := b.Lookup(bg, k); err != nil || o != Hit {
		t.Fatal(o, err)
	}
	if ok, _, err := a.Acquire(bg, k, time.Second); err != nil || !ok {
		t.Fatal(ok, err)
	}
	if err := a.Release(bg, k); err != nil {
		t.Fatal(err)
	}
	if _, o, err := b.Wait(bg, k, time.Time{}); err != nil || o != Hit {
		t.Fatal(o, err)
	}
	if err := a.StoreNegative(bg, k, time.Minute, a.Position()); err != nil {
		t.Fatal(err)
	}
	if err := a.Revoke(bg, k); err != nil {
		t.Fatal(err)
	}
	if err := a.RevokeSubject(bg, "hydra", "mia"); err != nil {
		t.Fatal(err)
	}
	rec.waitFor(t, time.Second, "both revocations", func() bool { return len(rec.revs) == 2 })

	_, err := Open(bg, e.config(func(c *Config) { c.Username, c.Password = "leasegate", "wrong" }), Hooks{})
	if !errors.Is(err, ErrRefused) {
		t.Fatalf("wrong password: %v", err)
	}
	t.Log(err)
	_, err = Open(bg, e.config(func(c *Config) { as(c); c.KeyPrefix = "other:" }), Hooks{})
	if !errors.Is(err, ErrRefused) {
		t.Fatalf("a prefix outside the user's key pattern: %v", err)
	}
	t.Log(err)
}

// aclRules is the least a replica needs, besides its key pattern
// (~<prefix>*): the commands sent directly and from the scripts.
const aclRules = `resetchannels -@all +hello +auth +client|setname +ping +info +config|get
	+get +set +del +exists +xread +xrange +evalsha +eval +script|load
	+xadd +xrevrange +time +cluster|slots +cluster|shards`
