package fleet

import (
	"testing"
	"time"

	"github.com/leasegate/leasegate/leasecache"
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
	pos := Position{epoch: 42, id: streamID{1700000000000, 3}}
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

func TestRecordRoundTrip(t *testing.T) {
	k := NewKeyer(codecSecret)
	at := time.Unix(1700000000, 123)
	origin := [8]byte{1, 2, 3}
	key := k.KeyOf(leasecache.KeyOf("t"))
	r, kind, o, ok := k.openRecord("log", k.sealRecord("log", recToken, at, origin, key[:]))
	if !ok || kind != recToken || o != origin || r.Key != key || !r.At.Equal(at) || r.BySubject {
		t.Fatalf("token record: %v %v %+v", ok, kind, r)
	}
	r, kind, _, ok = k.openRecord("log", k.sealRecord("log", recSubject, at, origin, subjectBody("hydra", "alice")))
	if !ok || kind != recSubject || !r.BySubject || r.Issuer != "hydra" || r.Subject != "alice" || r.Claim != leasecache.ClaimSubject || r.Source != SourceAdmin {
		t.Fatalf("subject record: %v %v %+v", ok, kind, r)
	}
	sid := leasecache.NameOf("hydra", leasecache.ClaimSession, "sid-1")
	r, kind, _, ok = k.openRecord("log", k.sealRecord("log", recName, at, origin, nameBody("backchannel", sid)))
	if !ok || kind != recName || !r.BySubject || r.Name() != sid || r.Source != "backchannel" {
		t.Fatalf("name record: %v %v %+v", ok, kind, r)
	}
	bad := nameBody("ssf", sid)
	bad[len("ssf")+1] = byte(leasecache.ClaimSessionlessSubject) + 1 // a claim this replica does not know
	if _, _, _, ok := k.openRecord("log", k.sealRecord("log", recName, at, origin, bad)); ok {
		t.Error("a name record with an unknown claim opened")
	}
	if _, _, _, ok := k.openRecord("other log", k.sealRecord("log", recGenesis, at, origin, nil)); ok {
		t.Error("a record opened under another log's name")
	}
	v := k.sealValue("log", kindNegative, Position{}, nil)
	if _, _, _, ok := k.openRecord("log", v); ok {
		t.Error("a value's MAC passed as a record's: the subkeys are not separate")
	}
}

func TestIndex(t *testing.T) {
	x := newIndex(time.Minute)
	x.epoch = 7
	k1, k2 := leasecache.Key{1}, leasecache.Key{2}
	at := func(ms uint64) streamID { return streamID{ms, 0} }
	x.add(at(1000), recToken, &Revocation{Key: k1})
	x.add(at(2000), recSubject, &Revocation{BySubject: true, Issuer: "i", Subject: "s"})
	x.add(at(3000), recName, &Revocation{BySubject: true, Issuer: "i", Claim: leasecache.ClaimSession, Subject: "sid-1"})
	x.add(at(4000), recName, &Revocation{BySubject: true, Issuer: "i", Claim: leasecache.ClaimEmail, Subject: "A@Example.org"})
	x.add(at(5000), recName, &Revocation{BySubject: true, Issuer: "i", Claim: leasecache.ClaimSessionlessSubject, Subject: "carol"})
	of := func(sub, sid, email string) *leasecache.Lease {
		return &leasecache.Lease{Issuer: "i", Subject: sub, SessionID: sid, Email: email}
	}
	cases := []struct {
		name string
		k    leasecache.Key
		pos  Position
		l    *leasecache.Lease // nil: a negative lease
		void bool
	}{
		{"fenced before the token's revoke", k1, Position{7, at(999)}, of("", "", ""), true},
		{"fenced at it", k1, Position{7, at(1000)}, of("", "", ""), false},
		{"another token", k2, Position{7, at(999)}, of("", "", ""), false},
		{"subject, before", k2, Position{7, at(1500)}, of("s", "", ""), true},
		{"subject, negative lease", k2, Position{7, at(1500)}, nil, false},
		{"subject, after", k2, Position{7, at(2000)}, of("s", "", ""), false},
		{"session, before", k2, Position{7, at(2500)}, of("bob", "sid-1", ""), true},
		{"session, after", k2, Position{7, at(3000)}, of("bob", "sid-1", ""), false},
		{"another session", k2, Position{7, at(2500)}, of("bob", "sid-2", ""), false},
		{"session value as a subject", k2, Position{7, at(2500)}, of("sid-1", "", ""), false},
		{"email, any case, before", k2, Position{7, at(3500)}, of("bob", "", "a@EXAMPLE.org"), true},
		{"email, after", k2, Position{7, at(4000)}, of("bob", "", "a@example.org"), false},
		{"email at another issuer", k2, Position{7, at(3500)}, &leasecache.Lease{Issuer: "j", Email: "a@example.org"}, false},
		{"sessionless: lease without sid", k2, Position{7, at(4500)}, of("carol", "", ""), true},
		{"sessionless: lease with a sid", k2, Position{7, at(4500)}, of("carol", "sid-9", ""), false},
		{"another epoch", k2, Position{8, at(6000)}, of("", "", ""), true},
	}
	for _, c := range cases {
		if got := x.voids(c.k, c.pos, c.l); got != c.void {
			t.Errorf("%s: voids %v, want %v", c.name, got, c.void)
		}
	}
	// A minute later every record is pruned: the floor takes their place.
	x.add(at(5000+61_000), 0, nil)
	if len(x.tokens)+len(x.names) != 0 {
		t.Fatalf("not pruned: %v %v", x.tokens, x.names)
	}
	if !x.voids(k1, Position{7, at(4999)}, nil) || x.voids(k1, Position{7, at(5000)}, nil) {
		t.Error("the floor does not stand for the pruned records")
	}
}

// FuzzOpen: whatever a writer to Redis puts there, opening it never
// panics; and whatever a sealed body holds, the parsers agree with
// leasecache's decoder.
func FuzzOpen(f *testing.F) {
	k := NewKeyer(codecSecret)
	enc, _ := leasecache.EncodeLease(testLease("alice"))
	f.Add(k.sealValue("key", kindLease, Position{}, enc), byte(kindLease))
	f.Add(k.sealRecord("key", recSubject, time.Now(), [8]byte{}, subjectBody("i", "s")), byte(recSubject))
	f.Add([]byte{}, byte(0))
	f.Fuzz(func(t *testing.T, b []byte, kind byte) {
		_, _, _, _ = k.openValue("key", b)
		_, _, _, _ = k.openRecord("key", b)
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
		r := k.sealRecord("key", kind, time.Unix(1, 0), [8]byte{}, b)
		_, _, _, _ = k.openRecord("key", r)
	})
}

func testLease(subject string) leasecache.Lease {
	now := time.Now()
	return leasecache.Lease{
		ValidatedAt: now, Expiry: now.Add(time.Hour), Subject: subject, ClientID: "client",
		Scope: "storage.read:/", Issuer: "hydra", Audience: "https://storage.example.org", Gen: 99,
	}
}
