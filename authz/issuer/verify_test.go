package issuer

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jwk"
	"github.com/lestrrat-go/jwx/v2/jws"
	"go.uber.org/goleak"

	"github.com/leasegate/leasegate/internal/testclock"
)

const testAudience = "https://storage.example.org"

// testKey is a signing key and its public JWK.
type testKey struct {
	alg  jwa.SignatureAlgorithm
	kid  string
	priv jwk.Key
	pub  jwk.Key
}

// RSA generation is slow under -race; keep a few per test binary.
var (
	rsaPoolMu sync.Mutex
	rsaPool   = map[int]*rsa.PrivateKey{}
)

func rsaKey(t testing.TB, slot int) *rsa.PrivateKey {
	t.Helper()
	rsaPoolMu.Lock()
	defer rsaPoolMu.Unlock()
	if k, ok := rsaPool[slot]; ok {
		return k
	}
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	rsaPool[slot] = k
	return k
}

func newTestKey(t testing.TB, alg jwa.SignatureAlgorithm, kid string, slot int) testKey {
	t.Helper()
	var raw any
	var err error
	switch alg {
	case jwa.RS256, jwa.RS384, jwa.RS512, jwa.PS256, jwa.PS384, jwa.PS512:
		raw = rsaKey(t, slot)
	case jwa.ES256:
		raw, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case jwa.ES384:
		raw, err = ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	case jwa.EdDSA:
		_, raw, err = ed25519.GenerateKey(rand.Reader)
	default:
		t.Fatalf("no test key for %s", alg)
	}
	if err != nil {
		t.Fatal(err)
	}
	priv, err := jwk.FromRaw(raw)
	if err != nil {
		t.Fatal(err)
	}
	if kid != "" {
		if err := priv.Set(jwk.KeyIDKey, kid); err != nil {
			t.Fatal(err)
		}
	}
	pub, err := priv.PublicKey()
	if err != nil {
		t.Fatal(err)
	}
	return testKey{alg: alg, kid: kid, priv: priv, pub: pub}
}

// withPublicAlg returns a copy whose published JWK declares alg.
func (k testKey) withPublicAlg(t testing.TB, alg jwa.SignatureAlgorithm) testKey {
	t.Helper()
	pub, err := k.pub.Clone()
	if err != nil {
		t.Fatal(err)
	}
	if err := pub.Set(jwk.AlgorithmKey, alg); err != nil {
		t.Fatal(err)
	}
	k.pub = pub
	return k
}

