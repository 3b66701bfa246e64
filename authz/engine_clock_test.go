package authz

import (
	"net/http"
	"testing"
	"time"

	"github.com/leasegate/leasegate/policy"
)

func TestEngineClockStepBack(t *testing.T) {
	// SPEC §1: "Leases are judged on a clock that cannot run backwards for
	// them: a lease whose validated_at lies in the future (the wall clock
	// stepped back) is a miss, never a longer hit."
	t.Run("a step back is a miss, then leases restart from the new clock", func(t *testing.T) {
		env := newEngEnv(t, engOpts{})
		const tok = "opaque-clock"
		env.iss.setAnswer(tok, env.active(func(a map[string]any) { a["exp"] = env.clock.Now().Add(3 * time.Hour).Unix() }))
		runLeaseSteps(t, env, tok, []leaseStep{
			{0, "GET", 1, LeaseMiss, true},
			{-time.Hour, "GET", 2, LeaseMiss, true}, // was: 61 minutes of hits
			{59 * time.Second, "GET", 2, LeaseHit, true},
			{time.Second, "GET", 3, LeaseMiss, true},
		})
	})
	t.Run("no stale allowance from a lease validated in the future", func(t *testing.T) {
		tiers := policy.DefaultTiers()
		tiers[0].StaleIfError = 5 * time.Minute
		env := newEngEnv(t, engOpts{tiers: tiers})
		const tok = "opaque-clock-stale"
		env.iss.setAnswer(tok, env.active(nil))
		if d := env.check("GET", "/f", tok); !d.Allow {
			t.Fatalf("first GET = %+v", d)
		}
		env.iss.setFault(func(w http.ResponseWriter, _ *http.Request) { http.Error(w, "down", http.StatusBadGateway) })
		env.clock.Advance(-time.Minute)
		if d := env.check("GET", "/f", tok); d.Allow || d.Status != http.StatusServiceUnavailable {
			t.Fatalf("GET after a step back with the issuer down = %+v, want 503", d)
		}
	})
	t.Run("a negative lease stays negative, for negative_ttl", func(t *testing.T) {
		env := newEngEnv(t, engOpts{})
		const tok = "opaque-clock-inactive" // unknown to the issuer: inactive
		runLeaseSteps(t, env, tok, []leaseStep{
			{0, "DELETE", 1, LeaseMiss, false},
			{-time.Hour, "DELETE", 1, LeaseNegative, false}, // not shortened into an allow
			{9 * time.Second, "DELETE", 1, LeaseNegative, false},
			{time.Second, "DELETE", 2, LeaseMiss, false}, // not an hour more
		})
	})
}
