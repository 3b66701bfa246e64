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
// a Reset one is not. Each state keeps its own output buffer, so a MAC
// costs no allocation.
type pool struct{ p sync.Pool }

type mac struct {
	h   hash.Hash
	in  leasecache.Key // KeyOf's input, copied here so it does not escape
	sum [sha256.Size]byte
}

func newPool(secret []byte, label string) *pool {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(label))
	sub := m.Sum(nil)
	p := &pool{}
	p.p.New = func() any { return &mac{h: hmac.New(sha256.New, sub)} }
	return p
}

// sum is the MAC of parts.
func (p *pool) sum(parts ...[]byte) [sha256.Size]byte {
	m := p.p.Get().(*mac)
	for _, b := range parts {
		m.h.Write(b)
	}
	m.h.Sum(m.sum[:0])
	out := m.sum
	m.h.Reset()
	p.p.Put(m)
	return out
}

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
	m := k.key.p.Get().(*mac)
	m.in = tokenSHA
	m.h.Write(m.in[:])
	m.h.Sum(m.sum[:0])
	out := leasecache.Key(m.sum)
	m.h.Reset()
	k.key.p.Put(m)
	return out
}

// tagLen is the MAC length kept: 128 bits, HMAC-SHA256 truncated.
const tagLen = 16

// Tag appends the MAC of parts under p to dst.
func (p *pool) Tag(dst []byte, parts ...[]byte) []byte {
	sum := p.sum(parts...)
	return append(dst, sum[:tagLen]...)
}

// Verify reports whether mac is the MAC of parts, in constant time.
func (p *pool) Verify(mac []byte, parts ...[]byte) bool {
	var buf [tagLen]byte
	return len(mac) == tagLen && subtle.ConstantTimeCompare(p.Tag(buf[:0], parts...), mac) == 1
}

// Len is the length of a MAC: p is the revocation log's revlog.MAC.
func (p *pool) Len() int { return tagLen }

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

// order is the key of k's write order (see putScript), on the same slot.
func (ks keys) order(k leasecache.Key) string { return ks.named("o:{", k) }

func (ks keys) named(kind string, k leasecache.Key) string {
	b := make([]byte, 0, len(ks.prefix)+len(kind)+b64.EncodedLen(len(k))+1)
	b = append(b, ks.prefix...)
	b = append(b, kind...)
	b = b64.AppendEncode(b, k[:])
	b = append(b, '}')
	return string(b)
}
