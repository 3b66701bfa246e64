package leasecache

import (
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/leasegate/leasegate/internal/testclock"
)

// TestMemoServesHits: a hit on a lease read before is answered from the
// memo, without reading the store (an entry garbled behind the cache's
// back is not seen) and without allocating.
func TestMemoServesHits(t *testing.T) {
	clk := newFakeClock()
	c := newCache(t, clk)
	k := KeyOf("hot")
	if err := c.Store(k, lease(clk, time.Hour)); err != nil {
		t.Fatal(err)
	}
	wantLookup(t, c, k, Hit, "first")
	if err := c.pos.Set(keyString(&k), []byte("garbage")); err != nil {
		t.Fatal(err)
	}
	if l, o := c.Lookup(k, time.Minute); o != Hit || l.Subject != "alice" {
		t.Fatalf("Lookup = %v %q, want the memoised Hit", o, l.Subject)
	}
	if n := testing.AllocsPerRun(100, func() { c.Lookup(k, time.Minute) }); n != 0 {
		t.Errorf("a memoised hit allocates %v times, want 0", n)
	}
	// The memo's lease is judged as a stored one: the window still closes.
	clk.Advance(2 * time.Minute)
	wantLookup(t, c, k, WindowClosed, "after the window")
}

// TestMemoFollowsChanges: after a lookup filled the memo, every way the
// stored lease can change or go is seen by the next lookup, and what was
// noted with the old lease (Lease.Note) is not handed back with it.
func TestMemoFollowsChanges(t *testing.T) {
	k := KeyOf("memo-token")
	for _, tc := range []struct {
		name   string
		change func(t *testing.T, c *Cache, clk *testclock.Clock)
		want   Outcome
		scope  string // of the lease on Hit
	}{
		{"a newer lease stored", func(t *testing.T, c *Cache, clk *testclock.Clock) {
			l := lease(clk, time.Hour)
			l.Scope = "storage.read:/atlas/newer"
			mustStore(t, c, k, l)
		}, Hit, "storage.read:/atlas/newer"},
		{"a negative lease", func(t *testing.T, c *Cache, _ *testclock.Clock) {
			if err := c.StoreNegative(k, c.Generation()); err != nil {
				t.Fatal(err)
			}
		}, Negative, ""},
		{"the token revoked", func(_ *testing.T, c *Cache, _ *testclock.Clock) { c.Revoke(k) }, Miss, ""},
		{"its subject revoked", func(_ *testing.T, c *Cache, _ *testclock.Clock) { c.RevokeSubject("hydra", "alice") }, Miss, ""},
		{"everything revoked", func(_ *testing.T, c *Cache, _ *testclock.Clock) { c.RevokeAll() }, Miss, ""},
		{"forgotten", func(_ *testing.T, c *Cache, clk *testclock.Clock) { c.Forget(k, clk.Now()) }, Miss, ""},
		{"replaced in bigcache by a key of the same hash", func(t *testing.T, c *Cache, clk *testclock.Clock) {
			twin := k
			twin[31] ^= 1 // bigcache's hash is the first 8 bytes
			mustStore(t, c, twin, lease(clk, time.Hour))
		}, Miss, ""},
		{"pushed out for space", func(t *testing.T, c *Cache, clk *testclock.Clock) {
			l := lease(clk, time.Hour)
			l.Scope = strings.Repeat("s", 150)
			for i := 0; ; i++ {
				if _, err := c.pos.Get(keyString(&k)); err != nil {
					return // gone
				}
				// Fillers in other memo slots: only the eviction can tell.
				f := KeyOf(fmt.Sprint("filler", i))
				if c.memo.slot(keyString(&f)) != c.memo.slot(keyString(&k)) {
					mustStore(t, c, f, l)
				}
			}
		}, Miss, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			clk := newFakeClock()
			c, err := New(Config{MaxMemoryMB: 2, NegativeTTL: 10 * time.Second, MaxAge: 10 * time.Minute, Now: clk.Now})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { c.Close() })
			mustStore(t, c, k, lease(clk, time.Hour))
			before, o := c.Lookup(k, time.Minute)
			if o != Hit || before.Note == nil {
				t.Fatalf("before: Lookup = %v, note %v; want a memoised Hit", o, before.Note)
			}
			before.Note.Store("derived from the old lease")
			clk.Advance(time.Second)
			tc.change(t, c, clk)
			l, o := c.Lookup(k, time.Minute)
			if o != tc.want || (o == Hit && l.Scope != tc.scope) {
				t.Fatalf("after: Lookup = %v %q, want %v %q", o, l.Scope, tc.want, tc.scope)
			}
			if l.Note != nil && l.Note.Load() != nil {
				t.Fatalf("after: the old lease's note came back: %v", l.Note.Load())
			}
		})
	}
}