// sign makes a compact JWS over claims with typ JWT and the key's kid;
// hdr adds or overrides protected header members.
func (k testKey) sign(t testing.TB, claims map[string]any, hdr map[string]any) string {
	t.Helper()
	payload, err := json.Marshal(claims)
	if err != nil {
		t.Fatal(err)
	}
	h := jws.NewHeaders()
	if k.kid != "" {
		_ = h.Set(jws.KeyIDKey, k.kid)
	}
	_ = h.Set(jws.TypeKey, "JWT")
	for name, v := range hdr {
		if err := h.Set(name, v); err != nil {
			t.Fatal(err)
		}
	}
	// jws.Sign would put the key's own kid in the header; sign with a
	// kid-less copy so the header says exactly what the test wants.
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

func b64json(t testing.TB, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return base64.RawURLEncoding.EncodeToString(b)
}

// hmacToken builds an HS256 token by hand, as an attacker would.
func hmacToken(t testing.TB, kid string, claims map[string]any, secret []byte) string {
	t.Helper()
	signing := b64json(t, map[string]any{"alg": "HS256", "typ": "JWT", "kid": kid}) + "." + b64json(t, claims)
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(signing))
	return signing + "." + base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// fakeJWKSIssuer serves a discovery document and a JWKS, counting fetches.
type fakeJWKSIssuer struct {
	*httptest.Server
	mu               sync.Mutex
	keys             []jwk.Key
	rawJWKS          []byte // served verbatim when set
	discoveryIssuer  string // overrides the issuer in the discovery document
	down             atomic.Bool
	jwksFetches      atomic.Int64
	discoveryFetches atomic.Int64
}

func newFakeJWKSIssuer(t testing.TB, keys ...testKey) *fakeJWKSIssuer {
	t.Helper()
	f := &fakeJWKSIssuer{}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /.well-known/openid-configuration", func(w http.ResponseWriter, _ *http.Request) {
		f.discoveryFetches.Add(1)
		if f.down.Load() {
			http.Error(w, "down", http.StatusServiceUnavailable)
			return
		}
		f.mu.Lock()
		iss := f.discoveryIssuer
		f.mu.Unlock()
		if iss == "" {
			iss = f.issuer()
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{"issuer": iss, "jwks_uri": f.URL + "/jwks"})
	})
	mux.HandleFunc("GET /jwks", func(w http.ResponseWriter, _ *http.Request) {
		f.jwksFetches.Add(1)
		if f.down.Load() {
			http.Error(w, "down", http.StatusServiceUnavailable)
			return
		}
		f.mu.Lock()
		defer f.mu.Unlock()
		body := f.rawJWKS
		if body == nil {
			set := jwk.NewSet()
			for _, k := range f.keys {
				_ = set.AddKey(k)
			}
			var err error
			if body, err = json.Marshal(set); err != nil {
				http.Error(w, err.Error(), 500)
				return
			}
		}
		w.Header().Set("Content-Type", "application/jwk-set+json")
		_, _ = w.Write(body)
	})
	f.Server = httptest.NewServer(mux)
	t.Cleanup(f.Close)
	f.setKeys(keys...)
	return f
}

// issuer is the iss value, with a trailing slash as ORY Hydra uses.
func (f *fakeJWKSIssuer) issuer() string { return f.URL + "/" }

func (f *fakeJWKSIssuer) setKeys(keys ...testKey) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.keys = f.keys[:0]
	for _, k := range keys {
		f.keys = append(f.keys, k.pub)
	}
}

type jwtEnv struct {
	issuer *fakeJWKSIssuer
	clock  *testclock.Clock
	v      *JWTVerifier
	cfg    JWTConfig
}

func discardLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }

