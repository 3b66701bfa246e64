// Package leasecache owns the lease store: what the issuer last said about a
// token, keyed by the token's SHA-256, with the hit/miss/negative semantics of
// SPEC §1, revocation by token or by subject, and a hard memory bound.
// Raw tokens never enter it.
package leasecache

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/allegro/bigcache/v3"
)

// Key identifies a token without holding it: SHA-256 of the raw token.
type Key [sha256.Size]byte

// KeyOf hashes a raw token.
func KeyOf(token string) Key {
	return sha256.Sum256(unsafe.Slice(unsafe.StringData(token), len(token)))
}

// Prefix is the first 8 hex characters of the hash: enough to correlate log
// lines, too little to look the token up.
func (k Key) Prefix() string { return hex.EncodeToString(k[:4]) }

// ParseKey reads a key from 64 hex characters (as /revoke receives it).
func ParseKey(s string) (Key, error) {
	var k Key
	if len(s) != 2*len(k) {
		return k, fmt.Errorf("token_sha256: want %d hex characters, got %d", 2*len(k), len(s))
	}
	if _, err := hex.Decode(k[:], []byte(s)); err != nil {
		return k, fmt.Errorf("token_sha256: %w", err)
	}
	return k, nil
}

// Lease is what a validation established about a token.
type Lease struct {
	ValidatedAt time.Time // when the issuer last vouched for the token
	Expiry      time.Time // the token's exp; zero when the issuer gave none
	// IssuedAt is the token's iat, zero when the issuer gave none (or the
	// lease was written by a version that did not keep it); the lifetime
	// policy judges a lease by it.
	IssuedAt time.Time
	// NoIssuedAt says the issuer's answer had no iat (IssuedAt is zero
	// because there was none, not because a writer did not keep it).
	NoIssuedAt  bool
	Subject     string
	ClientID    string
	Scope       string
	Issuer      string // leasegate's issuer name
	Audience    string // space-separated
	WLCGVersion string
	// SessionID (sid) and Email are what a push revocation may name the
	// token by (SPEC §9), when the issuer told them.
	SessionID, Email string
	// Gen is the cache's Generation() read before the validation started.
	// Store refuses the lease when the token or its subject was revoked
	// since; the zero value is refused after any such revoke.
	Gen uint64
	// Note is where a caller may keep what it derived from this lease
	// alone, set on a lease Lookup served from its memo; nil otherwise.
	// It is not stored: Store ignores it.
	Note *Note
}

// Outcome is the result of a lookup.
type Outcome uint8

const (
	// Miss: no usable lease; ask the issuer.
	Miss Outcome = iota
	// Hit: the lease is inside the window; answer without the issuer.
	Hit
	// WindowClosed: a lease exists but the request's window has closed (the
	// token itself may still be valid); ask the issuer, and the lease may
	// still serve a stale_if_error allowance while the issuer is down.
	WindowClosed
	// Negative: the issuer recently said the token is not active.
	Negative
)

func (o Outcome) String() string {
	switch o {
	case Hit:
		return "hit"
	case WindowClosed:
		return "window_closed"
	case Negative:
		return "negative"
	default:
		return "miss"
	}
}

// Config sizes and tunes a Cache.
type Config struct {
	// MaxMemoryMB bounds the entry storage; when full, the oldest leases are
	// evicted. Default DefaultMaxMemoryMB (256).
	MaxMemoryMB int
	// NegativeTTL is how long an inactive answer is remembered. Default
	// DefaultNegativeTTL (10s).
	NegativeTTL time.Duration
	// MaxAge is the oldest a lease can be and still matter (lease.max); the
	// store may forget anything older. Default DefaultMaxAge (10m).
	MaxAge time.Duration
	// Now is the clock; time.Now when nil. Tests pass their own.
	Now func() time.Time
}

// FlightHorizon is how long a validation is taken to last at most (the
// issuer timeouts leasegate allows are shorter): a refusal blocks the
// answers of validations begun before it for that long past its
// NegativeTTL, and no longer, whatever the wall clock did meanwhile.
// The fleet's order horizon is the same.
const FlightHorizon = 30 * time.Second

// negativeShare is the fraction of memory negative leases may take, so a
// flood of garbage tokens cannot evict the good leases.
const negativeShare = 8

// maxRevokeRecords bounds the revocation records kept; past it they are
// folded into the floor (every older lease void), which is always safe.
const maxRevokeRecords = 1 << 16

