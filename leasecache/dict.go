package leasecache

import (
	"strings"
	"sync"
	"sync/atomic"
)

// dict interns the values of a lease's low-cardinality fields (issuer
// name, audience, client id, scope, wlcg.ver), so a cache entry carries a
// small index instead of the string: a site has a few issuers, audiences
// and clients, and a client asks for a few scope sets. It is append-only
// for the cache's lifetime: an index, once handed out, means the same
// string for as long as any entry may carry it, whatever reloads or
// revocations happen. It is bounded; a value that does not fit any more
// (or is long) is stored inline, as before.
//
// Why not an index into the configuration: the cache outlives every
// configuration generation, and a reload may rename, reorder or drop
// issuers, so a position in the config would name another issuer.
type dict struct {
	mu    sync.Mutex
	index map[string]uint32 // under mu
	bytes int               // under mu: string bytes held

	n      atomic.Uint32 // entries published; readers see [0, n)
	chunks [dictChunks]atomic.Pointer[[dictChunkLen]string]
}

const (
	dictChunkLen = 1024
	dictChunks   = 64
	// dictMaxEntries and dictMaxBytes bound what the dictionary holds
	// (about 4 MiB with the index), whatever the issuers send.
	dictMaxEntries = dictChunkLen * dictChunks
	dictMaxBytes   = 1 << 20
	// dictMaxLen is the longest value interned: longer ones are likely
	// one-off (a subject-specific scope list) and stay inline.
	dictMaxLen = 512
)

func newDict() *dict { return &dict{index: make(map[string]uint32)} }

// ref returns s's index, interning s if there is room; ok is false when s
// must be stored inline.
func (d *dict) ref(s string) (i uint32, ok bool) {
	if len(s) > dictMaxLen {
		return 0, false
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if i, ok := d.index[s]; ok {
		return i, true
	}
	n := d.n.Load()
	if n >= dictMaxEntries || d.bytes+len(s) > dictMaxBytes {
		return 0, false
	}
	chunk := d.chunks[n/dictChunkLen].Load()
	if chunk == nil {
		chunk = new([dictChunkLen]string)
		d.chunks[n/dictChunkLen].Store(chunk)
	}
	s = strings.Clone(s) // never keep the caller's buffer alive
	chunk[n%dictChunkLen] = s
	d.index[s] = n
	d.bytes += len(s)
	d.n.Store(n + 1) // publishes the slot written above
	return n, true
}

// get returns the string at index i; ok is false for an index never
// handed out (a corrupt entry).
func (d *dict) get(i uint64) (string, bool) {
	if i >= uint64(d.n.Load()) {
		return "", false
	}
	return d.chunks[i/dictChunkLen].Load()[i%dictChunkLen], true
}
