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
	if !ok || kind != recSubject || !r.BySubject || r.Issuer != "hydra" || r.Subject != "alice" || r.Claim != leasecache.ClaimSubject || r.Source != SourceAdmin {
		t.Fatalf("subject record: %v %v %+v", ok, kind, r)
	}
	sid := leasecache.NameOf("hydra", leasecache.ClaimSession, "sid-1")
	r, kind, _, ok = openRecord(m, "log", sealRecord(m, "log", recName, at, origin, nameBody("backchannel", sid)))
	if !ok || kind != recName || !r.BySubject || r.Name() != sid || r.Source != "backchannel" {
		t.Fatalf("name record: %v %v %+v", ok, kind, r)
	}
	bad := nameBody("ssf", sid)
	bad[len("ssf")+1] = byte(leasecache.ClaimSessionlessSubject) + 1 // a claim this replica does not know
	if _, _, _, ok := openRecord(m, "log", sealRecord(m, "log", recName, at, origin, bad)); ok {
		t.Error("a name record with an unknown claim opened")
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
		t.Run(c.name, func(t *testing.T) {
			if got := x.voids(c.k, c.pos, c.l); got != c.void {
				t.Errorf("voids %v, want %v", got, c.void)
			}
		})
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

// FuzzOpenRecord: whatever a writer to Redis puts in the log, opening it
// never panics, and a record sealed from any body opens only as what it
// holds.
func FuzzOpenRecord(f *testing.F) {
	m := testMAC("secret")
	f.Add(sealRecord(m, "key", recSubject, time.Now(), [8]byte{}, subjectBody("i", "s")), byte(recSubject))
	f.Add(sealRecord(m, "key", recName, time.Now(), [8]byte{}, nameBody("ssf", leasecache.NameOf("i", leasecache.ClaimEmail, "e"))), byte(recName))
	f.Add([]byte{}, byte(0))
	f.Fuzz(func(t *testing.T, b []byte, kind byte) {
		_, _, _, _ = openRecord(m, "key", b)
		r := sealRecord(m, "key", kind, time.Unix(1, 0), [8]byte{}, b)
		if _, got, _, ok := openRecord(m, "key", r); ok && got != kind {
			t.Fatalf("sealed as kind %d, opened as %d", kind, got)
		}
	})
}