// ErrRevokedSince reports a lease or negative lease that Store or
// StoreNegative dropped because its token or subject was revoked after the
// validation began.
var ErrRevokedSince = errors.New("leasecache: revoked while the validation was in flight")

// ErrSuperseded reports a lease Store dropped because an answer about the
// token from a validation that began later is already stored (two flights
// of one token, the older answer arriving last): an older "active" must
// not replace a newer "not active", nor a newer lease.
var ErrSuperseded = errors.New("leasecache: a newer answer about the token is stored")

// Cache is the lease store. Safe for concurrent use.
//
// Revocations are ordered by a generation counter rather than by the clock:
// every Revoke and RevokeSubject advances it, and a lease carries the
// generation its validation started at. The counter lives here, not in the
// engine, so every engine sharing the cache (the old and the new one during
// a reload) sees every revoke.
type Cache struct {
	pos, neg    *bigcache.BigCache
	memo        *memo // recently read leases, decoded (memo.go)
	dict        *dict // the entries' interned strings (entry.go)
	now         func() time.Time
	negativeTTL time.Duration
	maxAge      atomic.Int64   // lease.max, a time.Duration; SetMaxAge changes it
	evicted     *atomic.Uint64 // leases the positive store dropped for space (stats.go)

	gen   atomic.Uint64 // revocation generation
	floor atomic.Uint64 // leases and fills with Gen below it are void

	// mu orders Store against Revoke: a fill checks the records and writes
	// under the read lock, a revoke records and evicts under the write lock.
	mu     sync.RWMutex
	names  map[Name]uint64 // generation of the name's last revoke
	tokens map[Key]uint64  // generation of the token's last revoke
	queue  []revocation    // every record, oldest first, for pruning
	nNames atomic.Int32    // len(names), read without the lock on the hot path
	// lastAt is the newest record's time, which no later record's is
	// below (a clock stepping back does not reorder them), and floorAt
	// the newest time the floor covers (RevokeAll, a fold of every record,
	// a record pruned for age): GenerationAt reads both.
	lastAt, floorAt time.Time

	// fills orders the fills of one token (Store, StoreNegative), so
	// Store's look at what is stored and its write are one step; striped
	// by the key, never taken on a lookup.
	fills [64]sync.Mutex

	afterRead func() // tests: runs between a store read and its memo
}

// revocation is one revoke in the pruning queue.
type revocation struct {
	gen    uint64
	at     time.Time // by the cache clock
	token  Key
	name   Name
	byName bool
}

