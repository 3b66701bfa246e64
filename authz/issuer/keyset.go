package issuer

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jwk"
)

// maxJWKSBytes caps a discovery document or JWKS.
const maxJWKSBytes = 1 << 20

// errRefetchLimited: a limiter-gated fetch was skipped because one ran less
// than MinRefetchInterval ago.
var errRefetchLimited = errors.New("JWKS refetch rate-limited")

// keySnapshot is one published key set; JWTVerifier.keys swaps it whole.
type keySnapshot struct{ set jwk.Set }

// keysFor returns the keys that may have signed a token with hdr, fetching
// the JWKS (rate-limited) when no snapshot exists or the kid is unknown.
func (v *JWTVerifier) keysFor(ctx context.Context, hdr jwsHeader) ([]jwk.Key, error) {
	snap := v.keys.Load()
	if snap != nil {
		if keys, known := keyCandidates(snap.set, hdr); len(keys) > 0 {
			return keys, nil
		} else if known {
			return nil, v.invalid("signing key does not fit the algorithm", nil)
		}
	}
	fetchErr := v.fetchKeys(ctx, true)
	snap = v.keys.Load()
	if snap == nil {
		cause := fetchErr
		if cause == nil || errors.Is(cause, errRefetchLimited) {
			cause = v.lastError()
		}
		return nil, &IssuerError{Issuer: v.cfg.Name, Op: "jwks", Reason: "no signing keys available", Err: cause}
	}
	keys, known := keyCandidates(snap.set, hdr)
	switch {
	case len(keys) > 0:
		return keys, nil
	case known:
		return nil, v.invalid("signing key does not fit the algorithm", nil)
	case fetchErr != nil && !errors.Is(fetchErr, errRefetchLimited):
		// This caller's refresh failed (JWKS down, ctx ended): the key may
		// exist, so no verdict. Only one caller per MinRefetchInterval gets
		// here, so unknown kids cannot flood the caller's breaker.
		return nil, &IssuerError{Issuer: v.cfg.Name, Op: "jwks", Reason: "JWKS refresh for an unknown key failed", Err: fetchErr}
	}
	return nil, v.invalid("unknown signing key", nil)
}

// keyCandidates lists the keys of set usable for hdr: matching kid (any key
// when the token has none), key type and curve fitting alg, and the key's own
// alg, when set, equal to alg. known reports whether the kid was in set.
func keyCandidates(set jwk.Set, hdr jwsHeader) (keys []jwk.Key, known bool) {
	for i := range set.Len() {
		k, ok := set.Key(i)
		if !ok {
			continue
		}
		if hdr.kid != "" {
			if k.KeyID() != hdr.kid {
				continue
			}
			known = true
		}
		if keyFits(k, hdr.alg) {
			keys = append(keys, k)
		}
	}
	return keys, known
}

func keyFits(k jwk.Key, alg jwa.SignatureAlgorithm) bool {
	if ka := k.Algorithm().String(); ka != "" && ka != alg.String() {
		return false
	}
	var crv jwa.EllipticCurveAlgorithm // "" for a key without a curve
	if c, ok := k.(interface {
		Crv() jwa.EllipticCurveAlgorithm
	}); ok {
		crv = c.Crv()
	}
	switch alg {
	case jwa.RS256, jwa.RS384, jwa.RS512, jwa.PS256, jwa.PS384, jwa.PS512:
		return k.KeyType() == jwa.RSA
	case jwa.ES256:
		return k.KeyType() == jwa.EC && crv == jwa.P256
	case jwa.ES384:
		return k.KeyType() == jwa.EC && crv == jwa.P384
	case jwa.ES512:
		return k.KeyType() == jwa.EC && crv == jwa.P521
	case jwa.EdDSA:
		return k.KeyType() == jwa.OKP && crv == jwa.Ed25519
	}
	return false
}

