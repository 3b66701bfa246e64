//go:build unix

package authz

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"log/slog"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/rueidis"

	"github.com/leasegate/leasegate/authz/fleetmode"
	"github.com/leasegate/leasegate/internal/testredis"
	"github.com/leasegate/leasegate/leasecache"
	"github.com/leasegate/leasegate/leasecache/fleet"
	"github.com/leasegate/leasegate/policy"
)

// Fleet mode against a real Redis: two engines, each with its own lease
// cache and fleet Store, are two replicas; they share one issuer (which
// counts calls) and one Redis.

var fleetSecret = []byte("authz-fleet-test-secret-0123456789abcdef")

// replica is one leasegate process as the engine sees it.
type replica struct {
	*engEnv
	store *fleet.Store
}

// fleetPair starts Redis and two replicas on it; mod changes each
// engine's fleetmode.Config (on_store_loss).
func fleetPair(t testing.TB, loss fleetmode.StoreLoss) (a, b *replica, rs *testredis.Server) {
	t.Helper()
	rs = testredis.Start(t)
	a = newReplica(t, rs.Addr(), loss, nil)
	b = newReplica(t, rs.Addr(), loss, a.iss)
	return a, b, rs
}

// newReplica builds a replica; iss, when set, is the issuer of another
// replica to share (the env's own otherwise); mods change its Config after
// the fleet is set.
func newReplica(t testing.TB, addr string, loss fleetmode.StoreLoss, iss *engIssuerServer, mods ...func(*Config)) *replica {
	t.Helper()
	var cache atomic.Pointer[leasecache.Cache]
	hooks := fleet.Hooks{
		Revoked: func(r fleet.Revocation) {
			c := cache.Load()
			switch {
			case c == nil: // Self records are applied too, as server/fleet.go does
			case r.BySubject:
				c.RevokeName(r.Name())
			default:
				c.Revoke(r.Key)
			}
		},
		Lost: func(string) {
			if c := cache.Load(); c != nil {
				c.RevokeAll()
			}
		},
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	st, err := fleet.Open(ctx, fleet.Config{Addresses: []string{addr}, Secret: fleetSecret}, hooks)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(st.Close)
	o := engOpts{config: func(c *Config) {
		c.Fleet = &fleetmode.Config{Store: st, OnStoreLoss: loss, NegativeTTL: 10 * time.Second, LeaseMax: 10 * time.Minute}
		for _, mod := range mods {
			mod(c)
		}
	}}
	if iss != nil {
		o.issuer = func(ic *IssuerConfig) { ic.Introspection.Endpoint = iss.URL + "/introspect" }
	}
	env := newEngEnv(t, o)
	if iss != nil {
		env.iss = iss
	}
	cache.Store(env.cache)
	return &replica{engEnv: env, store: st}
}

func (r *replica) fleetLookups(outcome string) float64 {
	return r.counter("leasegate_fleet_lease_lookups_total", "outcome", outcome)
}

// key is tok's fleet key.
func (r *replica) key(tok string) leasecache.Key { return r.store.KeyOf(leasecache.KeyOf(tok)) }

// revoke is an admin revoke on r: local first, then the store.
func (r *replica) revoke(t *testing.T, tok string) {
	t.Helper()
	k := r.key(tok)
	r.eng.Revoke(k)
	if err := r.store.Revoke(context.Background(), k); err != nil {
		t.Fatal(err)
	}
}

func TestFleetSharedLease(t *testing.T) {
	a, b, _ := fleetPair(t, fleetmode.StoreLossStandalone)
	const tok = "fleet-shared-token"
	a.iss.setAnswer(tok, a.active(nil))
	if d := a.check("GET", "/f", tok); !d.Allow || d.Lease != LeaseMiss {
		t.Fatalf("A: %+v", d)
	}
	if d := b.check("GET", "/f", tok); !d.Allow || d.Lease != LeaseHit || d.Identity.Subject != "alice" {
		t.Fatalf("B: %+v", d)
	}
	if n := a.calls(); n != 1 {
		t.Fatalf("issuer calls %d, want 1: B's lease came from the store", n)
	}
	if got := b.fleetLookups("hit"); got != 1 {
		t.Errorf("B fleet lookups hit = %v, want 1", got)
	}
	// B's next request is a local hit: the store is not asked again.
	if d := b.check("GET", "/f", tok); d.Lease != LeaseHit || b.fleetLookups("hit") != 1 {
		t.Fatalf("B again: %+v, lookups %v", d, b.fleetLookups("hit"))
	}
	// A window-0 tier never hits on a shared lease: validated fresh.
	if d := b.check("DELETE", "/f", tok); !d.Allow || d.Lease != LeaseMiss || a.calls() != 2 {
		t.Fatalf("B DELETE: %+v, calls %d", d, a.calls())
	}
}

// TestFleetSharedNoIat: under a lifetime policy, a lease shared without
// iat says the issuer gave none, so another replica refuses from it
// without asking the issuer (SPEC §2: such a token is refused).
func TestFleetSharedNoIat(t *testing.T) {
	rs := testredis.Start(t)
	pol := lifetimePolicy(t, func(c *policy.Config) { c.MaxTokenLifetime = 12 * time.Hour })
	a := newReplica(t, rs.Addr(), fleetmode.StoreLossStandalone, nil, pol)
	b := newReplica(t, rs.Addr(), fleetmode.StoreLossStandalone, a.iss, pol)
	const tok = "fleet-no-iat-token"
	a.iss.setAnswer(tok, a.issued(time.Time{}, a.clock.Now().Add(time.Hour)))
	wantLifetimeDenial(t, "A", a.check("GET", "/f", tok), "no iat")
	d := b.check("GET", "/f", tok)
	wantLifetimeDenial(t, "B", d, "no iat")
	if d.Lease != LeaseHit || a.calls() != 1 {
		t.Fatalf("B: lease %s, %d issuer calls; want the shared lease and A's one call", d.Lease, a.calls())
	}
}

func TestFleetSharedNegative(t *testing.T) {
	a, b, _ := fleetPair(t, fleetmode.StoreLossStandalone)
	const tok = "fleet-inactive-token"
	if d := a.check("GET", "/f", tok); d.Allow || d.Status != http.StatusUnauthorized {
		t.Fatalf("A: %+v", d)
	}
	// A negative lease applies to every tier, window-0 ones too.
	for _, m := range []string{"GET", "DELETE"} {
		if d := b.check(m, "/f", tok); d.Allow || d.Lease != LeaseNegative {
			t.Fatalf("B %s: %+v; fleet lookups hit %v miss %v revoked %v error %v; A stats %+v B stats %+v", m, d,
				b.fleetLookups("hit"), b.fleetLookups("miss"), b.fleetLookups("revoked"), b.fleetLookups("error"), a.store.Stats(), b.store.Stats())
		}
	}
	if n := a.calls(); n != 1 {
		t.Fatalf("issuer calls %d, want 1", n)
	}
}

// TestFleetCoalescing: 30 concurrent misses over two replicas, one
// issuer call.
func TestFleetCoalescing(t *testing.T) {
	a, b, _ := fleetPair(t, fleetmode.StoreLossStandalone)
	const tok = "fleet-coalesced-token"
	a.iss.setAnswer(tok, a.active(nil))
	release := make(chan struct{})
	a.iss.setHook(func(*http.Request) { <-release })
	var wg sync.WaitGroup
	decisions := make(chan Decision, 30)
	for i := range 30 {
		r := a
		if i%2 == 1 {
			r = b
		}
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			decisions <- r.eng.Check(ctx, &Request{Method: "GET", Path: "/f", Host: "storage.example.org", Headers: bearer(tok)})
		})
	}
	eventually(t, "the first issuer call", func() bool { return a.calls() == 1 })
	time.Sleep(50 * time.Millisecond) // every request is waiting, locally or on the fleet lock
	close(release)
	wg.Wait()
	close(decisions)
	for d := range decisions {
		if !d.Allow {
			t.Fatalf("denied: %+v", d)
		}
	}
	if n := a.calls(); n != 1 {
		t.Fatalf("issuer calls %d, want 1 for the fleet", n)
	}
}

