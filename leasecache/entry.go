package leasecache

import (
	"encoding/binary"
	"fmt"
	"time"
	"unsafe"
)

// The cache's own entry layout. It never leaves the process (the fleet's
// wire form is encode/decode in encoding.go), so it may lean on the
// process's dictionary and change between releases:
//
//	[0]   entryVersion
//	then  fields in increasing tag order, each a tag byte and a value;
//	      a field that is zero or empty is left out.
//
// Values by kind: a time is a zig-zag varint of unix seconds and a uvarint
// of nanoseconds (expiry's and issued_at's seconds counted from
// validated_at's, so an hour costs two bytes, and any exp works: SPEC
// §1); a number a uvarint; a
// string a uvarint length and the bytes, or, under its tag with tagRef
// set, a uvarint index into the cache's dict.
//
// Adding a field (as issued_at, sid and email were): give it the next tag
// in entryFields with its kind, and its case in entryString or entryTime;
// entries without it decode as before, with the field zero. A dict field
// must be one whose values repeat across tokens; a per-token or per-user
// value (subject, sid, email) is inline.
const entryVersion = 3

const tagRef = 0x80 // set on a string field's tag: the value is a dict index

type fieldKind uint8

const (
	kindTime    fieldKind = iota + 1 // absolute time
	kindRelTime                      // time, seconds relative to validated_at
	kindUint                         // uvarint
	kindInline                       // string, always inline
	kindFlag                         // the tag alone: true
	kindDict                         // string, a dict index when it fits
)

type entryField struct {
	tag  byte
	kind fieldKind
}

// entryFields is the layout, in tag order; a string field's Lease field
// is in entryString. Tags are never reused.
var entryFields = [...]entryField{
	{tag: 1, kind: kindTime},     // validated_at
	{tag: 2, kind: kindRelTime},  // expiry, when the issuer gave one
	{tag: 3, kind: kindUint},     // Gen
	{tag: 4, kind: kindInline},   // subject
	{tag: 5, kind: kindDict},     // client_id
	{tag: 6, kind: kindDict},     // scope
	{tag: 7, kind: kindDict},     // issuer name
	{tag: 8, kind: kindDict},     // audience
	{tag: 9, kind: kindDict},     // wlcg.ver
	{tag: 10, kind: kindRelTime}, // issued_at, when the issuer gave one
	{tag: 11, kind: kindInline},  // sid
	{tag: 12, kind: kindInline},  // email
	{tag: 13, kind: kindFlag},    // no issued_at: the issuer gave none
}

// entryTime is the Lease field of a relative time tag (a switch, as
// entryString).
func entryTime(l *Lease, tag byte) *time.Time {
	switch tag {
	case 2:
		return &l.Expiry
	case 10:
		return &l.IssuedAt
	}
	panic("leasecache: entryFields and entryTime disagree") // caught by TestEntryRoundTrip
}

// entryString is the Lease field of a string tag. (A switch, not a table of
// funcs: a call through a func value would move every decoded Lease to the
// heap.)
func entryString(l *Lease, tag byte) *string {
	switch tag {
	case 4:
		return &l.Subject
	case 5:
		return &l.ClientID
	case 6:
		return &l.Scope
	case 7:
		return &l.Issuer
	case 8:
		return &l.Audience
	case 9:
		return &l.WLCGVersion
	case 11:
		return &l.SessionID
	case 12:
		return &l.Email
	}
	panic("leasecache: entryFields and entryString disagree") // caught by TestEntryRoundTrip
}

