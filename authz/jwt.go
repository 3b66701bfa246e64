package authz

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jwk"
	"github.com/lestrrat-go/jwx/v2/jws"
)

// WLCGAnyAudience is the WLCG Common JWT Profile audience meaning "any
// relying party"; accepted only when JWTConfig.AcceptWLCGAny is set.
const WLCGAnyAudience = "https://wlcg.cern.ch/jwt/v1/any"

const (
	defaultClockSkew          = 60 * time.Second
	defaultRefreshInterval    = 15 * time.Minute
	defaultMinRefetchInterval = 30 * time.Second
	defaultFetchTimeout       = 5 * time.Second
	maxJWKSBytes              = 1 << 20
	// maxJWSBytes bounds the compact JWS the JWT parser and PeekIssuer
	// will look at, for callers that did not apply MaxBearerTokenBytes
	// first; the engine always does, so through it the lower limit holds.
	maxJWSBytes = 64 << 10
)

// JWTConfig configures local verification of one issuer's JWTs.
type JWTConfig struct {
	Name   string
	Issuer string // expected iss, exact match
	// JWKSURI, when "", is found by OIDC discovery at
	// <Issuer>/.well-known/openid-configuration (one trailing slash of Issuer
	// trimmed first); the discovery document's issuer must equal Issuer.
	JWKSURI string
	// Audiences: the token's aud must contain one of them. An empty list
	// means the audience is not checked at all; New (the Engine's) refuses
	// that unless the issuer sets IssuerConfig.AcceptAnyAudience.
	Audiences []string
	// AcceptWLCGAny accepts WLCGAnyAudience in the token's aud as matching.
	AcceptWLCGAny bool
	// ClockSkew, default 60s, lets nbf and iat lie that far in the future.
	// It does not extend exp: see expired.
	ClockSkew  time.Duration
	Clock      func() time.Time // default time.Now; exp/nbf/iat checks and the refetch limiter
	HTTPClient *http.Client     // optional (tracing/tests); default a plain client
	// RefreshInterval is the background JWKS refresh period, default 15m,
	// at least 1s.
	RefreshInterval time.Duration
	// MinRefetchInterval: a token with an unknown kid (or no keys at all)
	// triggers at most one JWKS fetch per this interval, default 30s.
	MinRefetchInterval time.Duration
	FetchTimeout       time.Duration // per discovery/JWKS request, default 5s
	Logger             *slog.Logger  // background fetch failures; default slog.Default()
}

// allowedAlgs are the asymmetric JWS algorithms accepted. "none" and HS*
// are absent on purpose: HMAC with a public key as secret is the classic
// key-confusion forgery.
var allowedAlgs = map[string]jwa.SignatureAlgorithm{
	"RS256": jwa.RS256, "RS384": jwa.RS384, "RS512": jwa.RS512,
	"PS256": jwa.PS256, "PS384": jwa.PS384, "PS512": jwa.PS512,
	"ES256": jwa.ES256, "ES384": jwa.ES384, "ES512": jwa.ES512,
	"EdDSA": jwa.EdDSA,
}

// errRefetchLimited: a limiter-gated fetch was skipped because one ran less
// than MinRefetchInterval ago.
var errRefetchLimited = errors.New("JWKS refetch rate-limited")

// JWTVerifier verifies one issuer's JWTs against its JWKS. It is safe for
// concurrent use.
//
// Keys are kept in an atomically swapped snapshot, so Verify never waits for
// a JWKS fetch unless the snapshot lacks the token's kid. jwk.Cache schedules
// the background refresh; every successful fetch, background or on demand,
// replaces the snapshot.
type JWTVerifier struct {
	cfg    JWTConfig
	aud    audienceRule
	ctx    context.Context // bounds background work
	client *http.Client
	cache  *jwk.Cache
	log    *slog.Logger

	keys atomic.Pointer[keySnapshot]

	sem         chan struct{} // one discovery/JWKS fetch at a time
	jwksURL     string        // guarded by sem; "" until resolved
	lastRefetch time.Time     // guarded by sem; last limiter-gated fetch, by cfg.Clock

	errMu   sync.Mutex
	lastErr error // last fetch failure, for "no keys" errors
}

type keySnapshot struct{ set jwk.Set }

