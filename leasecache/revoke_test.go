package leasecache

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/leasegate/leasegate/internal/testclock"
)

// The revocation generation: a validation that started before an admin
// revoke cannot store its answer after it (SPEC §1: "A request that arrives
// after an admin revoke of its token (or subject) is never answered from an
// issuer call that started before that revoke").

func TestGenerationAdvancesOnEveryRevoke(t *testing.T) {
	clk := newFakeClock()
	c := newCache(t, clk)
	g0 := c.Generation()
	c.Revoke(KeyOf("a"))
	g1 := c.Generation()
	c.RevokeSubject("hydra", "alice")
	g2 := c.Generation()
	if !(g0 < g1 && g1 < g2) {
		t.Fatalf("generations %d, %d, %d: want strictly increasing", g0, g1, g2)
	}
	// Lookups and stores do not move it: the hit path only reads it.
	_ = c.Store(KeyOf("b"), Lease{ValidatedAt: clk.Now(), Gen: g2})
	c.Lookup(KeyOf("b"), time.Minute)
	if c.Generation() != g2 {
		t.Fatal("Store or Lookup changed the generation")
	}
}

func TestLateFillAfterRevokeIsRefused(t *testing.T) {
	tests := []struct {
		name   string
		revoke func(c *Cache, k Key)
	}{
		{"token", func(c *Cache, k Key) { c.Revoke(k) }},
		{"subject", func(c *Cache, _ Key) { c.RevokeSubject("hydra", "alice") }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			clk := newFakeClock()
			c := newCache(t, clk)
			k, other := KeyOf("tok"), KeyOf("other-token")

			started := c.Generation() // the validation begins
			tc.revoke(c, k)           // the admin revokes meanwhile
			late := lease(clk, time.Hour)
			late.Gen = started
			if err := c.Store(k, late); !errors.Is(err, ErrRevokedSince) {
				t.Fatalf("late Store = %v, want ErrRevokedSince", err)
			}
			if _, o := c.Lookup(k, time.Minute); o != Miss {
				t.Fatalf("after the refused fill: %v, want miss", o)
			}
			// A validation that started after the revoke stores as usual.
			fresh := lease(clk, time.Hour)
			fresh.Gen = c.Generation()
			if err := c.Store(k, fresh); err != nil {
				t.Fatalf("fresh Store: %v", err)
			}
			if _, o := c.Lookup(k, time.Minute); o != Hit {
				t.Fatalf("fresh lease: %v, want hit", o)
			}
			// Another token of another subject, validated across the same
			// revoke, is not affected.
			bob := lease(clk, time.Hour)
			bob.Subject, bob.Gen = "bob", started
			if err := c.Store(other, bob); err != nil {
				t.Fatalf("unrelated late Store: %v", err)
			}
		})
	}
}

func TestLateNegativeAfterRevokeIsRefused(t *testing.T) {
	clk := newFakeClock()
	c := newCache(t, clk)
	k := KeyOf("tok")
	started := c.Generation()
	c.Revoke(k)
	if err := c.StoreNegative(k, started); !errors.Is(err, ErrRevokedSince) {
		t.Fatalf("late StoreNegative = %v, want ErrRevokedSince", err)
	}
	if _, o := c.Lookup(k, time.Minute); o != Miss {
		t.Fatalf("after the refused negative: %v, want miss", o)
	}
	// The same late verdict must not delete a newer positive lease either.
	fresh := lease(clk, time.Hour)
	fresh.Gen = c.Generation()
	if err := c.Store(k, fresh); err != nil {
		t.Fatal(err)
	}
	_ = c.StoreNegative(k, started)
	if _, o := c.Lookup(k, time.Minute); o != Hit {
		t.Fatalf("newer lease after a late negative: %v, want hit", o)
	}
}

func TestRevokeSubjectSurvivesClockStepBack(t *testing.T) {
	// Revocations are ordered by generation, not by the wall clock: a
	// subject revoke made after the clock stepped back still voids a
	// lease validated (by the clock) "later".
	clk := newFakeClock()
	c := newCache(t, clk)
	k := KeyOf("tok")
	clk.Advance(-time.Hour)
	l := lease(clk, 2*time.Hour)
	l.Gen = c.Generation()
	if err := c.Store(k, l); err != nil {
		t.Fatal(err)
	}
	clk.Advance(-time.Minute) // a second step back, before the revoke
	c.RevokeSubject("hydra", "alice")
	clk.Advance(2 * time.Minute)
	if _, o := c.Lookup(k, time.Hour); o != Miss {
		t.Fatalf("lease of a revoked subject: %v, want miss", o)
	}
}

