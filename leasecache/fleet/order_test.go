//go:build unix

package fleet

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/leasegate/leasegate/leasecache"
)

// TestSharedAnswersInOrder: two replicas validate one token at once; the
// answer of the validation that began first never replaces a newer one
// that was shared before it (SPEC §1: an inactive token does not come
// back). Stamps come from Acquire, as in the engine.
func TestSharedAnswersInOrder(t *testing.T) {
	topologies(t, func(t *testing.T, e *env) {
		a, _ := e.open(t, nil)
		b, _ := e.open(t, nil)
		acquire := func(s *Store, k leasecache.Key) Stamp {
			t.Helper()
			_, since, err := s.Acquire(bg, k, time.Second)
			if err != nil || since <= 0 {
				t.Fatalf("Acquire: %v %v", since, err)
			}
			return since
		}
		expect := func(k leasecache.Key, want Outcome, subject string) {
			t.Helper()
			l, o, err := b.Lookup(bg, k)
			if err != nil || o != want || want == Hit && l.Subject != subject {
				t.Fatalf("shared: %v %q %v, want %v %q", o, l.Subject, err, want, subject)
			}
		}

		set := func(key, v string) {
			t.Helper()
			if err := e.raw.Do(bg, e.raw.B().Set().Key(key).Value(v).Build()).Error(); err != nil {
				t.Fatal(err)
			}
		}
		del := func(key string) {
			t.Helper()
			if err := e.raw.Do(bg, e.raw.B().Del().Key(key).Build()).Error(); err != nil {
				t.Fatal(err)
			}
		}

		t.Run("an older lease after a newer refusal", func(t *testing.T) {
			k := tokenKey(a, "order-negative")
			since := acquire(a, k) // a starts validating
			acquire(b, k)          // b too, later, and is refused first
			if err := b.StoreNegative(bg, k, time.Minute, b.Position()); err != nil {
				t.Fatal(err)
			}
			err := a.Store(bg, k, testLease("ada"), time.Minute, a.Position(), since)
			if !errors.Is(err, leasecache.ErrSuperseded) || !errors.Is(err, ErrNewerRefusal) {
				t.Fatalf("Store = %v, want ErrSuperseded and ErrNewerRefusal", err)
			}
			expect(k, Negative, "")
		})
		t.Run("the refusal's value read, without its order", func(t *testing.T) {
			k := tokenKey(a, "order-negative-value")
			since := acquire(a, k)
			if err := b.StoreNegative(bg, k, time.Minute, b.Position()); err != nil {
				t.Fatal(err)
			}
			del(a.ks.order(k))
			err := a.Store(bg, k, testLease("ada"), time.Minute, a.Position(), since)
			if !errors.Is(err, ErrNewerRefusal) {
				t.Fatalf("Store = %v, want ErrNewerRefusal (the kept value's kind)", err)
			}
			expect(k, Negative, "")
		})
		t.Run("a refusal whose value expired still wins", func(t *testing.T) {
			k := tokenKey(a, "order-negative-expired")
			since := acquire(a, k)
			if err := b.StoreNegative(bg, k, time.Millisecond, b.Position()); err != nil {
				t.Fatal(err)
			}
			for deadline := time.Now().Add(2 * time.Second); ; time.Sleep(time.Millisecond) {
				if _, o, _ := b.Lookup(bg, k); o == Miss {
					break
				}
				if time.Now().After(deadline) {
					t.Fatal("the refusal did not expire")
				}
			}
			if err := a.Store(bg, k, testLease("ada"), time.Minute, a.Position(), since); !errors.Is(err, ErrNewerRefusal) {
				t.Fatalf("Store = %v, want ErrNewerRefusal", err)
			}
			expect(k, Miss, "")
		})
		t.Run("stamps keep their order when the clock is behind them", func(t *testing.T) {
			k := tokenKey(a, "order-clock-back")
			future := time.Now().Add(time.Hour).UnixMicro()
			set(a.ks.order(k), fmt.Sprintf("%d ", future)) // stamps taken before a step back
			since := acquire(a, k)
			if since <= Stamp(future) {
				t.Fatalf("stamp %d not after the highest handed out, %d", since, future)
			}
			if err := b.StoreNegative(bg, k, time.Minute, b.Position()); err != nil {
				t.Fatal(err)
			}
			if err := a.Store(bg, k, testLease("ada"), time.Minute, a.Position(), since); !errors.Is(err, ErrNewerRefusal) {
				t.Fatalf("Store = %v, want ErrNewerRefusal", err)
			}
		})
		t.Run("a lease validated after the refusal", func(t *testing.T) {
			k := tokenKey(a, "order-after")
			if err := b.StoreNegative(bg, k, time.Minute, b.Position()); err != nil {
				t.Fatal(err)
			}
			if err := a.Store(bg, k, testLease("ben"), time.Minute, a.Position(), acquire(a, k)); err != nil {
				t.Fatal(err)
			}
			expect(k, Hit, "ben")
		})
		t.Run("an older lease after a newer lease", func(t *testing.T) {
			k := tokenKey(a, "order-leases")
			older, newer := acquire(a, k), acquire(b, k)
			if err := b.Store(bg, k, testLease("new"), time.Minute, b.Position(), newer); err != nil {
				t.Fatal(err)
			}
			if err := a.Store(bg, k, testLease("old"), time.Minute, a.Position(), older); !errors.Is(err, leasecache.ErrSuperseded) || errors.Is(err, ErrNewerRefusal) {
				t.Fatalf("Store(older) = %v, want ErrSuperseded, not a refusal", err)
			}
			expect(k, Hit, "new")
		})
		t.Run("a newer lease after an older lease", func(t *testing.T) {
			k := tokenKey(a, "order-refresh")
			older, newer := acquire(a, k), acquire(b, k)
			if err := a.Store(bg, k, testLease("old"), time.Minute, a.Position(), older); err != nil {
				t.Fatal(err)
			}
			if err := b.Store(bg, k, testLease("new"), time.Minute, b.Position(), newer); err != nil {
				t.Fatal(err)
			}
			expect(k, Hit, "new")
		})
		t.Run("a refusal replaces a newer lease", func(t *testing.T) {
			k := tokenKey(a, "order-refusal-wins")
			sealed := a.k.sealValue(a.ks.lease(k), kindLease, a.Position(), mustEncode(t, testLease("cy")))
			set(a.ks.lease(k), stamped(Stamp(time.Now().Add(time.Hour).UnixMicro()), sealed))
			if err := b.StoreNegative(bg, k, time.Minute, b.Position()); err != nil {
				t.Fatal(err)
			}
			expect(k, Negative, "")
		})
		t.Run("no Acquire: not shared", func(t *testing.T) {
			k := tokenKey(a, "order-unstamped")
			if err := a.Store(bg, k, testLease("dee"), time.Minute, a.Position(), 0); !errors.Is(err, leasecache.ErrSuperseded) || errors.Is(err, ErrNewerRefusal) {
				t.Fatalf("unstamped Store = %v, want ErrSuperseded", err)
			}
			expect(k, Miss, "")
		})
		t.Run("a stamp older than the horizon", func(t *testing.T) {
			k := tokenKey(a, "order-too-old")
			old := acquire(a, k) - Stamp((OrderHorizon + time.Second).Microseconds())
			if err := a.Store(bg, k, testLease("dee"), time.Minute, a.Position(), old); !errors.Is(err, ErrTooOld) || !errors.Is(err, leasecache.ErrSuperseded) {
				t.Fatalf("Store = %v, want ErrTooOld", err)
			}
			expect(k, Miss, "")
		})
		t.Run("a known refusal is reported past the horizon", func(t *testing.T) {
			k := tokenKey(a, "order-too-old-refused")
			old := acquire(a, k) - Stamp((OrderHorizon + time.Second).Microseconds())
			if err := b.StoreNegative(bg, k, time.Minute, b.Position()); err != nil {
				t.Fatal(err)
			}
			if err := a.Store(bg, k, testLease("dee"), time.Minute, a.Position(), old); !errors.Is(err, ErrNewerRefusal) {
				t.Fatalf("Store = %v, want ErrNewerRefusal", err)
			}
		})
		t.Run("the order outlives stamps ahead of the clock", func(t *testing.T) {
			k := tokenKey(a, "order-key-life")
			ahead := time.Minute
			set(a.ks.order(k), fmt.Sprintf("%d ", time.Now().Add(ahead).UnixMicro()))
			acquire(a, k)
			pttl, err := e.raw.Do(bg, e.raw.B().Pttl().Key(a.ks.order(k)).Build()).AsInt64()
			if min := (ahead + OrderHorizon - time.Second).Milliseconds(); err != nil || pttl < min {
				t.Fatalf("order key PTTL %d ms (%v), want at least %d: the horizon counts from the stamp", pttl, err, min)
			}
		})
		t.Run("a lease shared after the refusal is the newest answer", func(t *testing.T) {
			k := tokenKey(a, "order-refusal-then-lease")
			older := acquire(a, k)
			if err := b.StoreNegative(bg, k, time.Minute, b.Position()); err != nil {
				t.Fatal(err)
			}
			if err := b.Store(bg, k, testLease("new"), time.Minute, b.Position(), acquire(b, k)); err != nil {
				t.Fatal(err)
			}
			err := a.Store(bg, k, testLease("old"), time.Minute, a.Position(), older)
			if !errors.Is(err, leasecache.ErrSuperseded) || errors.Is(err, ErrNewerRefusal) {
				t.Fatalf("Store(older) = %v, want ErrSuperseded, not a refusal", err)
			}
			expect(k, Hit, "new")
		})
		t.Run("stamps pass the shared value's when the order key is gone", func(t *testing.T) {
			k := tokenKey(a, "order-value-ahead")
			future := Stamp(time.Now().Add(time.Hour).UnixMicro())
			sealed := a.k.sealValue(a.ks.lease(k), kindLease, a.Position(), mustEncode(t, testLease("cy")))
			set(a.ks.lease(k), stamped(future, sealed))
			if since := acquire(a, k); since <= future {
				t.Fatalf("stamp %d not after the shared value's, %d", since, future)
			}
		})
		t.Run("a value without a readable stamp is kept", func(t *testing.T) {
			k := tokenKey(a, "order-garbage")
			set(a.ks.lease(k), "not a stamp")
			if err := a.Store(bg, k, testLease("fay"), time.Minute, a.Position(), acquire(a, k)); !errors.Is(err, leasecache.ErrSuperseded) {
				t.Fatalf("Store over garbage = %v, want ErrSuperseded", err)
			}
			expect(k, Forged, "")
		})
	})
}