// TestMemoBounded: the memo keeps no lease the store dropped, nor any
// entry over memoMaxEntry, so it stays within its share of the bound.
func TestMemoBounded(t *testing.T) {
	clk := newFakeClock()
	c := newCache(t, clk)
	held := func(k Key) bool { return c.memo.slot(keyString(&k)).entry.Load() != nil }
	k := KeyOf("bounded")
	mustStore(t, c, k, lease(clk, time.Hour))
	c.Lookup(k, time.Minute)
	if !held(k) {
		t.Fatal("a hit left nothing in the memo")
	}
	c.Revoke(k)
	if held(k) {
		t.Error("the memo holds a revoked lease")
	}
	big := lease(clk, time.Hour)
	big.Subject = strings.Repeat("x", memoMaxEntry)
	kb := KeyOf("big")
	mustStore(t, c, kb, big)
	wantLookup(t, c, kb, Hit, "big lease")
	if held(kb) {
		t.Error("the memo holds an entry over memoMaxEntry")
	}
	for i := range 200 {
		ki := KeyOf(fmt.Sprint("many", i))
		mustStore(t, c, ki, lease(clk, time.Hour))
		c.Lookup(ki, time.Minute)
	}
	c.RevokeAll()
	for i := range c.memo.slots {
		if c.memo.slots[i].entry.Load() != nil {
			t.Fatalf("slot %d holds a lease after RevokeAll", i)
		}
	}
	if got := len(c.memo.slots) * memoSlotBytes; got > 16<<20/memoShare {
		t.Errorf("the memo may hold %d B at max_memory_mb 16, over 1/%d of it", got, memoShare)
	}
}

// TestMemoChangeDuringRead: a revoke between a lookup's store read and
// its memo voids what that read memoises.
func TestMemoChangeDuringRead(t *testing.T) {
	clk := newFakeClock()
	c := newCache(t, clk)
	k := KeyOf("read-raced")
	mustStore(t, c, k, lease(clk, time.Hour))
	c.afterRead = func() { c.afterRead = nil; c.Revoke(k) }
	if _, o := c.Lookup(k, time.Minute); o != Hit {
		t.Fatalf("the racing lookup = %v, want Hit (it read before the revoke)", o)
	}
	wantLookup(t, c, k, Miss, "after the revoke")
}

// TestMemoRevokeRace: with lookups running on other goroutines, a lookup
// made after Revoke returns never hits.
func TestMemoRevokeRace(t *testing.T) {
	clk := newFakeClock()
	c := newCache(t, clk)
	k := KeyOf("raced")
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range 2 {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
					c.Lookup(k, time.Minute)
				}
			}
		})
	}
	defer func() { close(stop); wg.Wait() }()
	for i := range 2000 {
		l := lease(clk, time.Hour)
		l.Gen = c.Generation()
		mustStore(t, c, k, l)
		c.Lookup(k, time.Minute)
		c.Revoke(k)
		if _, o := c.Lookup(k, time.Minute); o == Hit {
			t.Fatalf("round %d: a hit after Revoke returned", i)
		}
	}
}

func mustStore(t *testing.T, c *Cache, k Key, l Lease) {
	t.Helper()
	if err := c.Store(k, l); err != nil {
		t.Fatal(err)
	}
}

// TestRevokeMemoised: a lease that aged out of the store but is still
// served from the memo (possible after a reload raised lease.max) is
// reported revoked, and is a miss after.
func TestRevokeMemoised(t *testing.T) {
	clk := newFakeClock()
	c := newCache(t, clk)
	k := KeyOf("aged-out")
	mustStore(t, c, k, lease(clk, time.Hour))
	c.Lookup(k, time.Minute)
	_ = c.pos.Delete(keyString(&k)) // as bigcache's own expiry does, unseen
	wantLookup(t, c, k, Hit, "before")
	if !c.Revoke(k) {
		t.Error("Revoke = false for a lease it was serving")
	}
	wantLookup(t, c, k, Miss, "after")
}

