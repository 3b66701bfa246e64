// Package recent owns a bounded map of recently used values by a 32-byte
// key (a lease key): sharded by the key's last byte, each shard keeping two
// generations of at most PerShard entries. A full newer generation becomes
// the older one and the older one is dropped; a value found in the older
// one moves back to the newer. No clock, no eviction goroutine.
package recent

import "sync"

const (
	// Shards is the number of shards; a key's last byte picks one (the
	// lease cache, bigcache, shards by the first bytes).
	Shards = 64
	// PerShard bounds one generation of one shard: a Map holds at most
	// 2 × Shards × PerShard values.
	PerShard = 128
)

// Map is a bounded map of recent values; the zero Map is empty and ready.
type Map[K ~[32]byte, V any] struct {
	shards [Shards]shard[K, V]
}

type shard[K ~[32]byte, V any] struct {
	mu       sync.RWMutex
	cur, old map[K]V
	_        [64]byte // keep shards' locks off each other's cache lines
}

func (m *Map[K, V]) shard(k K) *shard[K, V] {
	return &m.shards[k[len(k)-1]%Shards]
}

// Get returns k's value, if the map still holds it.
func (m *Map[K, V]) Get(k K) (V, bool) {
	s := m.shard(k)
	s.mu.RLock()
	v, ok := s.cur[k]
	fresh := ok
	if !ok {
		v, ok = s.old[k]
	}
	s.mu.RUnlock()
	if ok && !fresh {
		s.put(k, v)
	}
	return v, ok
}

// Put sets k's value.
func (m *Map[K, V]) Put(k K, v V) {
	m.shard(k).put(k, v)
}

func (s *shard[K, V]) put(k K, v V) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.cur) >= PerShard {
		s.old, s.cur = s.cur, make(map[K]V, PerShard)
	} else if s.cur == nil {
		s.cur = make(map[K]V, PerShard)
	}
	s.cur[k] = v
}

// Len is the number of values held (both generations).
func (m *Map[K, V]) Len() int {
	n := 0
	for i := range m.shards {
		s := &m.shards[i]
		s.mu.RLock()
		n += len(s.cur) + len(s.old)
		s.mu.RUnlock()
	}
	return n
}
