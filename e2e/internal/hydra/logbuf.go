package hydra

import (
	"bytes"
	"sync"
)

// logBuffer keeps the most recent output of Hydra, bounded in size.
// It is written by exec's copying goroutines and read by tests.
type logBuffer struct {
	mu      sync.Mutex
	max     int
	dropped int // bytes discarded from the front so far
	buf     bytes.Buffer
}

func newLogBuffer(max int) *logBuffer { return &logBuffer{max: max} }

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.buf.Write(p)
	if over := b.buf.Len() - b.max; over > 0 {
		// Drop at least half so trimming stays amortised O(1) per byte.
		n := max(over, b.max/2)
		b.buf.Next(n)
		b.dropped += n
	}
	return len(p), nil
}

// Len is the total number of bytes ever written, a mark for Since.
func (b *logBuffer) Len() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.dropped + b.buf.Len()
}

// Since returns what was written after mark (as far as it is still kept).
func (b *logBuffer) Since(mark int) string {
	b.mu.Lock()
	defer b.mu.Unlock()
	off := max(mark-b.dropped, 0)
	if off > b.buf.Len() {
		return ""
	}
	return string(b.buf.Bytes()[off:])
}

func (b *logBuffer) String() string { return b.Since(0) }