// wantLookup fails t unless a lookup of k with a minute's window answers
// want; when says at which step.
func wantLookup(t *testing.T, c *Cache, k Key, want Outcome, when string) {
	t.Helper()
	if _, o := c.Lookup(k, time.Minute); o != want {
		t.Fatalf("%s: Lookup = %v, want %v", when, o, want)
	}
}

// TestMemoAdmission: a slot's recent lease keeps it against another
// token's read (no churn among more tokens than slots); once its lease is
// memoTenure old, the other token takes it over, unless the holder was
// hit since that token's last read.
func TestMemoAdmission(t *testing.T) {
	clk := newFakeClock()
	c := newCache(t, clk)
	first := KeyOf("first")
	var second Key
	for i := 0; ; i++ {
		if second = KeyOf(fmt.Sprint("second", i)); c.memo.slot(keyString(&second)) == c.memo.slot(keyString(&first)) {
			break
		}
	}
	mustStore(t, c, first, lease(clk, time.Hour))
	mustStore(t, c, second, lease(clk, time.Hour))
	holder := func() Key { return c.memo.slot(keyString(&first)).entry.Load().key }
	c.Lookup(first, time.Hour)
	wantLookup(t, c, second, Hit, "the other token, from the store")
	if holder() != first {
		t.Fatal("a read of another token took a fresh slot")
	}
	clk.Advance(memoTenure * time.Second)
	// Past the tenure, a holder hit since the other token's last read
	// keeps the slot against one more read of it, not two in a row.
	c.Lookup(first, time.Hour)
	if _, o := c.Lookup(second, time.Hour); o != Hit {
		t.Fatalf("later, from the store: Lookup = %v, want Hit", o)
	}
	if holder() != first {
		t.Fatal("a holder hit since the last contender lost the slot")
	}
	if _, o := c.Lookup(second, time.Hour); o != Hit {
		t.Fatalf("later: Lookup = %v, want Hit", o)
	}
	if holder() != second {
		t.Fatal("the slot was not taken over after memoTenure and a read without a hit between")
	}
	// A new holder has that one chance too: two tokens read in turn do
	// not take the slot from each other on every read.
	c.Lookup(first, time.Hour)
	if holder() != second {
		t.Fatal("a holder just filled lost the slot to the first read of another token")
	}
	c.Lookup(first, time.Hour)
	if holder() != first {
		t.Fatal("a holder neither hit nor new kept the slot")
	}
	// A hit renews the chance another token's read used up.
	c.Lookup(second, time.Hour)
	c.Lookup(first, time.Hour)
	c.Lookup(second, time.Hour)
	if holder() != first {
		t.Fatal("a hit did not renew the holder's chance")
	}
}

// TestMemoNote: a memoised lease's Note is the same on every hit of it; a
// lease too large to memoise has none, and Store keeps no Note.
func TestMemoNote(t *testing.T) {
	clk := newFakeClock()
	c := newCache(t, clk)
	k, big := KeyOf("noted"), KeyOf("too large")
	l := lease(clk, time.Hour)
	first, _ := c.Lookup(k, time.Minute) // a miss: nothing to note
	if first.Note != nil {
		t.Fatal("a miss carries a note")
	}
	mustStore(t, c, k, l)
	a, _ := c.Lookup(k, time.Minute)
	b, _ := c.Lookup(k, time.Minute)
	if a.Note == nil || a.Note != b.Note {
		t.Fatalf("two hits of one memoised lease: notes %p and %p, want one", a.Note, b.Note)
	}
	a.Note.Store(1)
	if got, _ := b.Note.Load().(int); got != 1 {
		t.Fatalf("note = %v, want the value stored", b.Note.Load())
	}
	l.Subject = strings.Repeat("x", memoMaxEntry)
	l.Note = a.Note
	mustStore(t, c, big, l)
	if got, o := c.Lookup(big, time.Minute); o != Hit || got.Note != nil {
		t.Fatalf("a lease over memoMaxEntry: %v, note %v; want a Hit without one", o, got.Note)
	}
}