// NewJWTVerifier validates cfg and starts fetching keys in the background.
// It does not fail when the issuer is unreachable: it keeps retrying until
// ctx is cancelled, and Verify fetches on demand. Cancelling ctx stops all
// background work.
func NewJWTVerifier(ctx context.Context, cfg JWTConfig) (*JWTVerifier, error) {
	if ps := cfg.problems(); len(ps) > 0 {
		return nil, fmt.Errorf("jwt %s: %w", cfg.Name, joinProblems(ps))
	}
	aud, err := newAudienceRule(cfg.Audiences, cfg.AcceptWLCGAny)
	if err != nil {
		return nil, fmt.Errorf("jwt %s: %w", cfg.Name, err)
	}

	if cfg.ClockSkew == 0 {
		cfg.ClockSkew = defaultClockSkew
	}
	if cfg.Clock == nil {
		cfg.Clock = time.Now
	}
	if cfg.RefreshInterval == 0 {
		cfg.RefreshInterval = defaultRefreshInterval
	}
	if cfg.MinRefetchInterval == 0 {
		cfg.MinRefetchInterval = defaultMinRefetchInterval
	}
	if cfg.FetchTimeout == 0 {
		cfg.FetchTimeout = defaultFetchTimeout
	}
	v := &JWTVerifier{
		cfg:    cfg,
		aud:    aud,
		ctx:    ctx,
		client: cfg.HTTPClient,
		log:    cfg.Logger,
		sem:    make(chan struct{}, 1),
	}
	if v.client == nil {
		v.client = &http.Client{}
	}
	if v.log == nil {
		v.log = slog.Default()
	}
	// The cache checks its schedule every window; a quarter of the refresh
	// interval keeps the actual refresh close to the configured one.
	window := max(cfg.RefreshInterval/4, min(time.Second, cfg.RefreshInterval))
	v.cache = jwk.NewCache(ctx, jwk.WithRefreshWindow(window), jwk.WithErrSink(jwksErrSink{v}))
	go v.bootstrap()
	return v, nil
}

// problems is what NewJWTVerifier refuses in cfg, each with its key.
func (cfg JWTConfig) problems() []fieldProblem {
	var ps []fieldProblem
	add := func(field, msg string) { ps = append(ps, fieldProblem{field, msg}) }
	if cfg.Issuer == "" {
		add("issuer", "issuer is required")
	}
	if cfg.JWKSURI != "" {
		if err := checkHTTPURL(cfg.JWKSURI); err != nil {
			add("jwks_uri", fmt.Sprintf("jwks_uri: %v", err))
		}
	} else if cfg.Issuer != "" {
		if err := checkHTTPURL(cfg.Issuer); err != nil {
			add("issuer", fmt.Sprintf("issuer must be an http(s) URL for OIDC discovery when jwks_uri is empty: %v", err))
		}
	}
	if slices.Contains(cfg.Audiences, "") {
		add("audiences", "audiences must not contain an empty string")
	}
	for _, d := range []struct {
		field, name string
		v           time.Duration
	}{
		{"clock_skew", "clock skew", cfg.ClockSkew},
		{"", "refresh interval", cfg.RefreshInterval},
		{"", "min refetch interval", cfg.MinRefetchInterval},
		{"", "fetch timeout", cfg.FetchTimeout},
	} {
		if d.v < 0 {
			add(d.field, d.name+" must not be negative")
		}
	}
	if cfg.RefreshInterval > 0 && cfg.RefreshInterval < time.Second {
		add("", "refresh interval must be at least 1s")
	}
	return ps
}

// Name returns the configured issuer name.
func (v *JWTVerifier) Name() string { return v.cfg.Name }

// Ready reports whether the JWKS has been fetched successfully at least once.
func (v *JWTVerifier) Ready() bool { return v.keys.Load() != nil }

// Verify checks token's signature against the issuer's keys and its claims
// (iss, aud, exp, nbf, iat). On success Claims.Active is true. A bad token
// is ErrInvalidToken; no usable keys (JWKS unreachable) is
// ErrIssuerUnavailable.
func (v *JWTVerifier) Verify(ctx context.Context, token string) (Claims, error) {
	hdr, reason := parseJWSHeader(token)
	if reason != "" {
		return Claims{}, v.invalid(reason, nil)
	}
	keys, err := v.keysFor(ctx, hdr)
	if err != nil {
		return Claims{}, err
	}
	var payload []byte
	var verr error
	for _, k := range keys {
		payload, verr = jws.Verify([]byte(token), jws.WithKey(hdr.alg, k), jws.WithCompact())
		if verr == nil {
			break
		}
	}
	if verr != nil {
		return Claims{}, v.invalid("signature invalid", nil)
	}
	return v.checkClaims(payload)
}

