package authz

import (
	"fmt"
	"math"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"
)

// maxDenialsPerSecond bounds DenialLogConfig.PerSecond: beyond it a limit
// protects no log.
const maxDenialsPerSecond = 1e6

// DenialLogConfig limits the engine's denial log lines (SPEC §6,
// log.denials_per_second), so that a flood of garbage tokens cannot flood
// the log. Allows are logged at debug and are not limited.
type DenialLogConfig struct {
	// PerSecond is how many denial lines are logged per second on average,
	// in bursts of up to one second's worth (at least one line); the next
	// line logged says how many were left out (suppressed). 0 to 1e6;
	// fractions allowed (0.5: one line every two seconds). Default 0: every
	// denial is logged.
	PerSecond float64
	// Now is the limiter's clock; time.Now when nil.
	Now func() time.Time
}

// DenialLogProblem is one reason NewDenialLog refuses a config. Field is
// the key as SPEC §7 spells it inside log: "denials_per_second".
type DenialLogProblem struct{ Field, Msg string }

func (p DenialLogProblem) Error() string { return p.Field + ": " + p.Msg }

// Validate reports every problem NewDenialLog would refuse in c.
func (c DenialLogConfig) Validate() []DenialLogProblem {
	r := c.PerSecond
	if math.IsNaN(r) || r < 0 || r > maxDenialsPerSecond {
		return []DenialLogProblem{{"denials_per_second", fmt.Sprintf("%v is outside 0..%g", r, float64(maxDenialsPerSecond))}}
	}
	return nil
}

// DenialLog decides which denials are logged. One outlives engine rebuilds
// on reload (Config.DenialLog), so a reload does not refill the bucket.
// A nil *DenialLog logs every denial.
type DenialLog struct {
	lim        *rate.Limiter // nil: no limit
	now        func() time.Time
	suppressed atomic.Uint64 // denials left out since the last line logged
}

// NewDenialLog builds the limiter c describes.
func NewDenialLog(c DenialLogConfig) (*DenialLog, error) {
	if ps := c.Validate(); len(ps) > 0 {
		return nil, fmt.Errorf("authz: log.%w", ps[0])
	}
	l := &DenialLog{now: c.Now}
	if l.now == nil {
		l.now = time.Now
	}
	if c.PerSecond > 0 {
		l.lim = rate.NewLimiter(rate.Limit(c.PerSecond), max(1, int(math.Ceil(c.PerSecond))))
	}
	return l, nil
}

// admit reports whether this denial gets its line and, when it does, how
// many denials were left out since the last line.
func (l *DenialLog) admit() (ok bool, suppressed uint64) {
	if l == nil || l.lim == nil {
		return true, 0
	}
	if !l.lim.AllowN(l.now(), 1) {
		l.suppressed.Add(1)
		return false, 0
	}
	return true, l.suppressed.Swap(0)
}
