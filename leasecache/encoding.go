package leasecache

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"
	"unsafe"
)

// Wire layout of a lease, version 3: the form a lease leaves the process in
// (EncodeLease, for the fleet's store). The cache keeps its own, smaller
// layout (entry.go).
//
//	[0]      version
//	[1]      flags: bit 0 set when the lease has an expiry, bit 1 when
//	         it has an issued_at
//	[2:10]   validated_at, unix seconds, little endian
//	[10:14]  validated_at, nanoseconds within the second
//	[14:22]  expiry, unix seconds (0 when there is none)
//	[22:26]  expiry, nanoseconds within the second
//	[26:34]  revocation generation the validation started at (Lease.Gen)
//	then     subject, client_id, scope, issuer, audience, wlcg_ver, sid,
//	         email, each a uvarint length and the bytes;
//	then     with flag bit 1, issued_at: unix seconds (8), nanoseconds (4).
//
// Version 2 is version 3 without sid and email; decode still reads it
// (a lease another replica shared before an upgrade). issued_at rides
// behind a flag: a lease without it reads as one with no iat.
//
// Seconds and nanoseconds, not UnixNano: an int64 of nanoseconds ends in
// 2262, before the "never" exp values issuers use (9999999999 is 2286).
// SPEC §1: "Any exp a token can carry works". Fixed-width times and
// length-prefixed strings keep decoding to one pass with no allocation
// beyond the buffer bigcache hands us.
const (
	encVersion = 3
	encV2      = 2 // no sid, no email
	headerLen  = 34
	maxField   = 1 << 16

	flagExpiry     = 1 << 0
	flagIssuedAt   = 1 << 1
	flagNoIssuedAt = 1 << 2 // the issuer gave no iat (Lease.NoIssuedAt)
	timeLen        = 12     // putTime's
)

var errCorrupt = errors.New("leasecache: corrupt lease entry")

func encode(l Lease) ([]byte, error) {
	fields := [...]string{l.Subject, l.ClientID, l.Scope, l.Issuer, l.Audience, l.WLCGVersion, l.SessionID, l.Email}
	n := headerLen + timeLen
	for _, f := range fields {
		if len(f) >= maxField {
			return nil, fmt.Errorf("leasecache: lease field of %d bytes is too large", len(f))
		}
		n += binary.MaxVarintLen32 + len(f)
	}
	buf := make([]byte, headerLen, n)
	buf[0] = encVersion
	putTime(buf[2:], l.ValidatedAt)
	if !l.Expiry.IsZero() {
		buf[1] |= flagExpiry
		putTime(buf[14:], l.Expiry)
	}
	binary.LittleEndian.PutUint64(buf[26:], l.Gen)
	for _, f := range fields {
		buf = binary.AppendUvarint(buf, uint64(len(f)))
		buf = append(buf, f...)
	}
	if !l.IssuedAt.IsZero() {
		buf[1] |= flagIssuedAt
		buf = append(buf, make([]byte, timeLen)...)
		putTime(buf[len(buf)-timeLen:], l.IssuedAt)
	} else if l.NoIssuedAt {
		buf[1] |= flagNoIssuedAt
	}
	return buf, nil
}

func putTime(b []byte, t time.Time) {
	binary.LittleEndian.PutUint64(b, uint64(t.Unix()))
	binary.LittleEndian.PutUint32(b[8:], uint32(t.Nanosecond()))
}

// getTime reads what putTime wrote; ok is false for an impossible
// nanosecond count.
func getTime(b []byte) (time.Time, bool) {
	sec := int64(binary.LittleEndian.Uint64(b))
	nsec := binary.LittleEndian.Uint32(b[8:])
	if nsec >= 1e9 {
		return time.Time{}, false
	}
	return time.Unix(sec, int64(nsec)), true
}

// decode reads a lease. Its strings share buf's memory, so buf must not be
// reused by the caller.
func decode(buf []byte) (Lease, error) {
	var l Lease
	if len(buf) < headerLen || (buf[0] != encVersion && buf[0] != encV2) || buf[1]&^(flagExpiry|flagIssuedAt|flagNoIssuedAt) != 0 ||
		buf[1]&flagIssuedAt != 0 && buf[1]&flagNoIssuedAt != 0 {
		return l, errCorrupt
	}
	var ok bool
	if l.ValidatedAt, ok = getTime(buf[2:]); !ok {
		return Lease{}, errCorrupt
	}
	if buf[1]&flagExpiry != 0 {
		if l.Expiry, ok = getTime(buf[14:]); !ok {
			return Lease{}, errCorrupt
		}
	} else if binary.LittleEndian.Uint64(buf[14:]) != 0 || binary.LittleEndian.Uint32(buf[22:]) != 0 {
		return Lease{}, errCorrupt
	}
	l.Gen = binary.LittleEndian.Uint64(buf[26:])
	rest := buf[headerLen:]
	fields := [...]*string{&l.Subject, &l.ClientID, &l.Scope, &l.Issuer, &l.Audience, &l.WLCGVersion, &l.SessionID, &l.Email}
	count := len(fields)
	if buf[0] == encV2 {
		count -= 2
	}
	for _, dst := range fields[:count] {
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
	l.NoIssuedAt = buf[1]&flagNoIssuedAt != 0
	if buf[1]&flagIssuedAt != 0 {
		if len(rest) < timeLen {
			return Lease{}, errCorrupt
		}
		if l.IssuedAt, ok = getTime(rest); !ok {
			return Lease{}, errCorrupt
		}
		rest = rest[timeLen:]
	}
	if len(rest) != 0 {
		return Lease{}, errCorrupt
	}
	return l, nil
}
