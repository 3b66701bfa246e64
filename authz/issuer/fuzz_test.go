package issuer

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwa"
)

// FuzzIntrospectionResponse feeds arbitrary answer bodies to the RFC 7662
// parser: it must never panic, and it may say active only when the body is
// a JSON object whose "active" member is the boolean true, as
// encoding/json reads it independently.
func FuzzIntrospectionResponse(f *testing.F) {
	for _, seed := range []string{
		`{"active":true}`,
		`{"active":false}`,
		`{"active":"true"}`,
		`{"active":1}`,
		`{"active":null}`,
		`{"Active":true}`,
		`{"active":false,"active":true}`,
		`{"active":true,"active":false}`,
		`{"active":true,"exp":1.5e9,"aud":["a","b"],"scope":"s","sub":"x","client_id":"c","iss":"i"}`,
		`{"active":true,"exp":1e400}`,
		`{"active":true,"exp":-1}`,
		`{"active":true,"aud":"a","nbf":null,"iat":0}`,
		`{"active":true} trailing`,
		`[{"active":true}]`,
		`"active"`,
		`null`,
		``,
		`<html>{"active":true}</html>`,
		"{\"active\":true,\"sub\":\"\xff\"}",
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		claims, err := parseIntrospectionAnswer(body)

		oracleActive, oracleIsBool := activeOracle(body)
		if claims.Active && (!oracleIsBool || !oracleActive) {
			t.Fatalf("Active from a body without \"active\": true: %q", body)
		}
		if err != nil && claims.Active {
			t.Fatalf("Active with an error %v: %q", err, body)
		}
		if !oracleIsBool && err == nil {
			t.Fatalf("no error although \"active\" is not a boolean: %q", body)
		}
		if oracleIsBool && !oracleActive && (err != nil || claims.Active) {
			t.Fatalf("active:false must be inactive without error, got %+v %v: %q", claims, err, body)
		}
	})
}

// activeOracle reads "active" with plain encoding/json: numbers stay
// json.Number (so 1e400 elsewhere is not an error) and trailing data is
// refused, as json.Unmarshal does.
func activeOracle(body []byte) (active, isBool bool) {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	var obj map[string]any
	if dec.Decode(&obj) != nil {
		return false, false
	}
	if _, err := dec.Token(); err != io.EOF {
		return false, false
	}
	active, isBool = obj["active"].(bool)
	return active, isBool
}

// FuzzJWTVerify feeds arbitrary strings to a verifier with cached keys: it
// must never panic, never return Active with an error or an error with
// Active, and never accept claims that the issuer's keys did not sign.
func FuzzJWTVerify(f *testing.F) {
	rs := newTestKey(f, jwa.RS256, "rsa", 0)
	ed := newTestKey(f, jwa.EdDSA, "ed", 0)
	issuer := newFakeJWKSIssuer(f, rs, ed)
	// A long refetch interval: unknown kids are answered from the cache.
	env := newJWTEnv(f, issuer, func(c *JWTConfig) { c.MinRefetchInterval = time.Hour })
	waitReady(f, env.v)

	signedSubjects := map[string]bool{"fuzz-rs": true, "fuzz-ed": true}
	valid := []string{
		rs.sign(f, env.claims(func(c map[string]any) { c["sub"] = "fuzz-rs" }), nil),
		ed.sign(f, env.claims(func(c map[string]any) { c["sub"] = "fuzz-ed" }), nil),
	}
	for _, tok := range valid {
		f.Add(tok)
		parts := strings.Split(tok, ".")
		f.Add(parts[0] + "." + parts[1] + ".")
		f.Add(parts[0] + "." + base64.RawURLEncoding.EncodeToString([]byte(`{"sub":"forged"}`)) + "." + parts[2])
	}
	f.Add("")
	f.Add(".")
	f.Add("..")
	f.Add(testOpaqueToken)
	f.Add("eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0.")
	f.Add("eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln")
	f.Add("eyJhbGciOiJSUzI1NiIsImtpZCI6InJzYSJ9.bm90IGpzb24.c2ln")

	ctx := context.Background()
	f.Fuzz(func(t *testing.T, token string) {
		claims, err := env.v.Verify(ctx, token)
		if (err == nil) != claims.Active {
			t.Fatalf("Active=%v with error %v", claims.Active, err)
		}
		if err != nil {
			if !errors.Is(err, ErrInvalidToken) && !errors.Is(err, ErrIssuerUnavailable) {
				t.Fatalf("error outside the contract: %v", err)
			}
			if len(token) >= 16 && strings.Contains(err.Error(), token) {
				t.Fatalf("error text contains the token")
			}
			return
		}
		if !signedSubjects[claims.Subject] || claims.Issuer != issuer.issuer() {
			t.Fatalf("accepted claims nobody signed: %+v", claims)
		}
		if iss, ok := PeekIssuer(token); !ok || iss != claims.Issuer {
			t.Fatalf("PeekIssuer = %q, %v on a verified token", iss, ok)
		}
	})
}

// FuzzPeekIssuer: never panics; ok only for three-part tokens; an iss is
// only reported for a JWT.
func FuzzPeekIssuer(f *testing.F) {
	enc := func(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }
	for _, seed := range []string{
		enc(`{"alg":"RS256"}`) + "." + enc(`{"iss":"https://issuer/"}`) + ".sig",
		enc(`{"alg":"RS256"}`) + "." + enc(`{"iss":7}`) + ".",
		enc(`{"typ":"JWT"}`) + "." + enc(`{"iss":"x"}`) + ".sig",
		testOpaqueToken,
		"a.b.c",
		"..",
		"",
		enc("not json") + "." + enc("also not") + ".x",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, token string) {
		iss, ok := PeekIssuer(token)
		if ok && strings.Count(token, ".") != 2 {
			t.Fatalf("ok for a token with %d dots", strings.Count(token, "."))
		}
		if iss != "" && !ok {
			t.Fatalf("iss %q reported for a non-JWT", iss)
		}
	})
}
