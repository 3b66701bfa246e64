package leasecache

import (
	"testing"
	"time"
)

// A reload that raises lease.max must keep subject revokes that long: a
// window up to the new lease.max must not turn a revoked lease into a hit.
func TestSetMaxAgeKeepsSubjectRevokes(t *testing.T) {
	clk := newFakeClock()
	c := newCache(t, clk) // MaxAge 10m
	k := KeyOf("tok")
	if err := c.Store(k, lease(clk, 2*time.Hour)); err != nil {
		t.Fatal(err)
	}
	c.SetMaxAge(time.Hour)
	clk.Advance(time.Second)
	c.RevokeSubject("hydra", "alice")
	clk.Advance(20 * time.Minute)
	c.RevokeSubject("hydra", "bob") // prunes records older than MaxAge
	if _, o := c.Lookup(k, time.Hour); o == Hit {
		t.Fatal("revoked lease is a hit after a prune under the old MaxAge")
	}

	c.SetMaxAge(0) // ignored: zero is not a MaxAge
	clk.Advance(30 * time.Minute)
	c.RevokeSubject("hydra", "carol")
	if n := c.nNames.Load(); n != 3 {
		t.Fatalf("revoke records = %d, want 3 within MaxAge 1h", n)
	}
	c.SetMaxAge(time.Minute)
	clk.Advance(2 * time.Minute)
	c.RevokeSubject("hydra", "dave")
	if n := c.nNames.Load(); n != 1 {
		t.Fatalf("revoke records = %d, want 1 after MaxAge shrank to 1m", n)
	}
}
