package push

import (
	"container/heap"
	"sync"
	"time"
)

// DefaultReplayEntries bounds the jti memory: far more tokens than an
// issuer sends within one acceptance window.
const DefaultReplayEntries = 1 << 16

// maxJTIBytes bounds a jti kept in memory; a longer one is refused.
const maxJTIBytes = 256

// Replay remembers the jti of every accepted token for as long as the
// token could be accepted again (its horizon), so a replay inside that
// time is refused and memory stays bounded: past the horizon the token is
// refused by its age anyway, and once max entries are held the one
// closest to its horizon goes first (a replay of it could only revoke
// again, never allow). Safe for concurrent use.
type Replay struct {
	max int

	mu    sync.Mutex
	byKey map[replayKey]*replayEntry
	order replayHeap // by horizon, soonest first
}

type replayKey struct{ source, issuer, jti string }

type replayEntry struct {
	key     replayKey
	horizon time.Time
	index   int
}

// NewReplay remembers at most max jti (DefaultReplayEntries when max ≤ 0).
func NewReplay(max int) *Replay {
	if max <= 0 {
		max = DefaultReplayEntries
	}
	return &Replay{max: max, byKey: map[replayKey]*replayEntry{}}
}

// remember records (source, issuer, jti) until horizon, unless it is held
// already: then it reports false, a replay. now prunes what is past.
func (r *Replay) remember(source, issuer, jti string, horizon, now time.Time) bool {
	k := replayKey{source, issuer, jti}
	r.mu.Lock()
	defer r.mu.Unlock()
	for len(r.order) > 0 && !now.Before(r.order[0].horizon) {
		delete(r.byKey, heap.Pop(&r.order).(*replayEntry).key)
	}
	if _, ok := r.byKey[k]; ok {
		return false
	}
	if len(r.order) >= r.max {
		delete(r.byKey, heap.Pop(&r.order).(*replayEntry).key)
	}
	e := &replayEntry{key: k, horizon: horizon}
	heap.Push(&r.order, e)
	r.byKey[k] = e
	return true
}

// forget drops (source, issuer, jti): its revocation could not be
// recorded, and a resend must be accepted.
func (r *Replay) forget(source, issuer, jti string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if e, ok := r.byKey[replayKey{source, issuer, jti}]; ok {
		heap.Remove(&r.order, e.index)
		delete(r.byKey, e.key)
	}
}

// replayHeap is a container/heap of entries by horizon.
type replayHeap []*replayEntry

func (h replayHeap) Len() int           { return len(h) }
func (h replayHeap) Less(i, j int) bool { return h[i].horizon.Before(h[j].horizon) }
func (h replayHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].index, h[j].index = i, j
}
func (h *replayHeap) Push(x any) {
	e := x.(*replayEntry)
	e.index = len(*h)
	*h = append(*h, e)
}
func (h *replayHeap) Pop() any {
	old := *h
	e := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	return e
}
