package revlog

import (
	"encoding/binary"
	"time"

	"github.com/leasegate/leasegate/leasecache"
)

// Revocation is one record of the revocation log, as a follower hands it
// to Hooks.Revoked (fleet.Revocation).
type Revocation struct {
	// ID is the record's log ID (Redis stream ID, on the server's clock).
	ID string
	// BySubject tells a subject revoke (Issuer, Subject) from a token
	// revoke (Key).
	BySubject bool
	// Key is the token's fleet key (KeyOf), for a token revoke. In fleet
	// mode it is also the local cache's key: pass it to
	// leasecache.(*Cache).Revoke as is.
	Key leasecache.Key
	// Issuer and Subject, for a subject revoke: leasegate's issuer name
	// and the subject, as leasecache.(*Cache).RevokeSubject takes them.
	Issuer, Subject string
	// At is when the revoking replica made the record, on its clock.
	At time.Time
	// Self is set for a record this Store appended; the caller revoked
	// locally already.
	Self bool
}

// Record layout, version 1 (the stream field "r"; the field "p" is the
// previous record's ID, written by the append script):
//
//	[0]      version
//	[1]      kind: recToken, recSubject or recGenesis
//	[2:14]   made at: unix seconds (8, big endian), nanoseconds (4)
//	[14:22]  origin: the appending Store's random instance id
//	then     recToken: the 32-byte fleet key;
//	         recSubject: issuer and subject, each a uvarint length and the bytes;
//	         recGenesis: nothing
//	last 16  MAC over the log's key name and everything before it
//
// "p" is not covered by the MAC: the script learns it inside Redis. A
// writer to Redis can always delete records (no MAC stops a DEL); what it
// cannot do is make one up that a follower applies.
const (
	recordVersion = 1
	recToken      = 1
	recSubject    = 2
	recGenesis    = 3
	recordHeader  = 22
	// MaxNameLen bounds a subject revoke's issuer and subject.
	MaxNameLen = 1 << 12
)

func sealRecord(m MAC, logKey string, kind byte, at time.Time, origin [8]byte, body []byte) []byte {
	b := make([]byte, recordHeader, recordHeader+len(body)+m.Len())
	b[0], b[1] = recordVersion, kind
	binary.BigEndian.PutUint64(b[2:], uint64(at.Unix()))
	binary.BigEndian.PutUint32(b[10:], uint32(at.Nanosecond()))
	copy(b[14:], origin[:])
	b = append(b, body...)
	return m.Tag(b, []byte(logKey), b)
}

func subjectBody(issuer, subject string) []byte {
	b := binary.AppendUvarint(nil, uint64(len(issuer)))
	b = append(b, issuer...)
	b = binary.AppendUvarint(b, uint64(len(subject)))
	return append(b, subject...)
}

// openRecord checks and reads a record; ok is false for one that fails
// its MAC or does not parse.
func openRecord(m MAC, logKey string, b []byte) (r Revocation, kind byte, origin [8]byte, ok bool) {
	tagLen := m.Len()
	if len(b) < recordHeader+tagLen {
		return r, 0, origin, false
	}
	body, mac := b[:len(b)-tagLen], b[len(b)-tagLen:]
	if !m.Verify(mac, []byte(logKey), body) || body[0] != recordVersion {
		return r, 0, origin, false
	}
	kind = body[1]
	nsec := binary.BigEndian.Uint32(body[10:])
	if nsec >= 1e9 {
		return r, 0, origin, false
	}
	r.At = time.Unix(int64(binary.BigEndian.Uint64(body[2:])), int64(nsec))
	copy(origin[:], body[14:])
	rest := body[recordHeader:]
	switch kind {
	case recToken:
		if len(rest) != len(r.Key) {
			return r, 0, origin, false
		}
		copy(r.Key[:], rest)
	case recSubject:
		r.BySubject = true
		for _, dst := range [...]*string{&r.Issuer, &r.Subject} {
			n, w := binary.Uvarint(rest)
			if w <= 0 || n > uint64(len(rest)-w) {
				return r, 0, origin, false
			}
			*dst = string(rest[w : w+int(n)])
			rest = rest[w+int(n):]
		}
		if len(rest) != 0 {
			return r, 0, origin, false
		}
	case recGenesis:
		if len(rest) != 0 {
			return r, 0, origin, false
		}
	default:
		return r, 0, origin, false
	}
	return r, kind, origin, true
}
