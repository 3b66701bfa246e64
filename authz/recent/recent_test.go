package recent

import (
	"crypto/sha256"
	"fmt"
	"sync"
	"testing"
)

type key [32]byte

func keyOf(i int) key { return sha256.Sum256([]byte(fmt.Sprint(i))) }

func TestGetPut(t *testing.T) {
	var m Map[key, int]
	if _, ok := m.Get(keyOf(1)); ok {
		t.Fatal("the zero Map holds a value")
	}
	m.Put(keyOf(1), 10)
	m.Put(keyOf(1), 11)
	if v, ok := m.Get(keyOf(1)); !ok || v != 11 {
		t.Fatalf("Get = %d, %v; want 11, true", v, ok)
	}
	if m.Len() != 1 {
		t.Fatalf("Len = %d, want 1", m.Len())
	}
}

// TestBounded: many keys stay within two generations per shard, the
// newest are kept and the oldest dropped.
func TestBounded(t *testing.T) {
	var m Map[key, int]
	const n = 3 * Shards * PerShard
	for i := range n {
		m.Put(keyOf(i), i)
	}
	if got, bound := m.Len(), 2*Shards*PerShard; got > bound {
		t.Fatalf("Len = %d, bound %d", got, bound)
	}
	if _, ok := m.Get(keyOf(n - 1)); !ok {
		t.Fatal("the newest value was dropped")
	}
	if _, ok := m.Get(keyOf(0)); ok {
		t.Fatal("the oldest value was kept past two generations")
	}
}

// oneShard returns n keys that all land in shard 0.
func oneShard(n int) []key {
	var ks []key
	for i := 0; len(ks) < n; i++ {
		if k := keyOf(i); k[len(k)-1]%Shards == 0 {
			ks = append(ks, k)
		}
	}
	return ks
}

// TestGetPromotes: a value read from the older generation moves to the
// newer, so it outlives the next turn-over; one not read does not.
func TestGetPromotes(t *testing.T) {
	var m Map[key, int]
	ks := oneShard(3 * PerShard)
	for i, k := range ks[:PerShard] { // fills the newer generation
		m.Put(k, i)
	}
	m.Put(ks[PerShard], -1) // turns it over: ks[:PerShard] are older now
	if _, ok := m.Get(ks[0]); !ok {
		t.Fatal("a value of the older generation is not found")
	}
	for _, k := range ks[PerShard+1 : 2*PerShard] { // fills the newer one again
		m.Put(k, 0)
	}
	m.Put(ks[2*PerShard], 0) // and turns it over: the old one is dropped
	if v, ok := m.Get(ks[0]); !ok || v != 0 {
		t.Fatalf("read value: %d, %v; want it kept", v, ok)
	}
	if _, ok := m.Get(ks[1]); ok {
		t.Fatal("an unread value of the dropped generation is still held")
	}
}

func TestConcurrent(t *testing.T) {
	var m Map[key, int]
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			for i := range 2000 {
				m.Put(keyOf(g*10000+i), i)
				m.Get(keyOf(g*10000 + i/2))
			}
		})
	}
	wg.Wait()
	if m.Len() > 2*Shards*PerShard {
		t.Fatalf("Len = %d over the bound", m.Len())
	}
}
