// Package testclock is the one settable clock leasegate's tests share. The
// engine, the lease cache, the JWT verifier and the breaker each take a
// func() time.Time; a test passes a Clock's Now and moves time by hand.
//
// It is a test helper: import it only from _test.go files, never from
// production code (STYLE.md: no test helpers in production code). `make
// lint` fails when a non-test file imports it.
package testclock

import (
	"sync"
	"time"
)

// Clock reads a time that changes only when the test says so. Safe for
// concurrent use.
type Clock struct {
	mu  sync.Mutex
	now time.Time
}

// New returns a Clock that reads t until moved.
func New(t time.Time) *Clock { return &Clock{now: t} }

// Now is the clock's current time; pass the method value where a
// func() time.Time is wanted.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// Advance moves the clock by d; a negative d steps it back.
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

// Set moves the clock to t.
func (c *Clock) Set(t time.Time) {
	c.mu.Lock()
	c.now = t
	c.mu.Unlock()
}
