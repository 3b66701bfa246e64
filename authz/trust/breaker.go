package trust

import (
	"sync"
	"time"
)

// breaker is a per-issuer circuit breaker: after threshold consecutive
// failures it opens for openFor (or the issuer's Retry-After, if longer),
// then lets one probe through; the probe's outcome closes or reopens it.
type breaker struct {
	threshold int
	openFor   time.Duration
	now       func() time.Time

	mu        sync.Mutex
	failures  int
	openUntil time.Time
	openDur   time.Duration // how long it was opened for, to spot a clock step back
	probing   bool
}

// maxRetryAfter caps how long an issuer's Retry-After may hold the breaker
// open, so a misbehaving issuer cannot switch validation off for a day.
const maxRetryAfter = 5 * time.Minute

func newBreaker(threshold int, openFor time.Duration, now func() time.Time) *breaker {
	return &breaker{threshold: max(1, threshold), openFor: openFor, now: now}
}

// allow reports whether a call may go to the issuer; when not, how long
// until it may.
func (b *breaker) allow() (bool, time.Duration) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.failures < b.threshold {
		return true, 0
	}
	now := b.now()
	wait := b.openUntil.Sub(now)
	if wait > b.openDur {
		// The clock stepped back: count the open period again from now,
		// rather than staying open for the size of the step.
		b.openUntil, wait = now.Add(b.openDur), b.openDur
	}
	if wait > 0 {
		return false, wait
	}
	if b.probing {
		return false, time.Second
	}
	b.probing = true
	return true, 0
}

func (b *breaker) success() {
	b.mu.Lock()
	b.failures, b.probing = 0, false
	b.mu.Unlock()
}

func (b *breaker) failure(retryAfter time.Duration) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.failures++
	b.probing = false
	if b.failures >= b.threshold {
		b.openDur = max(b.openFor, min(retryAfter, maxRetryAfter))
		b.openUntil = b.now().Add(b.openDur)
	}
}

// isOpen reports whether the breaker is not closed: open, or past its open
// period and waiting for a probe to succeed.
func (b *breaker) isOpen() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.failures >= b.threshold
}
