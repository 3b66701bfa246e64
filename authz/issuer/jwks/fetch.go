package jwks

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jwk"
)

// maxBytes caps a discovery document or JWKS.
const maxBytes = 1 << 20

// errRefetchLimited: a limiter-gated fetch was skipped because one ran less
// than MinRefetchInterval ago.
var errRefetchLimited = errors.New("JWKS refetch rate-limited")

// bootstrap fetches the keys once in the background, retrying with backoff
// until it succeeds, something else fetched them, or ctx ends. After that
// jwk.Cache refreshes on its schedule.
func (s *Set) bootstrap() {
	delay := time.Second
	for s.ctx.Err() == nil && !s.Ready() {
		err := s.fetch(s.ctx, false)
		if err == nil || s.ctx.Err() != nil {
			return
		}
		s.cfg.Logger.Warn("JWKS not available yet, will retry", "issuer", s.cfg.Name, "retry_in", delay, "error", err)
		t := time.NewTimer(delay)
		select {
		case <-s.ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		delay = min(delay*2, s.cfg.RefreshInterval)
	}
}

// fetch resolves the JWKS URI (discovery, once) and fetches the JWKS.
// With limited set it does nothing when another limited fetch ran less than
// MinRefetchInterval ago (errRefetchLimited); that is what keeps a flood of
// unknown kids from becoming a flood of fetches. Concurrent callers queue
// behind the fetch in flight and then see its result.
func (s *Set) fetch(ctx context.Context, limited bool) error {
	select {
	case s.sem <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	}
	defer func() { <-s.sem }()
	if limited {
		// A negative age (the clock stepped back) does not hold fetches
		// off for the size of the step.
		now := s.cfg.Clock()
		if age := now.Sub(s.lastRefetch); !s.lastRefetch.IsZero() && age >= 0 && age < s.cfg.MinRefetchInterval {
			return errRefetchLimited
		}
		s.lastRefetch = now
	}
	ctx, cancel := context.WithTimeout(ctx, s.cfg.FetchTimeout)
	defer cancel()

	if s.uri == "" {
		u, err := s.resolveURI(ctx)
		if err != nil {
			s.refreshed(err)
			return err
		}
		if err := s.cache.Register(u,
			jwk.WithHTTPClient(getter{s}),
			jwk.WithRefreshInterval(s.cfg.RefreshInterval),
			jwk.WithPostFetcher(jwk.PostFetchFunc(s.postFetch)),
			// One key of a type jwx cannot parse must not hide the others.
			jwk.WithIgnoreParseError(true),
		); err != nil {
			err = fmt.Errorf("registering JWKS %s: %w", u, err)
			s.refreshed(err)
			return err
		}
		s.uri = u
	}
	if _, err := s.cache.Refresh(ctx, s.uri); err != nil {
		s.refreshed(err)
		return err
	}
	return nil
}

// resolveURI returns Config.URI or discovers it (OIDC Discovery 1.0 §4).
func (s *Set) resolveURI(ctx context.Context) (string, error) {
	if s.cfg.URI != "" {
		return s.cfg.URI, nil
	}
	doc := strings.TrimSuffix(s.cfg.Issuer, "/") + "/.well-known/openid-configuration"
	body, err := s.get(ctx, doc)
	if err != nil {
		return "", fmt.Errorf("OIDC discovery: %w", err)
	}
	// Members by their exact names: decoding into a struct would read
	// "ISSUER" as issuer.
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(body, &obj); err != nil || obj == nil {
		return "", fmt.Errorf("OIDC discovery %s: not a JSON object", doc)
	}
	if iss, err := stringMember(obj, "issuer"); err != nil || (iss != "" && iss != s.cfg.Issuer) {
		return "", fmt.Errorf("OIDC discovery %s: issuer %q does not match the configured %q", doc, iss, s.cfg.Issuer)
	}
	u, err := stringMember(obj, "jwks_uri")
	if err != nil || u == "" {
		return "", fmt.Errorf("OIDC discovery %s: no jwks_uri", doc)
	}
	if err := CheckHTTPURL(u); err != nil {
		return "", fmt.Errorf("OIDC discovery %s: jwks_uri: %w", doc, err)
	}
	return u, nil
}

// stringMember reads an optional string member; null or absent is "".
func stringMember(obj map[string]json.RawMessage, key string) (string, error) {
	var v string
	if raw, ok := obj[key]; ok && json.Unmarshal(raw, &v) != nil {
		return "", fmt.Errorf("%q is not a string", key)
	}
	return v, nil
}

// get fetches a small JSON document: 200 required, body capped.
func (s *Set) get(ctx context.Context, u string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "application/json, application/jwk-set+json")
	resp, err := s.cfg.HTTPClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 4096))
		return nil, fmt.Errorf("GET %s: HTTP %d", u, resp.StatusCode)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxBytes+1))
	if err != nil {
		return nil, fmt.Errorf("GET %s: %w", u, err)
	}
	if len(body) > maxBytes {
		return nil, fmt.Errorf("GET %s: answer exceeds %d bytes", u, maxBytes)
	}
	return body, nil
}

// postFetch runs after every successful JWKS fetch and parse: it keeps only
// public signature keys and publishes them as the new snapshot.
func (s *Set) postFetch(_ string, set jwk.Set) (jwk.Set, error) {
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
	s.keys.Store(&snapshot{set: out})
	s.refreshed(nil)
	return out, nil
}

// refreshed records a refresh's outcome (nil: keys published) for "no
// keys" errors and OnRefresh, which a refresh ctx cut short is not told.
func (s *Set) refreshed(err error) {
	s.errMu.Lock()
	s.lastErr = err
	s.errMu.Unlock()
	if s.cfg.OnRefresh != nil && (err == nil || s.ctx.Err() == nil) {
		s.cfg.OnRefresh(err)
	}
}

func (s *Set) lastError() error {
	s.errMu.Lock()
	defer s.errMu.Unlock()
	return s.lastErr
}

// getter adapts the set's *http.Client to jwk.Cache, which calls Get
// without a context: the request is bounded by the set's lifetime and
// FetchTimeout, must answer 200, and the body is capped.
type getter struct{ s *Set }

func (g getter) Get(u string) (*http.Response, error) {
	ctx, cancel := context.WithTimeout(g.s.ctx, g.s.cfg.FetchTimeout)
	defer cancel()
	body, err := g.s.get(ctx, u)
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

type errSink struct{ s *Set }

func (e errSink) Error(err error) {
	e.s.refreshed(err)
	e.s.cfg.Logger.Warn("JWKS refresh failed; keeping the previous keys", "issuer", e.s.cfg.Name, "error", err)
}
