// Package denylog owns the rate limit on the engine's denial log lines
// (SPEC §6, log.denials_per_second).
package denylog

import (
	"fmt"
	"math"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"
)

// maxDenialsPerSecond bounds Config.PerSecond: beyond it a limit
// protects no log.
const maxDenialsPerSecond = 1e6

// Config limits the engine's denial log lines (SPEC §6,
// log.denials_per_second), so that a flood of garbage tokens cannot flood
// the log. Allows are logged at debug and are not limited.
type Config struct {
	// PerSecond is how many denial lines are logged per second on average,
	// in bursts of up to one second's worth (at least one line); the next
	// line logged says how many were left out (suppressed). 0 to 1e6;
	// fractions allowed (0.5: one line every two seconds). Default 0: every
	// denial is logged.
	PerSecond float64
	// Now is the limiter's clock; time.Now when nil.
	Now func() time.Time
}

// Problem is one reason New refuses a config. Field is
// the key as SPEC §7 spells it inside log: "denials_per_second".
type Problem struct{ Field, Msg string }

func (p Problem) Error() string { return p.Field + ": " + p.Msg }

// Validate reports every problem New would refuse in c.
func (c Config) Validate() []Problem {
	r := c.PerSecond
	if math.IsNaN(r) || r < 0 || r > maxDenialsPerSecond {
		return []Problem{{"denials_per_second", fmt.Sprintf("%v is outside 0..%g", r, float64(maxDenialsPerSecond))}}
	}
	return nil
}

// Limit decides which denials are logged. One outlives engine rebuilds
// on reload (authz.Config.DenialLog), so a reload does not refill the
// bucket. A nil *Limit logs every denial.
type Limit struct {
	lim        *rate.Limiter // nil: no limit
	now        func() time.Time
	suppressed atomic.Uint64 // denials left out since the last line logged
}

// New builds the limiter c describes.
func New(c Config) (*Limit, error) {
	if ps := c.Validate(); len(ps) > 0 {
		return nil, fmt.Errorf("denylog: log.%w", ps[0])
	}
	l := &Limit{now: c.Now}
	if l.now == nil {
		l.now = time.Now
	}
	if c.PerSecond > 0 {
		l.lim = rate.NewLimiter(rate.Limit(c.PerSecond), max(1, int(math.Ceil(c.PerSecond))))
	}
	return l, nil
}

// Admit reports whether this denial gets its line and, when it does, how
// many denials were left out since the last line.
func (l *Limit) Admit() (ok bool, suppressed uint64) {
	if l == nil || l.lim == nil {
		return true, 0
	}
	if !l.lim.AllowN(l.now(), 1) {
		l.suppressed.Add(1)
		return false, 0
	}
	return true, l.suppressed.Swap(0)
}
