package issuer

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Client authentication methods for the introspection endpoint
// (RFC 6749 §2.3.1).
const (
	AuthClientSecretBasic = "client_secret_basic"
	AuthClientSecretPost  = "client_secret_post"
	AuthNone              = "none"
)

const (
	defaultIntrospectTimeout = 2 * time.Second
	defaultMaxBodyBytes      = 1 << 20
)

// IntrospectionConfig configures one RFC 7662 introspection client.
type IntrospectionConfig struct {
	Name     string // issuer name for errors/metrics
	Endpoint string // absolute http(s) URL
	// Auth is "client_secret_basic" (default when ""), "client_secret_post"
	// or "none" (no credentials sent, for endpoints on a protected network).
	Auth         string
	ClientID     string
	ClientSecret string
	Timeout      time.Duration // per call, on top of the caller's ctx; default 2s
	MaxConns     int           // per-host connection bound, default 64
	// ExpectedIssuer, when non-empty and the answer carries iss, must equal
	// that iss exactly. A mismatch is a verdict on the token (the issuer
	// itself says someone else issued it): ErrInvalidToken.
	ExpectedIssuer string
	// Audiences, when set, must meet an active answer's aud (the same rule
	// as JWTConfig.Audiences); AcceptWLCGAny also accepts WLCGAnyAudience.
	// A mismatch is ErrInvalidToken.
	Audiences     []string
	AcceptWLCGAny bool
	// Transport is optional (tracing, tests). When nil a private
	// PooledTransport(MaxConns) is used; when set, MaxConns is the
	// caller's business.
	Transport    http.RoundTripper
	MaxBodyBytes int64 // answer size cap, default 1 MiB
}

// Introspector asks one issuer whether a token is active (RFC 7662). It is
// safe for concurrent use.
type Introspector struct {
	name         string
	endpoint     string
	auth         string
	clientID     string
	clientSecret string
	timeout      time.Duration
	maxBody      int64
	expectedIss  string
	aud          audienceRule
	client       *http.Client
}

