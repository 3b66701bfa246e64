package leasecache

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

func TestEntryRoundTrip(t *testing.T) {
	base := time.Unix(1764000000, 123456789)
	tests := []struct {
		name string
		l    Lease
	}{
		{"bench shape", Lease{ValidatedAt: base, Expiry: base.Add(time.Hour).Truncate(time.Second), Gen: 3,
			Subject: "5f0c2a9e-8a3b-4c55-9d0e-1b2c3d4e5f60", ClientID: "c3e1b9d2-7f44-4f0a-a1b2-c3d4e5f60718",
			Scope: "storage.read:/atlas storage.create:/atlas/user", Issuer: "hydra", Audience: "https://storage.example.org"}},
		{"empty fields left out", Lease{ValidatedAt: base}},
		{"zero time", Lease{Subject: "s"}},
		{"exp far future", Lease{ValidatedAt: base, Expiry: time.Unix(253402300799, 999999999), WLCGVersion: "1.0"}},
		{"exp before validated_at", Lease{ValidatedAt: base, Expiry: time.Unix(5, 1)}},
		{"long scope inline", Lease{ValidatedAt: base, Scope: strings.Repeat("storage.read:/x ", 64)}},
		{"push names and iat", Lease{ValidatedAt: base, IssuedAt: base.Add(-90 * time.Second), Expiry: base.Add(time.Hour),
			Subject: "alice", SessionID: "sid-7f2c", Email: "alice@example.org"}},
		{"iat after validated_at", Lease{ValidatedAt: base, IssuedAt: base.Add(3 * time.Second)}},
		{"iat only", Lease{IssuedAt: time.Unix(-5, 7)}},
		{"the issuer gave no iat", Lease{ValidatedAt: base, Subject: "s", NoIssuedAt: true}},
	}
	d := newDict()
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b, err := encodeEntry(&tc.l, d)
			if err != nil {
				t.Fatal(err)
			}
			got, err := decodeEntry(b, d)
			if err != nil {
				t.Fatal(err)
			}
			if !sameLease(got, tc.l) {
				t.Fatalf("got %+v, want %+v", got, tc.l)
			}
		})
	}
}

// TestEntrySize pins what a lease of the benchmarks' shape costs in the
// cache (BENCHMARKS.md): each dict field is a two-byte reference, and only
// the subject and the times are inline.
func TestEntrySize(t *testing.T) {
	d := newDict()
	now := time.Unix(1764000000, 123456789)
	l := Lease{ValidatedAt: now, Expiry: now.Add(time.Hour).Truncate(time.Second), Gen: 1,
		Subject: "5f0c2a9e-8a3b-4c55-9d0e-1b2c3d4e5f60", ClientID: "c3e1b9d2-7f44-4f0a-a1b2-c3d4e5f60718",
		Scope: "storage.read:/atlas storage.create:/atlas/user", Issuer: "hydra", Audience: "https://storage.example.org"}
	b, err := encodeEntry(&l, d)
	if err != nil {
		t.Fatal(err)
	}
	wire, _ := encode(l)
	// version 1, validated_at 1+5+4, expiry 1+2+1, gen 1+1, subject
	// 1+1+36, four references 4×2.
	if want := 1 + 10 + 4 + 2 + 38 + 8; len(b) != want {
		t.Fatalf("entry is %d bytes, want %d (wire form %d)", len(b), want, len(wire))
	}
}

func TestEntryDictFull(t *testing.T) {
	d := newDict()
	for i := range dictMaxEntries {
		if _, ok := d.ref(fmt.Sprint(i)); !ok {
			t.Fatalf("ref %d refused below the bound", i)
		}
	}
	l := Lease{ValidatedAt: time.Unix(5, 0), Scope: "a scope never seen"}
	b, err := encodeEntry(&l, d)
	if err != nil {
		t.Fatal(err)
	}
	got, err := decodeEntry(b, d)
	if err != nil || got.Scope != l.Scope {
		t.Fatalf("with the dict full: %+v, %v; want the scope inline", got, err)
	}
	if i, ok := d.ref("0"); !ok || i != 0 {
		t.Fatalf("an interned value after the dict filled: %d, %v", i, ok)
	}
}

