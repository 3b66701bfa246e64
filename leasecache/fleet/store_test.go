//go:build unix

package fleet

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/leasegate/leasegate/leasecache"
)

func TestShareLease(t *testing.T) {
	topologies(t, func(t *testing.T, e *env) {
		a, _ := e.open(t, nil)
		b, _ := e.open(t, nil)
		k := tokenKey(a, "token-share")
		if got := tokenKey(b, "token-share"); got != k {
			t.Fatal("two replicas with one secret derive different keys")
		}
		if _, o, err := b.Lookup(bg, k); err != nil || o != Miss {
			t.Fatalf("before Store: %v %v", o, err)
		}
		want := testLease("alice")
		if err := a.Store(bg, k, want, time.Minute, a.Position(), stampNow(t, a)); err != nil {
			t.Fatal(err)
		}
		got, o, err := b.Lookup(bg, k)
		if err != nil || o != Hit {
			t.Fatalf("after Store: %v %v", o, err)
		}
		if got.Gen != 0 {
			t.Errorf("Gen %d crossed replicas; it is each cache's own", got.Gen)
		}
		if !got.ValidatedAt.Equal(want.ValidatedAt) || !got.Expiry.Equal(want.Expiry) {
			t.Errorf("times %v %v, want %v %v", got.ValidatedAt, got.Expiry, want.ValidatedAt, want.Expiry)
		}
		got.ValidatedAt, got.Expiry, got.Gen = want.ValidatedAt, want.Expiry, want.Gen
		if got != want {
			t.Errorf("got %+v\nwant %+v", got, want)
		}
	})
}

func TestNegativeLease(t *testing.T) {
	topologies(t, func(t *testing.T, e *env) {
		a, _ := e.open(t, nil)
		b, _ := e.open(t, nil)
		k := tokenKey(a, "token-negative")
		if err := a.Store(bg, k, testLease("bob"), time.Minute, a.Position(), stampNow(t, a)); err != nil {
			t.Fatal(err)
		}
		if err := b.StoreNegative(bg, k, 10*time.Second, b.Position()); err != nil {
			t.Fatal(err)
		}
		if _, o, err := a.Lookup(bg, k); err != nil || o != Negative {
			t.Fatalf("negative replaces the lease: got %v %v", o, err)
		}
		if err := a.Store(bg, k, testLease("bob"), time.Minute, a.Position(), stampNow(t, a)); err != nil {
			t.Fatal(err)
		}
		if _, o, err := b.Lookup(bg, k); err != nil || o != Hit {
			t.Fatalf("a fresh lease replaces the negative: got %v %v", o, err)
		}
	})
}

// TestTTL: Redis' own expiry ends a shared lease, and no TTL exceeds
// LeaseMax whatever the caller asks.
func TestTTL(t *testing.T) {
	topologies(t, func(t *testing.T, e *env) {
		a, _ := e.open(t, func(c *Config) { c.LeaseMax = 2 * time.Second })
		k := tokenKey(a, "token-ttl")
		if err := a.Store(bg, k, testLease("carol"), 80*time.Millisecond, a.Position(), stampNow(t, a)); err != nil {
			t.Fatal(err)
		}
		pttl, err := e.raw.Do(bg, e.raw.B().Pttl().Key(a.ks.lease(k)).Build()).AsInt64()
		if err != nil || pttl <= 0 || pttl > 80 {
			t.Fatalf("PTTL %d (%v), want (0, 80]", pttl, err)
		}
		start := time.Now()
		for {
			_, o, err := a.Lookup(bg, k)
			if err != nil {
				t.Fatal(err)
			}
			if o == Miss {
				break
			}
			if time.Since(start) > 2*time.Second {
				t.Fatal("the lease outlived its TTL")
			}
			time.Sleep(5 * time.Millisecond)
		}
		if d := time.Since(start); d < 50*time.Millisecond {
			t.Errorf("gone after %v, before its TTL", d)
		}
		k2 := tokenKey(a, "token-ttl-long")
		if err := a.Store(bg, k2, testLease("carol"), time.Hour, a.Position(), stampNow(t, a)); err != nil {
			t.Fatal(err)
		}
		if pttl, _ := e.raw.Do(bg, e.raw.B().Pttl().Key(a.ks.lease(k2)).Build()).AsInt64(); pttl > 2000 {
			t.Errorf("PTTL %d ms beyond LeaseMax", pttl)
		}
		if err := a.Store(bg, tokenKey(a, "expired"), testLease("carol"), 0, a.Position(), stampNow(t, a)); err != nil {
			t.Errorf("ttl 0: %v, want nothing stored and no error", err)
		}
		if n, _ := e.raw.Do(bg, e.raw.B().Exists().Key(a.ks.lease(tokenKey(a, "expired"))).Build()).AsInt64(); n != 0 {
			t.Error("ttl 0 stored a lease")
		}
	})
}

