package revlog

import (
	"crypto/hmac"
	"crypto/sha256"
	"testing"
	"time"

	"github.com/leasegate/leasegate/leasecache"
)

// testMAC is an HMAC-SHA256 MAC truncated to 16 bytes, as fleet's Keyer
// gives the log.
type testMAC string

func (m testMAC) Tag(dst []byte, parts ...[]byte) []byte {
	h := hmac.New(sha256.New, []byte(m))
	for _, p := range parts {
		h.Write(p)
	}
	return append(dst, h.Sum(nil)[:m.Len()]...)
}

func (m testMAC) Verify(mac []byte, parts ...[]byte) bool {
	return hmac.Equal(mac, m.Tag(nil, parts...))
}

func (m testMAC) Len() int { return 16 }

func TestRecordRoundTrip(t *testing.T) {
	m := testMAC("secret")
	at := time.Unix(1700000000, 123)
	origin := [8]byte{1, 2, 3}
	key := leasecache.KeyOf("t")
	r, kind, o, ok := openRecord(m, "log", sealRecord(m, "log", recToken, at, origin, key[:]))
	if !ok || kind != recToken || o != origin || r.Key != key || !r.At.Equal(at) || r.BySubject {
		t.Fatalf("token record: %v %v %+v", ok, kind, r)
	}
	r, kind, _, ok = openRecord(m, "log", sealRecord(m, "log", recSubject, at, origin, subjectBody("hydra", "alice")))
	if !ok || kind != recSubject || !r.BySubject || r.Issuer != "hydra" || r.Subject != "alice" {
		t.Fatalf("subject record: %v %v %+v", ok, kind, r)
	}
	if _, _, _, ok := openRecord(m, "other log", sealRecord(m, "log", recGenesis, at, origin, nil)); ok {
		t.Error("a record opened under another log's name")
	}
	if _, _, _, ok := openRecord(testMAC("other secret"), "log", sealRecord(m, "log", recGenesis, at, origin, nil)); ok {
		t.Error("a record opened under another secret")
	}
}

func TestIndex(t *testing.T) {
	x := newIndex(time.Minute)
	x.epoch = 7
	k1, k2 := leasecache.Key{1}, leasecache.Key{2}
	at := func(ms uint64) streamID { return streamID{ms, 0} }
	x.add(at(1000), recToken, &Revocation{Key: k1})
	x.add(at(2000), recSubject, &Revocation{BySubject: true, Issuer: "i", Subject: "s"})
	cases := []struct {
		name  string
		k     leasecache.Key
		pos   Position
		sub   string
		lease bool
		void  bool
	}{
		{"fenced before the token's revoke", k1, Position{7, at(999)}, "", true, true},
		{"fenced at it", k1, Position{7, at(1000)}, "", true, false},
		{"another token", k2, Position{7, at(999)}, "", true, false},
		{"subject, before", k2, Position{7, at(1500)}, "s", true, true},
		{"subject, negative lease", k2, Position{7, at(1500)}, "s", false, false},
		{"subject, after", k2, Position{7, at(2000)}, "s", true, false},
		{"another epoch", k2, Position{8, at(5000)}, "", true, true},
	}
	for _, c := range cases {
		if got := x.voids(c.k, c.pos, "i", c.sub, c.lease); got != c.void {
			t.Errorf("%s: voids %v, want %v", c.name, got, c.void)
		}
	}
	// A minute later both records are pruned: the floor takes their place.
	x.add(at(2000+61_000), 0, nil)
	if len(x.tokens)+len(x.subjects) != 0 {
		t.Fatalf("not pruned: %v %v", x.tokens, x.subjects)
	}
	if !x.voids(k1, Position{7, at(1999)}, "", "", false) || x.voids(k1, Position{7, at(2000)}, "", "", false) {
		t.Error("the floor does not stand for the pruned records")
	}
}

// FuzzOpenRecord: whatever a writer to Redis puts in the log, opening it
// never panics, and a record sealed from any body opens only as what it
// holds.
func FuzzOpenRecord(f *testing.F) {
	m := testMAC("secret")
	f.Add(sealRecord(m, "key", recSubject, time.Now(), [8]byte{}, subjectBody("i", "s")), byte(recSubject))
	f.Add([]byte{}, byte(0))
	f.Fuzz(func(t *testing.T, b []byte, kind byte) {
		_, _, _, _ = openRecord(m, "key", b)
		r := sealRecord(m, "key", kind, time.Unix(1, 0), [8]byte{}, b)
		if _, got, _, ok := openRecord(m, "key", r); ok && got != kind {
			t.Fatalf("sealed as kind %d, opened as %d", kind, got)
		}
	})
}