func (v *JWTVerifier) invalid(reason string, cause error) *TokenError {
	return &TokenError{Issuer: v.cfg.Name, Reason: reason, Err: cause}
}

type jwsHeader struct {
	alg jwa.SignatureAlgorithm
	kid string
}

// parseJWSHeader reads the protected header of a compact JWS and applies
// the checks that need no key. It returns a non-empty reason (safe as an
// error_description) when the token must be refused.
func parseJWSHeader(token string) (jwsHeader, string) {
	if len(token) > maxJWSBytes {
		return jwsHeader{}, "token too large"
	}
	if strings.Count(token, ".") != 2 || !isBase64URLOrDot(token) {
		return jwsHeader{}, "malformed token"
	}
	h, rest, _ := strings.Cut(token, ".")
	p, sig, _ := strings.Cut(rest, ".")
	raw, err := b64url.DecodeString(h)
	if err != nil {
		return jwsHeader{}, "malformed token"
	}
	// Only canonical encodings: one token, one spelling (no padding, no
	// stray bits), so a verified token cannot be re-spelled by a third party.
	if _, err := b64url.DecodeString(p); err != nil {
		return jwsHeader{}, "malformed token"
	}
	if _, err := b64url.DecodeString(sig); err != nil {
		return jwsHeader{}, "malformed token"
	}
	obj, err := decodeObject(raw)
	if err != nil {
		return jwsHeader{}, "malformed token"
	}
	algName, err := stringMember(obj, "alg")
	if err != nil || algName == "" {
		return jwsHeader{}, "malformed token"
	}
	alg, ok := allowedAlgs[algName]
	if !ok {
		return jwsHeader{}, "algorithm not allowed"
	}
	// RFC 7515 §4.1.11: unknown critical extensions must be refused; we
	// understand none. b64=false (RFC 7797) changes what is signed.
	if _, ok := obj["crit"]; ok {
		return jwsHeader{}, "unsupported critical header"
	}
	if _, ok := obj["b64"]; ok {
		return jwsHeader{}, "unsupported critical header"
	}
	typ, err := stringMember(obj, "typ")
	if err != nil {
		return jwsHeader{}, "malformed token"
	}
	// SPEC §2: "A JWT whose typ says it is not an access token is refused".
	if typ != "" && !isAccessTokenType(typ) {
		return jwsHeader{}, "token type not accepted"
	}
	kid, err := stringMember(obj, "kid")
	if err != nil {
		return jwsHeader{}, "malformed token"
	}
	return jwsHeader{alg: alg, kid: kid}, ""
}

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
	crv := func() jwa.EllipticCurveAlgorithm {
		if c, ok := k.(interface {
			Crv() jwa.EllipticCurveAlgorithm
		}); ok {
			return c.Crv()
		}
		return ""
	}
	switch alg {
	case jwa.RS256, jwa.RS384, jwa.RS512, jwa.PS256, jwa.PS384, jwa.PS512:
		return k.KeyType() == jwa.RSA
	case jwa.ES256:
		return k.KeyType() == jwa.EC && crv() == jwa.P256
	case jwa.ES384:
		return k.KeyType() == jwa.EC && crv() == jwa.P384
	case jwa.ES512:
		return k.KeyType() == jwa.EC && crv() == jwa.P521
	case jwa.EdDSA:
		return k.KeyType() == jwa.OKP && crv() == jwa.Ed25519
	}
	return false
}

