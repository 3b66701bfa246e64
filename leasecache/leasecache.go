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
	Subject     string
	ClientID    string
	Scope       string
	Issuer      string // leasegate's issuer name
	Audience    string // space-separated
	WLCGVersion string
}

// Outcome is the result of a lookup.
type Outcome uint8

const (
	// Miss: no usable lease; ask the issuer.
	Miss Outcome = iota
	// Hit: the lease is inside the window; answer without the issuer.
	Hit
	// Expired: a lease exists but its window has closed; it may still serve
	// a stale_if_error allowance while the issuer is down.
	Expired
	// Negative: the issuer recently said the token is not active.
	Negative
)

func (o Outcome) String() string {
	switch o {
	case Hit:
		return "hit"
	case Expired:
		return "expired"
	case Negative:
		return "negative"
	default:
		return "miss"
	}
}

// Config sizes and tunes a Cache.
type Config struct {
	// MaxMemoryMB bounds the entry storage; when full, the oldest leases are
	// evicted. Default 256.
	MaxMemoryMB int
	// NegativeTTL is how long an inactive answer is remembered. Default 10s.
	NegativeTTL time.Duration
	// MaxAge is the oldest a lease can be and still matter (lease.max); the
	// store may forget anything older. Default 10m.
	MaxAge time.Duration
	// Now is the clock; time.Now when nil. Tests pass their own.
	Now func() time.Time
}

// negativeShare is the fraction of memory negative leases may take, so a
// flood of garbage tokens cannot evict the good leases.
const negativeShare = 8

// Cache is the lease store. Safe for concurrent use.
type Cache struct {
	pos, neg    *bigcache.BigCache
	now         func() time.Time
	negativeTTL time.Duration
	maxAge      atomic.Int64 // lease.max, a time.Duration; SetMaxAge changes it

	mu      sync.RWMutex
	revoked map[subjectKey]int64 // unix nanos: leases validated at or before are void
	nRevoke atomic.Int32         // len(revoked), read without the lock on the hot path
}

type subjectKey struct{ issuer, subject string }

// New builds a Cache.
func New(cfg Config) (*Cache, error) {
	if cfg.MaxMemoryMB == 0 {
		cfg.MaxMemoryMB = 256
	}
	if cfg.MaxMemoryMB < 2 {
		return nil, fmt.Errorf("leasecache: max_memory_mb %d is below the minimum of 2", cfg.MaxMemoryMB)
	}
	if cfg.NegativeTTL == 0 {
		cfg.NegativeTTL = 10 * time.Second
	}
	if cfg.MaxAge == 0 {
		cfg.MaxAge = 10 * time.Minute
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	negMB := max(1, cfg.MaxMemoryMB/negativeShare)
	pos, err := bigcache.New(context.Background(), storeConfig(cfg.MaxMemoryMB-negMB, cfg.MaxAge, 256))
	if err != nil {
		return nil, fmt.Errorf("leasecache: positive store: %w", err)
	}
	neg, err := bigcache.New(context.Background(), storeConfig(negMB, cfg.NegativeTTL, 16))
	if err != nil {
		pos.Close()
		return nil, fmt.Errorf("leasecache: negative store: %w", err)
	}
	c := &Cache{
		pos:         pos,
		neg:         neg,
		now:         cfg.Now,
		negativeTTL: cfg.NegativeTTL,
		revoked:     make(map[subjectKey]int64),
	}
	c.maxAge.Store(int64(cfg.MaxAge))
	return c, nil
}

// SetMaxAge changes MaxAge (a reload of lease.max). Subject revokes are
// kept that long, so it must be at least the longest window in use. The
// stores' own expiry keeps the MaxAge of New: a longer one only means
// earlier misses.
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
	return bigcache.Config{
		Shards: shards,
		// bigcache's own expiry only reclaims space; lease semantics use
		// the timestamps inside each entry and our clock. One extra second
		// because bigcache counts whole seconds.
		LifeWindow:         life + time.Second,
		CleanWindow:        max(time.Second, min(life, time.Minute)),
		MaxEntriesInWindow: 1024 * shards,
		MaxEntrySize:       256,
		HardMaxCacheSize:   mb,
		Hasher:             keyHasher{},
	}
}

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

