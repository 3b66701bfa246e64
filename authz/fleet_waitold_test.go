//go:build unix

package authz

import (
	"context"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/leasegate/leasegate/authz/fleetmode"
	"github.com/leasegate/leasegate/internal/testredis"
	"github.com/leasegate/leasegate/leasecache"
	"github.com/leasegate/leasegate/leasecache/fleet"
)

// lookupFails is a shared store whose lookups time out (fleet.timeout
// passed) while its lock and waits answer.
type lookupFails struct{ fleetmode.SharedStore }

func (lookupFails) Lookup(context.Context, leasecache.Key) (leasecache.Lease, fleet.Outcome, error) {
	return leasecache.Lease{}, fleet.Unavailable, fleet.ErrUnavailable
}

// A replica whose shared lookup failed (so it knows no lease: after is
// zero) and that finds another replica's flight in progress waits for
// that flight's answer. The shared lease already in the store, validated
// long before, is not that answer: served, it allowed a window-0 DELETE
// (SPEC §1: every request of that tier is validated fresh) of a token
// the issuer had since revoked.
func TestFleetWaitServesNoOldLease(t *testing.T) {
	rs := testredis.Start(t)
	b := newReplica(t, rs.Addr(), fleetmode.StoreLossStandalone, nil)
	a := newReplica(t, rs.Addr(), fleetmode.StoreLossStandalone, b.iss, func(c *Config) {
		c.Fleet.Store = lookupFails{c.Fleet.Store}
	})
	const tok = "review-wait-old-lease"
	b.iss.setAnswer(tok, b.active(nil))
	if d := b.check("GET", "/f", tok); !d.Allow {
		t.Fatalf("warm on B: %+v", d)
	}
	time.Sleep(50 * time.Millisecond) // shared
	// Minutes later the issuer has revoked the token; B asks (a DELETE,
	// window 0) and holds the fleet lock while the issuer is slow.
	a.clock.Advance(5 * time.Minute)
	b.clock.Advance(5 * time.Minute)
	b.iss.setAnswer(tok, map[string]any{"active": false})
	gate := make(chan struct{})
	var once sync.Once
	entered := make(chan struct{})
	b.iss.setHook(func(*http.Request) {
		once.Do(func() { close(entered) })
		<-gate
	})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); b.check("DELETE", "/f", tok) }()
	<-entered
	calls := b.calls()
	done := make(chan Decision, 1)
	go func() { done <- a.check("DELETE", "/f", tok) }()
	var d Decision
	select {
	case d = <-done:
	case <-time.After(300 * time.Millisecond):
		// A is waiting for B's answer: the right thing. Let B answer.
		close(gate)
		d = <-done
		gate = nil
	}
	if gate != nil {
		close(gate)
	}
	wg.Wait()
	if d.Allow {
		t.Fatalf("A allowed a window-0 DELETE from the 5-minute-old shared lease while B was validating: lease=%s issuer calls during=%d", d.Lease, b.calls()-calls)
	}
}
