package authz

import (
	"context"
	"encoding/json"
	"net/http"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/leasegate/leasegate/leasecache"
)

// parkedInValidate counts goroutines waiting in Engine.validate for a flight.
func parkedInValidate() int {
	buf := make([]byte, 8<<20)
	n := 0
	for _, g := range strings.Split(string(buf[:runtime.Stack(buf, true)]), "\n\n") {
		if strings.Contains(g, "authz.(*Engine).validate(") && strings.Contains(g, "[select") {
			n++
		}
	}
	return n
}

// heldIssuer answers tok active until revoked is set, inactive after,
// deciding when a call arrives; the first call then waits for release.
// inCall is closed when the first call arrives.
type heldIssuer struct {
	inCall, release chan struct{}
	revoked         atomic.Bool
}

func holdFirstCall(env *engEnv) *heldIssuer {
	h := &heldIssuer{inCall: make(chan struct{}), release: make(chan struct{})}
	active, err := json.Marshal(env.active(nil))
	if err != nil {
		panic(err)
	}
	var n atomic.Int64
	env.iss.setFault(func(w http.ResponseWriter, _ *http.Request) {
		ans := active
		if h.revoked.Load() {
			ans = []byte(`{"active":false}`)
		}
		if n.Add(1) == 1 {
			close(h.inCall)
			<-h.release
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(ans)
	})
	return h
}

// awaitOwnAnswer waits for a decision that must not depend on the held
// flight. If the caller joined the held flight instead (the bug), it is
// released so the test can report the shared answer rather than hang.
func awaitOwnAnswer(t *testing.T, done <-chan Decision, release chan struct{}) Decision {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		select {
		case d := <-done:
			return d
		default:
		}
		if parkedInValidate() >= 2 || time.Now().After(deadline) {
			close(release)
			return <-done
		}
		time.Sleep(time.Millisecond)
	}
}

func TestEngineRequestAfterRevokeDoesNotJoinOlderFlight(t *testing.T) {
	// SPEC §1: "A request that arrives after an admin revoke of its token
	// (or subject) is never answered from an issuer call that started
	// before that revoke" — on a window-0 tier too.
	for _, bySubject := range []bool{false, true} {
		t.Run(map[bool]string{false: "token", true: "subject"}[bySubject], func(t *testing.T) {
			env := newEngEnv(t, engOpts{})
			const tok = "opaque-join-after-revoke"
			h := holdFirstCall(env)

			first := make(chan Decision, 1)
			go func() { first <- env.check("DELETE", "/f", tok) }()
			<-h.inCall // the issuer call that started before the revoke

			// The issuer revokes the token, the admin tells leasegate.
			h.revoked.Store(true)
			if bySubject {
				if err := env.eng.RevokeSubject(engIssuerName, "alice"); err != nil {
					t.Fatal(err)
				}
			} else {
				env.eng.Revoke(leasecache.KeyOf(tok))
			}

			second := make(chan Decision, 1)
			go func() { second <- env.check("DELETE", "/f", tok) }()
			d := awaitOwnAnswer(t, second, h.release)
			if d.Allow || d.Status != http.StatusUnauthorized || d.Reason != ReasonInactive {
				t.Fatalf("request after the revoke = %+v, want 401 inactive from its own issuer call", d)
			}
			if got := env.counter("leasegate_coalesced_total"); got != 0 {
				t.Fatalf("coalesced = %v: the request after the revoke shared the older flight", got)
			}
			select {
			case <-h.release:
			default:
				close(h.release)
			}
			// The request that arrived before the revoke may keep the
			// older answer; the cache must not.
			if d := <-first; !d.Allow {
				t.Fatalf("request before the revoke = %+v, want the pre-revoke allow", d)
			}
			if env.calls() != 2 {
				t.Fatalf("issuer calls = %d, want 2", env.calls())
			}
			if d := env.check("GET", "/f", tok); d.Allow || d.Lease != LeaseNegative {
				t.Fatalf("next request = %+v, want the post-revoke negative lease, not the older allow", d)
			}
		})
	}
}

