package fleet

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"hash"
	"sync"

	"github.com/leasegate/leasegate/leasecache"
)

// Keyer derives everything the fleet secret keys: the fleet-wide key of a
// token, and the MACs of values and revocation records. Each use gets its
// own subkey (HMAC(secret, label)), so a MAC of one kind is never valid
// as another. Safe for concurrent use.
type Keyer struct {
	key, value, record *pool
}

// pool hands out HMAC-SHA256 states for one subkey; hmac.New is costly and
// a Reset one is not.
type pool struct{ p sync.Pool }

func newPool(secret []byte, label string) *pool {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(label))
	sub := m.Sum(nil)
	p := &pool{}
	p.p.New = func() any { return hmac.New(sha256.New, sub) }
	return p
}

func (p *pool) get() hash.Hash  { return p.p.Get().(hash.Hash) }
func (p *pool) put(h hash.Hash) { h.Reset(); p.p.Put(h) }

// NewKeyer derives the subkeys of secret. Config.Validate checks its length.
func NewKeyer(secret []byte) *Keyer {
	return &Keyer{
		key:    newPool(secret, "leasegate fleet v1 key"),
		value:  newPool(secret, "leasegate fleet v1 value"),
		record: newPool(secret, "leasegate fleet v1 revocation"),
	}
}

// KeyOf is the fleet-wide key of a token: HMAC-SHA256 of the token's
// SHA-256 (leasecache.KeyOf) under the fleet secret. In fleet mode it is
// the local cache's key too, so one key names a token everywhere, and an
// admin revoke by token_sha256 maps through it. Not invertible, and not
// computable without the secret: a reader of Redis cannot confirm a token.
func (k *Keyer) KeyOf(tokenSHA leasecache.Key) leasecache.Key {
	h := k.key.get()
	h.Write(tokenSHA[:])
	var out leasecache.Key
	h.Sum(out[:0])
	k.key.put(h)
	return out
}

// tagLen is the MAC length kept: 128 bits, HMAC-SHA256 truncated.
const tagLen = 16

// tag appends the MAC of parts under p to dst.
func (p *pool) tag(dst []byte, parts ...[]byte) []byte {
	h := p.get()
	for _, b := range parts {
		h.Write(b)
	}
	var sum [sha256.Size]byte
	h.Sum(sum[:0])
	p.put(h)
	return append(dst, sum[:tagLen]...)
}

// verify reports whether mac is the MAC of parts, in constant time.
func (p *pool) verify(mac []byte, parts ...[]byte) bool {
	var buf [tagLen]byte
	return len(mac) == tagLen && subtle.ConstantTimeCompare(p.tag(buf[:0], parts...), mac) == 1
}

var b64 = base64.RawURLEncoding

// keys names what this package writes in Redis under one prefix.
type keys struct {
	prefix     string
	log, epoch string
}

func newKeys(prefix string) keys {
	return keys{prefix: prefix, log: prefix + "{rev}:log", epoch: prefix + "{rev}:epoch"}
}

// lease is the key of k's lease or negative lease.
func (ks keys) lease(k leasecache.Key) string { return ks.named("l:{", k) }

// lock is the key of k's coalescing lock, on the same slot as its lease.
func (ks keys) lock(k leasecache.Key) string { return ks.named("c:{", k) }

func (ks keys) named(kind string, k leasecache.Key) string {
	b := make([]byte, 0, len(ks.prefix)+len(kind)+b64.EncodedLen(len(k))+1)
	b = append(b, ks.prefix...)
	b = append(b, kind...)
	b = b64.AppendEncode(b, k[:])
	b = append(b, '}')
	return string(b)
}