func TestRevokeRecordsFoldIntoTheFloor(t *testing.T) {
	t.Run("pruned by age", func(t *testing.T) {
		clk := newFakeClock()
		c := newCache(t, clk)
		started := c.Generation()
		c.Revoke(KeyOf("tok"))
		clk.Advance(11 * time.Minute) // past MaxAge: the record goes
		c.Revoke(KeyOf("unrelated"))
		l := lease(clk, time.Hour)
		l.Gen = started
		if err := c.Store(KeyOf("tok"), l); !errors.Is(err, ErrRevokedSince) {
			t.Fatalf("a fill older than a pruned revoke: %v, want ErrRevokedSince", err)
		}
	})
	t.Run("too many records", func(t *testing.T) {
		clk := newFakeClock()
		c := newCache(t, clk)
		old := lease(clk, time.Hour)
		old.Gen = c.Generation()
		if err := c.Store(KeyOf("old"), old); err != nil {
			t.Fatal(err)
		}
		for i := range maxRevokeRecords + 1 {
			c.RevokeSubject("hydra", fmt.Sprint("s", i))
		}
		if n := len(c.names) + len(c.tokens); n > maxRevokeRecords {
			t.Fatalf("%d records kept, want at most %d", n, maxRevokeRecords)
		}
		// Safe, not precise: every lease validated before is void.
		if _, o := c.Lookup(KeyOf("old"), time.Minute); o != Miss {
			t.Fatalf("lease older than the floor: %v, want miss", o)
		}
		fresh := lease(clk, time.Hour)
		fresh.Gen = c.Generation()
		if err := c.Store(KeyOf("new"), fresh); err != nil {
			t.Fatal(err)
		}
		if _, o := c.Lookup(KeyOf("new"), time.Minute); o != Hit {
			t.Fatalf("lease after the floor: %v, want hit", o)
		}
	})
}

