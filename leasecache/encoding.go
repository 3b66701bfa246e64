package leasecache

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"
	"unsafe"
)

// Wire layout of a lease, version 1:
//
//	[0]      version
//	[1:9]    validated_at, unix nanoseconds, little endian
//	[9:17]   expiry, unix nanoseconds (0 = none)
//	then     subject, client_id, scope, issuer, audience, wlcg_ver,
//	         each a uvarint length and the bytes.
//
// Fixed-width times and length-prefixed strings keep decoding to one pass
// with no allocation beyond the buffer bigcache hands us.
const (
	encVersion = 1
	headerLen  = 17
	maxField   = 1 << 16
)

var errCorrupt = errors.New("leasecache: corrupt lease entry")

func encode(l Lease) ([]byte, error) {
	fields := [...]string{l.Subject, l.ClientID, l.Scope, l.Issuer, l.Audience, l.WLCGVersion}
	n := headerLen
	for _, f := range fields {
		if len(f) >= maxField {
			return nil, fmt.Errorf("leasecache: lease field of %d bytes is too large", len(f))
		}
		n += binary.MaxVarintLen32 + len(f)
	}
	buf := make([]byte, headerLen, n)
	buf[0] = encVersion
	binary.LittleEndian.PutUint64(buf[1:], uint64(l.ValidatedAt.UnixNano()))
	var exp int64
	if !l.Expiry.IsZero() {
		exp = l.Expiry.UnixNano()
	}
	binary.LittleEndian.PutUint64(buf[9:], uint64(exp))
	for _, f := range fields {
		buf = binary.AppendUvarint(buf, uint64(len(f)))
		buf = append(buf, f...)
	}
	return buf, nil
}

// decode reads a lease. Its strings share buf's memory, so buf must not be
// reused by the caller (bigcache returns a fresh copy on every Get).
func decode(buf []byte) (Lease, error) {
	var l Lease
	if len(buf) < headerLen || buf[0] != encVersion {
		return l, errCorrupt
	}
	l.ValidatedAt = time.Unix(0, int64(binary.LittleEndian.Uint64(buf[1:])))
	if exp := int64(binary.LittleEndian.Uint64(buf[9:])); exp != 0 {
		l.Expiry = time.Unix(0, exp)
	}
	rest := buf[headerLen:]
	for _, dst := range [...]*string{&l.Subject, &l.ClientID, &l.Scope, &l.Issuer, &l.Audience, &l.WLCGVersion} {
		n, w := binary.Uvarint(rest)
		if w <= 0 || n > uint64(len(rest)-w) {
			return Lease{}, errCorrupt
		}
		rest = rest[w:]
		if n > 0 {
			*dst = unsafe.String(&rest[0], int(n))
		}
		rest = rest[n:]
	}
	if len(rest) != 0 {
		return Lease{}, errCorrupt
	}
	return l, nil
}
