package push

import (
	"strings"
	"testing"
)

// FuzzReceivers: whatever arrives, each receiver answers 400 (or 503),
// never panics, and, without the issuer's key, revokes nothing.
func FuzzReceivers(f *testing.F) {
	f.Add(true, "application/x-www-form-urlencoded", "logout_token=eyJhbGciOiJub25lIn0.e30.")
	f.Add(false, "application/secevent+jwt", "eyJ0eXAiOiJzZWNldmVudCtqd3QiLCJhbGciOiJFUzI1NiJ9.eyJpc3MiOiJ4In0.c2ln")
	f.Add(false, "application/secevent+jwt; charset=utf-8", strings.Repeat("a.", 40))
	f.Add(true, "application/x-www-form-urlencoded", "logout_token=%ZZ&logout_token=")
	e := newEnv(f)
	f.Fuzz(func(t *testing.T, backchannel bool, contentType, body string) {
		path := PathSSF
		if backchannel {
			path = PathBackchannel
		}
		a := e.post(t, path, contentType, body)
		if a.status != 400 && a.status != 503 {
			t.Fatalf("%s: %d %v for a body no key signed", path, a.status, a.body)
		}
		if n := len(e.rec.taken()); n != 0 {
			t.Fatalf("revoked %d times", n)
		}
	})
}
