package authz

import (
	"cmp"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"runtime"
	"runtime/debug"
	"strings"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
	"golang.org/x/sync/singleflight"

	"github.com/leasegate/leasegate/leasecache"
	"github.com/leasegate/leasegate/policy"
)

// Headers gives the engine read access to a request's headers.
type Headers interface {
	// Get returns the value of the header with the given lower-case name
	// and how many fields of that name the request carried.
	Get(name string) (value string, n int)
}

// Request is what the engine needs from an HTTP request, whatever the proxy.
type Request struct {
	Method    string
	Host      string
	Path      string // as received: not decoded, may carry a query
	TierHint  string // Envoy's context_extensions["leasegate.tier"]
	RequestID string // x-request-id, for logs and spans
	Headers   Headers
}

// Mode is how an issuer's tokens are validated.
type Mode string

const (
	ModeIntrospection    Mode = "introspection"
	ModeJWT              Mode = "jwt"
	ModeJWTIntrospection Mode = "jwt+introspection"
)

// IssuerConfig is one trusted issuer.
type IssuerConfig struct {
	Name             string
	Issuer           string // the exact iss value
	Mode             Mode
	DefaultForOpaque bool
	Introspection    IntrospectionConfig // for the introspection modes
	JWT              JWTConfig           // for the jwt modes
	// Audiences, when set, must meet the token's aud; AcceptWLCGAny also
	// accepts WLCGAnyAudience. The one check runs where the token's
	// claims are first read: on the signed JWT in the jwt modes (before
	// the issuer is asked), on the answer in introspection mode. When
	// Audiences is nil, JWT.Audiences is used; JWT.AcceptWLCGAny counts too.
	// The jwt modes require them (RFC 9068 §4) unless AcceptAnyAudience.
	Audiences     []string
	AcceptWLCGAny bool
	// AcceptAnyAudience is the explicit opt-out for a jwt issuer without
	// Audiences; only then is "no audiences" read as "any audience".
	AcceptAnyAudience bool

	BasePath string // storage scope paths are relative to it
	// LocalHosts are other names of the storage this issuer's tokens are
	// used on: a Destination or Source on one is local (SPEC §5).
	LocalHosts []string
	// BreakerFailures consecutive issuer faults open the circuit for
	// BreakerOpenFor.
	BreakerFailures int
	BreakerOpenFor  time.Duration
}

// UpstreamHeaderNames are the header names identity is passed upstream in.
type UpstreamHeaderNames struct {
	Subject, ClientID, Scope, Issuer string
}

// Config is everything an Engine needs.
type Config struct {
	Realm              string
	Policy             *policy.Policy
	Cache              *leasecache.Cache
	Issuers            []IssuerConfig
	Upstream           UpstreamHeaderNames
	StripAuthorization bool
	Now                func() time.Time // lease clock; time.Now when nil
	Logger             *slog.Logger
	TracerProvider     trace.TracerProvider
	Metrics            *Metrics // nil: no metrics
}

type issuer struct {
	cfg        IssuerConfig
	localHosts []string // cfg.LocalHosts in policy.NormalizeHost's form
	intro      *Introspector
	jwt        *JWTVerifier
	breaker    *breaker
	reached    atomic.Bool
	pools      []*http.Transport // the issuer's connection pools, for Close
}

// Engine decides requests. Safe for concurrent use.
type Engine struct {
	realm    string
	policy   *policy.Policy
	cache    *leasecache.Cache
	upstream UpstreamHeaderNames
	strip    bool
	now      func() time.Time
	log      *slog.Logger
	tracer   trace.Tracer
	metrics  *Metrics

	byIss  map[string]*issuer
	byName map[string]*issuer
	opaque *issuer
	// localHosts are every issuer's local_hosts: whether a Destination or
	// Source names this server is needed before the lease lookup, when
	// the token's issuer is not known yet (policy.AddTargets).
	localHosts []string
	group      singleflight.Group
	cancel     context.CancelFunc
}