// Close stops the stores' background cleaners.
func (c *Cache) Close() error {
	return errors.Join(c.pos.Close(), c.neg.Close())
}

// Lookup reports what the cache knows about k for a request whose window is
// w. A hit needs now < validated_at+w and now < exp; a hit never changes the
// lease. The lease is returned for Hit and Expired.
func (c *Cache) Lookup(k Key, w time.Duration) (Lease, Outcome) {
	now := c.now()
	buf, err := c.pos.Get(keyString(&k))
	if err == nil {
		l, err := decode(buf)
		switch {
		case err != nil, c.isRevoked(&l), !l.Expiry.IsZero() && !now.Before(l.Expiry):
			_ = c.pos.Delete(keyString(&k))
		case now.Before(l.ValidatedAt.Add(w)):
			return l, Hit
		default:
			return l, Expired
		}
	}
	if c.isNegative(k, now) {
		return Lease{}, Negative
	}
	return Lease{}, Miss
}

func (c *Cache) isNegative(k Key, now time.Time) bool {
	buf, err := c.neg.Get(keyString(&k))
	if err != nil || len(buf) != 8 {
		return false
	}
	at := int64(binary.LittleEndian.Uint64(buf))
	return now.UnixNano() < at+int64(c.negativeTTL)
}

// Store records a fresh validation; every tier's window restarts from
// l.ValidatedAt. It clears a negative lease for k.
func (c *Cache) Store(k Key, l Lease) error {
	buf, err := encode(l)
	if err != nil {
		return err
	}
	_ = c.neg.Delete(keyString(&k))
	if err := c.pos.Set(keyString(&k), buf); err != nil {
		return fmt.Errorf("leasecache: store lease %s: %w", k.Prefix(), err)
	}
	return nil
}

// StoreNegative removes k's lease and remembers for NegativeTTL that the
// token is not active.
func (c *Cache) StoreNegative(k Key) error {
	_ = c.pos.Delete(keyString(&k))
	var buf [8]byte
	binary.LittleEndian.PutUint64(buf[:], uint64(c.now().UnixNano()))
	if err := c.neg.Set(keyString(&k), buf[:]); err != nil {
		return fmt.Errorf("leasecache: store negative lease %s: %w", k.Prefix(), err)
	}
	return nil
}

// Revoke forgets everything about k, positive or negative, so the next
// request with that token is validated with the issuer.
func (c *Cache) Revoke(k Key) bool {
	e1 := c.pos.Delete(keyString(&k))
	e2 := c.neg.Delete(keyString(&k))
	return e1 == nil || e2 == nil
}

// RevokeSubject voids every lease of (issuer, subject) validated up to now,
// without scanning the cache: lookups of older leases become misses.
func (c *Cache) RevokeSubject(issuer, subject string) {
	now := c.now().UnixNano()
	c.mu.Lock()
	defer c.mu.Unlock()
	// Records older than MaxAge can void nothing any more.
	for sk, at := range c.revoked {
		if now-at > c.maxAge.Load() {
			delete(c.revoked, sk)
		}
	}
	c.revoked[subjectKey{issuer, subject}] = now
	c.nRevoke.Store(int32(len(c.revoked)))
}

func (c *Cache) isRevoked(l *Lease) bool {
	if c.nRevoke.Load() == 0 {
		return false
	}
	c.mu.RLock()
	at, ok := c.revoked[subjectKey{l.Issuer, l.Subject}]
	c.mu.RUnlock()
	return ok && l.ValidatedAt.UnixNano() <= at
}

// Len is the number of positive leases held.
func (c *Cache) Len() int { return c.pos.Len() }