// TestForged: what the store holds is checked, never believed.
func TestForged(t *testing.T) {
	topologies(t, func(t *testing.T, e *env) {
		a, _ := e.open(t, nil)
		other, _ := e.open(t, func(c *Config) { c.Secret = []byte("another-fleet-secret-0123456789abcdef") })
		victim, attacker := tokenKey(a, "admin-token"), tokenKey(a, "attacker-token")
		if err := a.Store(bg, victim, testLease("admin"), time.Minute, a.Position(), stampNow(t, a)); err != nil {
			t.Fatal(err)
		}
		good, err := e.raw.Do(bg, e.raw.B().Get().Key(a.ks.lease(victim)).Build()).AsBytes()
		if err != nil {
			t.Fatal(err)
		}
		flipped := bytes.Clone(good)
		flipped[len(flipped)/2] ^= 1
		otherKey := other.KeyOf(leasecache.KeyOf("attacker-token"))
		if err := other.Store(bg, otherKey, testLease("admin"), time.Minute, other.Position(), stampNow(t, other)); err != nil {
			t.Fatal(err)
		}
		foreign, _ := e.raw.Do(bg, e.raw.B().Get().Key(other.ks.lease(otherKey)).Build()).AsBytes()
		cases := []struct {
			name  string
			value []byte
		}{
			{"garbage", []byte("not a lease")},
			{"empty", nil},
			{"one bit flipped", flipped},
			{"valid value copied onto another key", good},
			{"sealed with another secret", foreign},
			{"truncated", good[:len(good)-1]},
		}
		for _, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				before := a.Stats().ForgedValues
				if err := e.raw.Do(bg, e.raw.B().Set().Key(a.ks.lease(attacker)).Value(string(c.value)).Build()).Error(); err != nil {
					t.Fatal(err)
				}
				if _, o, err := a.Lookup(bg, attacker); err != nil || o != Forged {
					t.Fatalf("got %v %v, want forged", o, err)
				}
				if a.Stats().ForgedValues != before+1 {
					t.Error("a forged value was not counted")
				}
			})
		}
		if _, o, _ := a.Lookup(bg, victim); o != Hit {
			t.Errorf("the genuine lease: %v", o)
		}
	})
}

// TestNoTokenInRedis scans every key and value a run leaves: no token, no
// plain SHA-256 of one (raw, hex or base64), no fleet key without the
// secret's HMAC.
func TestNoTokenInRedis(t *testing.T) {
	topologies(t, func(t *testing.T, e *env) {
		a, _ := e.open(t, nil)
		b, _ := e.open(t, nil)
		tokens := []string{"opaque-token-AAAAAAAAAAAAAAAAAAAAAAAAAAAA", "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.sig", "short"}
		for i, tok := range tokens {
			k := tokenKey(a, tok)
			if i%2 == 0 {
				_ = a.Store(bg, k, testLease("alice"), time.Minute, a.Position(), stampNow(t, a))
			} else {
				_ = b.StoreNegative(bg, k, time.Minute, b.Position())
			}
			if ok, _, err := a.Acquire(bg, k, time.Minute); err != nil || !ok {
				t.Fatal(ok, err)
			}
			if err := b.Revoke(bg, k); err != nil {
				t.Fatal(err)
			}
			_ = a.Store(bg, k, testLease("alice"), time.Minute, a.Position(), stampNow(t, a))
		}
		if err := a.RevokeSubject(bg, "hydra", "alice"); err != nil {
			t.Fatal(err)
		}
		var forbidden [][]byte
		for _, tok := range tokens {
			sum := sha256.Sum256([]byte(tok))
			forbidden = append(forbidden, []byte(tok), sum[:], []byte(hex.EncodeToString(sum[:])),
				[]byte(strings.ToUpper(hex.EncodeToString(sum[:]))),
				[]byte(base64.StdEncoding.EncodeToString(sum[:])), []byte(base64.RawURLEncoding.EncodeToString(sum[:])))
		}
		keys := e.keys(t)
		if len(keys) < 4 {
			t.Fatalf("only %d keys: %v", len(keys), keys)
		}
		var blobs [][]byte
		for _, key := range keys {
			blobs = append(blobs, []byte(key))
			typ, _ := e.raw.Do(bg, e.raw.B().Type().Key(key).Build()).ToString()
			switch typ {
			case "string":
				v, _ := e.raw.Do(bg, e.raw.B().Get().Key(key).Build()).AsBytes()
				blobs = append(blobs, v)
			case "stream":
				entries, err := e.raw.Do(bg, e.raw.B().Xrange().Key(key).Start("-").End("+").Build()).AsXRange()
				if err != nil {
					t.Fatal(err)
				}
				for _, en := range entries {
					for f, v := range en.FieldValues {
						blobs = append(blobs, []byte(f), []byte(v))
					}
				}
			default:
				t.Errorf("key %q of type %q", key, typ)
			}
		}
		for _, blob := range blobs {
			for _, f := range forbidden {
				if bytes.Contains(blob, f) {
					t.Errorf("Redis holds %q, which contains a token or its plain hash %q", blob, f)
				}
			}
		}
		t.Logf("%d keys scanned: %v", len(keys), keys)
	})
}

