package main

import (
	"bufio"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"net/http"
	"os"
	"runtime"
	"strings"
	"sync"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jwk"
	"github.com/lestrrat-go/jwx/v2/jwt"
)

// JWT mode: the benchmarks' JWTs are RS256 access tokens of one key, which
// loadgen generates (-jwt-keygen), publishes as a JWKS (-jwks) and signs a
// population with (-jwt-tokens); a load run reads them (-token-file). Every
// token of a population has the same length (zero-padded subject, fixed
// times), so it is written into a request template in place, as tok-<n> is.

const (
	jwtKid      = "bench-1"
	jwtAudience = "https://storage.example.org"
)

// writeJWTKey writes a new RSA-2048 private key (PKCS #8 PEM) and, beside
// it, its public JWKS (FILE.jwks.json).
func writeJWTKey(file string) error {
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return err
	}
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		return err
	}
	if err := os.WriteFile(file, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600); err != nil {
		return err
	}
	set, err := publicJWKS(k)
	if err != nil {
		return err
	}
	return os.WriteFile(file+".jwks.json", set, 0o644)
}

func readJWTKey(file string) (*rsa.PrivateKey, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	blk, _ := pem.Decode(b)
	if blk == nil {
		return nil, fmt.Errorf("%s: no PEM block", file)
	}
	k, err := x509.ParsePKCS8PrivateKey(blk.Bytes)
	if err != nil {
		return nil, err
	}
	rk, ok := k.(*rsa.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("%s: not an RSA key", file)
	}
	return rk, nil
}

func publicJWKS(k *rsa.PrivateKey) ([]byte, error) {
	pub, err := jwk.FromRaw(k.Public())
	if err != nil {
		return nil, err
	}
	for name, v := range map[string]any{jwk.KeyIDKey: jwtKid, jwk.AlgorithmKey: jwa.RS256, jwk.KeyUsageKey: "sig"} {
		if err := pub.Set(name, v); err != nil {
			return nil, err
		}
	}
	set := jwk.NewSet()
	if err := set.AddKey(pub); err != nil {
		return nil, err
	}
	return json.Marshal(set)
}

// writeJWTTokens signs tokens base .. base+n-1 for issuer iss into file,
// one per line, on every CPU.
func writeJWTTokens(file, keyFile, iss string, base uint64, n int) error {
	k, err := readJWTKey(keyFile)
	if err != nil {
		return err
	}
	key, err := jwk.FromRaw(k)
	if err != nil {
		return err
	}
	if err := key.Set(jwk.KeyIDKey, jwtKid); err != nil {
		return err
	}
	now := time.Now().Truncate(time.Second)
	out := make([]string, n)
	errs := make(chan error, runtime.NumCPU())
	var wg sync.WaitGroup
	for w := range runtime.NumCPU() {
		wg.Go(func() {
			for i := w; i < n; i += runtime.NumCPU() {
				tok, err := jwt.NewBuilder().
					Issuer(iss).
					Subject(fmt.Sprintf("subject-%0*d@example.org", tokenDigits, base+uint64(i))).
					Audience([]string{jwtAudience}).
					IssuedAt(now).
					Expiration(now.Add(24*time.Hour)).
					Claim("client_id", "leasegate-bench-client-000000000001").
					Claim("scope", "openid storage.read:/ storage.modify:/atlas").
					Build()
				if err == nil {
					var b []byte
					b, err = jwt.Sign(tok, jwt.WithKey(jwa.RS256, key))
					out[i] = string(b)
				}
				if err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		return err
	}
	return os.WriteFile(file, []byte(strings.Join(out, "\n")+"\n"), 0o644)
}

// readTokens reads a -token-file: one token per line, all of one length.
func readTokens(file string) ([]string, error) {
	f, err := os.Open(file)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var toks []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 64<<10)
	for sc.Scan() {
		if t := strings.TrimSpace(sc.Text()); t != "" {
			if len(toks) > 0 && len(t) != len(toks[0]) {
				return nil, fmt.Errorf("%s: tokens of different lengths (%d and %d)", file, len(toks[0]), len(t))
			}
			toks = append(toks, t)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if len(toks) == 0 {
		return nil, fmt.Errorf("%s: no tokens", file)
	}
	return toks, nil
}

// serveJWKS serves the key's JWKS at every path, for leasegate's jwks_uri.
func serveJWKS(ctx context.Context, addr, keyFile, addrFile string) error {
	k, err := readJWTKey(keyFile)
	if err != nil {
		return err
	}
	set, err := publicJWKS(k)
	if err != nil {
		return err
	}
	lis, err := listenAddr(addr)
	if err != nil {
		return err
	}
	srv := &http.Server{ReadHeaderTimeout: 5 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(set)
	})}
	if err := writeAddr(addrFile, lis.Addr().String()); err != nil {
		return err
	}
	go func() {
		<-ctx.Done()
		_ = srv.Close()
	}()
	if err := srv.Serve(lis); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}
