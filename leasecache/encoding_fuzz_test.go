package leasecache

import (
	"testing"
	"time"
)

func FuzzLeaseRoundTrip(f *testing.F) {
	f.Add(int64(1764000000000000000), int64(0), "alice", "cli", "storage.read:/atlas", "hydra", "https://a", "1.0", "sid-1", "Alice@Example.org")
	f.Add(int64(-1), int64(1), "", "", "", "", "", "", "", "")
	f.Add(int64(0), int64(99), "\x00\xff", "é", " ", "x", "a b c", "2", "\x00", "é")
	f.Add(int64(1764000000000000000), int64(9999999999), "alice", "", "", "hydra", "", "", "", "") // exp past 2262
	// at is validated_at in unix nanoseconds, exp the expiry in unix
	// seconds (so it reaches far past UnixNano's 2262), 0 for none.
	f.Fuzz(func(t *testing.T, at, exp int64, sub, cid, scope, iss, aud, ver, sid, email string) {
		in := Lease{ValidatedAt: time.Unix(0, at), Subject: sub, ClientID: cid, Scope: scope, Issuer: iss, Audience: aud, WLCGVersion: ver,
			SessionID: sid, Email: email, Gen: uint64(at) ^ uint64(exp)}
		if exp != 0 {
			in.Expiry = time.Unix(exp, 0)
		}
		buf, err := encode(in)
		if err != nil {
			return // over-long field: refused, not stored
		}
		out, err := decode(buf)
		if err != nil {
			t.Fatalf("decode(encode(x)): %v", err)
		}
		if !out.ValidatedAt.Equal(in.ValidatedAt) || !out.Expiry.Equal(in.Expiry) || out.Gen != in.Gen || out.Subject != sub ||
			out.ClientID != cid || out.Scope != scope || out.Issuer != iss || out.Audience != aud || out.WLCGVersion != ver ||
			out.SessionID != sid || out.Email != email {
			t.Fatalf("round trip: got %+v, want %+v", out, in)
		}
	})
}

// FuzzDecode feeds arbitrary bytes: decode must fail cleanly, never panic.
func FuzzDecode(f *testing.F) {
	good, _ := encode(Lease{ValidatedAt: time.Unix(5, 0), Subject: "s"})
	f.Add(good)
	f.Add([]byte{1})
	f.Add([]byte{1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0x0f})
	far, _ := encode(Lease{ValidatedAt: time.Unix(5, 0), Expiry: time.Unix(9999999999, 0), Gen: 7})
	f.Add(far)
	bad := append([]byte(nil), good...)
	bad[10] = 0xff // nanoseconds ≥ 1e9
	bad[13] = 0xff
	f.Add(bad)
	f.Fuzz(func(t *testing.T, b []byte) {
		l, err := decode(b)
		if err != nil {
			return
		}
		again, err := encode(l)
		if err != nil {
			t.Fatalf("re-encode of a decoded lease: %v", err)
		}
		if _, err := decode(again); err != nil {
			t.Fatalf("decode of re-encoded lease: %v", err)
		}
	})
}
