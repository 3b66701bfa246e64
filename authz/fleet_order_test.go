//go:build unix

package authz

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/leasegate/leasegate/authz/fleetmode"
	"github.com/leasegate/leasegate/internal/testredis"
	"github.com/leasegate/leasegate/leasecache/fleet"
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

	// A's flight: the issuer said active, the answer is late.
	h := holdFirstCall(a.engEnv)
	unblock := sync.OnceFunc(func() { close(h.release) })
	t.Cleanup(unblock)
	done := make(chan Decision)
	go func() { done <- a.check("GET", "/f", tok) }()
	<-h.inCall
	h.revoked.Store(true) // the issuer's revoke: every later call is refused

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
	// A dropped its own late lease: its next request reads the refusal.
	if d := a.check("GET", "/f", tok); d.Allow || d.Lease != LeaseNegative {
		t.Fatalf("A after its late answer: %+v, want the negative lease", d)
	}
}

// TestFleetWaiterTakesTheLock: a replica that gave up waiting on another's
// lock (it lapsed) takes the lock itself before it validates, so its
// answer carries a stamp of its own and others wait on it.
func TestFleetWaiterTakesTheLock(t *testing.T) {
	a, b, rs := fleetPair(t, fleetmode.StoreLossStandalone)
	raw := rawClient(t, rs.Addr())
	ctx := context.Background()
	const tok = "fleet-waiter-lock"
	release := make(chan struct{})
	unblock := sync.OnceFunc(func() { close(release) })
	t.Cleanup(unblock)
	var n atomic.Int64
	activeAns := a.active(nil)
	a.iss.setFault(func(w http.ResponseWriter, r *http.Request) {
		n.Add(1)
		<-release
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(activeAns)
	})
	locks := func() []string {
		t.Helper()
		ks, err := raw.Do(ctx, raw.B().Keys().Pattern("leasegate:c:*").Build()).AsStrSlice()
		if err != nil {
			t.Fatal(err)
		}
		return ks
	}
	doneA, doneB := make(chan Decision), make(chan Decision)
	go func() { doneA <- a.check("GET", "/f", tok) }()
	eventually(t, "A's flight at the issuer", func() bool { return n.Load() == 1 })
	held := locks()
	if len(held) != 1 {
		t.Fatalf("locks %v, want A's", held)
	}
	go func() { doneB <- b.check("GET", "/f", tok) }()
	time.Sleep(20 * time.Millisecond) // B waits on A's lock
	if err := raw.Do(ctx, raw.B().Del().Key(held...).Build()).Error(); err != nil {
		t.Fatal(err)
	}
	eventually(t, "B's own validation", func() bool { return n.Load() == 2 })
	if got := locks(); len(got) != 1 {
		t.Fatalf("locks while B validates: %v, want B's", got)
	}
	unblock()
	if d := <-doneA; !d.Allow {
		t.Errorf("A: %+v", d)
	}
	if d := <-doneB; !d.Allow {
		t.Errorf("B: %+v", d)
	}
	if got := locks(); len(got) != 0 {
		t.Errorf("locks after both: %v, want none (B released its own)", got)
	}
}

// TestFleetWarnsOfSlowIssuers: an issuer whose timeouts add up to the
// order horizon or more is named in a warning at start (its slowest
// validations would be neither shared nor kept), in fleet mode and alone;
// a quick one is not.
func TestFleetWarnsOfSlowIssuers(t *testing.T) {
	rs := testredis.Start(t)
	for _, tc := range []struct {
		timeout time.Duration
		warned  bool
	}{{2 * time.Second, false}, {fleet.OrderHorizon, true}} {
		st, err := fleet.Open(context.Background(), fleet.Config{Addresses: []string{rs.Addr()}, Secret: fleetSecret}, fleet.Hooks{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(st.Close)
		env := newEngEnv(t, engOpts{
			issuer: func(ic *IssuerConfig) { ic.Introspection.Timeout = tc.timeout },
			config: func(c *Config) {
				c.Fleet = &fleetmode.Config{Store: st, NegativeTTL: 10 * time.Second, LeaseMax: 10 * time.Minute}
			},
		})
		if got := strings.Contains(env.logs.String(), "order horizon"); got != tc.warned {
			t.Errorf("timeout %v: warned %v, want %v\n%s", tc.timeout, got, tc.warned, env.logs.String())
		}
		alone := newEngEnv(t, engOpts{issuer: func(ic *IssuerConfig) { ic.Introspection.Timeout = tc.timeout }})
		if got := strings.Contains(alone.logs.String(), "order horizon"); got != tc.warned {
			t.Errorf("timeout %v, no fleet: warned %v, want %v", tc.timeout, got, tc.warned)
		}
	}
}