func TestAcquireExclusive(t *testing.T) {
	topologies(t, func(t *testing.T, e *env) {
		a, _ := e.open(t, nil)
		b, _ := e.open(t, nil)
		k := tokenKey(a, "token-lock")
		var wg sync.WaitGroup
		var mu sync.Mutex
		won := 0
		for i := range 20 {
			s := a
			if i%2 == 1 {
				s = b
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				ok, _, err := s.Acquire(bg, k, time.Minute)
				if err != nil {
					t.Error(err)
				}
				if ok {
					mu.Lock()
					won++
					mu.Unlock()
				}
			}()
		}
		wg.Wait()
		if won != 1 {
			t.Fatalf("%d of 20 acquired the lock", won)
		}
		holder, other := a, b
		if n, _ := e.raw.Do(bg, e.raw.B().Get().Key(a.ks.lock(k)).Build()).ToString(); n == b.owner {
			holder, other = b, a
		}
		if err := other.Release(bg, k); err != nil {
			t.Fatal(err)
		}
		if ok, _, _ := other.Acquire(bg, k, time.Minute); ok {
			t.Fatal("a Release by a non-holder freed the lock")
		}
		if err := holder.Release(bg, k); err != nil {
			t.Fatal(err)
		}
		if ok, _, _ := other.Acquire(bg, k, 50*time.Millisecond); !ok {
			t.Fatal("released, but not free")
		}
		time.Sleep(80 * time.Millisecond)
		if ok, _, _ := holder.Acquire(bg, k, time.Minute); !ok {
			t.Fatal("the lock outlived its TTL")
		}
	})
}

func TestWait(t *testing.T) {
	topologies(t, func(t *testing.T, e *env) {
		a, _ := e.open(t, nil)
		b, _ := e.open(t, nil)
		t.Run("answer", func(t *testing.T) {
			k := tokenKey(a, "token-wait")
			if ok, _, _ := a.Acquire(bg, k, time.Second); !ok {
				t.Fatal("no lock")
			}
			if ok, _, _ := b.Acquire(bg, k, time.Second); ok {
				t.Fatal("two holders")
			}
			go func() {
				time.Sleep(30 * time.Millisecond)
				_ = a.Store(bg, k, testLease("dave"), time.Minute, a.Position(), stampNow(t, a))
				_ = a.Release(bg, k)
			}()
			start := time.Now()
			l, o, err := b.Wait(bg, k, time.Time{})
			if err != nil || o != Hit || l.Subject != "dave" {
				t.Fatalf("Wait: %v %v %+v", o, err, l)
			}
			if d := time.Since(start); d > 100*time.Millisecond {
				t.Errorf("Wait returned %v after the answer was shared", d-30*time.Millisecond)
			}
		})
		t.Run("negative", func(t *testing.T) {
			k := tokenKey(a, "token-wait-negative")
			_, _, _ = a.Acquire(bg, k, time.Second)
			go func() {
				time.Sleep(10 * time.Millisecond)
				_ = a.StoreNegative(bg, k, time.Minute, a.Position())
				_ = a.Release(bg, k)
			}()
			if _, o, err := b.Wait(bg, k, time.Time{}); err != nil || o != Negative {
				t.Fatalf("Wait: %v %v", o, err)
			}
		})
		t.Run("holder gave up", func(t *testing.T) {
			k := tokenKey(a, "token-wait-gaveup")
			_, _, _ = a.Acquire(bg, k, time.Second)
			go func() {
				time.Sleep(10 * time.Millisecond)
				_ = a.Release(bg, k)
			}()
			if _, o, err := b.Wait(bg, k, time.Time{}); err != nil || o != Miss {
				t.Fatalf("Wait: %v %v, want miss", o, err)
			}
		})
		t.Run("refresh waits past the old lease", func(t *testing.T) {
			k := tokenKey(a, "token-wait-refresh")
			old := testLease("erin")
			old.ValidatedAt = time.Now().Add(-time.Minute)
			if err := a.Store(bg, k, old, time.Minute, a.Position(), stampNow(t, a)); err != nil {
				t.Fatal(err)
			}
			_, _, _ = a.Acquire(bg, k, time.Second)
			go func() {
				time.Sleep(20 * time.Millisecond)
				_ = a.Store(bg, k, testLease("erin"), time.Minute, a.Position(), stampNow(t, a))
				_ = a.Release(bg, k)
			}()
			l, o, err := b.Wait(bg, k, old.ValidatedAt)
			if err != nil || o != Hit || !l.ValidatedAt.After(old.ValidatedAt) {
				t.Fatalf("Wait: %v %v validated %v; want the fresh lease, not the one of %v", o, err, l.ValidatedAt, old.ValidatedAt)
			}
			// The holder gives up with only the old lease there: a miss.
			_, _, _ = a.Acquire(bg, k, time.Second)
			go func() { time.Sleep(10 * time.Millisecond); _ = a.Release(bg, k) }()
			if _, o, err := b.Wait(bg, k, time.Now()); err != nil || o != Miss {
				t.Fatalf("Wait with only the old lease: %v %v, want miss", o, err)
			}
		})
		t.Run("deadline", func(t *testing.T) {
			k := tokenKey(a, "token-wait-deadline")
			_, _, _ = a.Acquire(bg, k, time.Minute)
			c, cancel := contextWithTimeout(50 * time.Millisecond)
			defer cancel()
			start := time.Now()
			_, o, err := b.Wait(c, k, time.Time{})
			if err == nil || o != Unavailable {
				t.Fatalf("Wait: %v %v, want the context's error", o, err)
			}
			if d := time.Since(start); d > 80*time.Millisecond {
				t.Errorf("Wait outlived its context by %v", d-50*time.Millisecond)
			}
		})
	})
}

