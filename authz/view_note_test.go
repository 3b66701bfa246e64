package authz

import (
	"context"
	"runtime"
	"testing"
	"time"

	"github.com/leasegate/leasegate/authz/trust"
	"github.com/leasegate/leasegate/leasecache"
)

// TestReloadDoesNotReuseOldView: a view an old engine left in a memoised
// lease's Note is not used by a new engine (other upstream names, strip
// on): LeaseView.matches compares the issuer's ID, new per engine.
func TestReloadDoesNotReuseOldView(t *testing.T) {
	var base Config
	env := newEngEnv(t, engOpts{config: func(c *Config) { base = *c }})
	const tok = "reload-view"
	env.iss.setAnswer(tok, env.active(nil))
	env.check("GET", "/f", tok)
	old := env.check("GET", "/f", tok)
	if old.Lease != LeaseHit || old.View == nil {
		t.Fatalf("old engine: %+v", old)
	}
	nc := base
	nc.Upstream = UpstreamHeaderNames{Subject: "x-user", ClientID: "x-client", Scope: "x-scopes", Issuer: "x-iss"}
	nc.StripAuthorization = true
	neng, err := New(context.Background(), nc)
	if err != nil {
		t.Fatal(err)
	}
	defer neng.Close()
	r := &Request{Method: "GET", Path: "/f", Host: "storage.example.org", Headers: bearer(tok)}
	for i := range 2 {
		d := neng.Check(context.Background(), r)
		if d.Lease != LeaseHit || d.View == old.View || d.Headers[0].Name != "x-user" || !d.StripAuthorization {
			t.Fatalf("new engine hit %d: lease %s, headers %v, strip %v, same view %v", i, d.Lease, d.Headers, d.StripAuthorization, d.View == old.View)
		}
		// and the old engine, still draining, gets its own back
		if o := env.eng.Check(context.Background(), r); o.Headers[0].Name != "x-auth-subject" || o.StripAuthorization {
			t.Fatalf("old engine after the new one: %v strip %v", o.Headers, o.StripAuthorization)
		}
	}
}

// TestRetiredEngineNotPinned: after a reload, a lease the retired engine
// hit stays memoised with its view in the Note; that must not keep the
// retired engine's issuers (clients, transports, JWKS verifier, breaker)
// reachable from the shared lease cache.
func TestRetiredEngineNotPinned(t *testing.T) {
	var base Config
	env := newEngEnv(t, engOpts{config: func(c *Config) { base = *c }})
	const tok = "retired-engine"
	env.iss.setAnswer(tok, env.active(nil))
	ctx := context.Background()
	freed := make(chan struct{})
	func() {
		old, err := New(ctx, base)
		if err != nil {
			t.Fatal(err)
		}
		r := &Request{Method: "GET", Path: "/f", Host: "storage.example.org", Headers: bearer(tok)}
		old.Check(ctx, r)
		if d := old.Check(ctx, r); d.Lease != LeaseHit {
			t.Fatalf("old engine: %+v", d)
		}
		runtime.SetFinalizer(old.byName[engIssuerName], func(*trust.Issuer) { close(freed) })
		old.Close()
	}()
	// env.eng is the generation in force; the token is quiet after the reload.
	if !waitFreed(freed) {
		t.Fatal("the retired engine's issuer stays reachable while a lease it hit is memoised")
	}
}

func waitFreed(freed chan struct{}) bool {
	for range 20 {
		runtime.GC()
		select {
		case <-freed:
			return true
		case <-time.After(10 * time.Millisecond):
		}
	}
	return false
}

// TestNoteConcurrentIdentity: hits by two engines (two generations, other
// header names) race stores that flip the lease between two identities;
// every allow's identity, headers and names are one lease's and the
// deciding engine's.
func TestNoteConcurrentIdentity(t *testing.T) {
	var base Config
	env := newEngEnv(t, engOpts{config: func(c *Config) { base = *c }})
	nc := base
	nc.Upstream = UpstreamHeaderNames{Subject: "x-user", ClientID: "x-client", Scope: "x-scopes", Issuer: "x-iss"}
	neng, err := New(context.Background(), nc)
	if err != nil {
		t.Fatal(err)
	}
	defer neng.Close()
	const tok = "flipping-lease"
	key := leasecache.KeyOf(tok)
	scopes := map[string]string{"alice": "storage.read:/a", "bob": "storage.read:/b"}
	store := func(sub string) {
		l := leaseOf(env, sub, scopes[sub])
		_ = env.cache.Store(key, l)
	}
	store("alice")
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			if i%2 == 0 {
				store("bob")
			} else {
				store("alice")
			}
			env.clock.Advance(time.Millisecond)
		}
	}()
	errs := make(chan string, 4)
	check := func(e *Engine, subName string) {
		r := &Request{Method: "GET", Path: "/f", Host: "storage.example.org", Headers: bearer(tok)}
		hits := 0
		for range 3000 {
			d := e.Check(context.Background(), r)
			if !d.Allow {
				continue
			}
			if d.Lease == LeaseHit {
				hits++
			}
			want, ok := scopes[d.Identity.Subject]
			if !ok || d.Identity.Scope != want || len(d.Headers) < 3 || d.Headers[0].Name != subName ||
				d.Headers[0].Value != d.Identity.Subject || d.Headers[2].Value != want {
				errs <- "mixed decision: " + d.Identity.Subject + " " + d.Identity.Scope + " " + d.Headers[0].Name + "=" + d.Headers[0].Value + " " + d.Headers[2].Value
				return
			}
		}
		if hits == 0 {
			errs <- "no hits"
			return
		}
		errs <- ""
	}
	go check(env.eng, "x-auth-subject")
	go check(env.eng, "x-auth-subject")
	go check(neng, "x-user")
	go check(neng, "x-user")
	for range 4 {
		if e := <-errs; e != "" {
			t.Error(e)
		}
	}
	close(stop)
	<-done
}

func leaseOf(env *engEnv, sub, scope string) leasecache.Lease {
	now := env.clock.Now()
	return leasecache.Lease{ValidatedAt: now, Expiry: now.Add(time.Hour), Subject: sub, ClientID: "cli", Scope: scope,
		Issuer: engIssuerName, Gen: env.cache.Generation()}
}