// New builds an Engine and its issuer clients. ctx bounds the background
// JWKS refresh; Close stops it too.
func New(ctx context.Context, cfg Config) (*Engine, error) {
	if cfg.Policy == nil || cfg.Cache == nil {
		return nil, errors.New("authz: Policy and Cache are required")
	}
	if ps := ValidateIssuers(cfg.Issuers); len(ps) > 0 {
		errs := make([]error, len(ps))
		for i, p := range ps {
			errs[i] = p
		}
		return nil, fmt.Errorf("authz: %w", errors.Join(errs...))
	}
	// A nameless identity header could not overwrite what a client sent.
	u := &cfg.Upstream
	u.Subject = cmp.Or(u.Subject, "x-auth-subject")
	u.ClientID = cmp.Or(u.ClientID, "x-auth-client-id")
	u.Scope = cmp.Or(u.Scope, "x-auth-scope")
	u.Issuer = cmp.Or(u.Issuer, "x-auth-issuer")
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.TracerProvider == nil {
		cfg.TracerProvider = noop.NewTracerProvider()
	}
	ctx, cancel := context.WithCancel(ctx)
	e := &Engine{
		realm:    cfg.Realm,
		policy:   cfg.Policy,
		cache:    cfg.Cache,
		upstream: cfg.Upstream,
		strip:    cfg.StripAuthorization,
		now:      cfg.Now,
		log:      cfg.Logger,
		tracer:   cfg.TracerProvider.Tracer("github.com/leasegate/leasegate/authz"),
		metrics:  cfg.Metrics,
		byIss:    map[string]*issuer{},
		byName:   map[string]*issuer{},
		cancel:   cancel,
	}
	for _, ic := range cfg.Issuers {
		is, err := e.newIssuer(ctx, ic, cfg.TracerProvider)
		if err != nil {
			cancel()
			return nil, fmt.Errorf("issuer %s: %w", ic.Name, err)
		}
		e.byIss[ic.Issuer] = is
		e.byName[ic.Name] = is
		e.localHosts = append(e.localHosts, is.localHosts...)
		if ic.DefaultForOpaque {
			e.opaque = is
		}
	}
	return e, nil
}

func (e *Engine) newIssuer(ctx context.Context, ic IssuerConfig, tp trace.TracerProvider) (*issuer, error) {
	is := &issuer{cfg: ic, breaker: newBreaker(ic.BreakerFailures, ic.BreakerOpenFor, e.now)}
	for _, h := range ic.LocalHosts {
		n, err := policy.NormalizeLocalHost(h)
		if err != nil {
			return nil, fmt.Errorf("local_hosts: %w", err)
		}
		is.localHosts = append(is.localHosts, n)
	}
	if ic.wantsIntrospection() {
		c := ic.introspectionConfig()
		if c.Transport == nil {
			pool := pooledTransport(c.MaxConns)
			is.pools = append(is.pools, pool)
			c.Transport = tracedTransport(pool, tp, "introspect "+ic.Name)
		}
		var err error
		if is.intro, err = NewIntrospector(c); err != nil {
			return nil, err
		}
	}
	if ic.wantsJWT() {
		c := ic.jwtConfig()
		c.Clock, c.Logger = e.now, e.log
		if c.HTTPClient == nil {
			pool := pooledTransport(4)
			is.pools = append(is.pools, pool)
			c.HTTPClient = &http.Client{Transport: tracedTransport(pool, tp, "jwks "+ic.Name)}
		}
		var err error
		if is.jwt, err = NewJWTVerifier(ctx, c); err != nil {
			return nil, err
		}
	}
	if is.intro == nil && is.jwt == nil {
		return nil, fmt.Errorf("mode %q is not introspection, jwt or jwt+introspection", ic.Mode)
	}
	return is, nil
}

func pooledTransport(maxConns int) *http.Transport {
	if maxConns <= 0 {
		maxConns = 64
	}
	return &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxConnsPerHost:       maxConns,
		MaxIdleConnsPerHost:   maxConns,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   5 * time.Second,
		ResponseHeaderTimeout: 30 * time.Second,
		ForceAttemptHTTP2:     true,
	}
}

// tracedTransport gives each issuer call an HTTP client span named name.
func tracedTransport(rt http.RoundTripper, tp trace.TracerProvider, name string) http.RoundTripper {
	return otelhttp.NewTransport(rt,
		otelhttp.WithTracerProvider(tp),
		otelhttp.WithSpanNameFormatter(func(string, *http.Request) string { return name }))
}

