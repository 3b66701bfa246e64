package headertext

import (
	"math/rand/v2"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestChallengeQuoting(t *testing.T) {
	tests := []struct {
		code, desc, scope string
		want              string
	}{
		{"", "", "", `Bearer realm="r"`},
		{"invalid_token", "token expired", "", `Bearer realm="r", error="invalid_token", error_description="token expired"`},
		{"insufficient_scope", "no", "storage.read:/a", `Bearer realm="r", error="insufficient_scope", error_description="no", scope="storage.read:/a"`},
		{"invalid_token", "bad \"quote\" \\ and\nnewline é", "", `Bearer realm="r", error="invalid_token", error_description="bad ?quote? ? and?newline ??"`},
	}
	for _, tt := range tests {
		if got := Challenge("r", tt.code, tt.desc, tt.scope); got != tt.want {
			t.Errorf("Challenge(%q, %q, %q) = %s, want %s", tt.code, tt.desc, tt.scope, got, tt.want)
		}
	}
}

// TestChallengeRealm: an empty realm is left out (RFC 6750 §3 makes it
// optional), and a realm is quoted like every other value.
func TestChallengeRealm(t *testing.T) {
	tests := []struct{ realm, code, desc, want string }{
		{"", "", "", `Bearer`},
		{"", "invalid_token", "token claims cannot be passed upstream", `Bearer error="invalid_token", error_description="token claims cannot be passed upstream"`},
		{"stòrage \"x\"", "invalid_request", "d", `Bearer realm="st??rage ?x?", error="invalid_request", error_description="d"`},
	}
	for _, tt := range tests {
		if got := Challenge(tt.realm, tt.code, tt.desc, ""); got != tt.want {
			t.Errorf("Challenge(%q, %q, %q) = %s, want %s", tt.realm, tt.code, tt.desc, got, tt.want)
		}
	}
}

// TestValueRules: ClaimSafe is the engine's rule for a claim (tab allowed,
// other controls and DEL not), Passable the adapters' for any header text
// (NUL, CR, LF and invalid UTF-8 not); both stop at MaxValueBytes.
func TestValueRules(t *testing.T) {
	tests := []struct {
		name            string
		v               string
		claim, passable bool
	}{
		{"plain", "alice", true, true},
		{"tab", "a\tb", true, true},
		{"cr", "alice\r", false, false},
		{"nul", "a\x00", false, false},
		{"del", "a\x7f", false, true},
		{"bell", "a\x07", false, true},
		{"bad utf-8", "a\xff", true, false},
		{"at the limit", strings.Repeat("x", MaxValueBytes), true, true},
		{"over the limit", strings.Repeat("x", MaxValueBytes+1), false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := ClaimSafe(tt.v); got != tt.claim {
				t.Errorf("ClaimSafe = %v, want %v", got, tt.claim)
			}
			if got := Passable(tt.v); got != tt.passable {
				t.Errorf("Passable = %v, want %v", got, tt.passable)
			}
		})
	}
}

func TestUnderscoreTwins(t *testing.T) {
	tests := []struct {
		a, b string
		want bool
	}{
		{"x_auth_subject", "x-auth-subject", true},
		{"X-Auth_Scope", "x-auth-scope", true},
		{"x-auth-subject", "X-AUTH-SUBJECT", false}, // the same name to a proxy
		{"x_auth_subjec", "x-auth-subject", false},
		{"x_auth_subjecT", "x-auth-issuer", false},
	}
	for _, tt := range tests {
		if got := UnderscoreTwins(tt.a, tt.b); got != tt.want {
			t.Errorf("UnderscoreTwins(%q, %q) = %v, want %v", tt.a, tt.b, got, tt.want)
		}
	}
}

// TestPassableIsItsDefinition: the one-pass Passable agrees with its
// definition (UTF-8, no NUL, CR or LF) on every 1- and 2-byte text and on
// longer texts around the non-ASCII and length edges.
func TestPassableIsItsDefinition(t *testing.T) {
	def := func(s string) bool {
		return len(s) <= MaxValueBytes && utf8.ValidString(s) && !strings.ContainsAny(s, "\x00\r\n")
	}
	check := func(s string) {
		if got, want := Passable(s), def(s); got != want {
			t.Fatalf("Passable(%q) = %v, want %v", s, got, want)
		}
	}
	for a := range 256 {
		check(string([]byte{byte(a)}))
		for b := range 256 {
			check(string([]byte{byte(a), byte(b)}))
		}
	}
	for _, s := range []string{"", "x-auth-subject", "é", "\xe2\x82", "\xe2\x82\xac", "ok\xffok", "a\nb", "€\r",
		strings.Repeat("a", MaxValueBytes), strings.Repeat("a", MaxValueBytes+1), strings.Repeat("é", MaxValueBytes/2)} {
		check(s)
	}
}

// hostileText is n bytes drawn mostly from the bytes the word-at-a-time
// tests look for, and their neighbours.
func hostileText(r *rand.Rand, n int) string {
	const alphabet = "\x00\x01\r\n\x0b\x0c\x7f\x80\xbf\xc3\xa9\xe2\x82\xac\xffAZ@[_^`az-0"
	b := make([]byte, n)
	for i := range b {
		if r.IntN(3) == 0 {
			b[i] = byte(r.IntN(256))
		} else {
			b[i] = alphabet[r.IntN(len(alphabet))]
		}
	}
	return string(b)
}

// TestWordsAgreeWithBytes: Passable, which reads eight bytes at a time,
// agrees with its byte-by-byte definition on every length around a word,
// with the bytes in question at every position.
func TestWordsAgreeWithBytes(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for n := range 40 {
		for range 2000 {
			checkWords(t, hostileText(r, n))
		}
		for _, c := range []byte{0, 1, '\r', '\n', 0x0b, 0x7f, 0x80, 0xff} {
			for i := range n {
				b := []byte(strings.Repeat("a", n))
				b[i] = c
				checkWords(t, string(b))
			}
		}
	}
}

func checkWords(t *testing.T, s string) {
	t.Helper()
	if got, want := Passable(s), utf8.ValidString(s) && !strings.ContainsAny(s, "\x00\r\n"); got != want {
		t.Fatalf("Passable(%q) = %v, want %v", s, got, want)
	}
}

func FuzzWords(f *testing.F) {
	f.Add("x-auth-subject")
	f.Add("X_Auth\x00\xe2\x82")
	f.Fuzz(func(t *testing.T, s string) {
		if len(s) <= MaxValueBytes {
			checkWords(t, s)
		}
	})
}

// BenchmarkPassable: what a lease hit judges, its four identity headers'
// names and values (the benchmarks' lease shape).
func BenchmarkPassable(b *testing.B) {
	texts := []string{
		"x-auth-subject", "f1d2c3b4-0000-1111-2222-333344445555@x",
		"x-auth-client-id", "0b4a5c6d-7e8f-9012-3456-789abcdef012",
		"x-auth-scope", "openid offline storage.read:/atlas stor",
		"x-auth-issuer", "https://issuer.example.org/",
	}
	for b.Loop() {
		for _, s := range texts {
			if !Passable(s) {
				b.Fatal(s)
			}
		}
	}
}