func TestEngineRevokeDuringReloadReachesTheOldEngine(t *testing.T) {
	// On reload the server builds a new engine on the same cache. A revoke
	// through the new engine must stop the old engine's validation in
	// flight from storing its pre-revoke answer.
	for _, bySubject := range []bool{false, true} {
		t.Run(map[bool]string{false: "token", true: "subject"}[bySubject], func(t *testing.T) {
			var cfg Config
			env := newEngEnv(t, engOpts{config: func(c *Config) { cfg = *c }})
			const tok = "opaque-revoke-during-reload"
			h := holdFirstCall(env)

			old := make(chan Decision, 1)
			go func() { old <- env.check("GET", "/f", tok) }()
			<-h.inCall

			next, err := New(context.Background(), cfg) // the reload
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(next.Close)
			if bySubject {
				if err := next.RevokeSubject(engIssuerName, "alice"); err != nil {
					t.Fatal(err)
				}
			} else {
				next.Revoke(leasecache.KeyOf(tok))
			}
			close(h.release)
			if d := <-old; !d.Allow {
				t.Fatalf("old engine's request = %+v, want its pre-revoke allow", d)
			}
			env.clock.Advance(time.Second)
			d := next.Check(context.Background(), &Request{Method: "GET", Path: "/f", Host: "storage.example.org", Headers: bearer(tok)})
			if d.Lease != LeaseMiss || env.calls() != 2 {
				t.Fatalf("new engine after the revoke = %+v, calls %d; want a fresh validation, not the old engine's lease", d, env.calls())
			}
		})
	}
}

// TestEngineRevokeByName: a push revocation names leases by the sid or
// email the issuer told (SPEC §9). In jwt+introspection the signed claims
// fill what the introspection answer left out, so a lease knows its sid
// from either; a lease of another session of the same user stays.
func TestEngineRevokeByName(t *testing.T) {
	const tokA, tokB = "opaque-session-a", "opaque-session-b"
	env := newEngEnv(t, engOpts{})
	env.iss.setAnswer(tokA, env.active(func(a map[string]any) {
		a["ext"] = map[string]any{"sid": "sess-a", "email": "Alice@Example.org"}
	}))
	env.iss.setAnswer(tokB, env.active(func(a map[string]any) { a["sid"] = "sess-b" }))
	runLeaseSteps(t, env, tokA, []leaseStep{{0, "GET", 1, LeaseMiss, true}, {time.Second, "GET", 1, LeaseHit, true}})
	runLeaseSteps(t, env, tokB, []leaseStep{{0, "GET", 2, LeaseMiss, true}})

	name, err := env.eng.RevokeName(engIss, leasecache.ClaimSession, "sess-a")
	if err != nil || name != engIssuerName {
		t.Fatalf("RevokeName by iss: %q, %v", name, err)
	}
	runLeaseSteps(t, env, tokA, []leaseStep{{time.Second, "GET", 3, LeaseMiss, true}, {time.Second, "GET", 3, LeaseHit, true}})
	runLeaseSteps(t, env, tokB, []leaseStep{{0, "GET", 3, LeaseHit, true}})

	if _, err := env.eng.RevokeName(engIssuerName, leasecache.ClaimEmail, "ALICE@example.org"); err != nil {
		t.Fatal(err)
	}
	runLeaseSteps(t, env, tokA, []leaseStep{{time.Second, "GET", 4, LeaseMiss, true}})
	runLeaseSteps(t, env, tokB, []leaseStep{{0, "GET", 4, LeaseHit, true}})

	for _, bad := range []struct{ issuer, value string }{{"nobody", "sess-a"}, {engIssuerName, ""}} {
		if _, err := env.eng.RevokeName(bad.issuer, leasecache.ClaimSession, bad.value); err == nil {
			t.Errorf("RevokeName(%q, %q): no error", bad.issuer, bad.value)
		}
	}
	runLeaseSteps(t, env, tokA, []leaseStep{{0, "GET", 4, LeaseHit, true}})

	t.Run("jwt+introspection", func(t *testing.T) {
		jw := newEngJWT(t, ModeJWTIntrospection, engOpts{})
		tok := jw.token(t, func(c map[string]any) { c["sid"] = "sess-jwt" }, nil)
		jw.iss.setAnswer(tok, jw.active(nil)) // the answer carries no sid
		runLeaseSteps(t, jw.engEnv, tok, []leaseStep{{0, "GET", 1, LeaseMiss, true}, {time.Second, "GET", 1, LeaseHit, true}})
		if _, err := jw.eng.RevokeName(engIssuerName, leasecache.ClaimSession, "sess-jwt"); err != nil {
			t.Fatal(err)
		}
		runLeaseSteps(t, jw.engEnv, tok, []leaseStep{{time.Second, "GET", 2, LeaseMiss, true}})
	})
}