// Close stops background work (JWKS refresh) and closes the issuers' idle
// connections. Checks still running keep their connections; call Close
// once they are done, since a JWKS fetch needs the engine's context.
func (e *Engine) Close() {
	e.cancel()
	for _, is := range e.byName {
		for _, p := range is.pools {
			p.CloseIdleConnections()
		}
	}
}

// Ready reports whether every issuer has been reached at least once.
func (e *Engine) Ready() bool {
	for _, is := range e.byName {
		if !is.reached.Load() {
			return false
		}
	}
	return true
}

// probeToken is sent to introspection endpoints to see that they answer; it
// is not a real token and its answer (inactive) is ignored.
const probeToken = "leasegate-readiness-probe"

// Probe contacts every issuer not yet reached; Ready turns true once all
// have answered.
func (e *Engine) Probe(ctx context.Context) {
	for _, is := range e.byName {
		if is.reached.Load() {
			continue
		}
		ok := true
		if is.jwt != nil && !is.jwt.Ready() {
			ok = false
		}
		if is.intro != nil {
			_, err := is.intro.Introspect(ctx, probeToken)
			var ie *IssuerError
			if err != nil && (!errors.As(err, &ie) || ie.Status == 0) {
				ok = false
			}
		}
		if ok {
			is.reached.Store(true)
		}
	}
}

// Check decides r. It never returns an allow because of an error: faults
// become 503 decisions, and a cancelled ctx fails closed.
func (e *Engine) Check(ctx context.Context, r *Request) Decision {
	start := time.Now()
	d := e.decide(ctx, r)
	e.metrics.observeDecision(&d, time.Since(start))
	e.annotate(ctx, r, &d)
	e.logDecision(ctx, r, &d)
	return d
}

func (e *Engine) decide(ctx context.Context, r *Request) Decision {
	var d Decision
	if ctx.Err() != nil {
		return e.unavailable(d, ReasonCanceled, "request canceled", 0)
	}
	if r == nil || r.Method == "" {
		d.Lease = LeaseNone
		return e.deny(d, http.StatusBadRequest, ReasonMalformed, ErrCodeInvalidRequest, "request has no method", "")
	}
	nr, problem := normalize(r)
	if problem != "" {
		d.Lease = LeaseNone
		return e.deny(d, http.StatusBadRequest, ReasonMalformed, ErrCodeInvalidRequest, problem, "")
	}
	m := e.policy.Classify(nr.req, r.TierHint)
	// A MOVE or COPY also touches its Destination or Source: on this
	// server, the target's routes add their require: and may shorten the
	// window, whatever the method (SPEC §1: no spelling may select a
	// weaker route).
	e.policy.AddTargets(&m, nr.destination, nr.source, e.localHosts)
	d.Tier = m.Tier.Name
	if m.HintUnknown {
		e.log.LogAttrs(ctx, slog.LevelWarn, "unknown leasegate.tier from the proxy; using the strictest tier",
			slog.String("hint", clip(r.TierHint)), slog.String("tier", d.Tier))
	}
	d.Lease = LeaseNone

	var auth string
	var n int
	if r.Headers != nil {
		auth, n = r.Headers.Get("authorization")
	}
	tok, tokProblem := extractToken(auth, n)
	if tokProblem != "" {
		return e.deny(d, http.StatusBadRequest, ReasonMalformed, ErrCodeInvalidRequest, string(tokProblem), "")
	}
	if tok == "" {
		return e.deny(d, http.StatusUnauthorized, ReasonNoToken, "", "", "")
	}

	key := leasecache.KeyOf(tok)
	d.TokenID = key.Prefix()
	lease, outcome := e.lookup(ctx, key, m.Window)
	switch outcome {
	case leasecache.Hit:
		if is := e.byName[lease.Issuer]; is != nil {
			d.Lease = LeaseHit
			return e.allow(d, r, m, is, &lease)
		}
	case leasecache.Negative:
		d.Lease = LeaseNegative
		return e.deny(d, http.StatusUnauthorized, ReasonNegative, ErrCodeInvalidToken, "token is not active", "")
	}
	d.Lease = LeaseMiss
	return e.validate(ctx, d, r, m, tok, key, lease, outcome == leasecache.WindowClosed)
}