// encodeEntry is l in the cache's layout, interning its dict fields in d.
func encodeEntry(l *Lease, d *dict) ([]byte, error) {
	n := 1 + 3*(1+2*binary.MaxVarintLen64) + 1 + binary.MaxVarintLen64
	for i := range entryFields {
		if f := &entryFields[i]; f.kind == kindInline || f.kind == kindDict {
			s := *entryString(l, f.tag)
			if len(s) >= maxField {
				return nil, fmt.Errorf("leasecache: lease field of %d bytes is too large", len(s))
			}
			n += 1 + binary.MaxVarintLen32 + len(s)
		}
	}
	buf := make([]byte, 1, n)
	buf[0] = entryVersion
	for i := range entryFields {
		f := &entryFields[i]
		switch f.kind {
		case kindTime:
			buf = appendTime(append(buf, f.tag), l.ValidatedAt.Unix(), l.ValidatedAt)
		case kindRelTime:
			if t := *entryTime(l, f.tag); !t.IsZero() {
				buf = appendTime(append(buf, f.tag), t.Unix()-l.ValidatedAt.Unix(), t)
			}
		case kindUint:
			if l.Gen != 0 {
				buf = binary.AppendUvarint(append(buf, f.tag), l.Gen)
			}
		case kindFlag:
			if l.NoIssuedAt && l.IssuedAt.IsZero() {
				buf = append(buf, f.tag)
			}
		default:
			s := *entryString(l, f.tag)
			if s == "" {
				continue
			}
			if f.kind == kindDict {
				if i, ok := d.ref(s); ok {
					buf = binary.AppendUvarint(append(buf, f.tag|tagRef), uint64(i))
					continue
				}
			}
			buf = binary.AppendUvarint(append(buf, f.tag), uint64(len(s)))
			buf = append(buf, s...)
		}
	}
	return buf, nil
}

func appendTime(b []byte, sec int64, t time.Time) []byte {
	b = binary.AppendVarint(b, sec)
	return binary.AppendUvarint(b, uint64(t.Nanosecond()))
}

// decodeEntry reads what encodeEntry wrote. Inline strings share buf's
// memory (bigcache hands out a fresh copy on every Get), dict strings the
// dict's. A malformed entry is errCorrupt, never a panic.
func decodeEntry(buf []byte, d *dict) (Lease, error) {
	var l Lease
	if len(buf) < 1 || buf[0] != entryVersion {
		return l, errCorrupt
	}
	rest := buf[1:]
	next := 0 // index into entryFields of the next tag allowed
	var validatedSec int64
	validated := false
	for len(rest) > 0 {
		tag := rest[0]
		rest = rest[1:]
		for next < len(entryFields) && entryFields[next].tag < tag&^tagRef {
			next++
		}
		if next == len(entryFields) || entryFields[next].tag != tag&^tagRef {
			return Lease{}, errCorrupt // unknown, repeated or out of order
		}
		f := &entryFields[next]
		next++
		var ok bool
		switch {
		case tag&tagRef != 0 && f.kind != kindDict:
			return Lease{}, errCorrupt
		case f.kind == kindTime:
			l.ValidatedAt, validatedSec, rest, ok = readTime(rest, 0)
			validated = true
		case f.kind == kindRelTime:
			*entryTime(&l, f.tag), _, rest, ok = readTime(rest, validatedSec)
		case f.kind == kindUint:
			l.Gen, rest, ok = readUvarint(rest)
		case f.kind == kindFlag:
			l.NoIssuedAt, ok = true, l.IssuedAt.IsZero()
		default:
			*entryString(&l, f.tag), rest, ok = readString(rest, tag&tagRef != 0, d)
		}
		if !ok {
			return Lease{}, errCorrupt
		}
	}
	if !validated {
		return Lease{}, errCorrupt // tag 1 is always written
	}
	return l, nil
}

func readUvarint(b []byte) (uint64, []byte, bool) {
	v, w := binary.Uvarint(b)
	if w <= 0 {
		return 0, nil, false
	}
	return v, b[w:], true
}

// readTime reads a time whose seconds are counted from base.
func readTime(b []byte, base int64) (time.Time, int64, []byte, bool) {
	sec, w := binary.Varint(b)
	if w <= 0 {
		return time.Time{}, 0, nil, false
	}
	nsec, b, ok := readUvarint(b[w:])
	if !ok || nsec >= 1e9 {
		return time.Time{}, 0, nil, false
	}
	sec += base
	return time.Unix(sec, int64(nsec)), sec, b, true
}

func readString(b []byte, ref bool, d *dict) (string, []byte, bool) {
	n, b, ok := readUvarint(b)
	if !ok {
		return "", nil, false
	}
	if ref {
		s, ok := d.get(n)
		return s, b, ok
	}
	if n == 0 || n > uint64(len(b)) {
		return "", nil, false // empty strings are left out
	}
	return unsafe.String(&b[0], int(n)), b[n:], true
}
