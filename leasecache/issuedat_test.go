package leasecache

import (
	"testing"
	"time"
)

// TestLeaseIssuedAt: a lease keeps the token's iat through the cache and
// the wire form (the fleet shares that form), to the nanosecond and past
// 2262; a lease without iat reads back without one.
func TestLeaseIssuedAt(t *testing.T) {
	clk := newFakeClock()
	tests := []struct {
		name string
		iat  time.Time
	}{
		{"none", time.Time{}},
		{"now", clk.Now()},
		{"fraction", clk.Now().Add(-time.Hour + 123456789)},
		{"epoch", time.Unix(0, 0)},
		{"far future", time.Unix(9999999999, 5)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			in := lease(clk, time.Hour)
			in.IssuedAt = tc.iat
			b, err := EncodeLease(in)
			if err != nil {
				t.Fatal(err)
			}
			out, err := DecodeLease(b)
			if err != nil {
				t.Fatal(err)
			}
			if !out.IssuedAt.Equal(tc.iat) || out.IssuedAt.IsZero() != tc.iat.IsZero() || out.Subject != in.Subject || !out.Expiry.Equal(in.Expiry) {
				t.Fatalf("wire round trip: iat %v, sub %q, exp %v; want %v, %q, %v", out.IssuedAt, out.Subject, out.Expiry, tc.iat, in.Subject, in.Expiry)
			}
			c := newCache(t, clk)
			k := KeyOf("tok-" + tc.name)
			if err := c.Store(k, in); err != nil {
				t.Fatal(err)
			}
			got, o := c.Lookup(k, time.Minute)
			if o != Hit || !got.IssuedAt.Equal(tc.iat) || got.IssuedAt.IsZero() != tc.iat.IsZero() {
				t.Fatalf("cache: %v, iat %v; want a hit with iat %v", o, got.IssuedAt, tc.iat)
			}
		})
	}
}

// TestDecodeIssuedAtCorrupt: a flagged issued_at that is cut short or
// impossible, or an unknown flag, is a corrupt entry, never a lease.
func TestDecodeIssuedAtCorrupt(t *testing.T) {
	clk := newFakeClock()
	l := lease(clk, time.Hour)
	l.IssuedAt = clk.Now()
	good, err := encode(l)
	if err != nil {
		t.Fatal(err)
	}
	if good[1]&flagIssuedAt == 0 {
		t.Fatal("issued_at not flagged")
	}
	short := good[:len(good)-1]
	badNanos := append([]byte(nil), good...)
	badNanos[len(badNanos)-1] = 0xff // nanoseconds ≥ 1e9
	unflagged := append([]byte(nil), good...)
	unflagged[1] &^= flagIssuedAt // 12 trailing bytes nobody announced
	unknown := append([]byte(nil), good...)
	unknown[1] |= 1 << 2
	for name, b := range map[string][]byte{"short": short, "bad nanoseconds": badNanos, "unflagged bytes": unflagged, "unknown flag": unknown} {
		if _, err := decode(b); err == nil {
			t.Errorf("%s: decoded", name)
		}
	}
}