// newJWTEnv starts a verifier against f; it is stopped at test end.
func newJWTEnv(t testing.TB, f *fakeJWKSIssuer, mod func(*JWTConfig)) *jwtEnv {
	t.Helper()
	clock := testclock.New(time.Date(2031, 5, 1, 12, 0, 0, 0, time.UTC))
	cfg := JWTConfig{
		Name:               "test",
		Issuer:             f.issuer(),
		JWKSURI:            f.URL + "/jwks",
		Audiences:          []string{testAudience},
		Clock:              clock.Now,
		MinRefetchInterval: 30 * time.Second,
		Logger:             discardLogger(),
	}
	if mod != nil {
		mod(&cfg)
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	v, err := NewJWTVerifier(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return &jwtEnv{issuer: f, clock: clock, v: v, cfg: cfg}
}

// waitReady waits for the background fetch; it polls because the fetch
// runs on its own goroutine.
func waitReady(t testing.TB, v *JWTVerifier) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !v.Ready() {
		if time.Now().After(deadline) {
			t.Fatal("verifier never became ready")
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// claims returns valid claims at the env's clock, changed by mod.
func (e *jwtEnv) claims(mod func(map[string]any)) map[string]any {
	now := e.clock.Now()
	c := map[string]any{
		"iss":       e.issuer.issuer(),
		"sub":       "alice",
		"aud":       testAudience,
		"exp":       now.Add(time.Hour).Unix(),
		"iat":       now.Unix(),
		"nbf":       now.Unix(),
		"scope":     "storage.read:/ storage.modify:/alice",
		"client_id": "storage-cli",
	}
	if mod != nil {
		mod(c)
	}
	return c
}

func TestJWTVerify(t *testing.T) {
	rs := newTestKey(t, jwa.RS256, "rsa-1", 0).withPublicAlg(t, jwa.RS256)
	ps := newTestKey(t, jwa.PS256, "rsa-pss", 1)
	es := newTestKey(t, jwa.ES256, "ec-1", 0)
	es384 := newTestKey(t, jwa.ES384, "ec-384", 0)
	ed := newTestKey(t, jwa.EdDSA, "ed-1", 0)
	// Same kid as rs, different private key: a forger's key.
	forger := newTestKey(t, jwa.RS256, "rsa-1", 2)
	issuer := newFakeJWKSIssuer(t, rs, ps, es, es384, ed)
	env := newJWTEnv(t, issuer, func(c *JWTConfig) { c.MinRefetchInterval = time.Hour })
	waitReady(t, env.v)

	rsaPubDER, err := x509.MarshalPKIXPublicKey(&rsaKey(t, 0).PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	rsaPubPEM := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: rsaPubDER})
	rsaJWKJSON, err := json.Marshal(rs.pub)
	if err != nil {
		t.Fatal(err)
	}
	now := env.clock.Now()
	set := func(kv ...any) func(map[string]any) {
		return func(c map[string]any) {
			for i := 0; i+1 < len(kv); i += 2 {
				if kv[i+1] == nil {
					delete(c, kv[i].(string))
				} else {
					c[kv[i].(string)] = kv[i+1]
				}
			}
		}
	}

	tests := []struct {
		name    string
		token   func() string
		wantErr error
		wantMsg string
		check   func(*testing.T, Claims)
	}{
		{
			name:  "valid RS256",
			token: func() string { return rs.sign(t, env.claims(nil), nil) },
			check: func(t *testing.T, c Claims) {
				assertClaims(t, c, Claims{
					Active: true, Issuer: issuer.issuer(), Subject: "alice", ClientID: "storage-cli",
					Scope: "storage.read:/ storage.modify:/alice", Audience: []string{testAudience},
					Expiry: now.Add(time.Hour), IssuedAt: now, NotBefore: now,
				})
			},
		},
		{name: "valid PS256", token: func() string { return ps.sign(t, env.claims(nil), nil) }},
		{name: "valid ES256", token: func() string { return es.sign(t, env.claims(nil), nil) }},
		{name: "valid ES384", token: func() string { return es384.sign(t, env.claims(nil), nil) }},
		{name: "valid EdDSA", token: func() string { return ed.sign(t, env.claims(nil), nil) }},
		{name: "typ at+jwt", token: func() string { return es.sign(t, env.claims(nil), map[string]any{"typ": "at+jwt"}) }},
		{name: "typ application/at+jwt", token: func() string {
			return es.sign(t, env.claims(nil), map[string]any{"typ": "application/at+jwt"})
		}},
		{
			name: "WLCG token: scp array, azp, wlcg.ver, aud array",
			token: func() string {
				return es.sign(t, env.claims(set("scope", nil, "client_id", nil,
					"scp", []string{"storage.read:/data", "storage.create:/data/in"},
					"azp", "wlcg-client", "wlcg.ver", "1.0", "aud", []string{"https://other", testAudience})), nil)
			},
			check: func(t *testing.T, c Claims) {
				if c.Scope != "storage.read:/data storage.create:/data/in" || c.ClientID != "wlcg-client" || c.WLCGVersion != "1.0" {
					t.Errorf("claims = %+v", c)
				}
			},
		},
		{
			name:  "fractional exp",
			token: func() string { return es.sign(t, env.claims(set("exp", float64(now.Add(time.Hour).Unix())+0.25)), nil) },
			check: func(t *testing.T, c Claims) {
				if want := now.Add(time.Hour + 250*time.Millisecond); !c.Expiry.Equal(want) {
					t.Errorf("Expiry = %s, want %s", c.Expiry, want)
				}
			},
		},
		{
			name:    "expired",
			token:   func() string { return rs.sign(t, env.claims(set("exp", now.Add(-2*time.Minute).Unix())), nil) },
			wantErr: ErrInvalidToken, wantMsg: "token expired",
		},
		{
			// One exp rule for JWTs and introspection answers: clock_skew
			// is for nbf and iat, never past exp.
			name:    "expired within clock skew",
			token:   func() string { return rs.sign(t, env.claims(set("exp", now.Add(-30*time.Second).Unix())), nil) },
			wantErr: ErrInvalidToken, wantMsg: "token expired",
		},
		{
			name:    "exp is now",
			token:   func() string { return rs.sign(t, env.claims(set("exp", now.Unix())), nil) },
			wantErr: ErrInvalidToken, wantMsg: "token expired",
		},
		{name: "exp one second ahead", token: func() string { return rs.sign(t, env.claims(set("exp", now.Add(time.Second).Unix())), nil) }},
		{
			name:  "exp 9999999999 (a common never)",
			token: func() string { return rs.sign(t, env.claims(set("exp", 9999999999)), nil) },
			check: func(t *testing.T, c Claims) {
				if want := time.Unix(9999999999, 0); !c.Expiry.Equal(want) {
					t.Errorf("Expiry = %s, want %s", c.Expiry, want)
				}
			},
		},
		{
			name:  "exp past year 9999 is read as year 9999",
			token: func() string { return rs.sign(t, env.claims(set("exp", 1e15)), nil) },
			check: func(t *testing.T, c Claims) {
				if want := time.Unix(maxNumericDate, 0); !c.Expiry.Equal(want) {
					t.Errorf("Expiry = %s, want %s", c.Expiry, want)
				}
			},
		},
		{
			name:    "negative exp",
			token:   func() string { return rs.sign(t, env.claims(set("exp", -1)), nil) },
			wantErr: ErrInvalidToken, wantMsg: "token expired",
		},
		{
			name:    "nbf in the future",
			token:   func() string { return rs.sign(t, env.claims(set("nbf", now.Add(2*time.Minute).Unix())), nil) },
			wantErr: ErrInvalidToken, wantMsg: "token not yet valid",
		},
		{
			name:  "nbf within clock skew",
			token: func() string { return rs.sign(t, env.claims(set("nbf", now.Add(30*time.Second).Unix())), nil) },
		},
		{
			name:    "iat in the future",
			token:   func() string { return rs.sign(t, env.claims(set("iat", now.Add(2*time.Minute).Unix())), nil) },
			wantErr: ErrInvalidToken, wantMsg: "token issued in the future",
		},
		{
			name:    "wrong iss",
			token:   func() string { return rs.sign(t, env.claims(set("iss", "https://evil.example.org/")), nil) },
			wantErr: ErrInvalidToken, wantMsg: "issuer not accepted",
		},
		{
			name: "iss without the trailing slash",
			token: func() string {
				return rs.sign(t, env.claims(set("iss", strings.TrimSuffix(issuer.issuer(), "/"))), nil)
			},
			wantErr: ErrInvalidToken, wantMsg: "issuer not accepted",
		},
		{
			name:    "wrong aud",
			token:   func() string { return rs.sign(t, env.claims(set("aud", "https://other.example.org")), nil) },
			wantErr: ErrInvalidToken, wantMsg: "audience not accepted",
		},
		{
			name:    "missing aud",
			token:   func() string { return rs.sign(t, env.claims(set("aud", nil)), nil) },
			wantErr: ErrInvalidToken, wantMsg: "audience not accepted",
		},
		{
			name:    "missing exp",
			token:   func() string { return rs.sign(t, env.claims(set("exp", nil)), nil) },
			wantErr: ErrInvalidToken, wantMsg: "token has no expiry",
		},
		{
			name:    "exp as a string",
			token:   func() string { return rs.sign(t, env.claims(set("exp", "2099-01-01")), nil) },
			wantErr: ErrInvalidToken, wantMsg: "malformed claims",
		},
		{
			name:    "scope as a number",
			token:   func() string { return rs.sign(t, env.claims(set("scope", 7)), nil) },
			wantErr: ErrInvalidToken, wantMsg: "malformed claims",
		},
		{
			name: "alg none",
			token: func() string {
				return b64json(t, map[string]any{"alg": "none", "typ": "JWT"}) + "." + b64json(t, env.claims(nil)) + "."
			},
			wantErr: ErrInvalidToken, wantMsg: "algorithm not allowed",
		},
		{
			name: "alg None (case variant)",
			token: func() string {
				return b64json(t, map[string]any{"alg": "None", "kid": "rsa-1"}) + "." + b64json(t, env.claims(nil)) + ".c2ln"
			},
			wantErr: ErrInvalidToken, wantMsg: "algorithm not allowed",
		},
		{
			name:    "HS256 key confusion: public key PEM as HMAC secret",
			token:   func() string { return hmacToken(t, "rsa-1", env.claims(nil), rsaPubPEM) },
			wantErr: ErrInvalidToken, wantMsg: "algorithm not allowed",
		},
		{
			name:    "HS256 key confusion: public key DER as HMAC secret",
			token:   func() string { return hmacToken(t, "rsa-1", env.claims(nil), rsaPubDER) },
			wantErr: ErrInvalidToken, wantMsg: "algorithm not allowed",
		},
		{
			name:    "HS256 key confusion: public JWK JSON as HMAC secret",
			token:   func() string { return hmacToken(t, "rsa-1", env.claims(nil), rsaJWKJSON) },
			wantErr: ErrInvalidToken, wantMsg: "algorithm not allowed",
		},
		{
			name: "tampered payload",
			token: func() string {
				parts := strings.Split(rs.sign(t, env.claims(nil), nil), ".")
				parts[1] = b64json(t, env.claims(set("sub", "mallory")))
				return strings.Join(parts, ".")
			},
			wantErr: ErrInvalidToken, wantMsg: "signature invalid",
		},
		{
			name:    "signed by another key with the same kid",
			token:   func() string { return forger.sign(t, env.claims(nil), nil) },
			wantErr: ErrInvalidToken, wantMsg: "signature invalid",
		},
		{
			name: "JWKS key declares RS256, token says RS512",
			token: func() string {
				return testKey{alg: jwa.RS512, kid: "rsa-1", priv: rs.priv}.sign(t, env.claims(nil), nil)
			},
			wantErr: ErrInvalidToken, wantMsg: "signing key does not fit the algorithm",
		},
		{
			name: "EC kid with an RSA alg",
			token: func() string {
				return testKey{alg: jwa.RS256, kid: "ec-1", priv: rs.priv}.sign(t, env.claims(nil), nil)
			},
			wantErr: ErrInvalidToken, wantMsg: "signing key does not fit the algorithm",
		},
		{
			name: "ES256 token naming the P-384 key",
			token: func() string {
				return testKey{alg: jwa.ES256, kid: "ec-384", priv: es.priv}.sign(t, env.claims(nil), nil)
			},
			wantErr: ErrInvalidToken, wantMsg: "signing key does not fit the algorithm",
		},
		{
			name:  "no kid: the fitting key is found",
			token: func() string { return testKey{alg: jwa.EdDSA, priv: ed.priv}.sign(t, env.claims(nil), nil) },
		},
		{
			name:    "typ not accepted",
			token:   func() string { return rs.sign(t, env.claims(nil), map[string]any{"typ": "dpop+jwt"}) },
			wantErr: ErrInvalidToken, wantMsg: "token type not accepted",
		},
		{
			name:    "crit header",
			token:   func() string { return rs.sign(t, env.claims(nil), map[string]any{"crit": []string{"exp"}, "exp": 1}) },
			wantErr: ErrInvalidToken, wantMsg: "unsupported critical header",
		},
		{
			name: "b64 false header",
			token: func() string {
				return b64json(t, map[string]any{"alg": "RS256", "kid": "rsa-1", "b64": false}) + "." + b64json(t, env.claims(nil)) + ".c2ln"
			},
			wantErr: ErrInvalidToken, wantMsg: "unsupported critical header",
		},
		{
			name:    "padded signature",
			token:   func() string { return rs.sign(t, env.claims(nil), nil) + "==" },
			wantErr: ErrInvalidToken, wantMsg: "malformed token",
		},
		{
			name: "line break inside the payload",
			token: func() string {
				tok := rs.sign(t, env.claims(nil), nil)
				i := strings.IndexByte(tok, '.') + 10
				return tok[:i] + "\n" + tok[i:]
			},
			wantErr: ErrInvalidToken, wantMsg: "malformed token",
		},
		{
			name: "non-canonical signature encoding (stray low bits)",
			token: func() string {
				// A 256-byte RS256 signature leaves 4 unused bits in the
				// last character; setting one re-spells the same bytes.
				tok := rs.sign(t, env.claims(nil), nil)
				const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
				last := strings.IndexByte(alphabet, tok[len(tok)-1])
				return tok[:len(tok)-1] + string(alphabet[last|1])
			},
			wantErr: ErrInvalidToken, wantMsg: "malformed token",
		},
		{name: "empty", token: func() string { return "" }, wantErr: ErrInvalidToken, wantMsg: "malformed token"},
		{name: "opaque", token: func() string { return testOpaqueToken }, wantErr: ErrInvalidToken, wantMsg: "malformed token"},
		{name: "three garbage parts", token: func() string { return "a.b.c" }, wantErr: ErrInvalidToken, wantMsg: "malformed token"},
		{name: "four parts", token: func() string { return rs.sign(t, env.claims(nil), nil) + ".x" }, wantErr: ErrInvalidToken, wantMsg: "malformed token"},
		{
			name:    "header not an object",
			token:   func() string { return b64json(t, []string{"RS256"}) + "." + b64json(t, env.claims(nil)) + ".c2ln" },
			wantErr: ErrInvalidToken, wantMsg: "malformed token",
		},
		{
			name:    "payload not JSON",
			token:   func() string { return b64json(t, map[string]any{"alg": "RS256", "kid": "rsa-1"}) + ".bm90IGpzb24.c2ln" },
			wantErr: ErrInvalidToken, wantMsg: "signature invalid",
		},
		{
			name:    "too large",
			token:   func() string { return strings.Repeat("a", maxJWSBytes) + ".b.c" },
			wantErr: ErrInvalidToken, wantMsg: "token too large",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			token := tc.token()
			claims, err := env.v.Verify(context.Background(), token)
			if tc.wantErr == nil {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				if !claims.Active {
					t.Fatal("Active = false on success")
				}
				if tc.check != nil {
					tc.check(t, claims)
				}
				return
			}
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("error = %v, want %v", err, tc.wantErr)
			}
			if claims.Active {
				t.Error("Active = true with an error")
			}
			var te *TokenError
			if !errors.As(err, &te) || te.Reason != tc.wantMsg {
				t.Errorf("reason = %q, want %q (error %v)", reasonOf(err), tc.wantMsg, err)
			}
			if len(token) > 8 && strings.Contains(err.Error(), token) {
				t.Error("error text contains the token")
			}
		})
	}
	// Every refusal above was decided on cached keys: only "unknown kid"
	// may fetch, and none of these tokens had one.
	if n := issuer.jwksFetches.Load(); n != 1 {
		t.Errorf("JWKS fetched %d times, want 1", n)
	}
}

func reasonOf(err error) string {
	var te *TokenError
	if errors.As(err, &te) {
		return te.Reason
	}
	return ""
}

func TestJWTTokenType(t *testing.T) {
	// SPEC §2: "A JWT whose typ says it is not an access token is refused"
	// (typ compares case-insensitively, "application/" optional, RFC 7515
	// §4.1.9), and so is one whose claims say so.
	es := newTestKey(t, jwa.ES256, "ec-1", 0)
	issuer := newFakeJWKSIssuer(t, es)
	env := newJWTEnv(t, issuer, nil)
	waitReady(t, env.v)
	tests := []struct {
		name   string
		hdr    map[string]any
		claims map[string]any
		want   string // TokenError reason, "" = accepted
	}{
		{name: "typ JWT", hdr: map[string]any{"typ": "JWT"}},
		{name: "typ application/jwt", hdr: map[string]any{"typ": "application/jwt"}},
		{name: "typ at+jwt", hdr: map[string]any{"typ": "at+jwt"}},
		{name: "typ Application/AT+JWT", hdr: map[string]any{"typ": "Application/AT+JWT"}},
		{name: "typ id_token", hdr: map[string]any{"typ": "id_token"}, want: "token type not accepted"},
		{name: "typ refresh_token", hdr: map[string]any{"typ": "refresh_token"}, want: "token type not accepted"},
		{name: "typ logout+jwt", hdr: map[string]any{"typ": "logout+jwt"}, want: "token type not accepted"},
		{name: "typ application/secevent+jwt", hdr: map[string]any{"typ": "application/secevent+jwt"}, want: "token type not accepted"},
		{name: "typ dpop+jwt (a DPoP proof)", hdr: map[string]any{"typ": "dpop+jwt"}, want: "token type not accepted"},
		{name: "typ token-introspection+jwt", hdr: map[string]any{"typ": "token-introspection+jwt"}, want: "token type not accepted"},
		{name: "Keycloak access token (typ claim Bearer)", claims: map[string]any{"typ": "Bearer"}},
		{name: "Keycloak ID token (typ claim ID)", claims: map[string]any{"typ": "ID"}, want: "token is not an access token"},
		{name: "Keycloak refresh token", claims: map[string]any{"typ": "Refresh"}, want: "token is not an access token"},
		{name: "Cognito access token", claims: map[string]any{"token_use": "access"}},
		{name: "Cognito ID token", claims: map[string]any{"token_use": "id"}, want: "token is not an access token"},
		{name: "Hydra ID token (typ JWT, at_hash)", claims: map[string]any{"at_hash": "x1", "sid": "s"}, want: "token is not an access token"},
		{name: "logout token without typ", claims: map[string]any{"events": map[string]any{"http://schemas.openid.net/event/backchannel-logout": map[string]any{}}}, want: "token is not an access token"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tok := es.sign(t, env.claims(func(c map[string]any) {
				for k, v := range tc.claims {
					c[k] = v
				}
			}), tc.hdr)
			_, err := env.v.Verify(context.Background(), tok)
			if tc.want == "" {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				return
			}
			if !errors.Is(err, ErrInvalidToken) || reasonOf(err) != tc.want {
				t.Fatalf("error = %v, want invalid token %q", err, tc.want)
			}
		})
	}
}

