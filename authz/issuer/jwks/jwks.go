// Package jwks is one issuer's published signing keys (RFC 7517) as
// issuer.JWTVerifier verifies with them: the JWKS URI, configured or found
// by OIDC discovery; a first fetch retried in the background, jwk.Cache's
// scheduled refresh, and an on-demand refetch for an unknown kid at most
// once per MinRefetchInterval; only public signature keys kept, published
// as one snapshot; and which of them may have signed a JWS with a given
// kid and alg.
//
// It knows nothing of tokens beyond their header's kid and alg: the
// signature check and the claims are authz/issuer's.
package jwks

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"sync"
	"sync/atomic"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jwk"
)

// Config is the key-set part of issuer.JWTConfig, which documents,
// defaults and validates it (JWTConfig.Validate); New refuses a Config
// that would misbehave rather than default it a second time.
type Config struct {
	Name   string // the issuer's name, in errors and log lines
	Issuer string // the expected iss: discovery's document must name it
	// URI is the JWKS; "" means OIDC discovery at
	// <Issuer>/.well-known/openid-configuration (one trailing slash of
	// Issuer trimmed first).
	URI                string
	Clock              func() time.Time // the refetch limiter's clock
	HTTPClient         *http.Client
	RefreshInterval    time.Duration // the background refresh period, at least 1s
	MinRefetchInterval time.Duration // at most one on-demand fetch per this
	FetchTimeout       time.Duration // per discovery or JWKS request
	Logger             *slog.Logger  // background fetch failures
	// OnRefresh hears every refresh (discovery included; not one the
	// limiter skips, nor one cut short by ctx): nil when keys were
	// published, else why not. Optional; it must not block.
	OnRefresh func(err error)
}

// Why Keys found no key: the kid is unknown, or known with no key that
// fits the alg. Their texts are safe as an error_description.
var (
	ErrUnknownKey  = errors.New("unknown signing key")
	ErrKeyMismatch = errors.New("signing key does not fit the algorithm")
)

// UnavailableError: Keys cannot say whether the token's key exists (no
// key set fetched yet, or the refetch for an unknown kid failed).
type UnavailableError struct {
	Reason string // short and human-readable
	Err    error  // the fetch's failure, may be nil
}

func (e *UnavailableError) Error() string {
	if e.Err == nil {
		return e.Reason
	}
	return e.Reason + ": " + e.Err.Error()
}

func (e *UnavailableError) Unwrap() error { return e.Err }

// Set is one issuer's key set. It is safe for concurrent use.
//
// Keys are kept in an atomically swapped snapshot, so Keys never waits for
// a fetch unless the snapshot lacks the token's kid. jwk.Cache schedules
// the background refresh; every successful fetch, background or on
// demand, replaces the snapshot.
type Set struct {
	cfg   Config
	ctx   context.Context // bounds background work
	cache *jwk.Cache

	keys atomic.Pointer[snapshot]

	sem         chan struct{} // one discovery/JWKS fetch at a time
	uri         string        // guarded by sem; "" until resolved
	lastRefetch time.Time     // guarded by sem; last limiter-gated fetch, by cfg.Clock

	errMu   sync.Mutex
	lastErr error // last fetch failure, for "no keys" errors
}

// snapshot is one published key set; Set.keys swaps it whole.
type snapshot struct{ set jwk.Set }

// New starts fetching cfg's keys in the background. It does not fail when
// the issuer is unreachable: it keeps retrying until ctx is cancelled, and
// Keys fetches on demand. Cancelling ctx stops all background work.
func New(ctx context.Context, cfg Config) (*Set, error) {
	switch {
	case cfg.Issuer == "" && cfg.URI == "":
		return nil, errors.New("jwks: neither a JWKS URI nor an issuer to discover it from")
	case cfg.RefreshInterval < time.Second || cfg.MinRefetchInterval < 0 || cfg.FetchTimeout <= 0:
		return nil, errors.New("jwks: refresh interval under 1s, negative refetch interval or no fetch timeout")
	case cfg.Clock == nil || cfg.HTTPClient == nil || cfg.Logger == nil:
		return nil, errors.New("jwks: Clock, HTTPClient and Logger are required")
	}
	s := &Set{cfg: cfg, ctx: ctx, sem: make(chan struct{}, 1)}
	// The cache checks its schedule every window; a quarter of the refresh
	// interval keeps the actual refresh close to the configured one.
	window := max(cfg.RefreshInterval/4, min(time.Second, cfg.RefreshInterval))
	s.cache = jwk.NewCache(ctx, jwk.WithRefreshWindow(window), jwk.WithErrSink(errSink{s}))
	go s.bootstrap()
	return s, nil
}

// Ready reports whether the key set has been fetched successfully at
// least once.
func (s *Set) Ready() bool { return s.keys.Load() != nil }

// Keys returns the keys that may have signed a JWS with kid (any key when
// kid is "") and alg, fetching the set (rate-limited) when no snapshot
// exists or the kid is unknown. The error is ErrUnknownKey,
// ErrKeyMismatch or an *UnavailableError.
func (s *Set) Keys(ctx context.Context, kid string, alg jwa.SignatureAlgorithm) ([]jwk.Key, error) {
	snap := s.keys.Load()
	if snap != nil {
		if keys, known := candidates(snap.set, kid, alg); len(keys) > 0 {
			return keys, nil
		} else if known {
			return nil, ErrKeyMismatch
		}
	}
	fetchErr := s.fetch(ctx, true)
	snap = s.keys.Load()
	if snap == nil {
		cause := fetchErr
		if cause == nil || errors.Is(cause, errRefetchLimited) {
			cause = s.lastError()
		}
		return nil, &UnavailableError{Reason: "no signing keys available", Err: cause}
	}
	keys, known := candidates(snap.set, kid, alg)
	switch {
	case len(keys) > 0:
		return keys, nil
	case known:
		return nil, ErrKeyMismatch
	case fetchErr != nil && !errors.Is(fetchErr, errRefetchLimited):
		// This caller's refresh failed (JWKS down, ctx ended): the key may
		// exist, so no verdict. Only one caller per MinRefetchInterval gets
		// here, so unknown kids cannot flood the caller's breaker.
		return nil, &UnavailableError{Reason: "JWKS refresh for an unknown key failed", Err: fetchErr}
	}
	return nil, ErrUnknownKey
}

// candidates lists the keys of set usable for kid and alg: matching kid
// (any key when kid is ""), key type and curve fitting alg, and the key's
// own alg, when set, equal to alg. known reports whether the kid was in set.
func candidates(set jwk.Set, kid string, alg jwa.SignatureAlgorithm) (keys []jwk.Key, known bool) {
	for i := range set.Len() {
		k, ok := set.Key(i)
		if !ok {
			continue
		}
		if kid != "" {
			if k.KeyID() != kid {
				continue
			}
			known = true
		}
		if fits(k, alg) {
			keys = append(keys, k)
		}
	}
	return keys, known
}

func fits(k jwk.Key, alg jwa.SignatureAlgorithm) bool {
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

// CheckHTTPURL is the rule for a JWKS URI and for an issuer whose keys are
// discovered (issuer.JWTConfig.Validate checks both with it): http or
// https, with a host.
func CheckHTTPURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil {
		return err
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return fmt.Errorf("%q: scheme must be http or https", u.Redacted())
	}
	if u.Host == "" {
		return fmt.Errorf("%q: host is missing", u.Redacted())
	}
	return nil
}
