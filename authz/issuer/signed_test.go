package issuer

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jwk"
	"github.com/lestrrat-go/jwx/v2/jws"
)

// The sid and email claims are what a push revocation names tokens by
// (SPEC §9): read top-level or, as ORY Hydra reports its consent app's
// claims, under ext; in JWTs and introspection answers alike.
func TestIdentityClaims(t *testing.T) {
	tests := []struct {
		name              string
		members           map[string]any
		wantSID, wantMail string
	}{
		{"top-level", map[string]any{"sid": "s1", "email": "a@example.org"}, "s1", "a@example.org"},
		{"under ext (Hydra)", map[string]any{"ext": map[string]any{"sid": "s2", "email": "b@example.org"}}, "s2", "b@example.org"},
		{"top-level wins over ext", map[string]any{"sid": "top", "ext": map[string]any{"sid": "ext"}}, "top", ""},
		{"empty top-level falls back to ext", map[string]any{"sid": "", "ext": map[string]any{"sid": "ext"}}, "ext", ""},
		{"not strings read as absent", map[string]any{"sid": 7, "email": []string{"x"}, "ext": "not an object"}, "", ""},
		{"none", map[string]any{}, "", ""},
	}
	es := newTestKey(t, jwa.ES256, "ec-1", 0)
	env := newJWTEnv(t, newFakeJWKSIssuer(t, es), nil)
	waitReady(t, env.v)
	for _, tc := range tests {
		t.Run(tc.name+"/jwt", func(t *testing.T) {
			tok := es.sign(t, env.claims(func(c map[string]any) {
				for k, v := range tc.members {
					c[k] = v
				}
			}), nil)
			c, err := env.v.Verify(context.Background(), tok)
			if err != nil {
				t.Fatal(err)
			}
			if c.SessionID != tc.wantSID || c.Email != tc.wantMail {
				t.Errorf("sid %q email %q, want %q %q", c.SessionID, c.Email, tc.wantSID, tc.wantMail)
			}
		})
		t.Run(tc.name+"/introspection", func(t *testing.T) {
			answer := map[string]any{"active": true, "sub": "alice", "exp": 4102444800}
			for k, v := range tc.members {
				answer[k] = v
			}
			body, err := json.Marshal(answer)
			if err != nil {
				t.Fatal(err)
			}
			c, err := parseIntrospectionAnswer(body)
			if err != nil {
				t.Fatal(err)
			}
			if c.SessionID != tc.wantSID || c.Email != tc.wantMail {
				t.Errorf("sid %q email %q, want %q %q", c.SessionID, c.Email, tc.wantSID, tc.wantMail)
			}
		})
	}
}

// VerifySigned holds a logout token or security event token to the
// signature rules of access tokens, with the caller's typ rule, and hands
// back the payload unjudged (an events claim, no exp: the caller's rules).
func TestVerifySigned(t *testing.T) {
	es := newTestKey(t, jwa.ES256, "ec-1", 0)
	other := newTestKey(t, jwa.ES256, "ec-1", 1) // same kid, another key
	env := newJWTEnv(t, newFakeJWKSIssuer(t, es), nil)
	waitReady(t, env.v)
	logoutTyp := func(typ string) bool { return strings.EqualFold(typ, "logout+jwt") }
	payload := map[string]any{"iss": env.issuer.issuer(), "events": map[string]any{"http://schemas.openid.net/event/backchannel-logout": map[string]any{}}}
	tests := []struct {
		name string
		tok  string
		want string // TokenError reason; "" accepted
	}{
		{"typ the caller accepts", es.sign(t, payload, map[string]any{"typ": "logout+jwt"}), ""},
		{"no typ", signWithoutTyp(t, es, payload), ""},
		{"typ JWT, which this caller refuses", es.sign(t, payload, nil), "token type not accepted"},
		{"typ the caller refuses", es.sign(t, payload, map[string]any{"typ": "at+jwt"}), "token type not accepted"},
		{"signed by another key", other.sign(t, payload, map[string]any{"typ": "logout+jwt"}), "signature invalid"},
		{"HMAC", hmacToken(t, "ec-1", payload, []byte("secret")), "algorithm not allowed"},
		{"not a JWS", "garbage", "malformed token"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := env.v.VerifySigned(context.Background(), tc.tok, logoutTyp)
			if tc.want != "" {
				if !errors.Is(err, ErrInvalidToken) || reasonOf(err) != tc.want {
					t.Fatalf("error %v, want invalid token %q", err, tc.want)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var back map[string]any
			if err := json.Unmarshal(got, &back); err != nil || back["events"] == nil {
				t.Fatalf("payload %s (%v)", got, err)
			}
		})
	}
}

// signWithoutTyp is testKey.sign with a header of alg and kid only.
func signWithoutTyp(t *testing.T, k testKey, claims map[string]any) string {
	t.Helper()
	payload, err := json.Marshal(claims)
	if err != nil {
		t.Fatal(err)
	}
	h := jws.NewHeaders()
	_ = h.Set(jws.KeyIDKey, k.kid)
	priv, err := k.priv.Clone()
	if err != nil {
		t.Fatal(err)
	}
	_ = priv.Remove(jwk.KeyIDKey)
	out, err := jws.Sign(payload, jws.WithKey(k.alg, priv, jws.WithProtectedHeaders(h)))
	if err != nil {
		t.Fatal(err)
	}
	return string(out)
}
