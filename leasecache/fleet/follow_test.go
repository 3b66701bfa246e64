//go:build unix

package fleet

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/leasegate/leasegate/leasecache"
)

func percentile(ds []time.Duration, q float64) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	i := int(q*float64(len(s))+0.999999) - 1
	return s[min(max(i, 0), len(s)-1)]
}

// TestRevokeFanOut: 200 revocations made on one replica, each seen by
// another's follower; the delay from the revoke call to the hook is
// measured and must stay under SPEC §8's 100 ms.
func TestRevokeFanOut(t *testing.T) {
	topologies(t, func(t *testing.T, e *env) {
		// What is measured is the fan-out; each revoke's own deadline is
		// generous so a loaded machine does not fail the call itself.
		slow := func(c *Config) { c.Timeout = time.Second }
		a, _ := e.open(t, slow)
		b, rec := e.open(t, slow)
		const n = 200
		var delays []time.Duration
		for i := range n {
			before := time.Now()
			var err error
			if i%4 == 3 {
				err = a.RevokeSubject(bg, "hydra", fmt.Sprintf("user-%d", i))
			} else {
				err = a.Revoke(bg, tokenKey(a, fmt.Sprintf("fanout-%d", i)))
			}
			if err != nil {
				t.Fatal(err)
			}
			rec.waitFor(t, time.Second, fmt.Sprintf("revocation %d", i), func() bool { return len(rec.revs) > i })
			rec.mu.Lock()
			delays = append(delays, rec.when[i].Sub(before))
			r := rec.revs[i]
			rec.mu.Unlock()
			if r.Self {
				t.Fatal("a record from another Store marked Self")
			}
			if i%4 == 3 && (!r.BySubject || r.Subject != fmt.Sprintf("user-%d", i) || r.Issuer != "hydra") {
				t.Fatalf("record %d: %+v", i, r)
			}
			if i%4 != 3 && (r.BySubject || r.Key != tokenKey(a, fmt.Sprintf("fanout-%d", i))) {
				t.Fatalf("record %d: %+v", i, r)
			}
		}
		p50, p99 := percentile(delays, 0.5), percentile(delays, 0.99)
		t.Logf("%s: revoke call → follower hook over %d: p50 %v, p99 %v, max %v; the follower's own DelayP99 (record time → applied) %v",
			e.name, n, p50, p99, percentile(delays, 1), b.DelayP99())
		if p99 > 100*time.Millisecond {
			t.Errorf("p99 %v over 100 ms", p99)
		}
		// The follower counts a record's delay after its hook returns: the
		// last one may still be on its way.
		for deadline := time.Now().Add(time.Second); ; time.Sleep(time.Millisecond) {
			if _, cnt := b.DelayQuantile(0.5); cnt == n || time.Now().After(deadline) {
				break
			}
		}
		if q, cnt := b.DelayQuantile(0.5); cnt != n || q <= 0 {
			t.Errorf("DelayQuantile: %v over %d", q, cnt)
		}
		for deadline := time.Now().Add(time.Second); a.Stats().Revocations != n; {
			if time.Now().After(deadline) {
				t.Fatalf("the revoking Store applied %d of its own %d records", a.Stats().Revocations, n)
			}
			time.Sleep(time.Millisecond)
		}
	})
}