// TestClusterSpread: in a Cluster leases spread over the nodes, and the
// log and its epoch share one slot.
func TestClusterSpread(t *testing.T) {
	e := clusterEnv(t)
	a, _ := e.open(t, nil)
	for i := range 30 {
		_ = a.Store(bg, tokenKey(a, "spread-"+string(rune('a'+i))), testLease("eve"), time.Minute, a.Position(), stampNow(t, a))
	}
	perNode := map[string]int{}
	for addr, n := range e.raw.Nodes() {
		keys, err := n.Do(bg, n.B().Keys().Pattern(e.prefix+"l:*").Build()).AsStrSlice()
		if err != nil {
			t.Fatal(err)
		}
		perNode[addr] = len(keys)
	}
	used := 0
	for _, n := range perNode {
		if n > 0 {
			used++
		}
	}
	if used < 2 {
		t.Errorf("leases on %d node(s): %v", used, perNode)
	}
	s1, _ := e.raw.Do(bg, e.raw.B().ClusterKeyslot().Key(a.ks.log).Build()).AsInt64()
	s2, _ := e.raw.Do(bg, e.raw.B().ClusterKeyslot().Key(a.ks.epoch).Build()).AsInt64()
	if s1 != s2 {
		t.Errorf("log on slot %d, epoch on slot %d", s1, s2)
	}
	k := tokenKey(a, "spread-a")
	l1, _ := e.raw.Do(bg, e.raw.B().ClusterKeyslot().Key(a.ks.lease(k)).Build()).AsInt64()
	l2, _ := e.raw.Do(bg, e.raw.B().ClusterKeyslot().Key(a.ks.lock(k)).Build()).AsInt64()
	if l1 != l2 {
		t.Errorf("lease on slot %d, its lock on %d", l1, l2)
	}
}

func TestStoreFencedByOwnIndex(t *testing.T) {
	e := standaloneEnv(t)
	a, rec := e.open(t, nil)
	k := tokenKey(a, "token-fenced")
	pos := a.Position()
	if err := a.Revoke(bg, k); err != nil {
		t.Fatal(err)
	}
	rec.waitFor(t, time.Second, "its own revocation", func() bool { return len(rec.revs) == 1 })
	err := a.Store(bg, k, testLease("frank"), time.Minute, pos, stampNow(t, a))
	if !errors.Is(err, leasecache.ErrRevokedSince) {
		t.Fatalf("Store fenced before a revoke it applied: %v", err)
	}
	if err := a.Store(bg, k, testLease("frank"), time.Minute, a.Position(), stampNow(t, a)); err != nil {
		t.Fatalf("Store after: %v", err)
	}
}
