package fleet

import (
	"encoding/binary"
	"errors"
	"strconv"
	"strings"

	"github.com/leasegate/leasegate/leasecache"
)

// streamID is a Redis stream entry ID, ms-seq, on the server's clock.
type streamID struct{ ms, seq uint64 }

func parseID(s string) (streamID, bool) {
	a, b, ok := strings.Cut(s, "-")
	if !ok {
		return streamID{}, false
	}
	ms, err1 := strconv.ParseUint(a, 10, 64)
	seq, err2 := strconv.ParseUint(b, 10, 64)
	return streamID{ms, seq}, err1 == nil && err2 == nil
}

func (a streamID) less(b streamID) bool {
	return a.ms < b.ms || a.ms == b.ms && a.seq < b.seq
}

func (a streamID) String() string {
	return strconv.FormatUint(a.ms, 10) + "-" + strconv.FormatUint(a.seq, 10)
}

// Position is how far into the revocation log a replica had applied:
// the log's epoch and the ID of the last record applied. Read it with
// (*Store).Position before a validation starts and store the validation's
// answer with it: a reader refuses the answer if it has applied a
// revocation of the same token (or subject) past that position.
type Position struct {
	epoch uint64
	id    streamID
}

// Value layout, version 1:
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
	valueVersion = 1
	kindLease    = 1
	kindNegative = 2
	valueHeader  = 26
)

var errForged = errors.New("fleet: value fails its MAC or does not parse")

func (k *Keyer) sealValue(redisKey string, kind byte, pos Position, lease []byte) []byte {
	b := make([]byte, valueHeader, valueHeader+len(lease)+tagLen)
	b[0], b[1] = valueVersion, kind
	binary.BigEndian.PutUint64(b[2:], pos.epoch)
	binary.BigEndian.PutUint64(b[10:], pos.id.ms)
	binary.BigEndian.PutUint64(b[18:], pos.id.seq)
	b = append(b, lease...)
	return k.value.tag(b, []byte(redisKey), b)
}

// openValue checks and reads a value. The lease shares b's memory.
func (k *Keyer) openValue(redisKey string, b []byte) (kind byte, pos Position, l leasecache.Lease, err error) {
	if len(b) < valueHeader+tagLen {
		return 0, pos, l, errForged
	}
	body, mac := b[:len(b)-tagLen], b[len(b)-tagLen:]
	if !k.value.verify(mac, []byte(redisKey), body) || body[0] != valueVersion {
		return 0, pos, l, errForged
	}
	kind = body[1]
	pos.epoch = binary.BigEndian.Uint64(body[2:])
	pos.id = streamID{binary.BigEndian.Uint64(body[10:]), binary.BigEndian.Uint64(body[18:])}
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