// lookup is the lease cache read, with its own span when the request is
// traced. The span's leasegate.lease uses the Check span's words: a lease
// whose window has closed is a "miss" there too.
func (e *Engine) lookup(ctx context.Context, key leasecache.Key, w time.Duration) (leasecache.Lease, leasecache.Outcome) {
	if !trace.SpanFromContext(ctx).IsRecording() {
		return e.cache.Lookup(key, w)
	}
	// The span has no children: Cache.Lookup is in memory and takes no
	// ctx. Work that can have them (a fleet-store read) must use the ctx
	// Start returns.
	_, span := e.tracer.Start(ctx, "lease.lookup")
	l, o := e.cache.Lookup(key, w)
	span.SetAttributes(attribute.String("leasegate.lease", string(lookupLease(o))), attribute.Int64("leasegate.window_ms", w.Milliseconds()))
	span.End()
	return l, o
}

// lookupLease names a lookup outcome as Decision.Lease does.
func lookupLease(o leasecache.Outcome) LeaseOutcome {
	switch o {
	case leasecache.Hit:
		return LeaseHit
	case leasecache.Negative:
		return LeaseNegative
	}
	return LeaseMiss
}

// answerMargin is how long before the caller's deadline a still-pending
// validation is answered with 503 (at most a fifth of the time left).
const answerMargin = 50 * time.Millisecond

// result is what one validation with an issuer established.
type result struct {
	lease      leasecache.Lease
	active     bool
	reason     Reason // why not active
	desc       string
	err        error // issuer fault
	retryAfter time.Duration
}

func (e *Engine) validate(ctx context.Context, d Decision, r *Request, m policy.Match, tok string, key leasecache.Key, old leasecache.Lease, haveOld bool) Decision {
	is := e.pickIssuer(tok)
	if is == nil {
		return e.deny(d, http.StatusUnauthorized, ReasonUnknownIssuer, ErrCodeInvalidToken, "token issuer is not accepted", "")
	}
	d.Issuer = is.cfg.Name

	// SPEC §1: "A request that arrives after an admin revoke of its token
	// (or subject) is never answered from an issuer call that started
	// before that revoke". Every revoke advances the cache's generation,
	// so a request that arrives after one cannot join an older flight.
	// The generation lives in the cache, which outlives engine rebuilds.
	gen := e.cache.Generation()
	leader := false
	ch := e.group.DoChan(flightKey(is.cfg.Name, key, gen), func() (any, error) {
		leader = true
		// The shared call outlives any one caller: a caller with a short
		// deadline gets its 503 on time while the answer still fills the
		// lease for the next request. The issuer client applies its timeout.
		return e.validateWithIssuer(context.WithoutCancel(ctx), is, tok, key, gen), nil
	})
	// Answer a little before the caller's deadline: a 503 that arrives after
	// it is a gRPC DEADLINE_EXCEEDED to Envoy, which then applies
	// failure_mode_allow instead of our decision.
	var early <-chan time.Time
	if dl, ok := ctx.Deadline(); ok {
		rem := time.Until(dl)
		t := time.NewTimer(rem - min(answerMargin, rem/5))
		defer t.Stop()
		early = t.C
	}
	var res *result
	select {
	case v := <-ch:
		if res, _ = v.Val.(*result); res == nil {
			res = &result{err: fmt.Errorf("validate with %s: no result: %w", is.cfg.Name, ErrIssuerUnavailable)}
		}
		if !leader {
			e.metrics.observeCoalesced()
		}
	case <-early:
		return e.unavailable(d, ReasonCanceled, "issuer did not answer in time", time.Second)
	case <-ctx.Done():
		return e.unavailable(d, ReasonCanceled, "issuer did not answer in time", time.Second)
	}

	switch {
	case res.err != nil:
		// m.Window, not the tier's: a route that sets window 0 gets no stale
		// allowance either (every request there must be validated fresh),
		// nor does a MOVE or COPY into one. m.StaleIfError is the smaller
		// of the request's and a local target's tier's.
		stale := m.StaleIfError
		if haveOld && stale > 0 && m.Window > 0 && old.Issuer == is.cfg.Name {
			// A validation "in the future" (the clock stepped back since the
			// lookup) has no age to judge: SPEC §1, never a longer allowance.
			now := e.now()
			if age := now.Sub(old.ValidatedAt); age >= 0 && age < stale && !expired(old.Expiry, now) {
				d.Lease = LeaseStale
				return e.allow(d, r, m, is, &old)
			}
		}
		return e.unavailable(d, ReasonIssuerUnavailable, "token issuer is unavailable", res.retryAfter)
	case !res.active:
		return e.deny(d, http.StatusUnauthorized, res.reason, ErrCodeInvalidToken, res.desc, "")
	}
	return e.allow(d, r, m, is, &res.lease)
}