// TestRevokeAll: every lease and negative lease is gone, every fill that
// read the generation before it is refused, and fills after it work.
func TestRevokeAll(t *testing.T) {
	clk := newFakeClock()
	c := newCache(t, clk)
	g0 := c.Generation()
	a, b, n := KeyOf("a"), KeyOf("b"), KeyOf("n")
	for _, k := range []Key{a, b} {
		if err := c.Store(k, Lease{ValidatedAt: clk.Now(), Issuer: "hydra", Subject: "alice", Gen: g0}); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.StoreNegative(n, g0); err != nil {
		t.Fatal(err)
	}
	c.RevokeSubject("hydra", "bob") // a record RevokeAll folds away
	inFlight := c.Generation()

	c.RevokeAll()
	for _, k := range []Key{a, b, n} {
		if _, o := c.Lookup(k, time.Minute); o != Miss {
			t.Errorf("%s after RevokeAll: %v, want miss", k.Prefix(), o)
		}
	}
	if c.Len() != 0 {
		t.Errorf("Len %d after RevokeAll", c.Len())
	}
	if err := c.Store(a, Lease{ValidatedAt: clk.Now(), Gen: inFlight}); !errors.Is(err, ErrRevokedSince) {
		t.Errorf("a fill in flight across RevokeAll: %v, want ErrRevokedSince", err)
	}
	if err := c.StoreNegative(n, inFlight); !errors.Is(err, ErrRevokedSince) {
		t.Errorf("a negative fill in flight across RevokeAll: %v, want ErrRevokedSince", err)
	}
	g := c.Generation()
	if g <= inFlight {
		t.Fatalf("generation %d did not advance past %d", g, inFlight)
	}
	if err := c.Store(a, Lease{ValidatedAt: clk.Now(), Issuer: "hydra", Subject: "bob", Gen: g}); err != nil {
		t.Fatalf("a fill after RevokeAll: %v", err)
	}
	if _, o := c.Lookup(a, time.Minute); o != Hit {
		t.Errorf("after a fresh fill: %v, want hit", o)
	}
}

// A lease validated elsewhere (the fleet's store) before a revoke made
// here, filled after it: GenerationAt(validated_at) puts it before the
// revoke, so Store refuses it, whatever Generation() reads now. One
// validated after the revoke is filled as usual.
func TestGenerationAtOrdersForeignLeases(t *testing.T) {
	for _, byName := range []bool{false, true} {
		clk := newFakeClock()
		c := newCache(t, clk)
		k := KeyOf("tok")
		before := lease(clk, time.Hour) // validated elsewhere, now
		clk.Advance(time.Second)
		if byName {
			c.RevokeSubject("hydra", "alice")
		} else {
			c.Revoke(k)
		}
		clk.Advance(time.Second)
		after := lease(clk, time.Hour)
		gen := c.Generation() // read before the fill, after the revoke
		if g := c.GenerationAt(before.ValidatedAt, gen); g >= gen {
			t.Fatalf("byName=%v: GenerationAt(before the revoke) = %d, want below %d", byName, g, gen)
		}
		before.Gen = c.GenerationAt(before.ValidatedAt, gen)
		if err := c.Store(k, before); !errors.Is(err, ErrRevokedSince) {
			t.Fatalf("byName=%v: fill of a lease validated before the revoke = %v, want ErrRevokedSince", byName, err)
		}
		after.Gen = c.GenerationAt(after.ValidatedAt, gen)
		if after.Gen != gen {
			t.Fatalf("byName=%v: GenerationAt(after the revoke) = %d, want %d", byName, after.Gen, gen)
		}
		if err := c.Store(k, after); err != nil {
			t.Fatalf("byName=%v: fill of a lease validated after the revoke = %v", byName, err)
		}
	}
}

// TestGenerationAtAfterFloorRaise: a revoke that stood only locally (its
// store write failed) keeps refusing the shared lease validated before it
// after RevokeAll (the fleet's Lost hook and its reconnect call it: the
// outage that made the store write fail) and after the fold past
// maxRevokeRecords, which both drop the records GenerationAt reads.
func TestGenerationAtAfterFloorRaise(t *testing.T) {
	for _, how := range []string{"revoke-all", "fold"} {
		t.Run(how, func(t *testing.T) {
			clk := newFakeClock()
			c := newCache(t, clk)
			k := KeyOf("tok")
			before := lease(clk, time.Hour) // validated elsewhere, shared
			clk.Advance(time.Second)
			c.Revoke(k) // local only: the store write failed
			clk.Advance(time.Second)
			switch how {
			case "revoke-all":
				c.RevokeAll() // fleet: Lost / reconnect
			case "fold":
				for i := 0; i <= maxRevokeRecords; i++ {
					var o Key
					o[0], o[1], o[2] = byte(i), byte(i>>8), byte(i>>16)
					o[3] = 0xff
					c.Revoke(o)
				}
			}
			gen := c.Generation()
			before.Gen = c.GenerationAt(before.ValidatedAt, gen)
			if err := c.Store(k, before); !errors.Is(err, ErrRevokedSince) {
				t.Fatalf("%s: a lease validated before the local revoke of its token is filled again (err %v, gen %d, floor %d)",
					how, err, before.Gen, c.floor.Load())
			}
		})
	}
}

// TestGenerationAtClockStepBack: GenerationAt stops at the first record
// older than t. A wall clock stepping back between two revokes does not
// hide the older one (this token's) behind the newer (another's).
func TestGenerationAtClockStepBack(t *testing.T) {
	clk := newFakeClock()
	c := newCache(t, clk)
	k := KeyOf("tok")
	before := lease(clk, time.Hour) // validated elsewhere at T0
	clk.Advance(time.Second)
	c.Revoke(k) // at T0+1s, local only
	clk.Advance(-time.Minute)
	c.Revoke(KeyOf("other")) // at T0-59s: the clock stepped back
	gen := c.Generation()
	before.Gen = c.GenerationAt(before.ValidatedAt, gen)
	if err := c.Store(k, before); !errors.Is(err, ErrRevokedSince) {
		t.Fatalf("after a clock step back, a lease validated before the local revoke is filled (err %v, gen %d of %d)", err, before.Gen, gen)
	}
}

// TestGenerationAtAfterAgePrune: pruneLocked folds records older than
// MaxAge into the floor (floor = their gen) but leaves floorAt as it was,
// so GenerationAt does not know the floor covers validations before them.
// A clock that stepped forward past MaxAge and came back (the step back
// clamped by stampLocked, so the next record stays "after" every
// validation) makes a lease validated before the local revoke get exactly
// the floor, which Store accepts: "pruning early only voids more, never
// less" does not hold for GenerationAt.
func TestGenerationAtAfterAgePrune(t *testing.T) {
	clk := testclock.New(time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC))
	c := newCache(t, clk) // MaxAge 10m
	k := KeyOf("tok")
	shared := lease(clk, time.Hour) // validated elsewhere at T0
	clk.Advance(time.Second)
	c.Revoke(k) // at T0+1s, local only
	clk.Advance(11 * time.Minute)
	c.Revoke(KeyOf("other"))       // at T0+11m1s: prunes the record of k into the floor
	clk.Advance(-11 * time.Minute) // the step is corrected: T0+1s
	gen := c.Generation()
	shared.Gen = c.GenerationAt(shared.ValidatedAt, gen)
	if err := c.Store(k, shared); !errors.Is(err, ErrRevokedSince) {
		_, o := c.Lookup(k, time.Minute)
		t.Fatalf("a lease validated before the local revoke is filled once an age prune dropped the record: err %v, gen %d, floor %d; lookup %v",
			err, shared.Gen, c.floor.Load(), o)
	}
}