// TestFence: a validation that started before a revoke and stores its
// answer after it is refused by every replica that has applied the
// revoke, by token and by subject; one that started after is shared.
func TestFence(t *testing.T) {
	topologies(t, func(t *testing.T, e *env) {
		a, recA := e.open(t, nil)
		b, recB := e.open(t, nil)
		c, recC := e.open(t, nil)
		applied := func(n int) {
			for _, r := range []*recorder{recA, recB, recC} {
				r.waitFor(t, time.Second, "the revocation", func() bool { return len(r.revs) >= n })
			}
		}
		k := tokenKey(a, "fence-token")
		old := c.Position() // C starts validating
		if err := a.Revoke(bg, k); err != nil {
			t.Fatal(err)
		}
		applied(1)
		// C's answer lands after the revoke; C's own index would refuse
		// it, so write it as a C that had not yet applied the revoke.
		raw := stamped(stampNow(t, c), c.k.sealValue(c.ks.lease(k), kindLease, old, mustEncode(t, testLease("grace"))))
		if err := e.raw.Do(bg, e.raw.B().Set().Key(c.ks.lease(k)).Value(raw).Build()).Error(); err != nil {
			t.Fatal(err)
		}
		if _, o, _ := b.Lookup(bg, k); o != Revoked {
			t.Errorf("token: a lease fenced before the revoke: %v, want revoked", o)
		}
		if err := c.Store(bg, k, testLease("grace"), time.Minute, c.Position(), stampNow(t, c)); err != nil {
			t.Fatal(err)
		}
		if _, o, _ := b.Lookup(bg, k); o != Hit {
			t.Errorf("token: a lease fenced after the revoke: %v, want hit", o)
		}

		ks := tokenKey(a, "fence-subject")
		old = c.Position()
		if err := c.Store(bg, ks, testLease("heidi"), time.Minute, old, stampNow(t, c)); err != nil {
			t.Fatal(err)
		}
		if err := a.RevokeSubject(bg, "hydra", "heidi"); err != nil {
			t.Fatal(err)
		}
		applied(2)
		if _, o, _ := b.Lookup(bg, ks); o != Revoked {
			t.Errorf("subject: a lease fenced before the revoke: %v, want revoked", o)
		}
		other := tokenKey(a, "fence-subject-other")
		_ = c.Store(bg, other, testLease("ivan"), time.Minute, old, stampNow(t, c))
		if _, o, _ := b.Lookup(bg, other); o != Hit {
			t.Errorf("subject: another subject's lease: %v, want hit", o)
		}
		if err := c.Store(bg, ks, testLease("heidi"), time.Minute, c.Position(), stampNow(t, c)); err != nil {
			t.Fatal(err)
		}
		if _, o, _ := b.Lookup(bg, ks); o != Hit {
			t.Errorf("subject: fenced after: %v, want hit", o)
		}
		if b.Stats().RevokedValues != 2 {
			t.Errorf("RevokedValues %d, want 2", b.Stats().RevokedValues)
		}
	})
}

