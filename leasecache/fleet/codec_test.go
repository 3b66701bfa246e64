package fleet

import (
	"encoding/binary"
	"testing"
	"time"

	"github.com/leasegate/leasegate/leasecache"
	"github.com/leasegate/leasegate/leasecache/fleet/revlog"
)

var codecSecret = []byte("codec-test-secret-0123456789abcdef")

func TestKeyOf(t *testing.T) {
	k1, k2 := NewKeyer(codecSecret), NewKeyer(append([]byte("x"), codecSecret...))
	sha := leasecache.KeyOf("a token")
	if k1.KeyOf(sha) != NewKeyer(codecSecret).KeyOf(sha) {
		t.Fatal("KeyOf is not a function of the secret and the hash")
	}
	if k1.KeyOf(sha) == k2.KeyOf(sha) || k1.KeyOf(sha) == sha {
		t.Fatal("KeyOf does not depend on the secret")
	}
	if k1.KeyOf(sha) == k1.KeyOf(leasecache.KeyOf("another token")) {
		t.Fatal("two tokens, one key")
	}
}

func TestValueRoundTrip(t *testing.T) {
	k := NewKeyer(codecSecret)
	l := testLease("alice")
	l.Gen = 0
	enc, err := leasecache.EncodeLease(l)
	if err != nil {
		t.Fatal(err)
	}
	pos := testPosition(42, 1700000000000, 3)
	v := k.sealValue("p:l:{x}", kindLease, pos, enc)
	kind, gotPos, got, err := k.openValue("p:l:{x}", v)
	if err != nil || kind != kindLease || gotPos != pos || got.Subject != "alice" || !got.ValidatedAt.Equal(l.ValidatedAt) {
		t.Fatalf("open: %v %v %v %+v", err, kind, gotPos, got)
	}
	if _, _, _, err := k.openValue("p:l:{y}", v); err == nil {
		t.Error("a value opened under another key")
	}
	n := k.sealValue("p:l:{x}", kindNegative, pos, nil)
	if kind, _, _, err := k.openValue("p:l:{x}", n); err != nil || kind != kindNegative {
		t.Errorf("negative: %v %v", kind, err)
	}
	t.Logf("value: %d bytes for a lease of %d, %d for a negative lease", len(v), len(enc), len(n))
}

// FuzzOpen: whatever a writer to Redis puts there, opening a value never
// panics; and whatever a sealed body holds, the parser agrees with
// leasecache's decoder (records: revlog's FuzzOpenRecord).
func FuzzOpen(f *testing.F) {
	k := NewKeyer(codecSecret)
	enc, _ := leasecache.EncodeLease(testLease("alice"))
	f.Add(k.sealValue("key", kindLease, Position{}, enc), byte(kindLease))
	f.Add([]byte{}, byte(0))
	f.Fuzz(func(t *testing.T, b []byte, kind byte) {
		_, _, _, _ = k.openValue("key", b)
		v := k.sealValue("key", kind, Position{}, b)
		_, _, _, err := k.openValue("key", v)
		_, decErr := leasecache.DecodeLease(b)
		switch {
		case kind == kindLease && (err == nil) != (decErr == nil):
			t.Fatalf("lease body: open %v, DecodeLease %v", err, decErr)
		case kind == kindNegative && (err == nil) != (len(b) == 0):
			t.Fatalf("negative body of %d bytes: %v", len(b), err)
		case kind != kindLease && kind != kindNegative && err == nil:
			t.Fatalf("kind %d opened", kind)
		}
	})
}

// A value's MAC is never a record's: each use has its own subkey.
func TestSubkeysSeparate(t *testing.T) {
	k := NewKeyer(codecSecret)
	v := k.sealValue("log", kindNegative, Position{}, nil)
	if k.record.Verify(v[len(v)-tagLen:], []byte("log"), v[:len(v)-tagLen]) {
		t.Error("a value's MAC passed as a record's: the subkeys are not separate")
	}
	if !k.value.Verify(v[len(v)-tagLen:], []byte("log"), v[:len(v)-tagLen]) {
		t.Error("the value's own MAC does not verify")
	}
}

// testPosition is the Position at log ID ms-seq of epoch.
func testPosition(epoch, ms, seq uint64) Position {
	b := binary.BigEndian.AppendUint64(nil, epoch)
	b = binary.BigEndian.AppendUint64(b, ms)
	return revlog.ReadPosition(binary.BigEndian.AppendUint64(b, seq))
}

// epochOf is the log epoch of p.
func epochOf(p Position) uint64 { return binary.BigEndian.Uint64(p.Append(nil)) }

func testLease(subject string) leasecache.Lease {
	now := time.Now()
	return leasecache.Lease{
		ValidatedAt: now, Expiry: now.Add(time.Hour), Subject: subject, ClientID: "client",
		Scope: "storage.read:/", Issuer: "hydra", Audience: "https://storage.example.org", Gen: 99,
	}
}
