//go:build unix

package authz

import (
	"encoding/json"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/leasegate/leasegate/authz/fleetmode"
	"github.com/leasegate/leasegate/internal/testredis"
)

// TestFleetWaiterAsksAfterIssuerTimeout: a replica that finds another's
// flight in progress waits for its answer at most the issuer timeout, then
// asks the issuer itself (SPEC §8), even when the holder died with the
// lock held for longer: the other's fate costs it that wait, not a denial.
func TestFleetWaiterAsksAfterIssuerTimeout(t *testing.T) {
	// Only B's timeout is short: A's lock (its issuer timeout, 2 s) then
	// outlives the test's steps, and only B's own bound ends its wait.
	const timeout = 300 * time.Millisecond
	short := func(c *Config) { c.Issuers[0].Introspection.Timeout = timeout }
	rs := testredis.Start(t)
	raw := rawClient(t, rs.Addr())
	a := newReplica(t, rs.Addr(), fleetmode.StoreLossStandalone, nil)
	b := newReplica(t, rs.Addr(), fleetmode.StoreLossStandalone, a.iss, short)
	const tok = "fleet-waiter-timeout"
	release := make(chan struct{})
	t.Cleanup(sync.OnceFunc(func() { close(release) }))
	var n atomic.Int64
	ans := a.active(nil)
	a.iss.setFault(func(w http.ResponseWriter, r *http.Request) {
		if n.Add(1) == 1 { // A's call: no answer before its timeout
			select {
			case <-release:
			case <-r.Context().Done():
			}
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(ans)
	})
	doneA := make(chan Decision, 1)
	go func() { doneA <- a.check("GET", "/f", tok) }()
	eventually(t, "A's flight at the issuer", func() bool { return n.Load() == 1 })
	ctx := t.Context()
	held, err := raw.Do(ctx, raw.B().Keys().Pattern("leasegate:c:*").Build()).AsStrSlice()
	if err != nil || len(held) != 1 {
		t.Fatalf("locks %v (%v), want A's", held, err)
	}
	// A "dies": its lock now belongs to no live replica and outlasts the
	// issuer timeout by far, so only B's own bound ends its wait.
	if err := raw.Do(ctx, raw.B().Set().Key(held[0]).Value("dead-replica").Px(time.Minute).Build()).Error(); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	d := b.check("GET", "/f", tok)
	took := time.Since(start)
	if !d.Allow || d.Lease != LeaseMiss || n.Load() != 2 {
		t.Fatalf("B: %+v after %d issuer calls, want its own validation (2 calls)", d, n.Load())
	}
	if took < timeout/2 {
		t.Errorf("B answered after %v: it did not wait on A's flight", took)
	}
	if took > timeout+time.Second {
		t.Errorf("B answered after %v: its wait was not bounded by the issuer timeout %v", took, timeout)
	}
	if dA := <-doneA; dA.Allow || dA.Status != http.StatusServiceUnavailable {
		t.Errorf("A, whose issuer call timed out: %+v, want 503", dA)
	}
}

// TestFleetRevalidateCoalesces: with the store lost and on_store_loss
// revalidate, a replica serves no hit, and concurrent requests for one
// token still make one issuer call on it (SPEC §8: "coalesced per
// replica").
func TestFleetRevalidateCoalesces(t *testing.T) {
	a, _, rs := fleetPair(t, fleetmode.StoreLossRevalidate)
	const tok = "fleet-revalidate-coalesced"
	a.iss.setAnswer(tok, a.active(nil))
	if d := a.check("GET", "/f", tok); !d.Allow {
		t.Fatalf("before the loss: %+v", d)
	}
	rs.Stop()
	t.Cleanup(rs.Cont)
	eventually(t, "the store noticed down", func() bool { return !a.store.Up() })

	release := make(chan struct{})
	unblock := sync.OnceFunc(func() { close(release) })
	t.Cleanup(unblock)
	a.iss.setHook(func(*http.Request) { <-release })
	before := a.calls()
	const callers = 8
	var wg sync.WaitGroup
	got := make(chan Decision, callers)
	for range callers {
		wg.Go(func() { got <- a.check("GET", "/f", tok) })
	}
	waitInValidate(t, callers)
	unblock()
	wg.Wait()
	close(got)
	for d := range got {
		if !d.Allow || d.Lease == LeaseHit {
			t.Errorf("caller: %+v, want an allow from the issuer (no hits while cut off)", d)
		}
	}
	if got := a.calls() - before; got != 1 {
		t.Errorf("%d issuer calls for %d concurrent callers, want 1", got, callers)
	}
}
