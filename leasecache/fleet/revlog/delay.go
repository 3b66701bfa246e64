package revlog

import (
	"slices"
	"sync"
	"time"
)

// delayRing keeps the last delays observed, for quantiles on demand.
type delayRing struct {
	mu  sync.Mutex
	buf [1024]time.Duration
	n   int // delays observed, ever
}

func (r *delayRing) add(d time.Duration) {
	r.mu.Lock()
	r.buf[r.n%len(r.buf)] = d
	r.n++
	r.mu.Unlock()
}

func (r *delayRing) len() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return min(r.n, len(r.buf))
}

// quantile is the q-quantile (nearest rank) of the kept delays.
func (r *delayRing) quantile(q float64) time.Duration {
	r.mu.Lock()
	s := slices.Clone(r.buf[:min(r.n, len(r.buf))])
	r.mu.Unlock()
	if len(s) == 0 {
		return 0
	}
	slices.Sort(s)
	i := int(q*float64(len(s))+0.999999) - 1
	return s[min(max(i, 0), len(s)-1)]
}