// TestFleetRevocation: an admin revoke on A is refused on B within
// 100 ms; B's next request goes to the issuer.
func TestFleetRevocation(t *testing.T) {
	cases := []struct {
		name   string
		revoke func(t *testing.T, a *replica, tok string)
	}{
		{"token", func(t *testing.T, a *replica, tok string) { a.revoke(t, tok) }},
		{"subject", func(t *testing.T, a *replica, _ string) {
			if err := a.eng.RevokeSubject(engIssuerName, "alice"); err != nil {
				t.Fatal(err)
			}
			if err := a.store.RevokeSubject(context.Background(), engIssuerName, "alice"); err != nil {
				t.Fatal(err)
			}
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			a, b, _ := fleetPair(t, fleetmode.StoreLossStandalone)
			tok := "fleet-revoked-" + c.name
			a.iss.setAnswer(tok, a.active(nil))
			a.check("GET", "/f", tok)
			if d := b.check("GET", "/f", tok); d.Lease != LeaseHit {
				t.Fatalf("B before: %+v", d)
			}
			a.iss.setAnswer(tok, map[string]any{"active": false}) // revoked at the issuer too
			start := time.Now()
			c.revoke(t, a, tok)
			for {
				d := b.check("GET", "/f", tok)
				if !d.Allow {
					if d.Lease != LeaseMiss || a.calls() != 2 {
						t.Fatalf("B refused without asking the issuer: %+v, calls %d", d, a.calls())
					}
					break
				}
				if time.Since(start) > 100*time.Millisecond {
					t.Fatalf("B still allows %v after the revoke", time.Since(start))
				}
				time.Sleep(time.Millisecond)
			}
			t.Logf("refused on B %v after the revoke on A", time.Since(start))
		})
	}
}

