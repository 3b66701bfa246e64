package authz

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"
	"unsafe"

	"github.com/leasegate/leasegate/authz/recent"
	"github.com/leasegate/leasegate/leasecache"
)

// TestHitsShareOneView: every hit of a lease carries the same view and the
// same header memory, with the lease's identity; the token id is the one a
// miss logs.
func TestHitsShareOneView(t *testing.T) {
	env := newEngEnv(t, engOpts{})
	const tok = "view-tok"
	env.iss.setAnswer(tok, env.active(nil))
	miss := env.check("GET", "/f", tok)
	if !miss.Allow || miss.Lease != LeaseMiss || miss.View != nil {
		t.Fatalf("first request: %+v, want an allow by validation without a view", miss)
	}
	a, b := env.check("GET", "/f", tok), env.check("HEAD", "/g", tok)
	if a.Lease != LeaseHit || b.Lease != LeaseHit || a.View == nil || a.View != b.View {
		t.Fatalf("hits: %p %p (%s, %s), want one shared view", a.View, b.View, a.Lease, b.Lease)
	}
	if &a.Headers[0] != &b.Headers[0] || &a.Headers[0] != &a.View.headers[0] {
		t.Fatal("hits do not share the view's headers")
	}
	if a.TokenID != miss.TokenID || a.TokenID != leasecache.KeyOf(tok).Prefix() {
		t.Fatalf("token id %q on a hit, %q on the miss", a.TokenID, miss.TokenID)
	}
	want := []Header{{"x-auth-subject", "alice"}, {"x-auth-client-id", "cli-1"}, {"x-auth-scope", "openid storage.read:/atlas"}, {"x-auth-issuer", engIss}}
	if fmt.Sprint(a.Headers) != fmt.Sprint(want) || fmt.Sprint(miss.Headers) != fmt.Sprint(want) {
		t.Fatalf("headers: hit %v, miss %v, want %v", a.Headers, miss.Headers, want)
	}
	if a.Identity != miss.Identity {
		t.Fatalf("identity: hit %+v, miss %+v", a.Identity, miss.Identity)
	}
	// An adapter appending its own header must not write into the view.
	extra := append(a.Headers, Header{"if-none-match", "*"})
	if len(a.View.headers) != 4 || &extra[0] == &a.Headers[0] {
		t.Fatal("append to a hit's headers wrote into the shared view")
	}
}

// TestViewFollowsRevalidation: a view never outlives the claims it was
// made from. After a revalidation with other claims (here: a window-0
// request), the next hit shows the new ones; after an admin revoke, a hit
// needs a new validation first.
func TestViewFollowsRevalidation(t *testing.T) {
	env := newEngEnv(t, engOpts{})
	const tok = "view-reval"
	env.iss.setAnswer(tok, env.active(nil))
	env.check("GET", "/f", tok)
	old := env.check("GET", "/f", tok)
	env.iss.setAnswer(tok, env.active(func(a map[string]any) { a["scope"] = "storage.read:/cms"; a["sub"] = "bob" }))
	if d := env.check("DELETE", "/f", tok); !d.Allow || d.Lease != LeaseMiss {
		t.Fatalf("window-0 request: %+v", d)
	}
	d := env.check("GET", "/f", tok)
	if d.Lease != LeaseHit || d.View == old.View || d.Identity.Subject != "bob" || d.Headers[2].Value != "storage.read:/cms" {
		t.Fatalf("hit after revalidation: %+v, want bob's new view", d)
	}
	env.eng.Revoke(leasecache.KeyOf(tok))
	env.iss.setAnswer(tok, map[string]any{"active": false})
	if d := env.check("GET", "/f", tok); d.Allow {
		t.Fatalf("after revoke and deactivation: %+v, want a denial", d)
	}
}

// TestViewRefusesUnsafeClaims: a lease whose claims cannot become headers
// gets no view, and every hit of it is refused, not only the first.
func TestViewRefusesUnsafeClaims(t *testing.T) {
	env := newEngEnv(t, engOpts{})
	const tok = "view-unsafe"
	env.iss.setAnswer(tok, env.active(func(a map[string]any) { a["sub"] = "alice\r\nx-auth-scope: all" }))
	for i := range 3 {
		if d := env.check("GET", "/f", tok); d.Allow || d.Status != 401 || d.View != nil || d.Headers != nil {
			t.Fatalf("request %d: %+v, want 401 and nothing upstream", i, d)
		}
	}
}

