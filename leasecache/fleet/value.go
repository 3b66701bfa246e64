package fleet

import (
	"errors"

	"github.com/leasegate/leasegate/leasecache"
	"github.com/leasegate/leasegate/leasecache/fleet/revlog"
)

// Position is how far into the revocation log a replica had applied
// (revlog.Position): read it with (*Store).Position before a validation
// starts and store the validation's answer with it.
type Position = revlog.Position

// Value layout, version 2, as sealValue makes it (the put script stores it
// behind a 16-digit decimal Stamp, outside the MAC; unstamped removes it):
//
//	[0]      version
//	[1]      kind: kindLease or kindNegative
//	[2:10]   log epoch of the fence, big endian
//	[10:26]  fence: stream ID ms, seq
//	then     the lease (leasecache.EncodeLease, Gen 0) for kindLease;
//	         nothing for kindNegative
//	last 16  MAC over the Redis key and everything before it
//
// The MAC binds the key so a valid value copied under another token's key
// (someone else's identity onto an attacker's token) fails.
const (
	valueVersion = 2
	kindLease    = 1
	kindNegative = 2
	valueHeader  = 2 + revlog.PositionLen
)

var errForged = errors.New("fleet: value fails its MAC or does not parse")

func (k *Keyer) sealValue(redisKey string, kind byte, pos Position, lease []byte) []byte {
	b := make([]byte, 2, valueHeader+len(lease)+tagLen)
	b[0], b[1] = valueVersion, kind
	b = pos.Append(b)
	b = append(b, lease...)
	return k.value.Tag(b, []byte(redisKey), b)
}

// openValue checks and reads a value. The lease shares b's memory.
func (k *Keyer) openValue(redisKey string, b []byte) (kind byte, pos Position, l leasecache.Lease, err error) {
	if len(b) < valueHeader+tagLen {
		return 0, pos, l, errForged
	}
	body, mac := b[:len(b)-tagLen], b[len(b)-tagLen:]
	if !k.value.Verify(mac, []byte(redisKey), body) || body[0] != valueVersion {
		return 0, pos, l, errForged
	}
	kind = body[1]
	pos = revlog.ReadPosition(body[2:])
	rest := body[valueHeader:]
	switch kind {
	case kindLease:
		if l, err = leasecache.DecodeLease(rest); err != nil {
			return 0, pos, l, errForged
		}
	case kindNegative:
		if len(rest) != 0 {
			return 0, pos, l, errForged
		}
	default:
		return 0, pos, l, errForged
	}
	return kind, pos, l, nil
}
