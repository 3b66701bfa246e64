package headertext

import (
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
