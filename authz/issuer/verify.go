package issuer

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwk"
	"github.com/lestrrat-go/jwx/v2/jws"

	"github.com/leasegate/leasegate/authz/issuer/jwks"
)

const (
	defaultClockSkew          = 60 * time.Second
	defaultRefreshInterval    = 15 * time.Minute
	defaultMinRefetchInterval = 30 * time.Second
	defaultFetchTimeout       = 5 * time.Second
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
	// means the audience is not checked at all; the engine (authz.New)
	// refuses that unless the issuer sets IssuerConfig.AcceptAnyAudience.
	Audiences []string
	// AcceptWLCGAny accepts WLCGAnyAudience in the token's aud as matching.
	AcceptWLCGAny bool
	// ClockSkew, default 60s, lets nbf and iat lie that far in the future.
	// It does not extend exp: see Expired.
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
	// OnRefresh hears every JWKS refresh (discovery included; not one the
	// limiter skips, nor one cut short by ctx): nil when keys were
	// published, else why not. Optional; it must not block.
	OnRefresh func(err error)
}

// JWTVerifier verifies one issuer's JWTs against its JWKS (jwks.Set: the
// key snapshot, its refresh and the refetch limit). It is safe for
// concurrent use.
type JWTVerifier struct {
	cfg  JWTConfig
	aud  audienceRule
	keys *jwks.Set
}

// FetchTimeout is the bound on one key fetch Verify may make on demand.
func (v *JWTVerifier) FetchTimeout() time.Duration { return v.cfg.FetchTimeout }

// NewJWTVerifier validates cfg and starts fetching keys in the background.
// It does not fail when the issuer is unreachable: it keeps retrying until
// ctx is cancelled, and Verify fetches on demand. Cancelling ctx stops all
// background work.
func NewJWTVerifier(ctx context.Context, cfg JWTConfig) (*JWTVerifier, error) {
	if ps := cfg.Validate(); len(ps) > 0 {
		return nil, fmt.Errorf("jwt %s: %w", cfg.Name, joinProblems(ps))
	}
	aud, err := newAudienceRule(cfg.Audiences, cfg.AcceptWLCGAny)
	if err != nil {
		return nil, fmt.Errorf("jwt %s: %w", cfg.Name, err)
	}

	cfg.ClockSkew = cmp.Or(cfg.ClockSkew, defaultClockSkew)
	cfg.RefreshInterval = cmp.Or(cfg.RefreshInterval, defaultRefreshInterval)
	cfg.MinRefetchInterval = cmp.Or(cfg.MinRefetchInterval, defaultMinRefetchInterval)
	cfg.FetchTimeout = cmp.Or(cfg.FetchTimeout, defaultFetchTimeout)
	if cfg.Clock == nil {
		cfg.Clock = time.Now
	}
	keys, err := jwks.New(ctx, jwks.Config{
		Name:               cfg.Name,
		Issuer:             cfg.Issuer,
		URI:                cfg.JWKSURI,
		Clock:              cfg.Clock,
		HTTPClient:         cmp.Or(cfg.HTTPClient, &http.Client{}),
		RefreshInterval:    cfg.RefreshInterval,
		MinRefetchInterval: cfg.MinRefetchInterval,
		FetchTimeout:       cfg.FetchTimeout,
		Logger:             cmp.Or(cfg.Logger, slog.Default()),
		OnRefresh:          cfg.OnRefresh,
	})
	if err != nil {
		return nil, fmt.Errorf("jwt %s: %w", cfg.Name, err)
	}
	return &JWTVerifier{cfg: cfg, aud: aud, keys: keys}, nil
}

