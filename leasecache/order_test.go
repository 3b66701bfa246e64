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
// of a flight on the stepped-back clock, and a lookup's re-stamp of its
// TTL does not change that; a newer answer replaces an older one.
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
		wantLookup(t, c, k, Hit, "a validation begun after the negative")
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
		wantLookup(t, c, k, Negative, "after the step")
		// The lookup re-stamped its TTL now: it denies for NegativeTTL
		// from the step, then no more (fills stay refused while the store
		// holds it: its order stamp is still the newest).
		clk.Advance(10*time.Second + time.Millisecond)
		wantLookup(t, c, k, Miss, "NegativeTTL after the step")
		// And it blocks fills for FlightHorizon more, not until the clock
		// passes its stamp an hour on.
		if err := c.Store(k, lease(clk, time.Hour)); !errors.Is(err, ErrSuperseded) {
			t.Fatalf("within the horizon: Store = %v, want ErrSuperseded", err)
		}
		clk.Advance(FlightHorizon)
		if err := c.Store(k, lease(clk, time.Hour)); err != nil {
			t.Fatalf("past the horizon: Store = %v", err)
		}
		wantLookup(t, c, k, Hit, "past the horizon")
	})
	t.Run("refusal outlives its TTL against older flights", func(t *testing.T) {
		clk := newFakeClock()
		c := newCache(t, clk)
		older := lease(clk, time.Hour)
		clk.Advance(time.Second)
		if err := c.StoreNegative(k, c.Generation()); err != nil {
			t.Fatal(err)
		}
		clk.Advance(10*time.Second + FlightHorizon - time.Millisecond) // TTL 10 s long gone
		if err := c.Store(k, older); !errors.Is(err, ErrSuperseded) {
			t.Fatalf("an older flight's answer %v after the refusal: Store = %v, want ErrSuperseded", 10*time.Second+FlightHorizon, err)
		}
	})
	t.Run("re-stamped negative keeps its order", func(t *testing.T) {
		clk := newFakeClock()
		c := newCache(t, clk)
		older := lease(clk, time.Hour) // begins at T
		clk.Advance(time.Second)
		if err := c.StoreNegative(k, c.Generation()); err != nil { // T+1s
			t.Fatal(err)
		}
		clk.Advance(-time.Minute) // stepped back
		wantLookup(t, c, k, Negative, "after the step (re-stamped)")
		// A refusal on the stepped-back clock keeps the higher order too.
		if err := c.StoreNegative(k, c.Generation()); err != nil {
			t.Fatal(err)
		}
		if err := c.Store(k, older); !errors.Is(err, ErrSuperseded) {
			t.Fatalf("Store(older) after a re-stamped newer negative = %v, want ErrSuperseded", err)
		}
		clk.Advance(time.Minute)
		if _, o := c.Lookup(k, time.Minute); o == Hit {
			t.Fatal("Lookup = Hit from the older flight's answer")
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