// TestFleetStoreLoss: with Redis hung (SIGSTOP: sockets open, no
// answers), each on_store_loss mode does what SPEC §8 says, and no Check
// outlives its deadline.
func TestFleetStoreLoss(t *testing.T) {
	cases := []struct {
		loss fleetmode.StoreLoss
		// a lease cached before the loss: hit (standalone), issuer
		// (revalidate), 503 (deny)
		wantLease  LeaseOutcome
		wantStatus int
		wantCalls  int64
	}{
		{fleetmode.StoreLossStandalone, LeaseHit, http.StatusOK, 1},
		{fleetmode.StoreLossRevalidate, LeaseMiss, http.StatusOK, 2},
		{fleetmode.StoreLossDeny, LeaseNone, http.StatusServiceUnavailable, 1},
	}
	for _, c := range cases {
		t.Run(string(c.loss), func(t *testing.T) {
			a, _, rs := fleetPair(t, c.loss)
			const tok, fresh = "fleet-loss-token", "fleet-loss-fresh"
			a.iss.setAnswer(tok, a.active(nil))
			a.iss.setAnswer(fresh, a.active(nil))
			a.check("GET", "/f", tok)
			rs.Stop()
			defer rs.Cont()
			// Before the store is noticed down: a miss still answers in
			// time, each store call bounded by fleet.timeout.
			const deadline = 600 * time.Millisecond
			ctx, cancel := context.WithTimeout(context.Background(), deadline)
			start := time.Now()
			d := a.eng.Check(ctx, &Request{Method: "GET", Path: "/f", Host: "storage.example.org", Headers: bearer(fresh)})
			cancel()
			if took := time.Since(start); took > deadline {
				t.Fatalf("a Check with a hung store took %v, past its deadline %v: %+v", took, deadline, d)
			}
			eventually(t, "the store noticed down", func() bool { return !a.store.Up() })
			before := a.calls()
			start = time.Now()
			d = a.check("GET", "/f", tok)
			if took := time.Since(start); took > 100*time.Millisecond {
				t.Errorf("a Check with the store known down took %v", took)
			}
			if d.Lease != c.wantLease || d.Status != c.wantStatus || a.calls()-before != c.wantCalls-1 {
				t.Fatalf("%s: %+v (calls +%d); want lease %s status %d calls +%d", c.loss, d, a.calls()-before, c.wantLease, c.wantStatus, c.wantCalls-1)
			}
			if c.loss == fleetmode.StoreLossDeny && d.Reason != ReasonFleetUnavailable {
				t.Errorf("reason %s, want %s", d.Reason, ReasonFleetUnavailable)
			}
		})
	}
}