func mustEncode(t testing.TB, l leasecache.Lease) []byte {
	b, err := leasecache.EncodeLease(l)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestLocalFillRace is the caller's half of the race closure, with the
// real leasecache: a revocation applied between a shared Lookup and the
// local fill refuses the fill by generation.
func TestLocalFillRace(t *testing.T) {
	e := standaloneEnv(t)
	cache, err := leasecache.New(leasecache.Config{MaxMemoryMB: 4})
	if err != nil {
		t.Fatal(err)
	}
	defer cache.Close()
	a, _ := e.open(t, nil)
	rec := newRecorder()
	h := rec.hooks()
	h.Revoked = func(r Revocation) {
		if r.BySubject {
			cache.RevokeName(r.Name())
		} else {
			cache.Revoke(r.Key)
		}
		rec.mu.Lock()
		rec.revs = append(rec.revs, r)
		rec.mu.Unlock()
		rec.cond.Broadcast()
	}
	b, err := Open(bg, e.config(nil), h)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()

	k := tokenKey(a, "race-token")
	_ = a.Store(bg, k, testLease("judy"), time.Minute, a.Position(), stampNow(t, a))
	gen := cache.Generation() // B: local miss, before the shared lookup
	l, o, err := b.Lookup(bg, k)
	if err != nil || o != Hit {
		t.Fatal(o, err)
	}
	if err := a.Revoke(bg, k); err != nil { // meanwhile, elsewhere
		t.Fatal(err)
	}
	rec.waitFor(t, time.Second, "the revocation", func() bool { return len(rec.revs) == 1 })
	l.Gen = gen
	if err := cache.Store(k, l); !errors.Is(err, leasecache.ErrRevokedSince) {
		t.Fatalf("the fill after the revoke: %v, want ErrRevokedSince", err)
	}
	if _, o := cache.Lookup(k, time.Minute); o != leasecache.Miss {
		t.Fatalf("local cache: %v", o)
	}
}

// TestFollowerCutOff: a replica behind a black-holed link is down within
// 2 s, fails fast while down, and on healing applies every revocation it
// missed, in order, without dropping its leases.
func TestFollowerCutOff(t *testing.T) {
	srv := startRedis(t)
	p := startProxy(t, srv.addr())
	e := newEnv(t, "standalone", []string{srv.addr()}, rawClient(t, srv.addr()))
	a, _ := e.open(t, nil)
	eb := *e
	eb.addrs = []string{p.addr()}
	b, rec := eb.open(t, nil)

	p.blackhole(true)
	cut := time.Now()
	for b.Up() {
		if time.Since(cut) > 2*time.Second {
			t.Fatal("still up 2 s after the link was black-holed")
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Logf("down %v after the cut", time.Since(cut))
	start := time.Now()
	if _, _, err := b.Lookup(bg, tokenKey(b, "x")); !errors.Is(err, ErrUnavailable) || time.Since(start) > 5*time.Millisecond {
		t.Errorf("Lookup while down: %v after %v", err, time.Since(start))
	}
	var want []string
	for i := range 5 {
		k := tokenKey(a, fmt.Sprintf("cut-%d", i))
		if err := a.Revoke(bg, k); err != nil {
			t.Fatal(err)
		}
		want = append(want, fmt.Sprint(k))
	}
	if err := a.RevokeSubject(bg, "hydra", "mallory"); err != nil {
		t.Fatal(err)
	}
	want = append(want, "hydra/mallory")
	time.Sleep(300 * time.Millisecond)
	if n := len(rec.revocations()); n != 0 {
		t.Fatalf("%d revocations crossed a black hole", n)
	}
	p.blackhole(false)
	healed := time.Now()
	rec.waitFor(t, 5*time.Second, "the missed revocations", func() bool { return len(rec.revs) == len(want) })
	t.Logf("missed revocations applied %v after healing", time.Since(healed))
	var got []string
	var prev string
	for _, r := range rec.revocations() {
		if r.BySubject {
			got = append(got, r.Issuer+"/"+r.Subject)
		} else {
			got = append(got, fmt.Sprint(r.Key))
		}
		if prev != "" && !idLess(prev, r.ID) {
			t.Errorf("record %s applied after %s", r.ID, prev)
		}
		prev = r.ID
	}
	if !slices.Equal(got, want) {
		t.Errorf("applied %v\nwant %v", got, want)
	}
	if rec.lostCount() != 0 {
		t.Errorf("Lost called %d times, but nothing was missed", rec.lostCount())
	}
	for !b.Up() {
		if time.Since(healed) > 5*time.Second {
			t.Fatal("not up after healing")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestTrimmedPastFollower: a replica cut off longer than the log keeps
// records cannot know what it missed: Lost, then it follows again.
func TestTrimmedPastFollower(t *testing.T) {
	srv := startRedis(t)
	p := startProxy(t, srv.addr())
	e := newEnv(t, "standalone", []string{srv.addr()}, rawClient(t, srv.addr()))
	a, _ := e.open(t, nil)
	a.retention = 100 * time.Millisecond // the log keeps 100 ms of records
	eb := *e
	eb.addrs = []string{p.addr()}
	b, rec := eb.open(t, nil)

	// The proxy holds, then delivers, what crosses it while black-holed: a
	// read of b's that was already waiting when trim-1 was appended brings
	// trim-1 late, and b rightly misses nothing. Only a follower that did
	// miss the trimmed record is under test, so such a round is repeated.
	missed := false
	for round := 0; round < 5 && !missed; round++ {
		first, second := fmt.Sprintf("trim-%d-a", round), fmt.Sprintf("trim-%d-b", round)
		p.blackhole(true)
		if err := a.Revoke(bg, tokenKey(a, first)); err != nil {
			t.Fatal(err)
		}
		time.Sleep(200 * time.Millisecond)
		if err := a.Revoke(bg, tokenKey(a, second)); err != nil { // trims first
			t.Fatal(err)
		}
		if n, _ := e.raw.Do(bg, e.raw.B().Xlen().Key(a.ks.log).Build()).AsInt64(); n != 1 {
			t.Fatalf("the log holds %d records, want the last one", n)
		}
		p.blackhole(false)
		rec.waitFor(t, 5*time.Second, "Lost or "+second, func() bool {
			return len(rec.lost) == 1 || len(rec.revs) > 0 && rec.revs[len(rec.revs)-1].Key == tokenKey(a, second)
		})
		rec.mu.Lock()
		missed = len(rec.lost) == 1
		got := slices.ContainsFunc(rec.revs, func(r Revocation) bool { return r.Key == tokenKey(a, first) })
		rec.mu.Unlock()
		if !missed && !got {
			t.Fatalf("round %d: neither Lost nor %s: the trimmed record vanished unnoticed", round, first)
		}
	}
	if !missed {
		t.Fatal("in 5 rounds the follower never missed the trimmed record")
	}
	rec.mu.Lock()
	t.Logf("Lost: %s", rec.lost[0])
	rec.mu.Unlock()
	for !b.Up() {
		time.Sleep(10 * time.Millisecond)
	}
	if err := a.Revoke(bg, tokenKey(a, "trim-3")); err != nil {
		t.Fatal(err)
	}
	rec.waitFor(t, 2*time.Second, "trim-3", func() bool {
		return len(rec.revs) > 0 && rec.revs[len(rec.revs)-1].Key == tokenKey(a, "trim-3")
	})
	if b.Stats().Lost != 1 {
		t.Errorf("Lost counted %d", b.Stats().Lost)
	}
}

// TestRestartEmpty: Redis comes back empty; every follower calls Lost
// (its log and epoch are gone), and the fleet goes on by itself. In the
// Cluster, the node that holds the log restarts (the leases on the other
// nodes survive, fenced in the old epoch).
func TestRestartEmpty(t *testing.T) {
	t.Run("standalone", func(t *testing.T) {
		srv := startRedis(t)
		e := newEnv(t, "standalone", []string{srv.addr()}, rawClient(t, srv.addr()))
		testRestartEmpty(t, e, func(*Store) *redisServer { return srv })
	})
	t.Run("cluster", func(t *testing.T) {
		c := startCluster(t)
		e := newEnv(t, "cluster", c.addrs(), rawClient(t, c.addrs()...))
		testRestartEmpty(t, e, func(a *Store) *redisServer {
			for _, n := range c.nodes {
				if out, _ := n.cli("exists", a.ks.log); out == "1" {
					return n
				}
			}
			t.Fatal("no node holds the log")
			return nil
		})
	})
}

func testRestartEmpty(t *testing.T, e *env, logNode func(*Store) *redisServer) {
	a, recA := e.open(t, nil)
	b, recB := e.open(t, nil)
	k := tokenKey(a, "restart-token")
	_ = a.Store(bg, k, testLease("ken"), time.Minute, a.Position(), stampNow(t, a))
	old := a.Position()

	logNode(a).restartEmpty(t)
	restarted := time.Now()
	for _, r := range []*recorder{recA, recB} {
		r.waitFor(t, 10*time.Second, "Lost", func() bool { return len(r.lost) >= 1 })
	}
	recB.mu.Lock()
	t.Logf("Lost at both %v after the restart: %q", time.Since(restarted), recB.lost)
	recB.mu.Unlock()
	for !a.Up() || !b.Up() {
		if time.Since(restarted) > 10*time.Second {
			t.Fatal("not up again after the restart")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if epochOf(a.Position()) == epochOf(old) {
		t.Error("the epoch did not change")
	}
	// A value fenced in the old epoch is void (it survives on another
	// Cluster node); one fenced now is shared.
	raw := stamped(0, a.k.sealValue(a.ks.lease(k), kindLease, old, mustEncode(t, testLease("ken"))))
	for e.raw.Do(bg, e.raw.B().Set().Key(a.ks.lease(k)).Value(raw).Build()).Error() != nil {
		time.Sleep(10 * time.Millisecond) // the test's own client reconnects
	}
	if _, o, _ := b.Lookup(bg, k); o != Revoked {
		t.Errorf("a value of the old epoch: %v, want revoked", o)
	}
	if err := a.Store(bg, k, testLease("ken"), time.Minute, a.Position(), stampNow(t, a)); err != nil {
		t.Fatal(err)
	}
	if _, o, err := b.Lookup(bg, k); o != Hit {
		t.Errorf("after the restart: %v %v", o, err)
	}
	if err := a.Revoke(bg, k); err != nil {
		t.Fatal(err)
	}
	recB.waitFor(t, time.Second, "a revocation after the restart", func() bool { return len(recB.revs) == 1 })
}

// idLess reports whether stream ID a (ms-seq) comes before b.
func idLess(a, b string) bool {
	am, as, _ := strings.Cut(a, "-")
	bm, bs, _ := strings.Cut(b, "-")
	x, _ := strconv.ParseUint(am, 10, 64)
	y, _ := strconv.ParseUint(bm, 10, 64)
	p, _ := strconv.ParseUint(as, 10, 64)
	q, _ := strconv.ParseUint(bs, 10, 64)
	return x < y || x == y && p < q
}

// TestRevokeNameFanOut: a push revocation by session or email reaches
// every replica with its claim and source, and fences the shared leases
// that carry that session or email (and only those).
func TestRevokeNameFanOut(t *testing.T) {
	topologies(t, func(t *testing.T, e *env) {
		a, recA := e.open(t, nil)
		b, recB := e.open(t, nil)
		withSID := testLease("judy")
		withSID.SessionID = "sid-7"
		withEmail := testLease("karl")
		withEmail.Email = "Karl@Example.org"
		kSID, kEmail, kOther := tokenKey(a, "name-sid"), tokenKey(a, "name-email"), tokenKey(a, "name-other")
		old := b.Position()
		for k, l := range map[leasecache.Key]leasecache.Lease{kSID: withSID, kEmail: withEmail, kOther: testLease("judy")} {
			if err := b.Store(bg, k, l, time.Minute, old, stampNow(t, b)); err != nil {
				t.Fatal(err)
			}
		}
		if err := a.RevokeName(bg, leasecache.NameOf("hydra", leasecache.ClaimSession, "sid-7"), "backchannel"); err != nil {
			t.Fatal(err)
		}
		if err := a.RevokeName(bg, leasecache.NameOf("hydra", leasecache.ClaimEmail, "KARL@example.ORG"), "ssf"); err != nil {
			t.Fatal(err)
		}
		for _, r := range []*recorder{recA, recB} {
			r.waitFor(t, time.Second, "both name records", func() bool { return len(r.revs) >= 2 })
		}
		revs := recB.revocations()
		if r := revs[0]; !r.BySubject || r.Claim != leasecache.ClaimSession || r.Subject != "sid-7" || r.Source != "backchannel" || r.Self {
			t.Errorf("session record on B: %+v", r)
		}
		if r := revs[1]; r.Claim != leasecache.ClaimEmail || r.Subject != "karl@example.org" || r.Source != "ssf" {
			t.Errorf("email record on B: %+v", r)
		}
		if r := recA.revocations()[0]; !r.Self {
			t.Errorf("A's own record not marked Self: %+v", r)
		}
		for name, c := range map[string]struct {
			k    leasecache.Key
			want Outcome
		}{
			"lease of the session": {kSID, Revoked},
			"lease with the email": {kEmail, Revoked},
			"same subject, no sid": {kOther, Hit},
		} {
			if _, o, _ := b.Lookup(bg, c.k); o != c.want {
				t.Errorf("%s: %v, want %v", name, o, c.want)
			}
		}
		// A validation after the revocation is shared again.
		if err := b.Store(bg, kSID, withSID, time.Minute, b.Position(), stampNow(t, b)); err != nil {
			t.Fatal(err)
		}
		if _, o, _ := a.Lookup(bg, kSID); o != Hit {
			t.Errorf("session lease fenced after the revoke: %v, want hit", o)
		}
	})
}
