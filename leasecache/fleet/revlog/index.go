package revlog

import (
	"sync"
	"time"

	"github.com/leasegate/leasegate/leasecache"
)

// index is what this replica knows of the revocation log: the position it
// has applied, and the last revocation of every token and subject for
// as long as the log keeps them. Shared values are checked against it
// (their fence must not be older than a revocation that names them).
type index struct {
	retention time.Duration

	mu    sync.RWMutex
	epoch uint64
	last  streamID // the newest record applied
	// floor: below it this replica cannot know what was revoked (the log
	// was trimmed there, or had a gap), so a fence older than it is void.
	floor    streamID
	tokens   map[leasecache.Key]streamID
	subjects map[subjectKey]streamID
	queue    []indexed // oldest first, for pruning
}

type subjectKey struct{ issuer, subject string }

type indexed struct {
	id      streamID
	token   leasecache.Key
	subject subjectKey
	bySub   bool
}

func newIndex(retention time.Duration) *index {
	return &index{retention: retention, tokens: map[leasecache.Key]streamID{}, subjects: map[subjectKey]streamID{}}
}

// position is the fence for a validation starting now.
func (x *index) position() Position {
	x.mu.RLock()
	defer x.mu.RUnlock()
	return Position{x.epoch, x.last}
}

// voids reports whether a shared value for k fenced at pos is overtaken
// by a revocation this replica has applied. subject is checked for
// leases; a negative lease has none.
func (x *index) voids(k leasecache.Key, pos Position, issuer, subject string, lease bool) bool {
	x.mu.RLock()
	defer x.mu.RUnlock()
	if pos.epoch != x.epoch || pos.id.less(x.floor) {
		return true
	}
	if id, ok := x.tokens[k]; ok && pos.id.less(id) {
		return true
	}
	if lease {
		if id, ok := x.subjects[subjectKey{issuer, subject}]; ok && pos.id.less(id) {
			return true
		}
	}
	return false
}

// add records r, which the log holds at id, and makes id the last
// position applied. A genesis or unreadable record only moves the
// position (kind 0).
func (x *index) add(id streamID, kind byte, r *Revocation) {
	x.mu.Lock()
	defer x.mu.Unlock()
	x.addLocked(id, kind, r)
}

// pin records this replica's own revocation r at id as soon as the log
// holds it, before the follower reads it back: until then a local miss
// could refill the revoked lease from the store. The applied position is
// the follower's and does not move; its own add later is idempotent.
func (x *index) pin(id streamID, kind byte, r *Revocation) {
	x.mu.Lock()
	defer x.mu.Unlock()
	switch kind {
	case recToken:
		if x.tokens[r.Key].less(id) {
			x.tokens[r.Key] = id
		}
		x.queue = append(x.queue, indexed{id: id, token: r.Key})
	case recSubject:
		s := subjectKey{r.Issuer, r.Subject}
		if x.subjects[s].less(id) {
			x.subjects[s] = id
		}
		x.queue = append(x.queue, indexed{id: id, subject: s, bySub: true})
	}
}

func (x *index) addLocked(id streamID, kind byte, r *Revocation) {
	x.last = id
	switch kind {
	case recToken:
		x.tokens[r.Key] = id
		x.queue = append(x.queue, indexed{id: id, token: r.Key})
	case recSubject:
		s := subjectKey{r.Issuer, r.Subject}
		x.subjects[s] = id
		x.queue = append(x.queue, indexed{id: id, subject: s, bySub: true})
	}
	x.pruneLocked()
}

// pruneLocked forgets records older than the retention on the log's own
// clock (the ms of the newest ID). Anything forgotten raises the floor, so
// pruning never lets a value through that a kept record would refuse.
func (x *index) pruneLocked() {
	keep := uint64(x.retention / time.Millisecond)
	n := 0
	for _, e := range x.queue {
		if e.id.ms+keep >= x.last.ms {
			break
		}
		n++
		if x.floor.less(e.id) {
			x.floor = e.id
		}
		if e.bySub && x.subjects[e.subject] == e.id {
			delete(x.subjects, e.subject)
		} else if !e.bySub && x.tokens[e.token] == e.id {
			delete(x.tokens, e.token)
		}
	}
	x.queue = x.queue[n:]
}

// replace takes over everything b knows: a view of the log built aside
// (by resync), so a lookup never sees a half-built index.
func (x *index) replace(b *index) {
	x.mu.Lock()
	defer x.mu.Unlock()
	x.epoch, x.floor, x.last = b.epoch, b.floor, b.last
	x.tokens, x.subjects, x.queue = b.tokens, b.subjects, b.queue
}
