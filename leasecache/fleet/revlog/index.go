package revlog

import (
	"sync"
	"time"

	"github.com/leasegate/leasegate/leasecache"
)

// index is what this replica knows of the revocation log: the position it
// has applied, and the last revocation of every token and name (subject,
// session, email) for as long as the log keeps them. Shared values are checked against it
// (their fence must not be older than a revocation that names them).
type index struct {
	retention time.Duration

	mu    sync.RWMutex
	epoch uint64
	last  streamID // the newest record applied
	// floor: below it this replica cannot know what was revoked (the log
	// was trimmed there, or had a gap), so a fence older than it is void.
	floor  streamID
	tokens map[leasecache.Key]streamID
	names  map[leasecache.Name]streamID
	queue  []indexed // oldest first, for pruning
}

type indexed struct {
	id     streamID
	token  leasecache.Key
	name   leasecache.Name
	byName bool
}

func newIndex(retention time.Duration) *index {
	return &index{retention: retention, tokens: map[leasecache.Key]streamID{}, names: map[leasecache.Name]streamID{}}
}

// position is the fence for a validation starting now.
func (x *index) position() Position {
	x.mu.RLock()
	defer x.mu.RUnlock()
	return Position{x.epoch, x.last}
}

// voids reports whether a shared value for k fenced at pos is overtaken
// by a revocation this replica has applied. The names of l, a lease, are
// checked too; a negative lease (l nil) has none.
func (x *index) voids(k leasecache.Key, pos Position, l *leasecache.Lease) bool {
	x.mu.RLock()
	defer x.mu.RUnlock()
	if pos.epoch != x.epoch || pos.id.less(x.floor) {
		return true
	}
	if id, ok := x.tokens[k]; ok && pos.id.less(id) {
		return true
	}
	if l == nil || len(x.names) == 0 {
		return false
	}
	for _, n := range l.Names() {
		if id, ok := x.names[n]; ok && n.Value != "" && pos.id.less(id) {
			return true
		}
	}
	return false
}

// record is what add and pin index of r.
func record(id streamID, kind byte, r *Revocation) (indexed, bool) {
	switch kind {
	case recToken:
		return indexed{id: id, token: r.Key}, true
	case recSubject, recName:
		return indexed{id: id, name: r.Name(), byName: true}, true
	}
	return indexed{}, false
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
	e, ok := record(id, kind, r)
	switch {
	case !ok:
		return
	case e.byName && x.names[e.name].less(id):
		x.names[e.name] = id
	case !e.byName && x.tokens[e.token].less(id):
		x.tokens[e.token] = id
	}
	x.queue = append(x.queue, e)
}

func (x *index) addLocked(id streamID, kind byte, r *Revocation) {
	x.last = id
	if e, ok := record(id, kind, r); ok {
		if e.byName {
			x.names[e.name] = id
		} else {
			x.tokens[e.token] = id
		}
		x.queue = append(x.queue, e)
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
		if e.byName && x.names[e.name] == e.id {
			delete(x.names, e.name)
		} else if !e.byName && x.tokens[e.token] == e.id {
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
	x.tokens, x.names, x.queue = b.tokens, b.names, b.queue
}
