package leasecache

import (
	"encoding/binary"
	"errors"
	"testing"
	"time"
)

// A push revocation names leases by subject, session or email (SPEC §9):
// each name voids exactly the leases of its issuer that carry it, those
// validated before the revoke, and fills in flight that started before it.
func TestRevokeName(t *testing.T) {
	withSID := func(l Lease) Lease { l.SessionID = "sid-1"; return l }
	withEmail := func(l Lease) Lease { l.Email = "Alice@Example.ORG"; return l }
	tests := []struct {
		name   string
		revoke Name
		lease  func(Lease) Lease
		void   bool
	}{
		{"session of the lease", NameOf("hydra", ClaimSession, "sid-1"), withSID, true},
		{"another session", NameOf("hydra", ClaimSession, "sid-2"), withSID, false},
		{"session at another issuer", NameOf("keycloak", ClaimSession, "sid-1"), withSID, false},
		{"session, lease knows none", NameOf("hydra", ClaimSession, "sid-1"), func(l Lease) Lease { return l }, false},
		{"session value is not a subject", NameOf("hydra", ClaimSubject, "sid-1"), withSID, false},
		{"subject still voids a lease with a session", NameOf("hydra", ClaimSubject, "alice"), withSID, true},
		{"email, other case", NameOf("hydra", ClaimEmail, "alice@example.org"), withEmail, true},
		{"email, raw spelling", NameOf("hydra", ClaimEmail, "ALICE@EXAMPLE.ORG"), withEmail, true},
		{"another email", NameOf("hydra", ClaimEmail, "bob@example.org"), withEmail, false},
		{"email value is not a subject", NameOf("hydra", ClaimSubject, "alice@example.org"), withEmail, false},
		{"empty session names nothing", NameOf("hydra", ClaimSession, ""), func(l Lease) Lease { return l }, false},
		{"sessionless subject, lease knows none", NameOf("hydra", ClaimSessionlessSubject, "alice"), func(l Lease) Lease { return l }, true},
		{"sessionless subject, lease has a session", NameOf("hydra", ClaimSessionlessSubject, "alice"), withSID, false},
		{"sessionless subject, another user", NameOf("hydra", ClaimSessionlessSubject, "bob"), func(l Lease) Lease { return l }, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			clk := newFakeClock()
			c := newCache(t, clk)
			k, inflight := KeyOf("tok"), KeyOf("in-flight")
			stored := tc.lease(lease(clk, time.Hour))
			stored.Gen = c.Generation()
			if err := c.Store(k, stored); err != nil {
				t.Fatal(err)
			}
			started := c.Generation() // a validation of another token of the same user begins
			c.RevokeName(tc.revoke)
			if moved := c.Generation() != started; moved != (tc.revoke.Value != "") {
				t.Errorf("generation moved %v, want %v", moved, tc.revoke.Value != "")
			}
			want := Hit
			if tc.void {
				want = Miss
			}
			if _, o := c.Lookup(k, time.Minute); o != want {
				t.Errorf("lease after the revoke: %v, want %v", o, want)
			}
			late := tc.lease(lease(clk, time.Hour))
			late.Gen = started
			err := c.Store(inflight, late)
			if tc.void != errors.Is(err, ErrRevokedSince) {
				t.Errorf("fill that started before the revoke: %v, refused want %v", err, tc.void)
			}
			// A validation after the revoke is the issuer's word again.
			fresh := tc.lease(lease(clk, time.Hour))
			fresh.Gen = c.Generation()
			if err := c.Store(k, fresh); err != nil {
				t.Errorf("fresh fill: %v", err)
			}
			if _, o := c.Lookup(k, time.Minute); o != Hit {
				t.Errorf("fresh lease: %v, want hit", o)
			}
		})
	}
}

func TestNameRecordsArePruned(t *testing.T) {
	clk := newFakeClock()
	c := newCache(t, clk)
	c.RevokeName(NameOf("hydra", ClaimSession, "s1"))
	c.RevokeName(NameOf("hydra", ClaimEmail, "a@example.org"))
	clk.Advance(11 * time.Minute)
	c.RevokeName(NameOf("hydra", ClaimSession, "s2"))
	if n := c.nNames.Load(); n != 1 {
		t.Fatalf("name records = %d, want 1 after MaxAge", n)
	}
}

func TestLeaseKeepsSessionAndEmail(t *testing.T) {
	l := Lease{ValidatedAt: time.Unix(1700000000, 0), Subject: "alice", Issuer: "hydra", SessionID: "sid-1", Email: "a@example.org"}
	b, err := EncodeLease(l)
	if err != nil {
		t.Fatal(err)
	}
	got, err := DecodeLease(b)
	if err != nil {
		t.Fatal(err)
	}
	if got.SessionID != l.SessionID || got.Email != l.Email || got.Subject != l.Subject {
		t.Fatalf("got %+v", got)
	}
}

// A version-2 lease (shared by a replica before sid and email existed)
// still reads, without them; one with the two fields of version 3 but
// labelled version 2 is corrupt.
func TestDecodeVersion2(t *testing.T) {
	v2 := make([]byte, headerLen)
	v2[0] = encV2
	putTime(v2[2:], time.Unix(1700000000, 0))
	binary.LittleEndian.PutUint64(v2[26:], 9)
	for _, f := range []string{"alice", "cli", "read:/", "hydra", "aud", "1.0"} {
		v2 = binary.AppendUvarint(v2, uint64(len(f)))
		v2 = append(v2, f...)
	}
	l, err := DecodeLease(v2)
	if err != nil {
		t.Fatalf("version 2: %v", err)
	}
	if l.Subject != "alice" || l.WLCGVersion != "1.0" || l.Gen != 9 || l.SessionID != "" || l.Email != "" {
		t.Fatalf("version 2 read as %+v", l)
	}
	v3, _ := EncodeLease(Lease{ValidatedAt: time.Unix(1, 0), SessionID: "s"})
	v3[0] = encV2
	if _, err := DecodeLease(v3); err == nil {
		t.Fatal("a version-3 body labelled version 2 decoded")
	}
	v3[0] = 4
	if _, err := DecodeLease(v3); err == nil {
		t.Fatal("version 4 decoded")
	}
}