// checkClaims validates the verified payload and maps it to Claims.
func (v *JWTVerifier) checkClaims(payload []byte) (Claims, error) {
	obj, err := decodeObject(payload)
	if err != nil {
		return Claims{}, v.invalid("malformed claims", err)
	}
	c, refusal, errs := readClaims(obj)
	c.Active = true
	collect := func(err error) {
		if err != nil {
			errs = append(errs, err)
		}
	}
	var e error
	if c.ClientID == "" {
		c.ClientID, e = stringMember(obj, "azp")
		collect(e)
	}
	if present(obj, "scope") {
		c.Scope, e = stringMember(obj, "scope")
	} else {
		c.Scope, e = scopeMember(obj, "scp")
	}
	collect(e)
	c.WLCGVersion, e = wlcgVersion(obj)
	collect(e)
	if len(errs) > 0 {
		return Claims{}, v.invalid("malformed claims", errors.Join(errs...))
	}

	if refusal != "" {
		return Claims{}, v.invalid(refusal, errNotAccessToken)
	}
	if c.Issuer != v.cfg.Issuer {
		return Claims{}, v.invalid("issuer not accepted", nil)
	}
	now := v.cfg.Clock()
	skew := v.cfg.ClockSkew
	switch {
	case c.Expiry.IsZero():
		return Claims{}, v.invalid("token has no expiry", nil)
	case expired(c.Expiry, now):
		return Claims{}, v.invalid("token expired", errExpired)
	case !c.NotBefore.IsZero() && now.Add(skew).Before(c.NotBefore):
		return Claims{}, v.invalid("token not yet valid", nil)
	case !c.IssuedAt.IsZero() && c.IssuedAt.After(now.Add(skew)):
		return Claims{}, v.invalid("token issued in the future", nil)
	}
	if !v.aud.accepts(c.Audience) {
		return Claims{}, v.invalid("audience not accepted", errAudience)
	}
	return c, nil
}

// wlcgVersion reads "wlcg.ver", a string per the WLCG profile; a bare
// number (1.0) is kept in its JSON spelling.
func wlcgVersion(obj map[string]json.RawMessage) (string, error) {
	if !present(obj, "wlcg.ver") {
		return "", nil
	}
	raw := bytes.TrimSpace(obj["wlcg.ver"])
	if c := jsonKind(raw); c == '-' || (c >= '0' && c <= '9') {
		return string(raw), nil
	}
	return stringMember(obj, "wlcg.ver")
}

// b64url decodes the unpadded base64url of compact JWS (RFC 7515 §2),
// refusing non-zero trailing bits.
var b64url = base64.RawURLEncoding.Strict()

// isBase64URLOrDot reports whether s uses only the base64url alphabet and
// dots. Go's decoders skip CR/LF, so the check comes before decoding.
func isBase64URLOrDot(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'A' && c <= 'Z', c >= 'a' && c <= 'z', c >= '0' && c <= '9', c == '-', c == '_', c == '.':
		default:
			return false
		}
	}
	return true
}

// PeekIssuer reads the unverified iss of a compact JWS. ok is false when the
// token is not a JWT (opaque): not three dot-separated parts, or a header
// that is not a JSON object with a string "alg", or a payload that is not a
// JSON object. ok with iss == "" means a JWT without a string iss. Cheap: no
// signature work; use it only to pick the issuer config.
func PeekIssuer(token string) (iss string, ok bool) {
	if len(token) > maxJWSBytes || strings.Count(token, ".") != 2 || !isBase64URLOrDot(token) {
		return "", false
	}
	h, rest, _ := strings.Cut(token, ".")
	p, _, _ := strings.Cut(rest, ".")
	hraw, err := b64url.DecodeString(h)
	if err != nil {
		return "", false
	}
	hdr, err := decodeObject(hraw)
	if err != nil {
		return "", false
	}
	if alg, err := stringMember(hdr, "alg"); err != nil || alg == "" {
		return "", false
	}
	praw, err := b64url.DecodeString(p)
	if err != nil {
		return "", false
	}
	claims, err := decodeObject(praw)
	if err != nil {
		return "", false
	}
	iss, err = stringMember(claims, "iss")
	if err != nil {
		return "", true
	}
	return iss, true
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
			v.setError(err)
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
			v.setError(err)
			return err
		}
		v.jwksURL = u
	}
	if _, err := v.cache.Refresh(ctx, v.jwksURL); err != nil {
		v.setError(err)
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
	v.setError(nil)
	return out, nil
}

func (v *JWTVerifier) setError(err error) {
	v.errMu.Lock()
	v.lastErr = err
	v.errMu.Unlock()
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
	s.v.setError(err)
	s.v.log.Warn("JWKS refresh failed; keeping the previous keys", "issuer", s.v.cfg.Name, "error", err)
}

func checkHTTPURL(raw string) error {
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
