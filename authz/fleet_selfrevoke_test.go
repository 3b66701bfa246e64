//go:build unix

package authz

import (
	"context"
	"testing"
	"time"

	"github.com/leasegate/leasegate/authz/fleetmode"
)

// A subject revoke on replica A, with a request for the subject's token on
// A arriving while the revoke is being written to the store: it may refill
// A's local cache from the (never deleted) shared lease, but once the
// revoke is in the store that lease must be gone on A too (SPEC §1: at once
// everywhere after an admin revoke). Found by review: A used to skip its
// own log record, so the refilled lease survived.
func TestFleetSubjectRevokeBeatsSelfRefill(t *testing.T) {
	a, b, _ := fleetPair(t, fleetmode.StoreLossStandalone)
	_ = b
	const tok = "review-subject-refill"
	a.iss.setAnswer(tok, a.active(nil))
	if d := a.check("GET", "/f", tok); !d.Allow {
		t.Fatalf("warm: %+v", d)
	}
	a.iss.setAnswer(tok, map[string]any{"active": false})
	// server.revokeSubject: engines first ...
	if err := a.eng.RevokeSubject(engIssuerName, "alice"); err != nil {
		t.Fatal(err)
	}
	// ... a request lands here (before the record reaches the store) ...
	d := a.check("GET", "/f", tok)
	t.Logf("during revoke: allow=%v lease=%s", d.Allow, d.Lease)
	// ... then the store.
	if err := a.store.RevokeSubject(context.Background(), engIssuerName, "alice"); err != nil {
		t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond) // the follower has read the record back
	d = a.check("GET", "/f", tok)
	if d.Allow {
		t.Fatalf("A still allows %v after the subject revoke completed: lease=%s calls=%d", 200*time.Millisecond, d.Lease, a.calls())
	}
}

// The same for a token revoke: a request between the local revoke and the
// store's DEL.
func TestFleetTokenRevokeBeatsSelfRefill(t *testing.T) {
	a, _, _ := fleetPair(t, fleetmode.StoreLossStandalone)
	const tok = "review-token-refill"
	a.iss.setAnswer(tok, a.active(nil))
	a.check("GET", "/f", tok)
	a.iss.setAnswer(tok, map[string]any{"active": false})
	k := a.key(tok)
	a.eng.Revoke(k)
	d := a.check("GET", "/f", tok)
	t.Logf("during revoke: allow=%v lease=%s", d.Allow, d.Lease)
	if err := a.store.Revoke(context.Background(), k); err != nil {
		t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond)
	d = a.check("GET", "/f", tok)
	if d.Allow {
		t.Fatalf("A still allows after the token revoke completed: lease=%s calls=%d", d.Lease, a.calls())
	}
}

// A subject revoke with no interleaving: the first request right after the
// store call returned (after /revoke answered 200) is refused, before the
// follower has read the record back: the store pins its own records.
func TestFleetSubjectRevokeRefusedOnReturn(t *testing.T) {
	hits := 0
	for i := 0; i < 10; i++ {
		a, _, _ := fleetPair(t, fleetmode.StoreLossStandalone)
		const tok = "review-subject-after"
		a.iss.setAnswer(tok, a.active(nil))
		a.check("GET", "/f", tok)
		a.iss.setAnswer(tok, map[string]any{"active": false})
		if err := a.eng.RevokeSubject(engIssuerName, "alice"); err != nil {
			t.Fatal(err)
		}
		if err := a.store.RevokeSubject(context.Background(), engIssuerName, "alice"); err != nil {
			t.Fatal(err)
		}
		if d := a.check("GET", "/f", tok); d.Allow {
			hits++
		}
	}
	if hits > 0 {
		t.Fatalf("%d/10 runs: A allowed the revoked subject's token right after the revoke returned", hits)
	}
}

// An admin revoke whose store write fails (SPEC §6: "it still revokes
// locally and answers 503 ... revoked_locally": the admin client hung up,
// fleet.timeout passed, a blip) while the store is up: the shared lease,
// validated before the revoke, is still in Redis and no log record voids
// it. The next request on this very replica must not refill its local
// cache from it: the revoke stands locally, at once (README: "at once on
// that replica, windows elsewhere").
func TestFleetLocalOnlyRevokeNotRefilled(t *testing.T) {
	for _, bySubject := range []bool{false, true} {
		name := "token"
		if bySubject {
			name = "subject"
		}
		t.Run(name, func(t *testing.T) {
			a, _, _ := fleetPair(t, fleetmode.StoreLossStandalone)
			tok := "review-local-only-" + name
			a.iss.setAnswer(tok, a.active(nil))
			if d := a.check("GET", "/f", tok); !d.Allow {
				t.Fatalf("warm: %+v", d)
			}
			time.Sleep(50 * time.Millisecond) // the lease is shared
			a.iss.setAnswer(tok, map[string]any{"active": false})
			gone, cancel := context.WithCancel(context.Background())
			cancel() // the admin request's context: the client hung up
			k := a.key(tok)
			var err error
			if bySubject {
				if err := a.eng.RevokeSubject(engIssuerName, "alice"); err != nil {
					t.Fatal(err)
				}
				err = a.store.RevokeSubject(gone, engIssuerName, "alice")
			} else {
				a.eng.Revoke(k)
				err = a.store.Revoke(gone, k)
			}
			if err == nil {
				t.Fatal("store revoke with a cancelled context succeeded; the test needs it to fail")
			}
			if !a.store.Up() {
				t.Fatal("store went down; the test needs it up")
			}
			if d := a.check("GET", "/f", tok); d.Allow {
				t.Fatalf("the replica that revoked locally allows the token again: lease=%s calls=%d", d.Lease, a.calls())
			}
		})
	}
}
