package trust

import (
	"testing"
	"time"
)

// isOpen is the breaker_open gauge: true from the threshold's failure
// until a probe succeeds, whatever the clock says in between.
func TestBreakerIsOpen(t *testing.T) {
	clock := newClock()
	b := newBreaker(2, 10*time.Second, clock.Now)
	steps := []struct {
		do   string // "fail", "ok", "advance", "probe"
		want bool
	}{
		{"fail", false},
		{"ok", false}, // a success resets the count
		{"fail", false},
		{"fail", true},
		{"advance", true}, // open_for over: half-open, still refusing all but a probe
		{"probe", true},   // the probe is out
		{"fail", true},    // and failed: open again
		{"advance", true},
		{"probe", true},
		{"ok", false},
	}
	for i, s := range steps {
		switch s.do {
		case "fail":
			b.failure(0)
		case "ok":
			b.success()
		case "advance":
			clock.Advance(10 * time.Second)
		case "probe":
			if ok, _ := b.allow(); !ok {
				t.Fatalf("step %d: no probe allowed after open_for", i)
			}
		}
		if got := b.isOpen(); got != s.want {
			t.Fatalf("step %d (%s): isOpen = %v, want %v", i, s.do, got, s.want)
		}
	}
}