// New builds a Cache.
func New(cfg Config) (*Cache, error) {
	cfg = cfg.WithDefaults()
	if cfg.MaxMemoryMB < 2 {
		return nil, fmt.Errorf("leasecache: max_memory_mb %d is below the minimum of 2", cfg.MaxMemoryMB)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	negMB := max(1, cfg.MaxMemoryMB/negativeShare)
	evicted := new(atomic.Uint64)
	m := newMemo(cfg.MaxMemoryMB)
	posCfg := storeConfig(cfg.MaxMemoryMB-negMB, cfg.MaxAge, 256)
	// Only evictions for space: bigcache copies key and entry for each
	// callback, under the shard's lock. A lease that aged out of the store
	// may stay memoised; Lookup still judges its window, which no tier
	// makes longer than the store's life (bar a reload raising lease.max).
	posCfg.OnRemoveWithReason = func(key string, _ []byte, _ bigcache.RemoveReason) {
		m.changed(key)
		evicted.Add(1)
	}
	posCfg = posCfg.OnRemoveFilterSet(bigcache.NoSpace)
	pos, err := bigcache.New(context.Background(), posCfg)
	if err != nil {
		return nil, fmt.Errorf("leasecache: positive store: %w", err)
	}
	neg, err := bigcache.New(context.Background(), storeConfig(negMB, cfg.NegativeTTL+FlightHorizon, 16))
	if err != nil {
		pos.Close()
		return nil, fmt.Errorf("leasecache: negative store: %w", err)
	}
	c := &Cache{
		pos:         pos,
		neg:         neg,
		memo:        m,
		dict:        newDict(),
		now:         cfg.Now,
		negativeTTL: cfg.NegativeTTL,
		evicted:     evicted,
		names:       make(map[Name]uint64),
		tokens:      make(map[Key]uint64),
	}
	c.maxAge.Store(int64(cfg.MaxAge))
	return c, nil
}

// SetMaxAge changes MaxAge (a reload of lease.max). Revoke records are kept
// that long, so it must be at least the longest window in use; pruning
// early only voids more. The stores' own expiry keeps the MaxAge of New: a
// longer one means earlier misses (bar a memoised lease, judged as any).
func (c *Cache) SetMaxAge(d time.Duration) {
	if d > 0 {
		c.maxAge.Store(int64(d))
	}
}

func storeConfig(mb int, life time.Duration, shards int) bigcache.Config {
	// Each shard must hold at least a few entries.
	for shards > 1 && mb*1024*1024/shards < 64*1024 {
		shards /= 2
	}
	// A shard's queue starts at 1/64 of its bound and doubles when full,
	// the last doubling capped at the bound: an empty cache reserves
	// little, and no queue ever grows past max_memory_mb's share.
	// (bigcache sizes the start as entries × MaxEntrySize.)
	perShard := mb << 20 / shards
	startEntries := max(16, perShard/64/entrySizeHint)
	return bigcache.Config{
		Shards: shards,
		// bigcache's own expiry only reclaims space; lease semantics use
		// the timestamps inside each entry and our clock. One extra second
		// because bigcache counts whole seconds.
		LifeWindow:         life + time.Second,
		CleanWindow:        max(time.Second, min(life, time.Minute)),
		MaxEntriesInWindow: startEntries * shards,
		MaxEntrySize:       entrySizeHint,
		HardMaxCacheSize:   mb,
		Hasher:             keyHasher{},
	}
}

// entrySizeHint is a typical entry's size in bigcache (header, key, lease):
// the unit of the queues' start size, and the largest entry Set wraps
// without allocating.
const entrySizeHint = 256

// keyHasher uses the key's own bytes: it is already a SHA-256.
type keyHasher struct{}

func (keyHasher) Sum64(s string) uint64 {
	if len(s) < 8 {
		var h uint64
		for i := 0; i < len(s); i++ {
			h = h<<8 | uint64(s[i])
		}
		return h
	}
	return binary.LittleEndian.Uint64(unsafe.Slice(unsafe.StringData(s), 8))
}

// keyString views k as a string without copying; bigcache copies on Set.
func keyString(k *Key) string { return unsafe.String(&k[0], len(k)) }

// keyBufs hold a key while bigcache reads it. bigcache hands the key to
// its Hasher interface, so a key on the stack would escape (an allocation
// per lookup); bigcache keeps no reference once Get or Delete returns.
var keyBufs = sync.Pool{New: func() any { return new(Key) }}

// Close stops the stores' background cleaners.
func (c *Cache) Close() error {
	return errors.Join(c.pos.Close(), c.neg.Close())
}

// Lookup reports what the cache knows about k for a request whose window is
// w. A hit needs validated_at <= now < validated_at+w and now < exp; a hit
// never changes the lease. The lease is returned for Hit and WindowClosed.
func (c *Cache) Lookup(k Key, w time.Duration) (Lease, Outcome) {
	var l Lease
	o, _ := c.Look(k, w, &l)
	return l, o
}

// Look is Lookup into *l (one copy of the lease, where returning it would
// copy it at every caller's level), and the clock reading it judged at,
// so a caller on the same clock need not read it again. *l is the zero
// Lease unless the outcome is Hit or WindowClosed.
func (c *Cache) Look(k Key, w time.Duration, l *Lease) (Outcome, time.Time) {
	// The cache's own reading, taken here: a reading from before the call
	// (the request's start, say) would make a lease another request
	// stored meanwhile look validated in the future, and drop it.
	now := c.now()
	o := c.judge(&k, w, now, l)
	if o != Hit && o != WindowClosed {
		*l = Lease{}
	}
	return o, now
}

func (c *Cache) judge(k *Key, w time.Duration, now time.Time, l *Lease) Outcome {
	found := c.memo.get(k, l) || c.read(k, now, l)
	if found {
		switch {
		// SPEC §1: "a lease whose validated_at lies in the future (the wall
		// clock stepped back) is a miss, never a longer hit" — nor a stale
		// allowance, so it is not returned as WindowClosed either.
		case c.isRevoked(l), !l.Expiry.IsZero() && !now.Before(l.Expiry), now.Before(l.ValidatedAt):
			c.drop(k)
		case now.Before(l.ValidatedAt.Add(w)):
			return Hit
		default:
			return WindowClosed
		}
	}
	kb := keyBufs.Get().(*Key)
	defer keyBufs.Put(kb)
	*kb = *k
	if c.isNegative(kb, now) {
		return Negative
	}
	return Miss
}

// read puts k's lease from the positive store into *l, memoised; a
// corrupt entry is dropped.
func (c *Cache) read(k *Key, now time.Time, l *Lease) bool {
	kb := keyBufs.Get().(*Key)
	defer keyBufs.Put(kb)
	*kb = *k
	epoch := c.memo.epoch(kb) // before the read: a change after it voids the memo
	buf, err := c.pos.Get(keyString(kb))
	if c.afterRead != nil {
		c.afterRead()
	}
	if err != nil {
		return false
	}
	d, err := decodeEntry(buf, c.dict)
	if err != nil {
		c.drop(kb)
		return false
	}
	c.memo.put(kb, epoch, &d, buf, now) // buf is Get's copy: d's strings may keep it
	*l = d
	return true
}

// drop deletes k's lease. Every change to the positive store is followed
// by the memo's changed, so the memo never serves what was there before.
func (c *Cache) drop(k *Key) {
	kb := keyBufs.Get().(*Key)
	defer keyBufs.Put(kb)
	*kb = *k
	_ = c.pos.Delete(keyString(kb))
	c.memo.changed(keyString(kb))
}

// A negative lease holds two stamps: when its NegativeTTL started, which
// a lookup moves to now when the clock stepped back, and the refusal's
// own, which orders it against fills (newerStored) and is never moved
// back, so a re-stamp cannot let an older flight's answer replace it.
const negLen = 2 * timeLen

func negStamps(buf []byte) (at, order time.Time, ok bool) {
	if len(buf) != negLen {
		return at, order, false
	}
	at, ok1 := getTime(buf)
	order, ok2 := getTime(buf[timeLen:])
	return at, order, ok1 && ok2
}

// isNegative reports a negative lease younger than NegativeTTL. One stamped
// in the future (the clock stepped back) stays negative and is re-stamped
// now: a step back can neither turn it into an allow nor make it last
// longer than NegativeTTL from when the step is noticed.
func (c *Cache) isNegative(k *Key, now time.Time) bool {
	buf, err := c.neg.Get(keyString(k))
	if err != nil {
		return false
	}
	at, _, ok := negStamps(buf)
	if !ok {
		return false
	}
	if now.Before(at) {
		// Under the lock, and only if still there: a Revoke that evicted
		// it meanwhile must not see it come back.
		c.mu.RLock()
		if _, err := c.neg.Get(keyString(k)); err == nil {
			putTime(buf, now) // the TTL's start; the order stamp stays
			_ = c.neg.Set(keyString(k), buf)
		}
		c.mu.RUnlock()
		return true
	}
	return now.Before(at.Add(c.negativeTTL))
}

// Generation is the revocation generation: read it before a validation
// starts, coalesce only validations that read the same value, and put it
// in the Lease (or pass it to StoreNegative) so a revoke that happens
// meanwhile wins. One atomic load.
func (c *Cache) Generation() uint64 { return c.gen.Load() }

// GenerationAt is the generation a validation that began at t, by the
// cache's clock, would have read: the newest before every revoke recorded
// at or after t, and at most gen (a Generation() the caller read). A lease
// validated elsewhere (the fleet's store) carries only its validated_at;
// filled at GenerationAt(l.ValidatedAt, gen), a revoke made here after
// that validation refuses it, as it refuses a local one, even when the
// revoke never reached the store. A revoke recorded at t exactly counts
// as after.
//
// A validation at or before the floor's last wholesale raise is below the
// floor: the records that raise dropped may have named its token.
func (c *Cache) GenerationAt(t time.Time, gen uint64) uint64 {
	c.mu.RLock()
	defer c.mu.RUnlock()
	if f := c.floor.Load(); f > 0 && !c.floorAt.IsZero() && !t.After(c.floorAt) {
		return f - 1
	}
	// Records are in generation order, and their times never decrease
	// (recordLocked); every one kept is above the floor.
	for i := len(c.queue) - 1; i >= 0; i-- {
		r := &c.queue[i]
		if r.at.Before(t) {
			break
		}
		gen = min(gen, r.gen-1)
	}
	return gen
}

// Store records a fresh validation; every tier's window restarts from
// l.ValidatedAt. It clears a negative lease for k. When k or l's subject
// was revoked after generation l.Gen, nothing is stored and the error is
// ErrRevokedSince.
func (c *Cache) Store(k Key, l Lease) error {
	buf, err := encodeEntry(&l, c.dict)
	if err != nil {
		return err
	}
	f := &c.fills[k[0]%byte(len(c.fills))]
	f.Lock()
	defer f.Unlock()
	c.mu.RLock()
	defer c.mu.RUnlock()
	if c.revokedSinceLocked(k, &l, l.Gen) {
		return fmt.Errorf("leasecache: lease %s: %w", k.Prefix(), ErrRevokedSince)
	}
	if c.newerStored(&k, l.ValidatedAt) {
		return fmt.Errorf("leasecache: lease %s: %w", k.Prefix(), ErrSuperseded)
	}
	_ = c.neg.Delete(keyString(&k))
	err = c.pos.Set(keyString(&k), buf)
	c.memo.changed(keyString(&k)) // a failed Set may have dropped the old entry too
	if err != nil {
		return fmt.Errorf("leasecache: store lease %s: %w", k.Prefix(), err)
	}
	return nil
}

// StoreNegative removes k's lease and remembers for NegativeTTL that the
// token is not active. gen is Generation() read before the validation
// started; a verdict older than a revoke of k is dropped (ErrRevokedSince),
// as the revoke forgot everything about k.
func (c *Cache) StoreNegative(k Key, gen uint64) error {
	f := &c.fills[k[0]%byte(len(c.fills))]
	f.Lock()
	defer f.Unlock()
	c.mu.RLock()
	defer c.mu.RUnlock()
	if c.revokedSinceLocked(k, nil, gen) {
		return fmt.Errorf("leasecache: negative lease %s: %w", k.Prefix(), ErrRevokedSince)
	}
	c.drop(&k)
	now := c.now()
	order := now
	if old, err := c.neg.Get(keyString(&k)); err == nil {
		if _, o, ok := negStamps(old); ok && o.After(order) {
			order = o // the clock stepped back: stay the newest answer
		}
	}
	var buf [negLen]byte
	putTime(buf[:], now)
	putTime(buf[timeLen:], order)
	if err := c.neg.Set(keyString(&k), buf[:]); err != nil {
		return fmt.Errorf("leasecache: store negative lease %s: %w", k.Prefix(), err)
	}
	return nil
}

// newerStored reports whether k has a negative lease stamped, or a lease
// validated, after validatedAt (a validation stamps its start, a refusal
// its end, so the refusal of a flight that began later is always after).
// A negative is judged by its order stamp, in the future or not (the
// clock stepped back): it may be the newer answer. It blocks fills for
// FlightHorizon past its NegativeTTL, counted from its TTL start, which
// lookups bring back to now after a step: a step costs at most that.
// A lease stamped in the future does not count: lookups drop it.
func (c *Cache) newerStored(k *Key, validatedAt time.Time) bool {
	now := c.now()
	if buf, err := c.neg.Get(keyString(k)); err == nil {
		at, order, ok := negStamps(buf)
		if ok && order.After(validatedAt) && now.Before(at.Add(c.negativeTTL+FlightHorizon)) {
			return true
		}
	}
	if buf, err := c.pos.Get(keyString(k)); err == nil {
		if old, err := decodeEntry(buf, c.dict); err == nil && old.ValidatedAt.After(validatedAt) && !old.ValidatedAt.After(now) {
			return true
		}
	}
	return false
}

// Forget drops k's lease if it was validated no later than validatedAt:
// the caller's own answer, which it learnt is older than another (a newer
// answer stored since is kept). Unlike Revoke it leaves no trace: a
// validation in flight may still store its answer.
func (c *Cache) Forget(k Key, validatedAt time.Time) {
	f := &c.fills[k[0]%byte(len(c.fills))]
	f.Lock()
	defer f.Unlock()
	buf, err := c.pos.Get(keyString(&k))
	if err != nil {
		return
	}
	if l, err := decodeEntry(buf, c.dict); err != nil || !l.ValidatedAt.After(validatedAt) {
		c.drop(&k)
	}
}

// revokedSinceLocked reports whether a validation that started at gen is
// overtaken by a revoke of k or of one of l's names (l is nil for a
// negative lease). c.mu is held.
func (c *Cache) revokedSinceLocked(k Key, l *Lease, gen uint64) bool {
	if gen < c.floor.Load() {
		return true
	}
	if c.tokens[k] > gen {
		return true
	}
	return l != nil && c.nameRevokedLocked(l, gen)
}

// nameRevokedLocked reports a revoke of one of l's names after gen. c.mu
// is held (for reading at least).
func (c *Cache) nameRevokedLocked(l *Lease, gen uint64) bool {
	for _, n := range l.Names() {
		if n.Value != "" && c.names[n] > gen {
			return true
		}
	}
	return false
}

// Revoke forgets everything about k, positive or negative, so the next
// request with that token is validated with the issuer; a validation of k
// already in flight can no longer store its answer.
func (c *Cache) Revoke(k Key) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.recordLocked(revocation{token: k})
	e1 := c.pos.Delete(keyString(&k))
	memoised := c.memo.changed(keyString(&k)) // aged out of the store, still served
	e2 := c.neg.Delete(keyString(&k))
	return e1 == nil || memoised || e2 == nil
}

