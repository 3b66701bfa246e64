package authz

import (
	"sync"
	"testing"
	"time"

	"github.com/leasegate/leasegate/leasecache"
)

// TestOlderFlightLosesToNewerNegative: two flights of one token (a revoke
// of someone else between them starts a new generation); the older one's
// "active" arrives after the newer one's "not active" and must not bring
// the token back (SPEC §1: an inactive token does not come back).
func TestOlderFlightLosesToNewerNegative(t *testing.T) {
	env := newEngEnv(t, engOpts{})
	const tok = "opaque-token-overwrite"
	env.iss.setAnswer(tok, env.active(nil))
	if d := env.check("GET", "/f", tok); !d.Allow {
		t.Fatalf("first GET: %+v", d)
	}
	env.clock.Advance(61 * time.Second) // read window closed

	// Flight A: the issuer said active, the answer delayed on the wire.
	h := holdFirstCall(env)
	unblock := sync.OnceFunc(func() { close(h.release) })
	t.Cleanup(unblock) // a failure before the release must not hang the issuer
	done := make(chan Decision)
	go func() { done <- env.check("GET", "/f", tok) }()
	<-h.inCall
	h.revoked.Store(true)               // the issuer's revoke: every later call is refused
	env.clock.Advance(time.Millisecond) // flight B begins after A

	// Any unrelated revocation advances the generation.
	if err := env.eng.RevokeSubject(engIssuerName, "bob"); err != nil {
		t.Fatal(err)
	}
	if d := env.check("DELETE", "/f", tok); d.Allow || d.Reason != ReasonInactive {
		t.Fatalf("DELETE after the issuer's revoke: %+v, want inactive", d)
	}
	if d := env.check("GET", "/f", tok); d.Allow || d.Lease != LeaseNegative {
		t.Fatalf("GET right after: %+v, want the negative lease", d)
	}

	unblock()
	<-done // flight A's own caller, who asked before the revoke, gets its answer
	env.clock.Advance(time.Second)
	if d := env.check("GET", "/f", tok); d.Allow || d.Lease != LeaseNegative {
		t.Fatalf("GET after the older flight landed: %+v, want the negative lease", d)
	}
}

// TestSlowFlightNotKept: a validation that outlasts the order horizon
// answers its callers but leaves no lease, as the fleet's store refuses
// it: a refusal of the token met meanwhile is remembered only that long
// against older answers (a reload's second engine can run one beside it).
func TestSlowFlightNotKept(t *testing.T) {
	env := newEngEnv(t, engOpts{})
	const tok = "opaque-slow-flight"
	h := holdFirstCall(env)
	done := make(chan Decision, 1)
	go func() { done <- env.check("GET", "/f", tok) }()
	<-h.inCall
	env.clock.Advance(leasecache.FlightHorizon + time.Second)
	close(h.release)
	if d := <-done; !d.Allow || d.Lease != LeaseMiss {
		t.Fatalf("the slow flight's caller = %+v, want its allow", d)
	}
	if d := env.check("GET", "/f", tok); !d.Allow || d.Lease != LeaseMiss || env.calls() != 2 {
		t.Fatalf("next GET = lease %s, calls %d; want a fresh validation (nothing kept)", d.Lease, env.calls())
	}
	if d := env.check("GET", "/f", tok); d.Lease != LeaseHit || env.calls() != 2 {
		t.Fatalf("third GET = lease %s, calls %d; want a hit on the quick validation's lease", d.Lease, env.calls())
	}
}
