package leasecache

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// Evictions counts exactly the leases the memory bound pushed out: every
// lease stored is either still held or counted, and neither a revoke nor
// a negative lease pushed out by others counts.
func TestEvictionsCountSpaceOnly(t *testing.T) {
	clk := newFakeClock()
	c, err := New(Config{MaxMemoryMB: 2, Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()

	l := lease(clk, time.Hour)
	if err := c.Store(KeyOf("revoked"), l); err != nil {
		t.Fatal(err)
	}
	c.Revoke(KeyOf("revoked"))
	for i := range 20000 { // far more than the negative store's share holds
		if err := c.StoreNegative(KeyOf(fmt.Sprint("bad", i)), c.Generation()); err != nil {
			t.Fatal(err)
		}
	}
	if got := c.Evictions(); got != 0 {
		t.Fatalf("Evictions = %d after a revoke and a negative flood, want 0", got)
	}
	if n := c.NegativeLen(); n == 0 || n >= 20000 {
		t.Errorf("NegativeLen = %d after 20000 negative leases into its share, want some, not all", n)
	}

	l.Scope = strings.Repeat("s", 150)
	const n = 20000 // ~4 MB of leases into a 2 MB store
	for i := range n {
		if err := c.Store(KeyOf(fmt.Sprint(i)), l); err != nil {
			t.Fatalf("store %d: %v", i, err)
		}
	}
	ev := c.Evictions()
	if ev == 0 {
		t.Fatal("no evictions counted after overfilling the store")
	}
	if got := uint64(c.Len()) + ev; got != n {
		t.Errorf("Len %d + Evictions %d = %d, want the %d leases stored", c.Len(), ev, got, n)
	}
}

func TestNegativeLen(t *testing.T) {
	clk := newFakeClock()
	c := newCache(t, clk)
	k := KeyOf("tok")
	if err := c.StoreNegative(k, c.Generation()); err != nil {
		t.Fatal(err)
	}
	if got := c.NegativeLen(); got != 1 {
		t.Fatalf("NegativeLen = %d after one negative lease, want 1", got)
	}
	if err := c.Store(k, lease(clk, time.Hour)); err != nil {
		t.Fatal(err)
	}
	if got, leases := c.NegativeLen(), c.Len(); got != 0 || leases != 1 {
		t.Fatalf("after a fresh lease: NegativeLen %d, Len %d, want 0 and 1", got, leases)
	}
}