func TestEntryCorrupt(t *testing.T) {
	d := newDict()
	good, _ := encodeEntry(&Lease{ValidatedAt: time.Unix(5, 0), Subject: "s", Issuer: "hydra"}, d)
	tests := []struct {
		name string
		b    []byte
	}{
		{"empty", nil},
		{"wire version", []byte{encVersion}},
		{"no validated_at", []byte{entryVersion, 4, 1, 's'}},
		{"unknown tag", append(append([]byte(nil), good...), 99, 0)},
		{"repeated tag", append(append([]byte(nil), good...), 7|tagRef, 0)},
		{"out of order", []byte{entryVersion, 1, 10, 0, 4, 1, 's', 3, 1}},
		{"nanoseconds ≥ 1e9", []byte{entryVersion, 1, 10, 0x80, 0x94, 0xeb, 0xdc, 0x03}},
		{"dict index never handed out", []byte{entryVersion, 1, 10, 0, 7 | tagRef, 9}},
		{"ref on an inline field", []byte{entryVersion, 1, 10, 0, 4 | tagRef, 0}},
		{"string past the end", []byte{entryVersion, 1, 10, 0, 4, 5, 's'}},
		{"empty inline string", []byte{entryVersion, 1, 10, 0, 4, 0}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if l, err := decodeEntry(tc.b, d); err == nil {
				t.Fatalf("decoded %+v", l)
			}
		})
	}
}

func sameLease(a, b Lease) bool {
	if !a.ValidatedAt.Equal(b.ValidatedAt) || !a.Expiry.Equal(b.Expiry) || !a.IssuedAt.Equal(b.IssuedAt) {
		return false
	}
	a.ValidatedAt, a.Expiry, a.IssuedAt = b.ValidatedAt, b.Expiry, b.IssuedAt
	return a == b
}

func FuzzEntryRoundTrip(f *testing.F) {
	f.Add(int64(1764000000000000000), int64(0), int64(0), "alice", "cli", "storage.read:/atlas", "hydra", "https://a", "1.0", "", "")
	f.Add(int64(-1), int64(1), int64(-1), "", "", "", "", "", "", "s", "")
	f.Add(int64(1764000000000000000), int64(9999999999), int64(1763999990), "alice", "", "", "hydra", "", "", "sid-1", "a@example.org")
	f.Add(int64(0), int64(-9223372036854775808), int64(9223372036854775807), "\x00\xff", "é", " ", "x", "a b c", "2", "\xff", "é")
	d := newDict()
	f.Fuzz(func(t *testing.T, at, exp, iat int64, sub, cid, scope, iss, aud, ver, sid, email string) {
		in := Lease{ValidatedAt: time.Unix(0, at), Subject: sub, ClientID: cid, Scope: scope, Issuer: iss, Audience: aud, WLCGVersion: ver,
			SessionID: sid, Email: email, Gen: uint64(at) ^ uint64(exp)}
		if exp != 0 {
			in.Expiry = time.Unix(exp, 0)
		}
		if iat != 0 {
			in.IssuedAt = time.Unix(iat, 0)
		}
		b, err := encodeEntry(&in, d)
		if err != nil {
			return // over-long field: refused, not stored
		}
		out, err := decodeEntry(b, d)
		if err != nil {
			t.Fatalf("decodeEntry(encodeEntry(x)): %v", err)
		}
		if !sameLease(out, in) {
			t.Fatalf("round trip: got %+v, want %+v", out, in)
		}
	})
}

// FuzzEntryDecode feeds arbitrary bytes: decodeEntry must fail cleanly,
// never panic, and what it accepts must survive a round trip.
func FuzzEntryDecode(f *testing.F) {
	d := newDict()
	good, _ := encodeEntry(&Lease{ValidatedAt: time.Unix(5, 0), Subject: "s", Issuer: "hydra", Gen: 2}, d)
	f.Add(good)
	f.Add([]byte{entryVersion})
	f.Add([]byte{entryVersion, 1, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		l, err := decodeEntry(b, d)
		if err != nil {
			return
		}
		again, err := encodeEntry(&l, d)
		if err != nil {
			t.Fatalf("re-encode of a decoded entry: %v", err)
		}
		if l2, err := decodeEntry(again, d); err != nil || !sameLease(l, l2) {
			t.Fatalf("decode of re-encoded entry: %+v, %v; want %+v", l2, err, l)
		}
	})
}
