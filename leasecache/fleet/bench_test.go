//go:build unix

package fleet

import (
	"bufio"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/leasegate/leasegate/leasecache"
)

// BenchmarkKeyOf is what fleet mode adds to every request's key: one
// HMAC-SHA256 of the token's SHA-256.
func BenchmarkKeyOf(b *testing.B) {
	k := NewKeyer(testSecret)
	sha := leasecache.KeyOf("a token")
	b.ReportAllocs()
	for b.Loop() {
		sha = k.KeyOf(sha)
	}
}

// BenchmarkLookupHit: a local miss that the store answers (GET, MAC
// check, decode, fence check), over loopback to a real redis-server.
func BenchmarkLookupHit(b *testing.B) {
	for _, name := range []string{"standalone", "cluster"} {
		b.Run(name, func(b *testing.B) {
			e := standaloneEnv(b)
			if name == "cluster" {
				e = clusterEnv(b)
			}
			s, _ := e.open(b, nil)
			k := tokenKey(s, "bench")
			if err := s.Store(bg, k, testLease("alice"), time.Minute, s.Position(), stampNow(b, s)); err != nil {
				b.Fatal(err)
			}
			b.Run("serial", func(b *testing.B) {
				b.ReportAllocs()
				for b.Loop() {
					if _, o, err := s.Lookup(bg, k); o != Hit {
						b.Fatal(o, err)
					}
				}
			})
			b.Run("parallel", func(b *testing.B) {
				b.ReportAllocs()
				b.RunParallel(func(pb *testing.PB) {
					for pb.Next() {
						if _, o, err := s.Lookup(bg, k); o != Hit {
							b.Error(o, err)
							return
						}
					}
				})
			})
		})
	}
}

// TestBytesPerLease stores 2,000 realistic leases and reads what Redis
// says they cost: MEMORY USAGE per key, and used_memory per lease (which
// adds the keyspace and expiry dictionaries).
func TestBytesPerLease(t *testing.T) {
	srv := startRedis(t)
	e := newEnv(t, "standalone", []string{srv.addr()}, rawClient(t, srv.addr()))
	s, _ := e.open(t, nil)
	usedMemory := func() int64 {
		info, err := e.raw.Do(bg, e.raw.B().Info().Section("memory").Build()).ToString()
		if err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(strings.NewReader(info))
		for sc.Scan() {
			if v, ok := strings.CutPrefix(strings.TrimSpace(sc.Text()), "used_memory:"); ok {
				n, _ := strconv.ParseInt(v, 10, 64)
				return n
			}
		}
		t.Fatal("no used_memory")
		return 0
	}
	const n = 2000
	before := usedMemory()
	l := testLease("")
	for i := range n {
		l.Subject = fmt.Sprintf("user-%06d@example.org", i)
		if err := s.Store(bg, tokenKey(s, fmt.Sprint("tok", i)), l, time.Hour, s.Position(), stampNow(t, s)); err != nil {
			t.Fatal(err)
		}
	}
	after := usedMemory()
	var usage int64
	for i := range n {
		u, err := e.raw.Do(bg, e.raw.B().MemoryUsage().Key(s.ks.lease(tokenKey(s, fmt.Sprint("tok", i)))).Samples(0).Build()).AsInt64()
		if err != nil {
			t.Fatal(err)
		}
		usage += u
	}
	neg := tokenKey(s, "negative")
	_ = s.StoreNegative(bg, neg, time.Minute, s.Position())
	negUsage, _ := e.raw.Do(bg, e.raw.B().MemoryUsage().Key(s.ks.lease(neg)).Samples(0).Build()).AsInt64()
	v, _ := e.raw.Do(bg, e.raw.B().Get().Key(s.ks.lease(tokenKey(s, "tok0"))).Build()).AsBytes()
	perKey, perLease := usage/n, (after-before)/n
	t.Logf("a lease: key %d bytes, value %d bytes; MEMORY USAGE %d bytes/lease; used_memory %d bytes/lease (with dict and expiry overhead); a negative lease: MEMORY USAGE %d bytes",
		len(s.ks.lease(neg)), len(v), perKey, perLease, negUsage)
	if perLease > 512 {
		t.Errorf("%d bytes per lease", perLease)
	}
}
