package leasecache

import (
	"errors"
	"testing"
	"time"
)

// TestOlderAnswerLosesToNewer: of two validations of one token, the answer
// of the one that began later stands, whichever arrives last. An older
// "active" does not replace a newer negative lease nor a newer lease; a
// negative stamped in the future (the clock stepped back) blocks the fill
// of a flight on the stepped-back clock until a lookup re-stamps it and
// it ages out; a newer answer replaces an older one.
func TestOlderAnswerLosesToNewer(t *testing.T) {
	k := KeyOf("token")
	t.Run("negative after the validation began", func(t *testing.T) {
		clk := newFakeClock()
		c := newCache(t, clk)
		older := lease(clk, time.Hour) // began now
		for _, d := range []time.Duration{time.Millisecond, time.Second} {
			clk.Advance(d)
			if err := c.StoreNegative(k, c.Generation()); err != nil {
				t.Fatal(err)
			}
			if err := c.Store(k, older); !errors.Is(err, ErrSuperseded) {
				t.Fatalf("negative %v after: Store = %v, want ErrSuperseded", d, err)
			}
			if _, o := c.Lookup(k, time.Minute); o != Negative {
				t.Fatalf("negative %v after: Lookup = %v, want Negative", d, o)
			}
		}
	})
	t.Run("newer lease", func(t *testing.T) {
		clk := newFakeClock()
		c := newCache(t, clk)
		older := lease(clk, time.Hour)
		clk.Advance(time.Second)
		newer := lease(clk, time.Hour)
		newer.Scope = "storage.read:/atlas/sub"
		if err := c.Store(k, newer); err != nil {
			t.Fatal(err)
		}
		if err := c.Store(k, older); !errors.Is(err, ErrSuperseded) {
			t.Fatalf("Store(older) = %v, want ErrSuperseded", err)
		}
		if l, o := c.Lookup(k, time.Minute); o != Hit || l.Scope != newer.Scope {
			t.Fatalf("Lookup = %v %q, want the newer lease", o, l.Scope)
		}
		if err := c.Store(k, newer); err != nil {
			t.Fatalf("the same lease again: %v", err)
		}
	})
	t.Run("newer answer replaces", func(t *testing.T) {
		clk := newFakeClock()
		c := newCache(t, clk)
		if err := c.StoreNegative(k, c.Generation()); err != nil {
			t.Fatal(err)
		}
		clk.Advance(time.Second)
		if err := c.Store(k, lease(clk, time.Hour)); err != nil {
			t.Fatalf("a validation begun after the negative lease: %v", err)
		}
		if _, o := c.Lookup(k, time.Minute); o != Hit {
			t.Fatalf("Lookup = %v, want Hit", o)
		}
	})
	t.Run("stamp in the future", func(t *testing.T) {
		clk := newFakeClock()
		c := newCache(t, clk)
		clk.Advance(time.Hour)
		if err := c.StoreNegative(k, c.Generation()); err != nil {
			t.Fatal(err)
		}
		clk.Advance(-2 * time.Hour) // stepped back
		// The flight began before the stamp on this clock, so the negative
		// may be the newer answer: the "active" loses.
		if err := c.Store(k, lease(clk, time.Hour)); !errors.Is(err, ErrSuperseded) {
			t.Fatalf("Store over a negative stamped in the future = %v, want ErrSuperseded", err)
		}
		if _, o := c.Lookup(k, time.Minute); o != Negative {
			t.Fatalf("Lookup = %v, want Negative", o)
		}
		// The lookup re-stamped it now; a flight begun after that fills.
		clk.Advance(time.Second)
		if err := c.Store(k, lease(clk, time.Hour)); err != nil {
			t.Fatalf("a validation begun after the re-stamp: %v", err)
		}
		if _, o := c.Lookup(k, time.Minute); o != Hit {
			t.Fatalf("Lookup = %v, want Hit", o)
		}
	})
}

// TestForget: Forget drops the caller's own lease, or an older one, and
// keeps a newer one another validation stored.
func TestForget(t *testing.T) {
	k := KeyOf("forget-token")
	for _, tc := range []struct {
		name   string
		stored time.Duration // from the caller's validated_at
		kept   bool
	}{
		{"its own", 0, false},
		{"an older one", -time.Second, false},
		{"a newer one", time.Nanosecond, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			clk := newFakeClock()
			c := newCache(t, clk)
			ours := clk.Now()
			s := lease(clk, time.Hour)
			s.ValidatedAt = ours.Add(tc.stored)
			if err := c.Store(k, s); err != nil {
				t.Fatal(err)
			}
			clk.Advance(time.Second)
			c.Forget(k, ours)
			if _, o := c.Lookup(k, time.Hour); (o == Hit) != tc.kept {
				t.Fatalf("after Forget: %v, want kept %v", o, tc.kept)
			}
		})
	}
}
