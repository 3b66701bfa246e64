package leasecache

import (
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/leasegate/leasegate/internal/testclock"
)

// newFakeClock is the cache tests' clock, at a fixed start.
func newFakeClock() *testclock.Clock {
	return testclock.New(time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC))
}

func newCache(t testing.TB, clk *testclock.Clock) *Cache {
	t.Helper()
	c, err := New(Config{MaxMemoryMB: 16, NegativeTTL: 10 * time.Second, MaxAge: 10 * time.Minute, Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func lease(clk *testclock.Clock, exp time.Duration) Lease {
	return Lease{
		ValidatedAt: clk.Now(),
		Expiry:      clk.Now().Add(exp),
		Subject:     "alice",
		ClientID:    "cli",
		Scope:       "storage.read:/atlas",
		Issuer:      "hydra",
		Audience:    "https://storage.example.org",
	}
}

func TestLeaseWindow(t *testing.T) {
	const read, write = 60 * time.Second, 5 * time.Second
	tests := []struct {
		name    string
		advance time.Duration
		window  time.Duration
		exp     time.Duration
		want    Outcome
	}{
		{name: "hit inside window", advance: 59 * time.Second, window: read, exp: time.Hour, want: Hit},
		{name: "window closes exactly at validated_at+window", advance: read, window: read, exp: time.Hour, want: WindowClosed},
		{name: "write window closes first", advance: 5 * time.Second, window: write, exp: time.Hour, want: WindowClosed},
		{name: "window zero never hits", advance: 0, window: 0, exp: time.Hour, want: WindowClosed},
		{name: "exp before window end", advance: 30 * time.Second, window: read, exp: 30 * time.Second, want: Miss},
		{name: "just before exp", advance: 29 * time.Second, window: read, exp: 30 * time.Second, want: Hit},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			clk := newFakeClock()
			c := newCache(t, clk)
			k := KeyOf("tok-" + tc.name)
			if err := c.Store(k, lease(clk, tc.exp)); err != nil {
				t.Fatal(err)
			}
			clk.Advance(tc.advance)
			if _, got := c.Lookup(k, tc.window); got != tc.want {
				t.Fatalf("Lookup = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestFarFutureExpiry(t *testing.T) {
	// SPEC §1: "Any exp a token can carry works, including the far-future
	// "never" values some issuers use (e.g. 9999999999)". UnixNano ends in
	// 2262.
	for _, exp := range []time.Time{
		time.Unix(9999999999, 0),                                // 2286
		time.Unix(253402300799, 999999999),                      // the last instant of year 9999
		time.Date(2262, 4, 11, 23, 47, 16, 854775808, time.UTC), // one past UnixNano's range
	} {
		t.Run(exp.UTC().Format(time.RFC3339Nano), func(t *testing.T) {
			clk := newFakeClock()
			c := newCache(t, clk)
			k := KeyOf("tok")
			l := lease(clk, 0)
			l.Expiry = exp
			if err := c.Store(k, l); err != nil {
				t.Fatal(err)
			}
			clk.Advance(59 * time.Second)
			got, o := c.Lookup(k, time.Minute)
			if o != Hit {
				t.Fatalf("Lookup = %v, want hit", o)
			}
			if !got.Expiry.Equal(exp) {
				t.Fatalf("Expiry = %s, want %s", got.Expiry, exp)
			}
		})
	}
}

func TestClockStepBack(t *testing.T) {
	// SPEC §1: "a lease whose validated_at lies in the future (the wall
	// clock stepped back) is a miss, never a longer hit".
	tests := []struct {
		name string
		back time.Duration
	}{
		{"one hour back on a 60s window", time.Hour},
		{"one second back inside the window", time.Second},
		{"one nanosecond back", time.Nanosecond},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			clk := newFakeClock()
			c := newCache(t, clk)
			k := KeyOf("tok")
			if err := c.Store(k, lease(clk, 2*time.Hour)); err != nil {
				t.Fatal(err)
			}
			clk.Advance(-tc.back)
			// Not WindowClosed either: that would let stale_if_error serve it.
			if l, o := c.Lookup(k, time.Minute); o != Miss || l != (Lease{}) {
				t.Fatalf("Lookup after a step back = %v %+v, want a miss without a lease", o, l)
			}
			// The clock catching up does not bring it back: it is gone.
			clk.Advance(tc.back)
			if _, o := c.Lookup(k, time.Minute); o != Miss {
				t.Fatalf("Lookup after catching up = %v, want miss", o)
			}
		})
	}
	t.Run("a lease validated after the step hits as usual", func(t *testing.T) {
		clk := newFakeClock()
		c := newCache(t, clk)
		k := KeyOf("tok")
		clk.Advance(-time.Hour)
		if err := c.Store(k, lease(clk, 2*time.Hour)); err != nil {
			t.Fatal(err)
		}
		clk.Advance(59 * time.Second)
		if _, o := c.Lookup(k, time.Minute); o != Hit {
			t.Fatalf("Lookup = %v, want hit", o)
		}
		clk.Advance(time.Second)
		if _, o := c.Lookup(k, time.Minute); o != WindowClosed {
			t.Fatalf("Lookup at the window's end = %v, want window_closed", o)
		}
	})
}

func TestNegativeLeaseClockStepBack(t *testing.T) {
	// A step back must not shorten a negative lease into an allow, nor
	// stretch it by the size of the step: it stays negative, for
	// NegativeTTL from when the step is noticed.
	clk := newFakeClock()
	c := newCache(t, clk)
	k := KeyOf("tok")
	if err := c.StoreNegative(k, c.Generation()); err != nil {
		t.Fatal(err)
	}
	clk.Advance(-time.Hour)
	if _, o := c.Lookup(k, time.Minute); o != Negative {
		t.Fatalf("right after the step back: %v, want negative", o)
	}
	clk.Advance(9 * time.Second)
	if _, o := c.Lookup(k, 0); o != Negative {
		t.Fatalf("9s later: %v, want negative", o)
	}
	clk.Advance(time.Second)
	if _, o := c.Lookup(k, 0); o != Miss {
		t.Fatalf("negative_ttl after the step was noticed: %v, want miss (not an hour more)", o)
	}
}

func TestHitsDoNotExtend(t *testing.T) {
	clk := newFakeClock()
	c := newCache(t, clk)
	k := KeyOf("tok")
	if err := c.Store(k, lease(clk, time.Hour)); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 59; i++ {
		clk.Advance(time.Second)
		if _, o := c.Lookup(k, time.Minute); o != Hit {
			t.Fatalf("second %d: %v, want hit", i+1, o)
		}
	}
	clk.Advance(time.Second)
	if _, o := c.Lookup(k, time.Minute); o != WindowClosed {
		t.Fatalf("after 60s of hits: %v, want window_closed (hits must not move validated_at)", o)
	}
}

func TestRefreshRestartsEveryTier(t *testing.T) {
	clk := newFakeClock()
	c := newCache(t, clk)
	k := KeyOf("tok")
	if err := c.Store(k, lease(clk, time.Hour)); err != nil {
		t.Fatal(err)
	}
	clk.Advance(10 * time.Second)
	if _, o := c.Lookup(k, 5*time.Second); o != WindowClosed {
		t.Fatalf("write tier after 10s: %v, want window_closed", o)
	}
	if err := c.Store(k, lease(clk, time.Hour)); err != nil { // fresh validation now
		t.Fatal(err)
	}
	clk.Advance(4 * time.Second)
	for _, w := range []time.Duration{5 * time.Second, time.Minute} {
		l, o := c.Lookup(k, w)
		if o != Hit {
			t.Fatalf("window %v after refresh: %v, want hit", w, o)
		}
		if got := clk.Now().Sub(l.ValidatedAt); got != 4*time.Second {
			t.Fatalf("lease age = %v, want 4s", got)
		}
	}
}

func TestNegativeLease(t *testing.T) {
	clk := newFakeClock()
	c := newCache(t, clk)
	k := KeyOf("tok")
	if err := c.Store(k, lease(clk, time.Hour)); err != nil {
		t.Fatal(err)
	}
	if err := c.StoreNegative(k, c.Generation()); err != nil {
		t.Fatal(err)
	}
	for _, w := range []time.Duration{0, time.Minute} {
		if _, o := c.Lookup(k, w); o != Negative {
			t.Fatalf("window %v: %v, want negative (positive lease must be gone)", w, o)
		}
	}
	clk.Advance(9 * time.Second)
	if _, o := c.Lookup(k, time.Minute); o != Negative {
		t.Fatalf("at 9s: %v, want negative", o)
	}
	clk.Advance(time.Second)
	if _, o := c.Lookup(k, time.Minute); o != Miss {
		t.Fatalf("at negative_ttl: %v, want miss", o)
	}
}

func TestStoreClearsNegative(t *testing.T) {
	clk := newFakeClock()
	c := newCache(t, clk)
	k := KeyOf("tok")
	if err := c.StoreNegative(k, c.Generation()); err != nil {
		t.Fatal(err)
	}
	if err := c.Store(k, lease(clk, time.Hour)); err != nil {
		t.Fatal(err)
	}
	if _, o := c.Lookup(k, time.Minute); o != Hit {
		t.Fatalf("Lookup = %v, want hit", o)
	}
}

func TestRevoke(t *testing.T) {
	clk := newFakeClock()
	c := newCache(t, clk)
	k := KeyOf("tok")
	if err := c.Store(k, lease(clk, time.Hour)); err != nil {
		t.Fatal(err)
	}
	if !c.Revoke(k) {
		t.Fatal("Revoke reported nothing removed")
	}
	if _, o := c.Lookup(k, time.Minute); o != Miss {
		t.Fatalf("after revoke: %v, want miss", o)
	}
	if c.Revoke(k) {
		t.Fatal("second Revoke reported a removal")
	}
}

func TestRevokeSubject(t *testing.T) {
	clk := newFakeClock()
	c := newCache(t, clk)
	older, other := KeyOf("older"), KeyOf("other-subject")
	if err := c.Store(older, lease(clk, time.Hour)); err != nil {
		t.Fatal(err)
	}
	bob := lease(clk, time.Hour)
	bob.Subject = "bob"
	if err := c.Store(other, bob); err != nil {
		t.Fatal(err)
	}
	clk.Advance(time.Second)
	c.RevokeSubject("hydra", "alice")
	clk.Advance(time.Second)
	newer := KeyOf("newer")
	nl := lease(clk, time.Hour)
	nl.Gen = c.Generation() // a validation that started after the revoke
	if err := c.Store(newer, nl); err != nil {
		t.Fatal(err)
	}
	if _, o := c.Lookup(older, time.Minute); o != Miss {
		t.Errorf("older lease of revoked subject: %v, want miss", o)
	}
	if _, o := c.Lookup(newer, time.Minute); o != Hit {
		t.Errorf("lease validated after the revoke: %v, want hit", o)
	}
	if _, o := c.Lookup(other, time.Minute); o != Hit {
		t.Errorf("other subject: %v, want hit", o)
	}
	// The same subject name at another issuer is someone else.
	elsewhere := lease(clk, time.Hour)
	elsewhere.ValidatedAt = clk.Now().Add(-time.Minute / 2)
	elsewhere.Issuer = "other-idp"
	ke := KeyOf("elsewhere")
	if err := c.Store(ke, elsewhere); err != nil {
		t.Fatal(err)
	}
	if _, o := c.Lookup(ke, time.Minute); o != Hit {
		t.Errorf("same subject at another issuer: %v, want hit", o)
	}
}

func TestRevokeRecordsArePruned(t *testing.T) {
	clk := newFakeClock()
	c := newCache(t, clk)
	for i := 0; i < 100; i++ {
		c.RevokeSubject("hydra", fmt.Sprint("s", i))
	}
	clk.Advance(11 * time.Minute)
	c.RevokeSubject("hydra", "last")
	if n := c.nNames.Load(); n != 1 {
		t.Fatalf("revoke records = %d, want 1 after MaxAge", n)
	}
}

func TestLookupReturnsFacts(t *testing.T) {
	clk := newFakeClock()
	c := newCache(t, clk)
	k := KeyOf("tok")
	want := lease(clk, time.Hour)
	want.WLCGVersion = "1.0"
	if err := c.Store(k, want); err != nil {
		t.Fatal(err)
	}
	got, o := c.Lookup(k, time.Minute)
	if o != Hit {
		t.Fatalf("outcome %v", o)
	}
	if !got.ValidatedAt.Equal(want.ValidatedAt) || !got.Expiry.Equal(want.Expiry) ||
		got.Subject != want.Subject || got.ClientID != want.ClientID || got.Scope != want.Scope ||
		got.Issuer != want.Issuer || got.Audience != want.Audience || got.WLCGVersion != want.WLCGVersion {
		t.Fatalf("got %+v, want %+v", got, want)
	}
}

func TestMemoryBoundEvicts(t *testing.T) {
	clk := newFakeClock()
	c, err := New(Config{MaxMemoryMB: 2, Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	l := lease(clk, time.Hour)
	const n = 50000 // ~10 MB of leases into a 2 MB store
	for i := 0; i < n; i++ {
		l.Subject = fmt.Sprintf("%0150d", i) // inline, never interned
		if err := c.Store(KeyOf(fmt.Sprint(i)), l); err != nil {
			t.Fatalf("store %d: %v", i, err)
		}
	}
	if got := c.Len(); got >= n/2 {
		t.Fatalf("Len = %d after %d stores into 2 MB, want eviction", got, n)
	}
	if _, o := c.Lookup(KeyOf(fmt.Sprint(n-1)), time.Minute); o != Hit {
		t.Fatalf("newest lease: %v, want hit", o)
	}
	if _, o := c.Lookup(KeyOf("0"), time.Minute); o != Miss {
		t.Fatalf("oldest lease: %v, want evicted", o)
	}
}

func TestNegativeFloodKeepsPositiveLeases(t *testing.T) {
	clk := newFakeClock()
	c, err := New(Config{MaxMemoryMB: 8, Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	good := KeyOf("good")
	if err := c.Store(good, lease(clk, time.Hour)); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 200000; i++ {
		if err := c.StoreNegative(KeyOf(fmt.Sprint("garbage", i)), c.Generation()); err != nil {
			t.Fatal(err)
		}
	}
	if _, o := c.Lookup(good, time.Minute); o != Hit {
		t.Fatalf("good lease after a garbage flood: %v, want hit", o)
	}
}

func TestParseKey(t *testing.T) {
	k := KeyOf("tok")
	got, err := ParseKey(fmt.Sprintf("%x", k[:]))
	if err != nil || got != k {
		t.Fatalf("ParseKey round trip: %v %v", got, err)
	}
	for _, bad := range []string{"", "abc", strings.Repeat("z", 64)} {
		if _, err := ParseKey(bad); err == nil {
			t.Errorf("ParseKey(%q) succeeded", bad)
		}
	}
}

func TestConcurrentUse(t *testing.T) {
	clk := newFakeClock()
	c := newCache(t, clk)
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 2000; i++ {
				k := KeyOf(fmt.Sprint(i % 50))
				switch i % 4 {
				case 0:
					l := lease(clk, time.Hour)
					l.Gen = c.Generation()
					_ = c.Store(k, l)
				case 1:
					_ = c.StoreNegative(k, c.Generation())
				case 2:
					c.RevokeSubject("hydra", "alice")
				default:
					c.Lookup(k, time.Minute)
				}
			}
		}()
	}
	wg.Wait()
}
