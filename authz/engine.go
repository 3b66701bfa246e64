package authz

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
	"golang.org/x/sync/singleflight"

	"github.com/leasegate/leasegate/authz/denylog"
	"github.com/leasegate/leasegate/authz/fleetmode"
	"github.com/leasegate/leasegate/authz/recent"
	"github.com/leasegate/leasegate/authz/request"
	"github.com/leasegate/leasegate/authz/trust"
	"github.com/leasegate/leasegate/leasecache"
	"github.com/leasegate/leasegate/policy"
)

// Headers gives the engine read access to a request's headers; authz/request
// reads them.
type Headers = request.Headers

// Request is what the engine needs from an HTTP request, whatever the proxy.
type Request struct {
	Method    string
	Host      string
	Path      string // as received: not decoded, may carry a query
	TierHint  string // Envoy's context_extensions["leasegate.tier"]
	RequestID string // x-request-id, for logs and spans
	Headers   Headers
}

// IssuerConfig is one trusted issuer. authz/trust owns it: its checks
// (trust.ValidateIssuers) and the clients built from it.
type IssuerConfig = trust.IssuerConfig

// Mode is how an issuer's tokens are validated (trust.Mode).
type Mode = trust.Mode

// The modes, as trust names them.
const (
	ModeIntrospection    = trust.ModeIntrospection
	ModeJWT              = trust.ModeJWT
	ModeJWTIntrospection = trust.ModeJWTIntrospection
)

// UpstreamHeaderNames are the header names identity is passed upstream in.
type UpstreamHeaderNames struct {
	Subject, ClientID, Scope, Issuer string
}

// Config is everything an Engine needs.
type Config struct {
	Realm              string
	Policy             *policy.Policy
	Cache              *leasecache.Cache // on Now's clock: a hit is judged at its reading
	Issuers            []IssuerConfig
	Upstream           UpstreamHeaderNames
	StripAuthorization bool
	Now                func() time.Time // lease clock; time.Now when nil
	Logger             *slog.Logger
	TracerProvider     trace.TracerProvider
	Metrics            *Metrics // nil: no metrics
	// DenialLog limits the denial log lines; nil logs every one.
	DenialLog *denylog.Limit
	// Fleet, when set, shares leases, negative leases and coalescing
	// with the other replicas (SPEC §8); nil is a single replica.
	Fleet *fleetmode.Config
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
	denials  *denylog.Limit
	fleet    *fleetmode.Mode                        // nil: not in fleet mode
	views    recent.Map[leasecache.Key, *LeaseView] // of recent hits (view.go)

	byIss  map[string]*trust.Issuer
	byName map[string]*trust.Issuer
	opaque *trust.Issuer
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
	if ps := trust.ValidateIssuers(cfg.Issuers); len(ps) > 0 {
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
		denials:  cfg.DenialLog,
		byIss:    map[string]*trust.Issuer{},
		byName:   map[string]*trust.Issuer{},
		cancel:   cancel,
	}
	var err error
	e.fleet, err = fleetmode.New(cfg.Fleet, fleetmode.Local{
		Cache: e.cache, Tracer: e.tracer, Log: e.log, Now: e.now, OnLookup: e.metrics.FleetLookup,
	})
	if err != nil {
		cancel()
		return nil, err
	}
	for _, ic := range cfg.Issuers {
		if ic.Mode == ModeJWT || ic.Mode == ModeJWTIntrospection {
			ic.JWT.OnRefresh = e.metrics.JWKSRefreshHook(ic.Name, ic.JWT.OnRefresh)
		}
		is, err := trust.New(ctx, ic, e.now, e.log, cfg.TracerProvider)
		if err != nil {
			cancel()
			return nil, fmt.Errorf("issuer %s: %w", ic.Name, err)
		}
		e.byIss[ic.Issuer] = is
		e.byName[ic.Name] = is
		e.localHosts = append(e.localHosts, is.LocalHosts...)
		if ic.DefaultForOpaque {
			e.opaque = is
		}
	}
	for name, is := range e.byName {
		e.metrics.KnowIssuer(name) // only issuers that took effect
		if d := is.Longest(); d >= leasecache.FlightHorizon {
			e.log.LogAttrs(ctx, slog.LevelWarn, "this issuer's validations may outlast the order horizon; those are neither shared nor kept",
				slog.String("issuer", name), slog.Duration("longest", d), slog.Duration("horizon", leasecache.FlightHorizon))
		}
	}
	return e, nil
}

// Close stops background work (JWKS refresh) and closes the issuers' idle
// connections. Checks still running keep their connections; call Close
// once they are done, since a JWKS fetch needs the engine's context.
func (e *Engine) Close() {
	e.cancel()
	for _, is := range e.byName {
		is.Close()
	}
}

// Ready reports whether every issuer has been reached at least once.
func (e *Engine) Ready() bool {
	for _, is := range e.byName {
		if !is.Reached() {
			return false
		}
	}
	return true
}

// Probe contacts every issuer not yet reached; Ready turns true once all
// have answered.
func (e *Engine) Probe(ctx context.Context) {
	for _, is := range e.byName {
		if !is.Reached() {
			is.Probe(ctx)
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
	e.cache.RevokeName(leasecache.NameOf(is.Config.Name, c, value))
	return is.Config.Name, nil
}

// Policy is the policy the engine decides with.
func (e *Engine) Policy() *policy.Policy { return e.policy }