// flightKey coalesces validations of one token at one issuer that started
// at the same revocation generation.
func flightKey(issuer string, key leasecache.Key, gen uint64) string {
	b := make([]byte, 0, len(issuer)+1+len(key)+8)
	b = append(b, issuer...)
	b = append(b, 0)
	b = append(b, key[:]...)
	b = binary.LittleEndian.AppendUint64(b, gen)
	return string(b)
}

// pickIssuer: a JWT by its iss claim, an opaque token to default_for_opaque.
func (e *Engine) pickIssuer(tok string) *issuer {
	if iss, ok := PeekIssuer(tok); ok {
		return e.byIss[iss]
	}
	return e.opaque
}

// validateWithIssuer runs once per coalesced flight; gen is the cache's
// revocation generation read before it started.
func (e *Engine) validateWithIssuer(ctx context.Context, is *issuer, tok string, key leasecache.Key, gen uint64) (res *result) {
	name := is.cfg.Name
	start := time.Now()
	// singleflight re-panics a DoChan panic on a goroutine of its own, past
	// every recover, and the process dies. A panic here is an issuer fault
	// instead: 503 for every caller of the flight, counted, and logged
	// without its value (which could quote the token).
	defer func() {
		if p := recover(); p != nil {
			e.metrics.observeIssuer(name, "error", time.Since(start))
			attrs := []slog.Attr{
				slog.String("issuer", name),
				slog.String("token_id", key.Prefix()),
				slog.String("panic_type", fmt.Sprintf("%T", p)),
				slog.String("stack", clipStack(debug.Stack())),
			}
			if re, ok := p.(runtime.Error); ok {
				attrs = append(attrs, slog.String("panic", re.Error()))
			}
			e.log.LogAttrs(ctx, slog.LevelError, "panic while validating a token; answered as an issuer fault", attrs...)
			res = &result{err: fmt.Errorf("validate with %s: panic (%T): %w", name, p, ErrIssuerUnavailable), retryAfter: time.Second}
		}
	}()
	validatedAt := e.now()
	claims, err := e.verify(ctx, is, tok)
	took := time.Since(start)

	var open *circuitOpenError
	var ie *IssuerError
	var te *TokenError
	switch {
	case errors.As(err, &open):
		e.metrics.observeIssuer(name, "circuit_open", 0)
		return &result{err: err, retryAfter: open.wait}
	case errors.As(err, &te) || (err != nil && errors.Is(err, ErrInvalidToken)):
		e.metrics.observeIssuer(name, "invalid", took)
		e.storeNegative(ctx, key, gen)
		desc := "token is invalid"
		if te != nil {
			desc = te.Reason
		}
		return &result{reason: tokenReason(err), desc: desc}
	case err != nil:
		retry := time.Duration(0)
		if errors.As(err, &ie) {
			retry = ie.RetryAfter
			if ie.Status != 0 {
				is.reached.Store(true)
			}
		}
		e.metrics.observeIssuer(name, "error", took)
		e.log.LogAttrs(ctx, slog.LevelWarn, "issuer fault", slog.String("issuer", name), slog.String("token_id", key.Prefix()), slog.String("error", err.Error()))
		return &result{err: err, retryAfter: max(retry, time.Second)}
	}
	is.reached.Store(true)
	if !claims.Active {
		e.metrics.observeIssuer(name, "inactive", took)
		e.storeNegative(ctx, key, gen)
		return &result{reason: ReasonInactive, desc: "token is not active"}
	}
	if expired(claims.Expiry, validatedAt) {
		e.metrics.observeIssuer(name, "inactive", took)
		e.storeNegative(ctx, key, gen)
		return &result{reason: ReasonExpired, desc: "token expired"}
	}
	e.metrics.observeIssuer(name, "active", took)
	l := leasecache.Lease{
		ValidatedAt: validatedAt,
		Expiry:      claims.Expiry,
		Subject:     claims.Subject,
		ClientID:    claims.ClientID,
		Scope:       claims.Scope,
		Issuer:      name,
		Audience:    strings.Join(claims.Audience, " "),
		WLCGVersion: claims.WLCGVersion,
		Gen:         gen,
	}
	// An admin revoke that landed during the call wins: the cache refuses
	// this older answer. The callers of this flight, who all arrived
	// before the revoke, get it; the next request asks the issuer again.
	switch err := e.cache.Store(key, l); {
	case errors.Is(err, leasecache.ErrRevokedSince):
		e.log.LogAttrs(ctx, slog.LevelDebug, "lease not kept: revoked during validation", slog.String("issuer", name), slog.String("token_id", key.Prefix()))
	case err != nil:
		// Not fatal: the decision stands, the next request asks again.
		e.log.LogAttrs(ctx, slog.LevelWarn, "lease not stored", slog.String("issuer", name), slog.String("error", err.Error()))
	}
	return &result{lease: l, active: true}
}

