//go:build unix

package authz

import (
	"context"
	"encoding/json"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/leasegate/leasegate/authz/fleetmode"
)

// TestFleetOlderFlightLosesToNewerNegative is TestOlderFlightLosesToNewerNegative
// across replicas: A's validation starts first and its "active" lands
// after B's later "not active" was shared. The shared answer stays the
// refusal, so a third replica, C, denies from the store without asking
// the issuer (SPEC §1: an inactive token does not come back).
func TestFleetOlderFlightLosesToNewerNegative(t *testing.T) {
	a, b, rs := fleetPair(t, fleetmode.StoreLossStandalone)
	c := newReplica(t, rs.Addr(), fleetmode.StoreLossStandalone, a.iss)
	raw := rawClient(t, rs.Addr())
	ctx := context.Background()
	const tok = "fleet-opaque-overwrite"

	release := make(chan struct{})
	var once sync.Once
	unblock := func() { once.Do(func() { close(release) }) }
	t.Cleanup(unblock)
	var n atomic.Int64
	activeAns := a.active(nil)
	a.iss.setFault(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		if n.Add(1) == 1 {
			<-release // A's flight: the issuer said active, the answer is late
			_ = json.NewEncoder(w).Encode(activeAns)
			return
		}
		_ = json.NewEncoder(w).Encode(map[string]any{"active": false}) // revoked now
	})
	done := make(chan Decision)
	go func() { done <- a.check("GET", "/f", tok) }()
	eventually(t, "A's flight at the issuer", func() bool { return n.Load() == 1 })

	// A's fleet lock lapses while its answer is on the way, so B, waiting
	// on it, validates on its own and shares the refusal.
	locks, err := raw.Do(ctx, raw.B().Keys().Pattern("leasegate:c:*").Build()).AsStrSlice()
	if err != nil || len(locks) != 1 {
		t.Fatalf("lock keys %v %v", locks, err)
	}
	if err := raw.Do(ctx, raw.B().Del().Key(locks...).Build()).Error(); err != nil {
		t.Fatal(err)
	}
	if d := b.check("DELETE", "/f", tok); d.Allow || d.Reason != ReasonInactive {
		t.Fatalf("B's DELETE: %+v, want inactive", d)
	}

	unblock()
	<-done // A's own caller asked before the refusal and gets its answer
	calls := a.calls()
	if d := c.check("GET", "/f", tok); d.Allow || d.Lease != LeaseNegative {
		t.Fatalf("C after A's answer landed: %+v, want the shared negative lease", d)
	}
	if a.calls() != calls {
		t.Errorf("C asked the issuer (%d calls, want %d): the store's answer was not the refusal", a.calls(), calls)
	}
	// A itself took the refusal in place of its own late lease.
	if d := a.check("GET", "/f", tok); d.Allow || d.Lease != LeaseNegative {
		t.Fatalf("A after its late answer: %+v, want the negative lease", d)
	}
}