func TestJWTAudience(t *testing.T) {
	es := newTestKey(t, jwa.ES256, "ec-1", 0)
	issuer := newFakeJWKSIssuer(t, es)
	tests := []struct {
		name      string
		audiences []string
		wlcgAny   bool
		aud       any // nil = claim absent
		wantOK    bool
	}{
		{name: "one of several configured", audiences: []string{"a", "b"}, aud: "b", wantOK: true},
		{name: "array contains one", audiences: []string{"a"}, aud: []string{"x", "a"}, wantOK: true},
		{name: "none match", audiences: []string{"a"}, aud: []string{"x", "y"}},
		{name: "WLCG any accepted when enabled", audiences: []string{"a"}, wlcgAny: true, aud: WLCGAnyAudience, wantOK: true},
		{name: "WLCG any refused when disabled", audiences: []string{"a"}, aud: WLCGAnyAudience},
		{name: "empty audience list: not checked", aud: "anything", wantOK: true},
		{name: "empty audience list: absent aud", wantOK: true},
		{name: "absent aud with audiences configured", audiences: []string{"a"}},
		{name: "empty string aud", audiences: []string{"a"}, aud: ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			env := newJWTEnv(t, issuer, func(c *JWTConfig) {
				c.Audiences = tc.audiences
				c.AcceptWLCGAny = tc.wlcgAny
			})
			token := es.sign(t, env.claims(func(c map[string]any) {
				delete(c, "aud")
				if tc.aud != nil {
					c["aud"] = tc.aud
				}
			}), nil)
			_, err := env.v.Verify(context.Background(), token)
			if tc.wantOK && err != nil {
				t.Fatalf("unexpected error: %v", err)
			}
			if !tc.wantOK && reasonOf(err) != "audience not accepted" {
				t.Fatalf("error = %v, want audience not accepted", err)
			}
		})
	}
}

