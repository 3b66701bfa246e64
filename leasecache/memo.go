package leasecache

import (
	"encoding/binary"
	"sync/atomic"
	"time"
)

// memo keeps the decoded leases of tokens read recently, so a hit on a
// hot token skips bigcache's copying read and the decode. It decides
// nothing: Lookup judges a memoised lease exactly as one just read.
//
// The rule that keeps it true: every change the cache makes to the
// positive store (Set, Delete, Reset), and every eviction for space, bumps
// the epoch of the changed key's slot after the change, and a slot's
// lease is served only while the epoch is the one read before that lease
// was read from the store. So a lease that was replaced, removed, revoked
// or evicted since is never served here. (One that merely aged out of the
// store may be: Lookup judges its window as for any other.)
type memo struct {
	mask  uint64
	slots []memoSlot
}

// memoSlot keeps the epoch, a tag of the entry's key and the epoch it was
// filled at beside its pointer: a read of a token the slot does not hold
// touches the slot's 48 bytes, not the entry too. Tag and filled are hints (a
// stale one costs a read or a fill); the entry's own key and epoch decide.
type memoSlot struct {
	entry  atomic.Pointer[memoEntry]
	epoch  atomic.Uint64
	tag    atomic.Uint64
	filled atomic.Uint64
	since  atomic.Int64 // the entry's validated_at, Unix seconds
	used   atomic.Bool  // filled, or hit, since another token's read last found it
}

type memoEntry struct {
	key   Key
	epoch uint64
	lease Lease // lease.Note is &note
	note  Note
}

// Note holds one value a caller derived from a memoised lease alone (the
// engine keeps its view of the lease there). It lives and dies with that
// lease's memo entry: any change to the lease, or the entry's eviction,
// leaves it behind, so it never outlasts what it was derived from. The
// value must be immutable: concurrent hits share it.
type Note struct{ p atomic.Pointer[any] }

// Load returns the value stored, or nil.
func (n *Note) Load() any {
	if p := n.p.Load(); p != nil {
		return *p
	}
	return nil
}

// Store keeps x; the last Store wins.
func (n *Note) Store(x any) { n.p.Store(&x) }

// The memo stays within 1/memoShare of max_memory_mb: a slot holds at
// most one entry of at most memoMaxEntry bytes (larger ones are not
// memoised) and its decoded lease, and a change clears its slot.
const (
	memoShare     = 32
	memoMaxEntry  = 512
	memoSlotBytes = memoMaxEntry + 288 + 48 // + memoEntry, memoSlot
	memoMinSlots  = 16
	memoMaxSlots  = 1 << 14
)

func newMemo(mb int) *memo {
	n := memoMinSlots
	for n < memoMaxSlots && 2*n*memoSlotBytes <= mb<<20/memoShare {
		n <<= 1
	}
	return &memo{mask: uint64(n - 1), slots: make([]memoSlot, n)}
}

// slot is k's slot, from the hash bigcache files k under: keys bigcache
// takes for one (a Set of one replaces the other) share a slot.
func (m *memo) slot(k string) *memoSlot { return &m.slots[keyHasher{}.Sum64(k)&m.mask] }

// keyTag is the key bytes after those the slot is chosen by.
func keyTag(k *Key) uint64 { return binary.LittleEndian.Uint64(k[8:16]) }

// get puts k's memoised lease into *l, if nothing changed k's slot since
// it was read.
func (m *memo) get(k *Key, l *Lease) bool {
	s := m.slot(keyString(k))
	if s.tag.Load() != keyTag(k) {
		return false
	}
	e := s.entry.Load()
	if e == nil || e.key != *k || e.epoch != s.epoch.Load() {
		return false
	}
	*l = e.lease
	if !s.used.Load() { // a write only on the first hit since a contender
		s.used.Store(true)
	}
	return true
}

// epoch is read before k is read from the store, and given to put with
// the lease read.
func (m *memo) epoch(k *Key) uint64 { return m.slot(keyString(k)).epoch.Load() }

// put memoises l, read from entry (whose memory l's strings may share) at
// now, unless the slot still serves another token's lease validated less
// than memoTenure ago, or filled or hit since another token's read last
// found it (which uses that up): among more tokens than slots, cold reads
// neither allocate nor evict each other's entries, two hot tokens sharing
// a slot do not take it from each other on every read, and a slot whose
// token went quiet is taken over. It sets l.Note when it memoises l.
func (m *memo) put(k *Key, epoch uint64, l *Lease, entry []byte, now time.Time) {
	s := m.slot(keyString(k))
	if len(entry) > memoMaxEntry {
		return
	}
	if s.tag.Load() != keyTag(k) && s.filled.Load() == s.epoch.Load() && s.entry.Load() != nil &&
		(now.Unix()-s.since.Load() < memoTenure || s.used.Swap(false)) {
		return
	}
	e := &memoEntry{key: *k, epoch: epoch, lease: *l}
	e.lease.Note = &e.note
	l.Note = &e.note
	s.entry.Store(e)
	s.used.Store(true) // one read of another token's before its first hit
	s.tag.Store(keyTag(k))
	s.filled.Store(epoch)
	s.since.Store(l.ValidatedAt.Unix())
}

// memoTenure (seconds) is how long a slot's lease keeps it against
// another token's: a read window's length.
const memoTenure = 60

// changed is called after every change to key k in the positive store. It
// also frees the slot, so a lease gone from the store is not kept alive
// here (a racing put may refill it, with an epoch that no longer serves).
// It reports whether the slot held k's lease.
func (m *memo) changed(k string) bool {
	s := m.slot(k)
	s.epoch.Add(1)
	e := s.entry.Swap(nil)
	return e != nil && keyString(&e.key) == k
}

// changedAll is called after the positive store is reset.
func (m *memo) changedAll() {
	for i := range m.slots {
		m.slots[i].epoch.Add(1)
		m.slots[i].entry.Store(nil)
	}
}
