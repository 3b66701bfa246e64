package authz

import (
	"context"
	"testing"

	"github.com/leasegate/leasegate/leasecache"
)

// TestLateFlightSeesNegative: a caller whose lookup missed just before
// another flight stored a negative lease, and who starts a flight of its
// own after that one ended, is refused on the negative lease without a
// second issuer call.
func TestLateFlightSeesNegative(t *testing.T) {
	env := newEngEnv(t, engOpts{})
	const tok = "late-garbage"
	if d := env.check("GET", "/f", tok); d.Allow || d.Reason != ReasonInactive {
		t.Fatalf("first request: %+v, want an inactive token refused", d)
	}
	calls := env.iss.calls.Load()
	is := env.eng.byName[engIssuerName]
	res := env.eng.flight(context.Background(), is, tok, leasecache.KeyOf(tok), leasecache.Lease{}, false)
	if res == nil || res.active || res.reason != ReasonNegative {
		t.Fatalf("late flight: %+v, want the negative lease", res)
	}
	if n := env.iss.calls.Load(); n != calls {
		t.Fatalf("issuer asked %d more times", n-calls)
	}
}
