package jwks

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jwk"
)

// publisher serves a JWKS (and a discovery document naming it) and counts
// the JWKS fetches.
type publisher struct {
	*httptest.Server
	set     jwk.Set
	iss     string // the discovery document's issuer
	fetches atomic.Int32
}

func newPublisher(t *testing.T) *publisher {
	t.Helper()
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	ec, err := jwk.FromRaw(priv)
	if err != nil {
		t.Fatal(err)
	}
	_ = ec.Set(jwk.KeyIDKey, "ec-1")
	oct, err := jwk.FromRaw([]byte("a shared secret, never a signer we accept"))
	if err != nil {
		t.Fatal(err)
	}
	_ = oct.Set(jwk.KeyIDKey, "oct-1")
	p := &publisher{set: jwk.NewSet()}
	_ = p.set.AddKey(ec) // the private key: postFetch must keep only its public half
	_ = p.set.AddKey(oct)
	p.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/jwks":
			p.fetches.Add(1)
			_ = json.NewEncoder(w).Encode(p.set)
		case "/.well-known/openid-configuration":
			_ = json.NewEncoder(w).Encode(map[string]string{"issuer": p.iss, "jwks_uri": p.URL + "/jwks"})
		default:
			http.NotFound(w, r)
		}
	}))
	p.iss = p.URL
	t.Cleanup(p.Close)
	return p
}

func testConfig(p *publisher, uri string) Config {
	return Config{
		Name: "test", Issuer: p.URL, URI: uri, Clock: time.Now, HTTPClient: p.Client(),
		RefreshInterval: time.Hour, MinRefetchInterval: time.Hour, FetchTimeout: 5 * time.Second,
		Logger: slog.New(slog.DiscardHandler),
	}
}

func TestKeys(t *testing.T) {
	p := newPublisher(t)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	s, err := New(ctx, testConfig(p, p.URL+"/jwks"))
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name string
		kid  string
		alg  jwa.SignatureAlgorithm
		n    int
		err  error
	}{
		{"kid and alg fit", "ec-1", jwa.ES256, 1, nil},
		{"no kid: any key that fits", "", jwa.ES256, 1, nil},
		{"known kid, another curve", "ec-1", jwa.ES384, 0, ErrKeyMismatch},
		{"known kid, another key type", "ec-1", jwa.RS256, 0, ErrKeyMismatch},
		{"unknown kid", "nobody", jwa.ES256, 0, ErrUnknownKey},
		{"a symmetric key is dropped", "oct-1", jwa.HS256, 0, ErrUnknownKey},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			keys, err := s.Keys(ctx, c.kid, c.alg)
			if len(keys) != c.n || !errors.Is(err, c.err) {
				t.Fatalf("%d keys, %v; want %d, %v", len(keys), err, c.n, c.err)
			}
			for _, k := range keys {
				if _, err := k.PublicKey(); err != nil || k.KeyType() != jwa.EC {
					t.Fatalf("key %v", k)
				}
				var raw ecdsa.PrivateKey
				if k.Raw(&raw) == nil {
					t.Fatal("a private key was published")
				}
			}
		})
	}
	if !s.Ready() {
		t.Error("not ready after a fetch")
	}
	// The limiter held every refetch for an unknown kid off after the first.
	if n := p.fetches.Load(); n > 2 {
		t.Errorf("%d JWKS fetches, want at most 2 (start, one refetch)", n)
	}
}

func TestDiscovery(t *testing.T) {
	p := newPublisher(t)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	s, err := New(ctx, testConfig(p, ""))
	if err != nil {
		t.Fatal(err)
	}
	if keys, err := s.Keys(ctx, "ec-1", jwa.ES256); err != nil || len(keys) != 1 {
		t.Fatalf("through discovery: %d keys, %v", len(keys), err)
	}

	q := newPublisher(t)
	q.iss = "https://someone-else.example"
	s, err = New(ctx, testConfig(q, ""))
	if err != nil {
		t.Fatal(err)
	}
	var ue *UnavailableError
	if _, err := s.Keys(ctx, "ec-1", jwa.ES256); !errors.As(err, &ue) || s.Ready() {
		t.Fatalf("a discovery document naming another issuer: %v, ready %v", err, s.Ready())
	}
	if q.fetches.Load() != 0 {
		t.Error("the JWKS of a mismatched discovery document was fetched")
	}
}

func TestNewRefuses(t *testing.T) {
	p := newPublisher(t)
	for name, mod := range map[string]func(*Config){
		"no URI, no issuer":    func(c *Config) { c.URI, c.Issuer = "", "" },
		"refresh under 1s":     func(c *Config) { c.RefreshInterval = time.Millisecond },
		"no fetch timeout":     func(c *Config) { c.FetchTimeout = 0 },
		"no HTTP client":       func(c *Config) { c.HTTPClient = nil },
		"negative refetch gap": func(c *Config) { c.MinRefetchInterval = -time.Second },
	} {
		t.Run(name, func(t *testing.T) {
			c := testConfig(p, p.URL+"/jwks")
			mod(&c)
			if _, err := New(context.Background(), c); err == nil {
				t.Fatal("accepted")
			}
		})
	}
}

func TestCheckHTTPURL(t *testing.T) {
	for raw, ok := range map[string]bool{
		"https://idp.example/jwks": true, "http://127.0.0.1:8080/keys": true,
		"ftp://idp.example/jwks": false, "https:///jwks": false, "://bad": false,
	} {
		if err := CheckHTTPURL(raw); (err == nil) != ok {
			t.Errorf("%q: %v", raw, err)
		}
	}
}