// NewIntrospector validates cfg and builds the client. It does not contact
// the issuer.
func NewIntrospector(cfg IntrospectionConfig) (*Introspector, error) {
	if ps := cfg.Validate(); len(ps) > 0 {
		return nil, fmt.Errorf("introspection %s: %w", cfg.Name, joinProblems(ps))
	}
	aud, err := newAudienceRule(cfg.Audiences, cfg.AcceptWLCGAny)
	if err != nil {
		return nil, fmt.Errorf("introspection %s: %w", cfg.Name, err)
	}
	u, _ := url.Parse(cfg.Endpoint) // Validate parsed it
	auth := cmp.Or(cfg.Auth, AuthClientSecretBasic)

	i := &Introspector{
		name:         cfg.Name,
		endpoint:     u.String(),
		auth:         auth,
		clientID:     cfg.ClientID,
		clientSecret: cfg.ClientSecret,
		timeout:      cmp.Or(cfg.Timeout, defaultIntrospectTimeout),
		maxBody:      cmp.Or(cfg.MaxBodyBytes, defaultMaxBodyBytes),
		expectedIss:  cfg.ExpectedIssuer,
		aud:          aud,
	}
	rt := cfg.Transport
	if rt == nil {
		rt = PooledTransport(cfg.MaxConns)
	}
	i.client = &http.Client{
		Transport: rt,
		// A redirect is an issuer fault: following it would send the token
		// (and maybe our credentials) somewhere we were not configured to.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	return i, nil
}

// Validate reports every problem NewIntrospector would refuse in cfg, each
// with its key, without I/O.
func (cfg IntrospectionConfig) Validate() []Problem {
	var ps []Problem
	add := func(field, msg string) { ps = append(ps, Problem{field, msg}) }
	u, err := url.Parse(cfg.Endpoint)
	switch {
	case cfg.Endpoint == "":
		add("endpoint", "endpoint is required")
	case err != nil:
		add("endpoint", fmt.Sprintf("endpoint: %v", err))
	case u.Scheme != "http" && u.Scheme != "https":
		add("endpoint", fmt.Sprintf("endpoint %q: scheme must be http or https", u.Redacted()))
	case u.Host == "":
		add("endpoint", fmt.Sprintf("endpoint %q: host is missing", u.Redacted()))
	case u.User != nil:
		add("endpoint", fmt.Sprintf("endpoint %q: credentials in the URL are not allowed, use client_id/client_secret", u.Redacted()))
	}

	auth := cmp.Or(cfg.Auth, AuthClientSecretBasic)
	switch auth {
	case AuthClientSecretBasic, AuthClientSecretPost:
		if cfg.ClientID == "" {
			add("client_id", fmt.Sprintf("auth %s needs client_id", auth))
		}
		if cfg.ClientSecret == "" {
			add("client_secret", fmt.Sprintf("auth %s needs client_secret", auth))
		}
	case AuthNone:
		if cfg.ClientSecret != "" {
			add("client_secret", "client_secret is set but auth is none: it would never be sent")
		}
	default:
		add("auth", fmt.Sprintf("auth %q: must be %s, %s or %s", cfg.Auth, AuthClientSecretBasic, AuthClientSecretPost, AuthNone))
	}
	if cfg.Timeout < 0 {
		add("timeout", "timeout must not be negative")
	}
	if cfg.MaxConns < 0 {
		add("max_conns", "max connections must not be negative")
	}
	if cfg.MaxBodyBytes < 0 {
		add("", "max body bytes must not be negative")
	}
	return ps
}

// Introspect asks the issuer about token. An inactive token is
// Claims{Active: false} with a nil error; issuer faults are
// ErrIssuerUnavailable, an iss mismatch is ErrInvalidToken. Introspect does
// not compare exp with the clock: the caller owns time.
func (i *Introspector) Introspect(ctx context.Context, token string) (Claims, error) {
	if token == "" {
		return Claims{}, &TokenError{Issuer: i.name, Reason: "token missing"}
	}
	ctx, cancel := context.WithTimeout(ctx, i.timeout)
	defer cancel()

	form := url.Values{}
	form.Set("token", token)
	form.Set("token_type_hint", "access_token")
	if i.auth == AuthClientSecretPost {
		form.Set("client_id", i.clientID)
		form.Set("client_secret", i.clientSecret)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, i.endpoint, strings.NewReader(form.Encode()))
	if err != nil {
		return Claims{}, i.fault(0, "building request", err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	// Introspection only reads; marking it idempotent (a nil header value
	// is never sent) lets net/http retry it once on a pooled connection the
	// issuer closed, instead of failing after an issuer restart.
	req.Header["Idempotency-Key"] = nil
	if i.auth == AuthClientSecretBasic {
		// RFC 6749 §2.3.1: id and secret are form-urlencoded before Basic.
		req.SetBasicAuth(url.QueryEscape(i.clientID), url.QueryEscape(i.clientSecret))
	}

	resp, err := i.client.Do(req)
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) && ctx.Err() != nil {
			return Claims{}, i.fault(0, fmt.Sprintf("no answer in time (timeout %s)", i.timeout), err)
		}
		return Claims{}, i.fault(0, "request failed", err)
	}
	defer resp.Body.Close()
	return i.readAnswer(resp)
}

// readAnswer reads the issuer's answer: its status, its body (capped) and
// the claims in it, held to the expected issuer and audiences.
func (i *Introspector) readAnswer(resp *http.Response) (Claims, error) {
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		// Drain a little so the connection can be reused; the body is not
		// echoed anywhere (an error page could quote the token).
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 4096))
		e := i.fault(resp.StatusCode, statusReason(resp.StatusCode), nil)
		e.RetryAfter = retryAfter(resp.Header, time.Now())
		return Claims{}, e
	}

	body, err := io.ReadAll(io.LimitReader(resp.Body, i.maxBody+1))
	if err != nil {
		return Claims{}, i.fault(resp.StatusCode, "reading answer", err)
	}
	if int64(len(body)) > i.maxBody {
		return Claims{}, i.fault(resp.StatusCode, fmt.Sprintf("answer exceeds %d bytes", i.maxBody), nil)
	}

	claims, err := parseIntrospectionAnswer(body)
	if te := (*TokenError)(nil); errors.As(err, &te) {
		te.Issuer = i.name
		return Claims{}, te
	}
	if err != nil {
		return Claims{}, i.fault(resp.StatusCode, "malformed answer", err)
	}
	if claims.Active && i.expectedIss != "" && claims.Issuer != "" && claims.Issuer != i.expectedIss {
		return Claims{}, &TokenError{Issuer: i.name, Reason: "token issuer not accepted"}
	}
	if claims.Active && !i.aud.accepts(claims.Audience) {
		return Claims{}, &TokenError{Issuer: i.name, Reason: "audience not accepted", Err: ErrAudience}
	}
	return claims, nil
}