// RevokeSubject voids every lease of (issuer, subject) whose validation
// started before now, without scanning the cache: lookups of those leases
// become misses, and validations in flight can no longer store theirs.
func (c *Cache) RevokeSubject(issuer, subject string) {
	c.RevokeName(NameOf(issuer, ClaimSubject, subject))
}

// RevokeName is RevokeSubject for any claim a lease is named by: every
// lease of n.Issuer whose n.Claim is n.Value (build n with NameOf). An
// empty Value names no lease and records nothing.
func (c *Cache) RevokeName(n Name) {
	if n.Value == "" {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.recordLocked(revocation{name: n, byName: true})
}

// RevokeAll voids every lease and negative lease, and every validation
// already in flight: the floor rises to a new generation, so a fill that
// read Generation() before this call is refused (ErrRevokedSince), and
// both stores are emptied. The fleet calls it when this replica may have
// missed revocations (SPEC §8), before it serves another hit.
func (c *Cache) RevokeAll() {
	c.mu.Lock()
	defer c.mu.Unlock()
	g := c.gen.Add(1)
	c.floor.Store(g)
	c.floorAt = c.stampLocked()
	// Every record is older than the floor now: it voids nothing more.
	clear(c.names)
	clear(c.tokens)
	c.queue = nil
	c.nNames.Store(0)
	_ = c.pos.Reset()
	c.memo.changedAll()
	_ = c.neg.Reset()
}

// recordLocked advances the generation, records r at it, and prunes.
// c.mu is held for writing.
func (c *Cache) recordLocked(r revocation) {
	r.gen, r.at = c.gen.Add(1), c.stampLocked()
	if r.byName {
		c.names[r.name] = r.gen
	} else {
		c.tokens[r.token] = r.gen
	}
	c.queue = append(c.queue, r)
	c.pruneLocked(r.at)
	c.nNames.Store(int32(len(c.names)))
}

// stampLocked is the cache clock's reading for a record, never below the
// last one's. c.mu is held for writing.
func (c *Cache) stampLocked() time.Time {
	// Wall time only: time.Now's monotonic reading never goes back, so it
	// would hide a wall step back from this comparison, and GenerationAt
	// compares with a shared lease's wall-clock validated_at.
	if now := c.now().Round(0); now.After(c.lastAt) {
		c.lastAt = now
	}
	return c.lastAt
}

// pruneLocked drops records older than MaxAge: no lease that old matters,
// and no validation runs that long. Whatever it drops is folded into the
// floor, so pruning early (clock stepped forward, too many records) only
// voids more, never less. Amortised O(1): the queue is in generation order.
func (c *Cache) pruneLocked(now time.Time) {
	floor := c.floor.Load()
	if len(c.queue) > maxRevokeRecords {
		floor = c.gen.Load() // every validation that started before the newest revoke
		c.floorAt = now
		clear(c.names)
		clear(c.tokens)
		c.queue = nil
	}
	n := 0
	for _, r := range c.queue {
		if now.Sub(r.at) <= time.Duration(c.maxAge.Load()) {
			break // younger records follow (or the clock stepped back: keep them)
		}
		n++
		floor = max(floor, r.gen)
		if r.at.After(c.floorAt) { // GenerationAt: validations before it are below the floor
			c.floorAt = r.at
		}
		// A later revoke of the same name has its own, younger record.
		if r.byName && c.names[r.name] == r.gen {
			delete(c.names, r.name)
		} else if !r.byName && c.tokens[r.token] == r.gen {
			delete(c.tokens, r.token)
		}
	}
	c.queue = c.queue[n:] // append reallocates once the front is used up
	c.floor.Store(floor)
}

// isRevoked reports a lease void by a later revoke of one of its names
// or the floor.
func (c *Cache) isRevoked(l *Lease) bool {
	if l.Gen < c.floor.Load() {
		return true
	}
	if c.nNames.Load() == 0 {
		return false
	}
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.nameRevokedLocked(l, l.Gen)
}

// Len is the number of positive leases held.
func (c *Cache) Len() int { return c.pos.Len() }