// storeNegative remembers a refusal; a revoke since gen drops it.
func (e *Engine) storeNegative(ctx context.Context, key leasecache.Key, gen uint64) {
	if err := e.cache.StoreNegative(key, gen); err != nil && !errors.Is(err, leasecache.ErrRevokedSince) {
		e.log.LogAttrs(ctx, slog.LevelWarn, "negative lease not stored", slog.String("token_id", key.Prefix()), slog.String("error", err.Error()))
	}
}

// tokenReason is the Reason for a refusal the issuer clients reported.
func tokenReason(err error) Reason {
	switch {
	case errors.Is(err, errExpired):
		return ReasonExpired
	case errors.Is(err, errNotAccessToken):
		return ReasonNotAccessToken
	case errors.Is(err, errAudience):
		return ReasonAudience
	}
	return ReasonInvalidToken
}

// verify asks the issuer in its mode. jwt+introspection verifies locally
// first, so forged, expired or foreign tokens never reach the issuer.
// Local verification runs before and outside the circuit breaker: SPEC §2,
// "A token refused locally (forged, expired, wrong audience) neither
// resets nor trips it, and is refused with 401 even while the breaker is
// open". JWKS fetches are not breaker calls either: the verifier already
// bounds them (one on-demand fetch per MinRefetchInterval), and an open
// breaker must not stop tokens whose keys are known.
func (e *Engine) verify(ctx context.Context, is *issuer, tok string) (Claims, error) {
	var local Claims
	if is.jwt != nil {
		c, err := is.jwt.Verify(ctx, tok)
		if err != nil || is.intro == nil {
			return c, err
		}
		local = c
	}
	c, err := e.introspect(ctx, is, tok)
	if err != nil || !c.Active || is.jwt == nil {
		return c, err
	}
	// Both agree the token is good; the signed claims fill what the
	// introspection answer left out.
	c.Subject = cmp.Or(c.Subject, local.Subject)
	c.ClientID = cmp.Or(c.ClientID, local.ClientID)
	c.Scope = cmp.Or(c.Scope, local.Scope)
	c.WLCGVersion = cmp.Or(c.WLCGVersion, local.WLCGVersion)
	if c.Expiry.IsZero() || (!local.Expiry.IsZero() && local.Expiry.Before(c.Expiry)) {
		c.Expiry = local.Expiry
	}
	if len(c.Audience) == 0 {
		c.Audience = local.Audience
	}
	return c, nil
}

// circuitOpenError: the breaker refused the issuer call.
type circuitOpenError struct {
	issuer string
	wait   time.Duration
}

func (e *circuitOpenError) Error() string {
	return fmt.Sprintf("validate with %s: circuit open", e.issuer)
}

