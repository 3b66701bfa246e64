package trust

import (
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/leasegate/leasegate/internal/testclock"
)

func newClock() *testclock.Clock {
	return testclock.New(time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC))
}

func TestBreaker(t *testing.T) {
	type op struct {
		advance   time.Duration
		do        string        // "allow", "fail", "fail429" (Retry-After 30s), "ok"
		wantAllow bool          // for "allow"
		wantWait  time.Duration // for a refused "allow"
	}
	tests := []struct {
		name      string
		threshold int
		openFor   time.Duration
		ops       []op
	}{
		{
			name: "closed until threshold consecutive failures", threshold: 3, openFor: 10 * time.Second,
			ops: []op{
				{do: "fail"}, {do: "fail"},
				{do: "allow", wantAllow: true},
				{do: "ok"}, // success resets the count
				{do: "fail"}, {do: "fail"},
				{do: "allow", wantAllow: true},
				{do: "fail"},
				{do: "allow", wantWait: 10 * time.Second},
				{advance: 4 * time.Second, do: "allow", wantWait: 6 * time.Second},
			},
		},
		{
			name: "one probe after openFor; its success closes", threshold: 1, openFor: 10 * time.Second,
			ops: []op{
				{do: "fail"},
				{do: "allow", wantWait: 10 * time.Second},
				{advance: 10 * time.Second, do: "allow", wantAllow: true},
				{do: "allow", wantWait: time.Second}, // the probe is out: others wait
				{do: "allow", wantWait: time.Second},
				{do: "ok"},
				{do: "allow", wantAllow: true},
				{do: "allow", wantAllow: true},
			},
		},
		{
			name: "a failed probe reopens for openFor", threshold: 2, openFor: 10 * time.Second,
			ops: []op{
				{do: "fail"}, {do: "fail"},
				{do: "allow", wantWait: 10 * time.Second},
				{advance: 10 * time.Second, do: "allow", wantAllow: true},
				{do: "fail"},
				{do: "allow", wantWait: 10 * time.Second},
				{advance: 10 * time.Second, do: "allow", wantAllow: true},
			},
		},
		{
			name: "Retry-After longer than openFor wins", threshold: 1, openFor: 5 * time.Second,
			ops: []op{
				{do: "fail429"},
				{do: "allow", wantWait: 30 * time.Second},
				{advance: 29 * time.Second, do: "allow", wantWait: time.Second},
				{advance: time.Second, do: "allow", wantAllow: true},
			},
		},
		{
			name: "a clock step back does not stretch the open period", threshold: 1, openFor: 10 * time.Second,
			ops: []op{
				{do: "fail"},
				{do: "allow", wantWait: 10 * time.Second},
				{advance: -time.Hour, do: "allow", wantWait: 10 * time.Second},
				{advance: 9 * time.Second, do: "allow", wantWait: time.Second},
				{advance: time.Second, do: "allow", wantAllow: true},
			},
		},
		{
			name: "a step back keeps a Retry-After period, not more", threshold: 1, openFor: 5 * time.Second,
			ops: []op{
				{do: "fail429"},
				{do: "allow", wantWait: 30 * time.Second},
				{advance: -time.Hour, do: "allow", wantWait: 30 * time.Second},
				{advance: 30 * time.Second, do: "allow", wantAllow: true},
			},
		},
		{
			name: "threshold 0 means 1", threshold: 0, openFor: 5 * time.Second,
			ops: []op{
				{do: "fail"},
				{do: "allow", wantWait: 5 * time.Second},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clock := newClock()
			b := newBreaker(tt.threshold, tt.openFor, clock.Now)
			for i, o := range tt.ops {
				clock.Advance(o.advance)
				switch o.do {
				case "allow":
					ok, wait := b.allow()
					if ok != o.wantAllow || (!ok && wait != o.wantWait) {
						t.Fatalf("op %d: allow() = (%v, %s), want (%v, %s)", i, ok, wait, o.wantAllow, o.wantWait)
					}
				case "fail":
					b.failure(0)
				case "fail429":
					b.failure(30 * time.Second)
				case "ok":
					b.success()
				}
			}
		})
	}
}

func TestBreakerSingleProbeUnderConcurrency(t *testing.T) {
	clock := newClock()
	b := newBreaker(1, time.Second, clock.Now)
	b.failure(0)
	clock.Advance(time.Second)
	var allowed atomic.Int32
	var wg sync.WaitGroup
	for range 100 {
		wg.Go(func() {
			if ok, _ := b.allow(); ok {
				allowed.Add(1)
			}
		})
	}
	wg.Wait()
	if allowed.Load() != 1 {
		t.Fatalf("%d calls let through while half-open, want exactly 1 probe", allowed.Load())
	}
}