// Validate reports every problem NewJWTVerifier would refuse in cfg, each
// with its key, without I/O.
func (cfg JWTConfig) Validate() []Problem {
	var ps []Problem
	add := func(field, msg string) { ps = append(ps, Problem{field, msg}) }
	if cfg.Issuer == "" {
		add("issuer", "issuer is required")
	}
	if cfg.JWKSURI != "" {
		if err := jwks.CheckHTTPURL(cfg.JWKSURI); err != nil {
			add("jwks_uri", fmt.Sprintf("jwks_uri: %v", err))
		}
	} else if cfg.Issuer != "" {
		if err := jwks.CheckHTTPURL(cfg.Issuer); err != nil {
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

// Ready reports whether the JWKS has been fetched successfully at least once.
func (v *JWTVerifier) Ready() bool { return v.keys.Ready() }

// Verify checks token's signature against the issuer's keys and its claims
// (iss, aud, exp, nbf, iat). On success Claims.Active is true. A bad token
// is ErrInvalidToken; no usable keys (JWKS unreachable) is
// ErrIssuerUnavailable.
func (v *JWTVerifier) Verify(ctx context.Context, token string) (Claims, error) {
	payload, err := v.VerifySigned(ctx, token, isAccessTokenType)
	if err != nil {
		return Claims{}, err
	}
	return v.checkClaims(payload)
}

// VerifySigned is Verify up to the claims, for the issuer's other JWTs (logout
// tokens, security event tokens): typ must satisfy typOK; the caller checks the payload.
func (v *JWTVerifier) VerifySigned(ctx context.Context, token string, typOK func(typ string) bool) ([]byte, error) {
	hdr, reason := parseJWSHeader(token, typOK)
	if reason != "" {
		return nil, v.invalid(reason, nil)
	}
	keys, err := v.keysFor(ctx, hdr)
	if err != nil {
		return nil, err
	}
	for _, k := range keys {
		if payload, err := jws.Verify([]byte(token), jws.WithKey(hdr.alg, k), jws.WithCompact()); err == nil {
			return payload, nil
		}
	}
	return nil, v.invalid("signature invalid", nil)
}

// keysFor returns the keys that may have signed a token with hdr: no
// fitting key is a bad token, no verdict from the key set an issuer fault.
func (v *JWTVerifier) keysFor(ctx context.Context, hdr jwsHeader) ([]jwk.Key, error) {
	keys, err := v.keys.Keys(ctx, hdr.kid, hdr.alg)
	var ue *jwks.UnavailableError
	switch {
	case err == nil:
		return keys, nil
	case errors.As(err, &ue):
		return nil, &IssuerError{Issuer: v.cfg.Name, Op: "jwks", Reason: ue.Reason, Err: ue.Err}
	}
	return nil, v.invalid(err.Error(), nil) // jwks.ErrUnknownKey, jwks.ErrKeyMismatch
}

func (v *JWTVerifier) invalid(reason string, cause error) *TokenError {
	return &TokenError{Issuer: v.cfg.Name, Reason: reason, Err: cause}
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
		return Claims{}, v.invalid(refusal, ErrNotAccessToken)
	}
	if c.Issuer != v.cfg.Issuer {
		return Claims{}, v.invalid("issuer not accepted", nil)
	}
	now := v.cfg.Clock()
	skew := v.cfg.ClockSkew
	switch {
	case c.Expiry.IsZero():
		return Claims{}, v.invalid("token has no expiry", nil)
	case Expired(c.Expiry, now):
		return Claims{}, v.invalid("token expired", ErrExpired)
	}
	if why := NotYetValid(c.NotBefore, c.IssuedAt, now, skew); why != "" {
		return Claims{}, v.invalid(why, nil)
	}
	if !v.aud.accepts(c.Audience) {
		return Claims{}, v.invalid("audience not accepted", ErrAudience)
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

// EffectiveClockSkew is the clock_skew Verify applies (the 60s default
// when zero); the engine reads an answer's iat with it in every mode.
func (cfg JWTConfig) EffectiveClockSkew() time.Duration {
	return cmp.Or(cfg.ClockSkew, defaultClockSkew)
}
