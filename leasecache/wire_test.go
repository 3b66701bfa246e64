package leasecache

import (
	"testing"
	"time"
)

func TestEncodeDecodeLease(t *testing.T) {
	l := Lease{
		ValidatedAt: time.Unix(1700000000, 5), Expiry: time.Unix(9999999999, 0),
		Subject: "alice", ClientID: "c", Scope: "read:/", Issuer: "hydra", Audience: "a b", WLCGVersion: "1.0", Gen: 7,
	}
	b, err := EncodeLease(l)
	if err != nil {
		t.Fatal(err)
	}
	got, err := DecodeLease(b)
	if err != nil {
		t.Fatal(err)
	}
	if !got.ValidatedAt.Equal(l.ValidatedAt) || !got.Expiry.Equal(l.Expiry) {
		t.Fatalf("times: got %v/%v", got.ValidatedAt, got.Expiry)
	}
	got.ValidatedAt, got.Expiry = l.ValidatedAt, l.Expiry
	if got != l {
		t.Fatalf("got %+v, want %+v", got, l)
	}
	if _, err := DecodeLease(b[:len(b)-1]); err == nil {
		t.Fatal("a truncated lease decoded")
	}
}

// TestLeaseNoIssuedAt: "the issuer gave no iat" crosses the fleet's wire
// form, and a value claiming both an iat and none is corrupt.
func TestLeaseNoIssuedAt(t *testing.T) {
	l := Lease{ValidatedAt: time.Unix(1700000000, 5), Subject: "alice", NoIssuedAt: true}
	b, err := EncodeLease(l)
	if err != nil {
		t.Fatal(err)
	}
	got, err := DecodeLease(b)
	if err != nil || !got.NoIssuedAt || !got.IssuedAt.IsZero() {
		t.Fatalf("decoded %+v, %v", got, err)
	}
	l.NoIssuedAt, l.IssuedAt = false, time.Unix(1699999000, 0)
	if b, err = EncodeLease(l); err != nil {
		t.Fatal(err)
	}
	b[1] |= flagNoIssuedAt
	if _, err := DecodeLease(b); err == nil {
		t.Fatal("a lease with an iat and none decoded")
	}
}
