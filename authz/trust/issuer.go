package trust

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/trace"

	"github.com/leasegate/leasegate/authz/issuer"
	"github.com/leasegate/leasegate/policy"
	"github.com/leasegate/leasegate/policy/lifetime"
)

// Issuer is one trusted issuer with its clients: the introspection client
// in the introspection modes, the JWT verifier in the jwt modes. Safe for
// concurrent use; Config and LocalHosts never change after New.
type Issuer struct {
	Config     IssuerConfig
	LocalHosts []string // Config.LocalHosts in policy.NormalizeHost's form
	// Lifetime is Config.MaxTokenLifetime, named for error_description.
	Lifetime lifetime.Limit
	// ClockSkew is the issuer's effective clock_skew, which the lifetime
	// policy reads an answer's iat with in every mode.
	ClockSkew time.Duration
	// Introspector and JWT are the issuer's clients, nil outside their
	// modes.
	Introspector *issuer.Introspector
	JWT          *issuer.JWTVerifier

	breaker *breaker
	reached atomic.Bool
	pools   []*http.Transport // the issuer's connection pools, for Close
	id      uint64
}

// issuerIDs numbers the Issuers New makes, so what outlives an engine
// (the lease cache's notes) can name one without keeping it alive.
var issuerIDs atomic.Uint64

// ID is unique to this Issuer within the process: a reload's issuers
// have new ones.
func (is *Issuer) ID() uint64 { return is.id }

// New builds ic's clients. now is the lease clock the JWT verifier and
// the breaker read; ctx bounds the verifier's background JWKS refresh.
func New(ctx context.Context, ic IssuerConfig, now func() time.Time, log *slog.Logger, tp trace.TracerProvider) (*Issuer, error) {
	is := &Issuer{
		Config:    ic,
		Lifetime:  lifetime.Issuer(ic.Name, ic.MaxTokenLifetime),
		ClockSkew: ic.JWT.EffectiveClockSkew(),
		breaker:   newBreaker(ic.BreakerFailures, ic.BreakerOpenFor, now),
		id:        issuerIDs.Add(1),
	}
	for _, h := range ic.LocalHosts {
		n, err := policy.NormalizeLocalHost(h)
		if err != nil {
			return nil, fmt.Errorf("local_hosts: %w", err)
		}
		is.LocalHosts = append(is.LocalHosts, n)
	}
	if ic.wantsIntrospection() {
		c := ic.introspectionConfig()
		if c.Transport == nil {
			pool := issuer.PooledTransport(c.MaxConns)
			is.pools = append(is.pools, pool)
			c.Transport = issuer.TracedTransport(pool, tp, "introspect "+ic.Name)
		}
		var err error
		if is.Introspector, err = issuer.NewIntrospector(c); err != nil {
			return nil, err
		}
	}
	if ic.wantsJWT() {
		c := ic.jwtConfig()
		c.Clock, c.Logger = now, log
		if c.HTTPClient == nil {
			pool := issuer.PooledTransport(4)
			is.pools = append(is.pools, pool)
			c.HTTPClient = &http.Client{Transport: issuer.TracedTransport(pool, tp, "jwks "+ic.Name)}
		}
		var err error
		if is.JWT, err = issuer.NewJWTVerifier(ctx, c); err != nil {
			return nil, err
		}
	}
	if is.Introspector == nil && is.JWT == nil {
		return nil, fmt.Errorf("mode %q is not introspection, jwt or jwt+introspection", ic.Mode)
	}
	return is, nil
}

// Close closes the issuer's idle connections.
func (is *Issuer) Close() {
	for _, p := range is.pools {
		p.CloseIdleConnections()
	}
}

// Reached reports whether the issuer has answered at least once.
func (is *Issuer) Reached() bool { return is.reached.Load() }

// MarkReached records that the issuer answered.
func (is *Issuer) MarkReached() { is.reached.Store(true) }

// BreakerOpen reports whether the issuer's circuit breaker is open (or
// half-open, waiting on its probe): issuer calls are being refused.
func (is *Issuer) BreakerOpen() bool { return is.breaker.isOpen() }

// probeToken is sent to introspection endpoints to see that they answer; it
// is not a real token and its answer (inactive) is ignored.
const probeToken = "leasegate-readiness-probe"

// Probe contacts the issuer; Reached turns true once it has answered.
func (is *Issuer) Probe(ctx context.Context) {
	ok := true
	if is.JWT != nil && !is.JWT.Ready() {
		ok = false
	}
	if is.Introspector != nil {
		_, err := is.Introspector.Introspect(ctx, probeToken)
		var ie *issuer.IssuerError
		if err != nil && (!errors.As(err, &ie) || ie.Status == 0) {
			ok = false
		}
	}
	if ok {
		is.MarkReached()
	}
}

// Longest bounds one validation with is, its clients' own timeouts
// added up: the introspection call and, in the JWT modes, an on-demand
// key fetch before it.
func (is *Issuer) Longest() time.Duration {
	var d time.Duration
	if is.Introspector != nil {
		d += is.Timeout()
	}
	if is.JWT != nil {
		d += is.JWT.FetchTimeout()
	}
	return d
}

// Timeout is the longest one validation with the issuer takes: the
// fleet lock's lifetime and a waiter's patience.
func (is *Issuer) Timeout() time.Duration {
	if t := is.Config.Introspection.Timeout; t > 0 {
		return t
	}
	return 2 * time.Second // issuer.IntrospectionConfig's default
}