// rawClient is the test's own Redis client, beside the replicas.
func rawClient(t *testing.T, addr string) rueidis.Client {
	t.Helper()
	c, err := rueidis.NewClient(rueidis.ClientOption{InitAddress: []string{addr}, DisableCache: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

// TestFleetForgedValue: a value someone wrote into Redis is a miss on
// the replica that reads it, counted, and never an allow.
func TestFleetForgedValue(t *testing.T) {
	a, b, rs := fleetPair(t, fleetmode.StoreLossStandalone)
	raw := rawClient(t, rs.Addr())
	ctx := context.Background()
	const tok = "fleet-forged-token"
	a.iss.setAnswer(tok, a.active(nil))
	a.check("GET", "/f", tok)
	keys, err := raw.Do(ctx, raw.B().Keys().Pattern("leasegate:l:*").Build()).AsStrSlice()
	if err != nil || len(keys) != 1 {
		t.Fatalf("lease keys %v %v", keys, err)
	}
	v, err := raw.Do(ctx, raw.B().Get().Key(keys[0]).Build()).AsBytes()
	if err != nil {
		t.Fatal(err)
	}
	v[len(v)/2] ^= 0x40 // a flipped bit: the MAC fails
	if err := raw.Do(ctx, raw.B().Set().Key(keys[0]).Value(rueidis.BinaryString(v)).Build()).Error(); err != nil {
		t.Fatal(err)
	}
	d := b.check("GET", "/f", tok)
	if !d.Allow || d.Lease != LeaseMiss || a.calls() != 2 {
		t.Fatalf("B on a forged value: %+v, calls %d; want a fresh validation", d, a.calls())
	}
	if got := b.fleetLookups("forged"); got != 1 {
		t.Errorf("forged lookups %v, want 1", got)
	}
}

// TestFleetStoreHoldsNoToken: after leases, a negative lease and
// revocations, nothing in Redis is a token or the plain SHA-256 of one.
func TestFleetStoreHoldsNoToken(t *testing.T) {
	a, b, rs := fleetPair(t, fleetmode.StoreLossStandalone)
	toks := []string{"fleet-scan-good-token", "fleet-scan-bad-token"}
	a.iss.setAnswer(toks[0], a.active(nil))
	for _, tok := range toks {
		a.check("GET", "/f", tok)
		b.check("GET", "/f", tok)
	}
	a.revoke(t, toks[0])
	if err := a.store.RevokeSubject(context.Background(), engIssuerName, "alice"); err != nil {
		t.Fatal(err)
	}
	raw := rawClient(t, rs.Addr())
	ctx := context.Background()
	keys, err := raw.Do(ctx, raw.B().Keys().Pattern("*").Build()).AsStrSlice()
	if err != nil || len(keys) == 0 {
		t.Fatalf("keys %v %v", keys, err)
	}
	var all bytes.Buffer
	for _, k := range keys {
		all.WriteString(k)
		typ, _ := raw.Do(ctx, raw.B().Type().Key(k).Build()).ToString()
		switch typ {
		case "string":
			v, _ := raw.Do(ctx, raw.B().Get().Key(k).Build()).AsBytes()
			all.Write(v)
		case "stream":
			es, _ := raw.Do(ctx, raw.B().Xrange().Key(k).Start("-").End("+").Build()).AsXRange()
			for _, e := range es {
				for f, v := range e.FieldValues {
					all.WriteString(f + v)
				}
			}
		}
	}
	for _, tok := range toks {
		sum := sha256.Sum256([]byte(tok))
		for _, needle := range [][]byte{[]byte(tok), sum[:], []byte(hex.EncodeToString(sum[:]))} {
			if bytes.Contains(all.Bytes(), needle) {
				t.Fatalf("Redis holds %q (or its plain hash)", tok)
			}
		}
	}
}

// BenchmarkFleetCheckHit is BenchmarkCheckHit/plain in fleet mode: the
// local hit path, which never reaches the store (the fleet key is one
// HMAC more per request).
func BenchmarkFleetCheckHit(b *testing.B) {
	for _, loss := range []fleetmode.StoreLoss{fleetmode.StoreLossStandalone, fleetmode.StoreLossDeny} {
		b.Run(string(loss), func(b *testing.B) {
			a, _, _ := fleetPair(b, loss)
			a.eng.log = slogDiscard()
			const tok = "ory_at_bench-0123456789abcdefghijklmnopqrstuvwxyz.ABCDEFGHIJKLMNOPQRSTUVWXYZ"
			a.iss.setAnswer(tok, a.active(nil))
			r := &Request{Method: "GET", Host: "storage.example.org", Path: "/data/atlas/file", Headers: bearer(tok)}
			ctx := context.Background()
			if d := a.eng.Check(ctx, r); !d.Allow {
				b.Fatalf("warm-up: %+v", d)
			}
			b.ReportAllocs()
			for b.Loop() {
				if d := a.eng.Check(ctx, r); d.Lease != LeaseHit {
					b.Fatalf("not a hit: %+v", d)
				}
			}
		})
	}
}

// BenchmarkFleetCheckStoreHit: a local miss answered from the store (one
// GET on loopback Redis, MAC check, local fill), no issuer call.
func BenchmarkFleetCheckStoreHit(b *testing.B) {
	a, rb, _ := fleetPair(b, fleetmode.StoreLossStandalone)
	a.eng.log, rb.eng.log = slogDiscard(), slogDiscard()
	const tok = "ory_at_bench-store-hit"
	a.iss.setAnswer(tok, a.active(nil))
	r := &Request{Method: "GET", Host: "storage.example.org", Path: "/data/atlas/file", Headers: bearer(tok)}
	ctx := context.Background()
	a.eng.Check(ctx, r)
	k := rb.key(tok)
	calls := a.calls()
	b.ReportAllocs()
	for b.Loop() {
		b.StopTimer()
		rb.cache.Revoke(k) // local only: the store keeps the lease
		b.StartTimer()
		if d := rb.eng.Check(ctx, r); d.Lease != LeaseHit {
			b.Fatalf("not a store hit: %+v", d)
		}
	}
	if a.calls() != calls {
		b.Fatalf("store hits called the issuer %d times", a.calls()-calls)
	}
}

func slogDiscard() *slog.Logger {
	return slog.New(slog.NewJSONHandler(io.Discard, &slog.HandlerOptions{Level: slog.LevelInfo}))
}