func (e *circuitOpenError) Unwrap() error { return ErrIssuerUnavailable }

// introspect is the one issuer call the circuit breaker wraps (SPEC §2:
// "The circuit breaker counts issuer calls only"). An answer about the
// token, whatever it says, is a success; no usable answer is a failure.
func (e *Engine) introspect(ctx context.Context, is *issuer, tok string) (Claims, error) {
	if ok, wait := is.breaker.allow(); !ok {
		return Claims{}, &circuitOpenError{issuer: is.cfg.Name, wait: wait}
	}
	answered := false
	defer func() {
		// A panic in the call is a failed call; a half-open probe that
		// never reported would keep the breaker refusing forever.
		if !answered {
			is.breaker.failure(0)
		}
	}()
	c, err := is.intro.Introspect(ctx, tok)
	answered = true
	var ie *IssuerError
	switch {
	case err == nil, errors.Is(err, ErrInvalidToken):
		is.breaker.success()
	case errors.As(err, &ie):
		is.breaker.failure(ie.RetryAfter)
	default:
		is.breaker.failure(0)
	}
	return c, err
}

// allow applies the storage rules of every matching route, then allows with
// identity. SPEC §1: "every matching route's require: ... applies", so a
// route that only tightens the tier cannot switch off a broader route's
// scope check, and two profiles required must both pass. m.Require also
// holds the requirements of a local Destination's or Source's routes
// (policy.AddTargets), and AuthorizeStorage checks both paths of a MOVE or
// a local COPY under each profile; m.LocalHosts carries those routes'
// local_hosts, so it finds no target local that AddTargets found remote.
func (e *Engine) allow(d Decision, r *Request, m policy.Match, is *issuer, l *leasecache.Lease) Decision {
	d.Issuer = is.cfg.Name
	d.Identity = Identity{Subject: l.Subject, ClientID: l.ClientID, Scope: l.Scope, Issuer: is.cfg.Issuer}
	if m.Require != 0 {
		// The same normalised request the routes matched; decide refused
		// repeated fields, so each has one value.
		sr := policy.StorageRequest{Request: m.Request, RouteLocalHosts: m.LocalHosts, IssuerLocalHosts: is.localHosts}
		if r.Headers != nil {
			sr.Destination, _ = r.Headers.Get("destination")
			sr.Source, _ = r.Headers.Get("source")
			sr.IfNoneMatch, _ = r.Headers.Get("if-none-match")
			sr.Overwrite, _ = r.Headers.Get("overwrite")
		}
		for profile := range m.Require.All() {
			if sd := policy.AuthorizeStorage(profile, sr, l.Scope, is.cfg.BasePath, l.WLCGVersion); !sd.Allow {
				return e.denyStorage(d, sd)
			}
		}
	}
	d.Allow = true
	d.Status = http.StatusOK
	d.Reason = ReasonAllowed
	if d.Lease == LeaseStale {
		d.Reason = ReasonStale
	}
	d.Headers = []Header{
		{e.upstream.Subject, l.Subject},
		{e.upstream.ClientID, l.ClientID},
		{e.upstream.Scope, l.Scope},
		{e.upstream.Issuer, is.cfg.Issuer},
	}
	for _, h := range d.Headers {
		if !headerSafe(h.Value) {
			// A claim with CR/LF/NUL or of absurd size would break or
			// inject upstream headers; refuse the token instead.
			d.Headers = nil
			return e.deny(d, http.StatusUnauthorized, ReasonInvalidToken, ErrCodeInvalidToken, "token claims cannot be passed upstream", "")
		}
	}
	d.StripAuthorization = e.strip
	return d
}

// denyStorage turns a storage denial into the engine's.
func (e *Engine) denyStorage(d Decision, sd policy.StorageDecision) Decision {
	reason := ReasonScope
	switch sd.Status {
	case http.StatusBadRequest:
		reason = ReasonMalformed
	case http.StatusUnauthorized:
		reason = ReasonInvalidToken
	}
	return e.deny(d, sd.Status, reason, sd.Error, sd.Description, sd.Scope)
}

// maxHeaderValue bounds an identity header value.
const maxHeaderValue = 16 << 10