// bootstrap fetches the keys once in the background, retrying with backoff
// until it succeeds, something else fetched them, or ctx ends. After that
// jwk.Cache refreshes on its schedule.
func (v *JWTVerifier) bootstrap() {
	delay := time.Second
	for v.ctx.Err() == nil && !v.Ready() {
		err := v.fetchKeys(v.ctx, false)
		if err == nil || v.ctx.Err() != nil {
			return
		}
		v.log.Warn("JWKS not available yet, will retry", "issuer", v.cfg.Name, "retry_in", delay, "error", err)
		t := time.NewTimer(delay)
		select {
		case <-v.ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		delay = min(delay*2, v.cfg.RefreshInterval)
	}
}

// fetchKeys resolves the JWKS URI (discovery, once) and fetches the JWKS.
// With limited set it does nothing when another limited fetch ran less than
// MinRefetchInterval ago (errRefetchLimited); that is what keeps a flood of
// unknown kids from becoming a flood of fetches. Concurrent callers queue
// behind the fetch in flight and then see its result.
func (v *JWTVerifier) fetchKeys(ctx context.Context, limited bool) error {
	select {
	case v.sem <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	}
	defer func() { <-v.sem }()
	if limited {
		// A negative age (the clock stepped back) does not hold fetches
		// off for the size of the step.
		now := v.cfg.Clock()
		if age := now.Sub(v.lastRefetch); !v.lastRefetch.IsZero() && age >= 0 && age < v.cfg.MinRefetchInterval {
			return errRefetchLimited
		}
		v.lastRefetch = now
	}
	ctx, cancel := context.WithTimeout(ctx, v.cfg.FetchTimeout)
	defer cancel()

	if v.jwksURL == "" {
		u, err := v.resolveJWKSURI(ctx)
		if err != nil {
			v.refreshed(err)
			return err
		}
		if err := v.cache.Register(u,
			jwk.WithHTTPClient(jwksGetter{v}),
			jwk.WithRefreshInterval(v.cfg.RefreshInterval),
			jwk.WithPostFetcher(jwk.PostFetchFunc(v.postFetch)),
			// One key of a type jwx cannot parse must not hide the others.
			jwk.WithIgnoreParseError(true),
		); err != nil {
			err = fmt.Errorf("registering JWKS %s: %w", u, err)
			v.refreshed(err)
			return err
		}
		v.jwksURL = u
	}
	if _, err := v.cache.Refresh(ctx, v.jwksURL); err != nil {
		v.refreshed(err)
		return err
	}
	return nil
}

// resolveJWKSURI returns JWTConfig.JWKSURI or discovers it (OIDC Discovery
// 1.0 §4).
func (v *JWTVerifier) resolveJWKSURI(ctx context.Context) (string, error) {
	if v.cfg.JWKSURI != "" {
		return v.cfg.JWKSURI, nil
	}
	doc := strings.TrimSuffix(v.cfg.Issuer, "/") + "/.well-known/openid-configuration"
	body, err := v.get(ctx, doc)
	if err != nil {
		return "", fmt.Errorf("OIDC discovery: %w", err)
	}
	obj, err := decodeObject(body)
	if err != nil {
		return "", fmt.Errorf("OIDC discovery %s: %w", doc, err)
	}
	if iss, err := stringMember(obj, "issuer"); err != nil || (iss != "" && iss != v.cfg.Issuer) {
		return "", fmt.Errorf("OIDC discovery %s: issuer %q does not match the configured %q", doc, iss, v.cfg.Issuer)
	}
	u, err := stringMember(obj, "jwks_uri")
	if err != nil || u == "" {
		return "", fmt.Errorf("OIDC discovery %s: no jwks_uri", doc)
	}
	if err := checkHTTPURL(u); err != nil {
		return "", fmt.Errorf("OIDC discovery %s: jwks_uri: %w", doc, err)
	}
	return u, nil
}

// get fetches a small JSON document: 200 required, body capped.
func (v *JWTVerifier) get(ctx context.Context, u string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "application/json, application/jwk-set+json")
	resp, err := v.client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 4096))
		return nil, fmt.Errorf("GET %s: HTTP %d", u, resp.StatusCode)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxJWKSBytes+1))
	if err != nil {
		return nil, fmt.Errorf("GET %s: %w", u, err)
	}
	if len(body) > maxJWKSBytes {
		return nil, fmt.Errorf("GET %s: answer exceeds %d bytes", u, maxJWKSBytes)
	}
	return body, nil
}

// postFetch runs after every successful JWKS fetch and parse: it keeps only
// public signature keys and publishes them as the new snapshot.
func (v *JWTVerifier) postFetch(_ string, set jwk.Set) (jwk.Set, error) {
	out := jwk.NewSet()
	for i := range set.Len() {
		k, ok := set.Key(i)
		if !ok || k.KeyType() == jwa.OctetSeq {
			continue // a symmetric key in a JWKS is never a signer we accept
		}
		if use := k.KeyUsage(); use != "" && use != string(jwk.ForSignature) {
			continue
		}
		pub, err := k.PublicKey()
		if err != nil {
			continue
		}
		if err := out.AddKey(pub); err != nil {
			continue
		}
	}
	v.keys.Store(&keySnapshot{set: out})
	v.refreshed(nil)
	return out, nil
}

// refreshed records a refresh's outcome (nil: keys published) for "no
// keys" errors and OnRefresh, which a refresh ctx cut short is not told.
func (v *JWTVerifier) refreshed(err error) {
	v.errMu.Lock()
	v.lastErr = err
	v.errMu.Unlock()
	if v.cfg.OnRefresh != nil && (err == nil || v.ctx.Err() == nil) {
		v.cfg.OnRefresh(err)
	}
}

func (v *JWTVerifier) lastError() error {
	v.errMu.Lock()
	defer v.errMu.Unlock()
	return v.lastErr
}

// jwksGetter adapts the verifier's *http.Client to jwk.Cache, which calls
// Get without a context: the request is bounded by the verifier's lifetime
// and FetchTimeout, must answer 200, and the body is capped.
type jwksGetter struct{ v *JWTVerifier }

func (g jwksGetter) Get(u string) (*http.Response, error) {
	ctx, cancel := context.WithTimeout(g.v.ctx, g.v.cfg.FetchTimeout)
	defer cancel()
	body, err := g.v.get(ctx, u)
	if err != nil {
		return nil, err
	}
	return &http.Response{
		Status:     "200 OK",
		StatusCode: http.StatusOK,
		Header:     http.Header{},
		Body:       io.NopCloser(bytes.NewReader(body)),
	}, nil
}

type jwksErrSink struct{ v *JWTVerifier }

func (s jwksErrSink) Error(err error) {
	s.v.refreshed(err)
	s.v.log.Warn("JWKS refresh failed; keeping the previous keys", "issuer", s.v.cfg.Name, "error", err)
}