// TestViewsBounded: the views of many leases stay within two generations
// per shard, and a lease whose view was dropped gets a new one.
func TestViewsBounded(t *testing.T) {
	env := newEngEnv(t, engOpts{})
	is := env.eng.byName[engIssuerName]
	l := leasecache.Lease{Subject: "alice", ClientID: "cli", Scope: "s", Issuer: engIssuerName}
	const n = 3 * recent.Shards * recent.PerShard
	for i := range n {
		k := leasecache.KeyOf(fmt.Sprint("bounded-", i))
		if v := env.eng.view(k, k, &l, is); v == nil || v.identity.Subject != "alice" {
			t.Fatalf("view %d: %+v", i, v)
		}
	}
	if total, bound := env.eng.views.Len(), 2*recent.Shards*recent.PerShard; total > bound {
		t.Fatalf("%d views held, bound %d", total, bound)
	}
	k := leasecache.KeyOf("bounded-0")
	if v := env.eng.view(k, k, &l, is); v == nil || v.tokenID != k.Prefix() {
		t.Fatalf("view of a dropped lease: %+v", v)
	}
}

// TestHitAllocations holds BenchmarkCheckHit's allocation count: the lease
// cache's two copies (bigcache's Get copies the entry and the key) and
// nothing of the engine's own.
func TestHitAllocations(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector drops sync.Pool items at random")
	}
	// Logs at info, as a server runs: an allow's debug line is not written.
	env := newEngEnv(t, engOpts{config: func(c *Config) {
		c.Logger = slog.New(slog.NewJSONHandler(io.Discard, &slog.HandlerOptions{Level: slog.LevelInfo}))
	}})
	const tok = "allocs"
	env.iss.setAnswer(tok, env.active(nil))
	r := &Request{Method: "GET", Host: "storage.example.org", Path: "/data/file", Headers: bearer(tok)}
	ctx := context.Background()
	env.eng.Check(ctx, r)
	env.clock.Advance(time.Second)
	if n := testing.AllocsPerRun(200, func() {
		if d := env.eng.Check(ctx, r); d.Lease != LeaseHit {
			t.Fatalf("not a hit: %+v", d)
		}
	}); n > 2 {
		t.Fatalf("a hit allocates %v times, want at most 2", n)
	}
}

// TestHitHeadersJudgedEachTime: a hit's headers are the view's shared
// memory; a write into them in place (which no code may do) cannot slip an
// unpassable value past UnpassableHeader, on that decision or the next.
func TestHitHeadersJudgedEachTime(t *testing.T) {
	env := newEngEnv(t, engOpts{})
	const tok = "view-inplace"
	env.iss.setAnswer(tok, env.active(nil))
	env.check("GET", "/f", tok)
	d := env.check("GET", "/f", tok)
	if d.Lease != LeaseHit || d.UnpassableHeader() != "" {
		t.Fatalf("hit: %s, unpassable %q", d.Lease, d.UnpassableHeader())
	}
	d.Headers[0].Value = "alice\r\nx-auth-scope: storage.modify:/"
	if got := d.UnpassableHeader(); got != "x-auth-subject" {
		t.Fatalf("after an in-place write: unpassable %q, want x-auth-subject", got)
	}
	if next := env.check("GET", "/f", tok); next.Allow && next.UnpassableHeader() == "" {
		t.Fatalf("the next hit passes the written value: %v", next.Headers)
	}
}

// TestLeaseViewMemo: a view's memo is empty until set, then holds the last
// value set, whatever its type.
func TestLeaseViewMemo(t *testing.T) {
	v := new(LeaseView)
	if m := v.Memo(); m != nil {
		t.Fatalf("new view's memo = %v, want nil", m)
	}
	v.SetMemo([]int{1})
	v.SetMemo("second")
	if m, _ := v.Memo().(string); m != "second" {
		t.Fatalf("memo = %v, want the last value set", v.Memo())
	}
	v.SetMemo(nil)
	if m := v.Memo(); m != nil {
		t.Fatalf("memo = %v after SetMemo(nil)", m)
	}
}

// TestViewKeepsNoRequestText: the If-None-Match a view keeps is the
// constant, not the request's "*", which may share memory with the rest
// of the request (the envoy adapter's decoding).
func TestViewKeepsNoRequestText(t *testing.T) {
	request := strings.Repeat("x", 4096) + IfNoneMatchCreate
	inm := request[len(request)-1:]
	v := new(LeaseView)
	for range 2 { // the first call keeps, the second returns what is kept
		hs := v.withIfNoneMatch(inm)
		got := hs[len(hs)-1]
		if got.Name != HeaderIfNoneMatch || got.Value != IfNoneMatchCreate {
			t.Fatalf("header %+v", got)
		}
		if unsafe.StringData(got.Value) == unsafe.StringData(inm) {
			t.Fatal("the view keeps the request's text")
		}
	}
}