func headerSafe(v string) bool {
	if len(v) > maxHeaderValue {
		return false
	}
	for i := 0; i < len(v); i++ {
		if c := v[i]; c < 0x20 && c != '\t' || c == 0x7f {
			return false
		}
	}
	return true
}

func (e *Engine) deny(d Decision, status int, reason Reason, code, desc, scope string) Decision {
	d.Allow = false
	d.Status = status
	d.Reason = reason
	d.Error = code
	d.Description = desc
	d.Scope = scope
	d.Challenge = challenge(e.realm, code, desc, scope)
	d.Identity = Identity{}
	return d
}

func (e *Engine) unavailable(d Decision, reason Reason, desc string, retry time.Duration) Decision {
	d.Allow = false
	d.Status = http.StatusServiceUnavailable
	d.Reason = reason
	d.Description = desc
	d.RetryAfter = max(retry, time.Second)
	if d.Lease == "" {
		d.Lease = LeaseNone
	}
	d.Identity = Identity{}
	return d
}

// annotate puts the decision on the request's span (the gRPC or HTTP server
// span). Never the token.
func (e *Engine) annotate(ctx context.Context, r *Request, d *Decision) {
	span := trace.SpanFromContext(ctx)
	if !span.IsRecording() {
		return
	}
	attrs := []attribute.KeyValue{
		attribute.String("leasegate.tier", d.Tier),
		attribute.String("leasegate.lease", string(d.Lease)),
		attribute.String("leasegate.decision", decisionLabel(d)),
		attribute.String("leasegate.reason", string(d.Reason)),
		attribute.String("leasegate.issuer", d.Issuer),
		attribute.Int("leasegate.status", d.Status),
	}
	if r != nil {
		attrs = append(attrs, attribute.String("http.request.method", r.Method))
		if r.RequestID != "" {
			attrs = append(attrs, attribute.String("leasegate.request_id", clip(r.RequestID)))
		}
	}
	span.SetAttributes(attrs...)
}

func (e *Engine) logDecision(ctx context.Context, r *Request, d *Decision) {
	level := slog.LevelInfo
	msg := "denied"
	if d.Allow {
		level, msg = slog.LevelDebug, "allowed"
	}
	if !e.log.Enabled(ctx, level) {
		return
	}
	attrs := []slog.Attr{
		slog.String("reason", string(d.Reason)),
		slog.Int("status", d.Status),
		slog.String("tier", d.Tier),
		slog.String("lease", string(d.Lease)),
		slog.String("issuer", d.Issuer),
		slog.String("token_id", d.TokenID),
	}
	if d.Description != "" {
		attrs = append(attrs, slog.String("description", d.Description))
	}
	if r != nil {
		attrs = append(attrs, slog.String("method", clip(r.Method)), slog.String("request_id", clip(r.RequestID)))
	}
	e.log.LogAttrs(ctx, level, msg, attrs...)
}

// clipStack bounds a logged stack trace. Arguments appear in it as words
// (pointers, lengths), never as string contents.
func clipStack(b []byte) string {
	const maxStack = 8 << 10
	if len(b) > maxStack {
		return string(b[:maxStack]) + "…"
	}
	return string(b)
}

// clip bounds client-controlled strings in logs and spans.
func clip(s string) string {
	const maxLogged = 128
	if len(s) > maxLogged {
		return s[:maxLogged] + "…"
	}
	return s
}

// Revoke evicts a token's lease (admin revoke); the next request with it is
// validated with the issuer, and no validation in flight — in this engine
// or another sharing the cache — can store a lease from before it.
func (e *Engine) Revoke(key leasecache.Key) bool {
	return e.cache.Revoke(key)
}

// RevokeSubject voids every lease of subject at the named issuer (by name
// or iss value).
func (e *Engine) RevokeSubject(issuer, subject string) error {
	is := e.byName[issuer]
	if is == nil {
		is = e.byIss[issuer]
	}
	if is == nil {
		return fmt.Errorf("revoke: unknown issuer %q", issuer)
	}
	e.cache.RevokeSubject(is.cfg.Name, subject)
	return nil
}

// Policy is the policy the engine decides with.
func (e *Engine) Policy() *policy.Policy { return e.policy }
