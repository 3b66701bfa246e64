package hydra

import (
	"context"
	"crypto"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"net/http"
	"os"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

const (
	audStorage = "https://storage.example.org"
	audOther   = "https://other.example.org"
)

// startHydra starts Hydra for one test and stops it at cleanup. It skips
// when the binary has not been built, unless LEASEGATE_E2E_REQUIRE is set.
func startHydra(t *testing.T, opts Options) *Server {
	t.Helper()
	if _, err := Binary(); err != nil {
		if errors.Is(err, ErrBinaryMissing) && os.Getenv("LEASEGATE_E2E_REQUIRE") == "" {
			t.Skipf("skipping: %v (set LEASEGATE_E2E_REQUIRE=1 to fail instead)", err)
		}
		t.Fatalf("Binary: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	begin := time.Now()
	srv, err := Start(ctx, opts)
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Logf("hydra ready in %v (public %s, admin %s)", time.Since(begin).Round(time.Millisecond), srv.PublicURL(), srv.AdminURL())
	t.Cleanup(func() {
		if err := srv.Stop(); err != nil {
			t.Errorf("Stop: %v", err)
		}
		if t.Failed() {
			t.Logf("hydra log tail:\n%s", tail(srv.Logs(), 8192))
		}
	})
	return srv
}

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func mustClient(t *testing.T, srv *Server, o ClientOptions) Client {
	t.Helper()
	c, err := srv.CreateClient(testCtx(t), o)
	if err != nil {
		t.Fatalf("CreateClient: %v", err)
	}
	return c
}

func mustToken(t *testing.T, srv *Server, c Client, scopes, aud []string) string {
	t.Helper()
	tok, err := srv.Token(testCtx(t), c, scopes, aud)
	if err != nil {
		t.Fatalf("Token: %v", err)
	}
	return tok
}

func mustIntrospect(t *testing.T, srv *Server, tok string) map[string]any {
	t.Helper()
	ans, err := srv.Introspect(testCtx(t), tok)
	if err != nil {
		t.Fatalf("Introspect: %v", err)
	}
	return ans
}

func TestOpaqueTokens(t *testing.T) {
	srv := startHydra(t, Options{})
	ctx := testCtx(t)
	client := mustClient(t, srv, ClientOptions{Scopes: []string{"read", "write"}, Audience: []string{audStorage, audOther}})

	t.Run("issuer has no trailing slash and matches discovery", func(t *testing.T) {
		if strings.HasSuffix(srv.Issuer(), "/") {
			t.Fatalf("Issuer() = %q, want no trailing slash", srv.Issuer())
		}
		var disc struct {
			Issuer  string `json:"issuer"`
			JWKSURI string `json:"jwks_uri"`
		}
		if err := srv.doJSON(ctx, "discovery", http.MethodGet, srv.PublicURL()+DiscoveryPath, nil, http.StatusOK, &disc); err != nil {
			t.Fatal(err)
		}
		if disc.Issuer != srv.Issuer() || disc.JWKSURI != srv.JWKSURL() {
			t.Fatalf("discovery issuer %q jwks_uri %q, want %q and %q", disc.Issuer, disc.JWKSURI, srv.Issuer(), srv.JWKSURL())
		}
	})

	t.Run("token, introspect, revoke", func(t *testing.T) {
		tok := mustToken(t, srv, client, []string{"read"}, []string{audStorage})
		if !strings.HasPrefix(tok, "ory_at_") || strings.Count(tok, ".") == 2 {
			t.Fatalf("want an opaque ory_at_ token, got %d bytes with %d dots", len(tok), strings.Count(tok, "."))
		}
		ans := mustIntrospect(t, srv, tok)
		want := map[string]any{
			"active":     true,
			"client_id":  client.ID,
			"sub":        client.ID,
			"scope":      "read",
			"iss":        srv.Issuer(),
			"token_type": "Bearer",
			"token_use":  "access_token",
		}
		for k, v := range want {
			if ans[k] != v {
				t.Errorf("introspection %s = %#v, want %#v", k, ans[k], v)
			}
		}
		if aud, _ := ans["aud"].([]any); len(aud) != 1 || aud[0] != audStorage {
			t.Errorf("introspection aud = %#v, want [%q]", ans["aud"], audStorage)
		}
		exp, _ := ans["exp"].(float64)
		iat, _ := ans["iat"].(float64)
		if exp-iat < 3500 || exp-iat > 3600 {
			t.Errorf("exp-iat = %v, want Hydra's default 1h", exp-iat)
		}

		if err := srv.Revoke(ctx, client, tok); err != nil {
			t.Fatalf("Revoke: %v", err)
		}
		if ans := mustIntrospect(t, srv, tok); ans["active"] != false {
			t.Fatalf("after revoke introspection = %v, want active:false", ans)
		}
		// The harness keeps Hydra's output; it must not hold raw tokens.
		if strings.Contains(srv.Logs(), tok) {
			t.Fatal("Hydra's captured log contains the raw token")
		}
	})

	t.Run("several audiences", func(t *testing.T) {
		tok := mustToken(t, srv, client, []string{"read", "write"}, []string{audStorage, audOther})
		ans := mustIntrospect(t, srv, tok)
		aud, _ := ans["aud"].([]any)
		if len(aud) != 2 || !slices.Contains(aud, any(audStorage)) || !slices.Contains(aud, any(audOther)) {
			t.Fatalf("aud = %#v, want both audiences", ans["aud"])
		}
		if ans["scope"] != "read write" {
			t.Fatalf("scope = %#v, want %q", ans["scope"], "read write")
		}
	})

	t.Run("unknown token is inactive", func(t *testing.T) {
		if ans := mustIntrospect(t, srv, "not-a-token"); ans["active"] != false {
			t.Fatalf("introspection = %v, want active:false", ans)
		}
	})

	t.Run("per-client lifespan", func(t *testing.T) {
		short := mustClient(t, srv, ClientOptions{Scopes: []string{"read"}, Audience: []string{audStorage}, AccessTokenLifespan: 90 * time.Second})
		ans := mustIntrospect(t, srv, mustToken(t, srv, short, []string{"read"}, []string{audStorage}))
		// exp and iat are whole seconds Hydra reads apart: a second can
		// turn between them (a CI run saw 91).
		if d := ans["exp"].(float64) - ans["iat"].(float64); d != 90 && d != 91 {
			t.Fatalf("exp-iat = %v, want 90 (91 across a second)", d)
		}
	})

	refusals := []struct {
		name   string
		client Client
		scopes []string
		aud    []string
		status int
	}{
		{name: "scope not granted", client: client, scopes: []string{"admin"}, aud: []string{audStorage}, status: http.StatusBadRequest},
		{name: "audience not granted", client: client, scopes: []string{"read"}, aud: []string{"https://evil.example.org"}, status: http.StatusBadRequest},
		{name: "wrong secret", client: Client{ID: client.ID, Secret: "wrong"}, scopes: []string{"read"}, status: http.StatusUnauthorized},
	}
	for _, tc := range refusals {
		t.Run("refused: "+tc.name, func(t *testing.T) {
			_, err := srv.Token(ctx, tc.client, tc.scopes, tc.aud)
			var apiErr *APIError
			if !errors.As(err, &apiErr) || apiErr.StatusCode != tc.status {
				t.Fatalf("Token error = %v, want APIError with HTTP %d", err, tc.status)
			}
		})
	}

	t.Run("counting proxy counts introspections", func(t *testing.T) {
		proxy, err := NewCountingProxy(srv.AdminURL())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = proxy.Close() })
		tok := mustToken(t, srv, client, []string{"read"}, []string{audStorage})
		for range 3 {
			ans, err := introspectAt(ctx, proxy.URL()+IntrospectPath, tok)
			if err != nil || ans["active"] != true {
				t.Fatalf("introspect via proxy = %v, %v; want active:true", ans, err)
			}
		}
		if got := proxy.Count(IntrospectPath); got != 3 {
			t.Fatalf("Count(%s) = %d, want 3", IntrospectPath, got)
		}
		if got := proxy.Count("/admin/clients"); got != 0 {
			t.Fatalf("Count(/admin/clients) = %d, want 0", got)
		}
	})
}

func TestJWTTokens(t *testing.T) {
	srv := startHydra(t, Options{JWT: true})
	ctx := testCtx(t)
	client := mustClient(t, srv, ClientOptions{Scopes: []string{"read", "write"}, Audience: []string{audStorage}})

	tok := mustToken(t, srv, client, []string{"read", "write"}, []string{audStorage})
	if n := strings.Count(tok, ".") + 1; n != 3 {
		t.Fatalf("token has %d parts, want a 3-part JWT", n)
	}
	header, claims, err := ParseUnverified(tok)
	if err != nil {
		t.Fatal(err)
	}
	firstKID, _ := header["kid"].(string)

	t.Run("header", func(t *testing.T) {
		if header["alg"] != "RS256" || header["typ"] != "JWT" || firstKID == "" {
			t.Fatalf("header = %v, want alg RS256, typ JWT and a kid", header)
		}
	})

	t.Run("claims", func(t *testing.T) {
		if claims["iss"] != srv.Issuer() || claims["client_id"] != client.ID || claims["sub"] != client.ID {
			t.Errorf("iss/client_id/sub = %v/%v/%v", claims["iss"], claims["client_id"], claims["sub"])
		}
		if claims["scope"] != "read write" {
			t.Errorf("scope = %#v, want %q", claims["scope"], "read write")
		}
		if scp, _ := claims["scp"].([]any); !slices.Equal(scp, []any{"read", "write"}) {
			t.Errorf("scp = %#v, want [read write]", claims["scp"])
		}
		if aud, _ := claims["aud"].([]any); !slices.Equal(aud, []any{audStorage}) {
			t.Errorf("aud = %#v, want [%q] (an array even for one audience)", claims["aud"], audStorage)
		}
		for _, k := range []string{"exp", "iat", "nbf", "jti"} {
			if _, ok := claims[k]; !ok {
				t.Errorf("claim %s missing", k)
			}
		}
	})

	t.Run("signature verifies with the JWKS key of its kid", func(t *testing.T) {
		verifyRS256(t, srv, tok)
	})

	t.Run("introspection of a JWT", func(t *testing.T) {
		ans := mustIntrospect(t, srv, tok)
		if ans["active"] != true || ans["iss"] != srv.Issuer() || ans["scope"] != "read write" {
			t.Fatalf("introspection = %v", ans)
		}
	})

	t.Run("per-client opaque override", func(t *testing.T) {
		opaque := mustClient(t, srv, ClientOptions{Scopes: []string{"read"}, Audience: []string{audStorage}, AccessTokenStrategy: "opaque"})
		if tok := mustToken(t, srv, opaque, []string{"read"}, []string{audStorage}); !strings.HasPrefix(tok, "ory_at_") {
			t.Fatalf("want an opaque token for an opaque client")
		}
	})

	t.Run("rotation", func(t *testing.T) {
		newKID, err := srv.RotateKeys(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if newKID == firstKID {
			t.Fatalf("rotation kept kid %q", newKID)
		}
		rotated := mustToken(t, srv, client, []string{"read"}, []string{audStorage})
		h, _, err := ParseUnverified(rotated)
		if err != nil {
			t.Fatal(err)
		}
		if h["kid"] != newKID {
			t.Fatalf("kid after rotation = %v, want %q", h["kid"], newKID)
		}
		kids, err := srv.KeyIDs(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Contains(kids, firstKID) || !slices.Contains(kids, newKID) {
			t.Fatalf("JWKS kids = %v, want both %q and %q", kids, firstKID, newKID)
		}
		verifyRS256(t, srv, tok)
		verifyRS256(t, srv, rotated)
		if ans := mustIntrospect(t, srv, rotated); ans["active"] != true {
			t.Fatalf("new token introspection = %v, want active:true", ans)
		}
		// Hydra 2.3.0 introspects JWTs against the newest key only.
		if ans := mustIntrospect(t, srv, tok); ans["active"] != false {
			t.Fatalf("pre-rotation token introspection = %v; Hydra's behaviour changed", ans)
		}

		ecKID, err := srv.RotateKeysAlg(ctx, "ES256")
		if err != nil {
			t.Fatal(err)
		}
		h, _, err = ParseUnverified(mustToken(t, srv, client, []string{"read"}, []string{audStorage}))
		if err != nil {
			t.Fatal(err)
		}
		if h["kid"] != ecKID || h["alg"] != "ES256" {
			t.Fatalf("header after ES256 rotation = %v, want kid %q alg ES256", h, ecKID)
		}
	})
}

func TestStopAndRestart(t *testing.T) {
	srv := startHydra(t, Options{})
	ctx := testCtx(t)
	client := mustClient(t, srv, ClientOptions{Scopes: []string{"read"}, Audience: []string{audStorage}})
	proxy, err := NewCountingProxy(srv.AdminURL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = proxy.Close() })
	pid := srv.proc.cmd.Process.Pid
	public, admin := srv.PublicURL(), srv.AdminURL()

	begin := time.Now()
	if err := srv.Stop(); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	t.Logf("stopped in %v", time.Since(begin).Round(time.Millisecond))
	if srv.Running() {
		t.Fatal("Running() after Stop")
	}
	if err := srvProcessGone(pid); err != nil {
		t.Fatal(err)
	}
	if _, err := srv.Introspect(ctx, "x"); err == nil {
		t.Fatal("introspection succeeded while Hydra is stopped")
	}
	resp, err := http.Post(proxy.URL()+IntrospectPath, "application/x-www-form-urlencoded", strings.NewReader("token=x"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadGateway || proxy.Count(IntrospectPath) != 1 {
		t.Fatalf("proxy with issuer down: HTTP %d count %d, want 502 and 1", resp.StatusCode, proxy.Count(IntrospectPath))
	}
	if err := srv.Stop(); err != nil {
		t.Fatalf("second Stop: %v", err)
	}

	if err := srv.Restart(ctx); err != nil {
		t.Fatalf("Restart: %v", err)
	}
	if srv.PublicURL() != public || srv.AdminURL() != admin || !srv.Running() {
		t.Fatalf("after restart: %s %s running=%v", srv.PublicURL(), srv.AdminURL(), srv.Running())
	}
	// The in-memory database started empty: the old client is gone.
	var apiErr *APIError
	if _, err := srv.Token(ctx, client, []string{"read"}, []string{audStorage}); !errors.As(err, &apiErr) || apiErr.StatusCode != http.StatusUnauthorized {
		t.Fatalf("old client after restart: %v, want HTTP 401", err)
	}
	fresh := mustClient(t, srv, ClientOptions{Scopes: []string{"read"}, Audience: []string{audStorage}})
	mustToken(t, srv, fresh, []string{"read"}, []string{audStorage})
	if !strings.Contains(srv.Logs(), "Setting up http server") {
		t.Errorf("Logs() lacks Hydra's startup output")
	}
}

// srvProcessGone checks that no process with pid remains (it was reaped
// by Stop, so signal 0 must fail).
func srvProcessGone(pid int) error {
	if err := syscall.Kill(pid, 0); err == nil {
		return fmt.Errorf("hydra process %d still exists after Stop", pid)
	}
	return nil
}

// introspectAt posts an RFC 7662 request to url, as leasegate would.
func introspectAt(ctx context.Context, url, tok string) (map[string]any, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, strings.NewReader("token="+tok))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("HTTP %d", resp.StatusCode)
	}
	var ans map[string]any
	return ans, json.NewDecoder(resp.Body).Decode(&ans)
}

type jwk struct {
	KID string `json:"kid"`
	Kty string `json:"kty"`
	N   string `json:"n"`
	E   string `json:"e"`
}

func verifyRS256(t *testing.T, srv *Server, tok string) {
	t.Helper()
	header, _, err := ParseUnverified(tok)
	if err != nil {
		t.Fatal(err)
	}
	var jwks struct {
		Keys []jwk `json:"keys"`
	}
	if err := srv.doJSON(testCtx(t), "jwks", http.MethodGet, srv.JWKSURL(), nil, http.StatusOK, &jwks); err != nil {
		t.Fatal(err)
	}
	i := slices.IndexFunc(jwks.Keys, func(k jwk) bool { return k.KID == header["kid"] })
	if i < 0 || jwks.Keys[i].Kty != "RSA" {
		t.Fatalf("kid %v has no RSA key in the JWKS", header["kid"])
	}
	n, errN := base64.RawURLEncoding.DecodeString(jwks.Keys[i].N)
	e, errE := base64.RawURLEncoding.DecodeString(jwks.Keys[i].E)
	if errN != nil || errE != nil {
		t.Fatalf("bad JWK: %v %v", errN, errE)
	}
	pub := &rsa.PublicKey{N: new(big.Int).SetBytes(n), E: int(new(big.Int).SetBytes(e).Int64())}
	dot := strings.LastIndex(tok, ".")
	sig, err := base64.RawURLEncoding.DecodeString(tok[dot+1:])
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256([]byte(tok[:dot]))
	if err := rsa.VerifyPKCS1v15(pub, crypto.SHA256, sum[:], sig); err != nil {
		t.Fatalf("signature does not verify with kid %v: %v", header["kid"], err)
	}
}