func TestNewJWTVerifierValidation(t *testing.T) {
	tests := []struct {
		name    string
		cfg     JWTConfig
		wantMsg string
	}{
		{name: "valid with discovery", cfg: JWTConfig{Issuer: "https://issuer.example.org/"}},
		{name: "valid with jwks_uri and a non-URL issuer", cfg: JWTConfig{Issuer: "urn:issuer", JWKSURI: "https://issuer/jwks"}},
		{name: "no issuer", cfg: JWTConfig{JWKSURI: "https://issuer/jwks"}, wantMsg: "issuer is required"},
		{name: "discovery needs a URL issuer", cfg: JWTConfig{Issuer: "urn:issuer"}, wantMsg: "OIDC discovery"},
		{name: "bad jwks_uri", cfg: JWTConfig{Issuer: "https://i/", JWKSURI: "file:///etc/jwks"}, wantMsg: "jwks_uri"},
		{name: "empty audience", cfg: JWTConfig{Issuer: "https://i/", Audiences: []string{""}}, wantMsg: "empty string"},
		{name: "negative skew", cfg: JWTConfig{Issuer: "https://i/", ClockSkew: -time.Second}, wantMsg: "clock skew"},
		{name: "tiny refresh interval", cfg: JWTConfig{Issuer: "https://i/", RefreshInterval: time.Millisecond}, wantMsg: "at least 1s"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			tc.cfg.Logger = discardLogger()
			_, err := NewJWTVerifier(ctx, tc.cfg)
			if tc.wantMsg == "" {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantMsg) {
				t.Fatalf("error = %v, want mention of %q", err, tc.wantMsg)
			}
		})
	}
}

func TestJWTVerifierStopsWithContext(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	k := newTestKey(t, jwa.ES256, "ec", 0)
	issuer := newFakeJWKSIssuer(t, k)
	transport := &http.Transport{}
	ctx, cancel := context.WithCancel(context.Background())
	clock := testclock.New(time.Now())
	v, err := NewJWTVerifier(ctx, JWTConfig{
		Issuer: issuer.issuer(), Audiences: []string{testAudience}, Clock: clock.Now,
		HTTPClient: &http.Client{Transport: transport}, Logger: discardLogger(),
	})
	if err != nil {
		t.Fatal(err)
	}
	waitReady(t, v)
	cancel()
	transport.CloseIdleConnections()
	issuer.Close()
}

func BenchmarkJWTVerifyRS256(b *testing.B) {
	k := newTestKey(b, jwa.RS256, "rsa", 0)
	issuer := newFakeJWKSIssuer(b, k)
	env := newJWTEnv(b, issuer, nil)
	waitReady(b, env.v)
	token := k.sign(b, env.claims(nil), nil)
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := env.v.Verify(ctx, token); err != nil {
			b.Fatal(err)
		}
	}
}
