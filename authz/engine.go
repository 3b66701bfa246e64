package authz

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
	"golang.org/x/sync/singleflight"

	"github.com/leasegate/leasegate/authz/issuer"
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
	Introspection    issuer.IntrospectionConfig // for the introspection modes
	JWT              issuer.JWTConfig           // for the jwt modes
	// Audiences, when set, must meet the token's aud; AcceptWLCGAny also
	// accepts issuer.WLCGAnyAudience. The one check runs where the token's
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
	// Fleet, when set, shares leases, negative leases and coalescing
	// with the other replicas (SPEC §8); nil is a single replica.
	Fleet *FleetConfig
}

type trustedIssuer struct {
	cfg        IssuerConfig
	localHosts []string // cfg.LocalHosts in policy.NormalizeHost's form
	intro      *issuer.Introspector
	jwt        *issuer.JWTVerifier
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
	fleet    *fleetState // nil: not in fleet mode

	byIss  map[string]*trustedIssuer
	byName map[string]*trustedIssuer
	opaque *trustedIssuer
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
	fs, err := newFleetState(cfg.Fleet)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(ctx)
	e := &Engine{
		fleet:    fs,
		realm:    cfg.Realm,
		policy:   cfg.Policy,
		cache:    cfg.Cache,
		upstream: cfg.Upstream,
		strip:    cfg.StripAuthorization,
		now:      cfg.Now,
		log:      cfg.Logger,
		tracer:   cfg.TracerProvider.Tracer("github.com/leasegate/leasegate/authz"),
		metrics:  cfg.Metrics,
		byIss:    map[string]*trustedIssuer{},
		byName:   map[string]*trustedIssuer{},
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

func (e *Engine) newIssuer(ctx context.Context, ic IssuerConfig, tp trace.TracerProvider) (*trustedIssuer, error) {
	is := &trustedIssuer{cfg: ic, breaker: newBreaker(ic.BreakerFailures, ic.BreakerOpenFor, e.now)}
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
			pool := issuer.PooledTransport(c.MaxConns)
			is.pools = append(is.pools, pool)
			c.Transport = issuer.TracedTransport(pool, tp, "introspect "+ic.Name)
		}
		var err error
		if is.intro, err = issuer.NewIntrospector(c); err != nil {
			return nil, err
		}
	}
	if ic.wantsJWT() {
		c := ic.jwtConfig()
		c.Clock, c.Logger = e.now, e.log
		if c.HTTPClient == nil {
			pool := issuer.PooledTransport(4)
			is.pools = append(is.pools, pool)
			c.HTTPClient = &http.Client{Transport: issuer.TracedTransport(pool, tp, "jwks "+ic.Name)}
		}
		var err error
		if is.jwt, err = issuer.NewJWTVerifier(ctx, c); err != nil {
			return nil, err
		}
	}
	if is.intro == nil && is.jwt == nil {
		return nil, fmt.Errorf("mode %q is not introspection, jwt or jwt+introspection", ic.Mode)
	}
	return is, nil
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
			var ie *issuer.IssuerError
			if err != nil && (!errors.As(err, &ie) || ie.Status == 0) {
				ok = false
			}
		}
		if ok {
			is.reached.Store(true)
		}
	}
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
	_, err := e.RevokeName(issuer, leasecache.ClaimSubject, subject)
	return err
}

// RevokeName voids every lease at the named issuer (by name or iss value)
// whose claim c is value: a subject, a session (sid) or an email (a push
// revocation, SPEC §9). It returns the issuer's name, which the fleet's
// records use.
func (e *Engine) RevokeName(issuer string, c leasecache.Claim, value string) (string, error) {
	is := e.byName[issuer]
	if is == nil {
		is = e.byIss[issuer]
	}
	if is == nil {
		return "", fmt.Errorf("revoke: unknown issuer %q", issuer)
	}
	if value == "" {
		return "", fmt.Errorf("revoke: empty %s", c)
	}
	e.cache.RevokeName(leasecache.NameOf(is.cfg.Name, c, value))
	return is.cfg.Name, nil
}

// Policy is the policy the engine decides with.
func (e *Engine) Policy() *policy.Policy { return e.policy }
