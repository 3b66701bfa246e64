package leasecache

import "sync/atomic"

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
	mask   uint64
	slots  []atomic.Pointer[memoEntry]
	epochs []atomic.Uint64
}

type memoEntry struct {
	key   Key
	epoch uint64
	lease Lease
}

// The memo stays within 1/memoShare of max_memory_mb: a slot holds at
// most one entry of at most memoMaxEntry bytes (larger ones are not
// memoised) and its decoded lease, and a change clears its slot.
const (
	memoShare     = 32
	memoMaxEntry  = 512
	memoSlotBytes = memoMaxEntry + 288 // + memoEntry
	memoMinSlots  = 16
	memoMaxSlots  = 1 << 14
)

func newMemo(mb int) *memo {
	n := memoMinSlots
	for n < memoMaxSlots && 2*n*memoSlotBytes <= mb<<20/memoShare {
		n <<= 1
	}
	return &memo{
		mask:   uint64(n - 1),
		slots:  make([]atomic.Pointer[memoEntry], n),
		epochs: make([]atomic.Uint64, n),
	}
}

// slot is k's slot, from the hash bigcache files k under: keys bigcache
// takes for one (a Set of one replaces the other) share a slot.
func (m *memo) slot(k string) uint64 { return keyHasher{}.Sum64(k) & m.mask }

// get is k's memoised lease, if nothing changed k's slot since it was read.
func (m *memo) get(k *Key) (Lease, bool) {
	i := m.slot(keyString(k))
	e := m.slots[i].Load()
	if e == nil || e.key != *k || e.epoch != m.epochs[i].Load() {
		return Lease{}, false
	}
	return e.lease, true
}

// epoch is read before k is read from the store, and given to put with
// the lease read.
func (m *memo) epoch(k *Key) uint64 { return m.epochs[m.slot(keyString(k))].Load() }

// put memoises l, read from entry (whose memory l's strings may share).
func (m *memo) put(k *Key, epoch uint64, l Lease, entry []byte) {
	if len(entry) > memoMaxEntry {
		return
	}
	m.slots[m.slot(keyString(k))].Store(&memoEntry{key: *k, epoch: epoch, lease: l})
}

// changed is called after every change to key k in the positive store. It
// also frees the slot, so a lease gone from the store is not kept alive
// here (a racing put may refill it, with an epoch that no longer serves).
// It reports whether the slot held k's lease.
func (m *memo) changed(k string) bool {
	i := m.slot(k)
	m.epochs[i].Add(1)
	e := m.slots[i].Swap(nil)
	return e != nil && keyString(&e.key) == k
}

// changedAll is called after the positive store is reset.
func (m *memo) changedAll() {
	for i := range m.epochs {
		m.epochs[i].Add(1)
		m.slots[i].Store(nil)
	}
}
