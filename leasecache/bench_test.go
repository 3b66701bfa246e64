package leasecache

import (
	"encoding/binary"
	"flag"
	"fmt"
	"runtime"
	"testing"
	"time"
)

var benchLeases = flag.Int("leases", 1_000_000, "resident leases for the hit benchmark")

// fill stores n realistic leases, keyed by the hash of a counter.
func fill(tb testing.TB, c *Cache, n int, now time.Time) []Key {
	keys := make([]Key, n)
	l := Lease{
		ValidatedAt: now, Expiry: now.Add(time.Hour),
		Subject:  "5f0c2a9e-8a3b-4c55-9d0e-1b2c3d4e5f60",
		ClientID: "c3e1b9d2-7f44-4f0a-a1b2-c3d4e5f60718",
		Scope:    "storage.read:/atlas storage.create:/atlas/user",
		Issuer:   "hydra", Audience: "https://storage.example.org",
	}
	var b [8]byte
	for i := range keys {
		binary.LittleEndian.PutUint64(b[:], uint64(i))
		keys[i] = KeyOf(string(b[:]))
		if err := c.Store(keys[i], l); err != nil {
			tb.Fatal(err)
		}
	}
	return keys
}

// BenchmarkLookupHit measures a hit with -leases resident leases, in parallel.
func BenchmarkLookupHit(b *testing.B) {
	now := time.Now()
	c, err := New(Config{MaxMemoryMB: 512, Now: func() time.Time { return now }})
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	keys := fill(b, c, *benchLeases, now)
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			if _, o := c.Lookup(keys[i%len(keys)], time.Minute); o != Hit {
				b.Fatalf("outcome %v", o)
			}
			i += 7919
		}
	})
}

// BenchmarkLookupWorkingSet: hits in turn over 10k tokens, more than the
// memo's 8,192 slots at 256 MiB, with every lease older than the memo's
// tenure (the peers benchmark's shape after its first minute).
func BenchmarkLookupWorkingSet(b *testing.B) {
	now := time.Now()
	c, err := New(Config{MaxMemoryMB: 256, Now: func() time.Time { return now }})
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	keys := fill(b, c, 10_000, now)
	now = now.Add(2 * memoTenure * time.Second)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if _, o := c.Lookup(keys[i%len(keys)], time.Hour); o != Hit {
			b.Fatalf("outcome %v", o)
		}
		i += 7919
	}
}

// BenchmarkKeyOf measures hashing a typical 900-byte JWT.
func BenchmarkKeyOf(b *testing.B) {
	tok := string(make([]byte, 900))
	b.ReportAllocs()
	for b.Loop() {
		_ = KeyOf(tok)
	}
}

// BenchmarkMemory reports heap in use with -leases resident leases, for a
// max_memory_mb sized for them (sized: leases × 114 B × 8/7 × 1.1, SPEC
// §7's rule in README), the default, and twice the default. A queue grows
// by doubling up to its share of the bound, so the heap for the same
// leases depends on where the population falls between two doublings.
func BenchmarkMemory(b *testing.B) {
	sized := max(2, *benchLeases*114*8/7*11/10>>20+1)
	for _, mb := range []int{sized, DefaultMaxMemoryMB, 2 * DefaultMaxMemoryMB} {
		b.Run(fmt.Sprintf("max_memory_mb=%d", mb), func(b *testing.B) {
			for b.Loop() {
				benchMemory(b, mb)
			}
		})
	}
}

func benchMemory(b *testing.B, mb int) {
	runtime.GC()
	var before runtime.MemStats
	runtime.ReadMemStats(&before)
	now := time.Now()
	c, err := New(Config{MaxMemoryMB: mb, Now: func() time.Time { return now }})
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	keys := fill(b, c, *benchLeases, now)
	runtime.GC()
	var after runtime.MemStats
	runtime.ReadMemStats(&after)
	if c.Len() != len(keys) {
		b.Fatalf("Len = %d, want %d (evicted under %d MB)", c.Len(), len(keys), mb)
	}
	keysMiB := float64(len(keys)*len(Key{})) / (1 << 20)
	b.ReportMetric(float64(after.HeapInuse-before.HeapInuse)/(1<<20)-keysMiB, "heap-MiB")
	b.ReportMetric(float64(after.HeapInuse-before.HeapInuse)/float64(len(keys))-float64(len(Key{})), "B/lease")
}