func (i *Introspector) fault(status int, reason string, err error) *IssuerError {
	return &IssuerError{Issuer: i.name, Op: "introspect", Status: status, Reason: reason, Err: err}
}

func statusReason(code int) string {
	switch {
	case code == http.StatusUnauthorized || code == http.StatusForbidden:
		return fmt.Sprintf("issuer rejected our client credentials (HTTP %d)", code)
	case code == http.StatusTooManyRequests:
		return "issuer is rate limiting us (HTTP 429)"
	case code >= 300 && code <= 399:
		return fmt.Sprintf("issuer answered with a redirect (HTTP %d), which is not followed", code)
	case code >= 500:
		return fmt.Sprintf("issuer failed (HTTP %d)", code)
	}
	return fmt.Sprintf("unexpected answer (HTTP %d)", code)
}

// maxRetryAfterHeader is the longest Retry-After believed; anything longer
// reads as absent. (The breaker caps its use further, at maxRetryAfter.)
const maxRetryAfterHeader = 24 * time.Hour

// retryAfter reads an answer's Retry-After (RFC 9110 §10.2.3) in either
// form: delay-seconds, or an HTTP-date. A date counts from the answer's own
// Date when it has one, so the issuer's clock and ours need not agree, and
// from now otherwise. 0 when absent, unreadable, not in the future or over
// a day.
func retryAfter(h http.Header, now time.Time) time.Duration {
	v := strings.TrimSpace(h.Get("Retry-After"))
	if n, err := strconv.Atoi(v); err == nil {
		if n <= 0 || n > int(maxRetryAfterHeader/time.Second) {
			return 0
		}
		return time.Duration(n) * time.Second
	}
	at, err := http.ParseTime(v)
	if err != nil {
		return 0
	}
	if date, err := http.ParseTime(h.Get("Date")); err == nil {
		now = date
	}
	if d := at.Sub(now); d > 0 && d <= maxRetryAfterHeader {
		return d
	}
	return 0
}

// parseIntrospectionAnswer reads an RFC 7662 §2.2 answer. "active" must be
// a JSON boolean; anything else (missing, null, "true") is malformed, never
// read as inactive or active. For an active token the optional members must
// have their RFC types.
func parseIntrospectionAnswer(body []byte) (Claims, error) {
	obj, err := decodeObject(body)
	if err != nil {
		return Claims{}, err
	}
	active, ok := boolMember(obj, "active")
	if !ok {
		return Claims{}, errors.New(`"active" is missing or not a boolean`)
	}
	if !active {
		return Claims{Active: false}, nil
	}
	c, refusal, errs := readClaims(obj)
	c.Active = true
	var e error
	if c.Scope, e = stringMember(obj, "scope"); e != nil {
		errs = append(errs, e)
	}
	if len(errs) > 0 {
		return Claims{}, errors.Join(errs...)
	}
	if refusal != "" {
		// Active, but not an access token (a refresh token): a verdict on
		// the token, not an issuer fault.
		return Claims{}, &TokenError{Reason: refusal, Err: ErrNotAccessToken}
	}
	return c, nil
}
