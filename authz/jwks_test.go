package authz

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jwk"
	"github.com/lestrrat-go/jwx/v2/jws"

	"github.com/leasegate/leasegate/authz/issuer"
)

// The engine's JWT tests sign tokens and serve a JWKS like the issuer
// package's own tests do; these are the few fixtures they need (test files
// of one package cannot reach another's).

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
	case jwa.RS256:
		raw = rsaKey(t, slot)
	case jwa.ES256:
		raw, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
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

// fakeJWKSIssuer serves a JWKS at /jwks, counting fetches.
type fakeJWKSIssuer struct {
	*httptest.Server
	keys        []jwk.Key
	down        atomic.Bool
	jwksFetches atomic.Int64
}

func newFakeJWKSIssuer(t testing.TB, keys ...testKey) *fakeJWKSIssuer {
	t.Helper()
	f := &fakeJWKSIssuer{}
	for _, k := range keys {
		f.keys = append(f.keys, k.pub)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /jwks", func(w http.ResponseWriter, _ *http.Request) {
		f.jwksFetches.Add(1)
		if f.down.Load() {
			http.Error(w, "down", http.StatusServiceUnavailable)
			return
		}
		set := jwk.NewSet()
		for _, k := range f.keys {
			_ = set.AddKey(k)
		}
		body, err := json.Marshal(set)
		if err != nil {
			http.Error(w, err.Error(), 500)
			return
		}
		w.Header().Set("Content-Type", "application/jwk-set+json")
		_, _ = w.Write(body)
	})
	f.Server = httptest.NewServer(mux)
	t.Cleanup(f.Close)
	return f
}

// issuer is the iss value, with a trailing slash as ORY Hydra uses.
func (f *fakeJWKSIssuer) issuer() string { return f.URL + "/" }

func discardLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }

// waitReady waits for the background fetch; it polls because the fetch
// runs on its own goroutine.
func waitReady(t testing.TB, v *issuer.JWTVerifier) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !v.Ready() {
		if time.Now().After(deadline) {
			t.Fatal("verifier never became ready")
		}
		time.Sleep(2 * time.Millisecond)
	}
}
