package config

import (
	"cmp"
	"time"

	"github.com/leasegate/leasegate/authz"
	"github.com/leasegate/leasegate/authz/fleetmode"
	"github.com/leasegate/leasegate/authz/issuer"
	"github.com/leasegate/leasegate/leasecache"
	"github.com/leasegate/leasegate/leasecache/fleet"
	"github.com/leasegate/leasegate/policy"
)

// Defaults of the settings the server owns: listeners, realm, logging,
// start-up and drain.
const (
	defaultGRPC       = ":9001"
	defaultAdmin      = "127.0.0.1:9191"
	defaultMetrics    = ":9190"
	defaultHTTPMode   = "envoy"
	defaultRealm      = "leasegate"
	defaultLogLevel   = "info"
	defaultLogFormat  = "json"
	defaultStartGrace = 30 * time.Second
	defaultDrain      = 15 * time.Second
	defaultMaxStreams = 1024
	defaultSocketMode = "0660"
)

// Issuer defaults. authz.New defaults a zero Introspection.Timeout,
// Introspection.MaxConns and JWT.ClockSkew to these same values, and
// UpstreamHeaderNames to the header names below, but exports none of
// them; the copies are here so that GET /config and the flight bound
// (generation.go) see the effective values. They go when authz exports
// its defaults (issue 18 item 2). Mode, base path and breaker have no
// authz default: these are the only ones.
const (
	defaultIssuerTimeout = 2 * time.Second  // authz: defaultIntrospectTimeout
	defaultMaxConns      = 64               // authz: defaultMaxConns
	defaultClockSkew     = 60 * time.Second // authz: defaultClockSkew
	defaultBasePath      = "/"
	defaultBreakerFails  = 5
	defaultBreakerOpen   = 5 * time.Second
)

// applyDefaults fills every zero value that has a default (see each
// field's comment).
func (c *Config) applyDefaults() {
	c.Listen.GRPC = cmp.Or(c.Listen.GRPC, defaultGRPC)
	c.Listen.Admin = cmp.Or(c.Listen.Admin, defaultAdmin)
	c.Listen.Metrics = cmp.Or(c.Listen.Metrics, defaultMetrics)
	c.Listen.HTTPMode = cmp.Or(c.Listen.HTTPMode, defaultHTTPMode)
	if _, unix := c.Listen.UnixSocket(); unix {
		c.Listen.GRPCSocket.Mode = cmp.Or(c.Listen.GRPCSocket.Mode, defaultSocketMode)
	}
	c.Realm = cmp.Or(c.Realm, defaultRealm)
	c.DefaultTier = cmp.Or(c.DefaultTier, policy.TierCritical) // as policy.New reads ""
	lc := c.Lease.cacheConfig().WithDefaults()
	c.Lease.Max, c.Lease.NegativeTTL, c.Lease.MaxMemoryMB = lc.MaxAge, lc.NegativeTTL, lc.MaxMemoryMB
	h := &c.Upstream.Headers
	h.Subject = cmp.Or(h.Subject, "x-auth-subject")
	h.ClientID = cmp.Or(h.ClientID, "x-auth-client-id")
	h.Scope = cmp.Or(h.Scope, "x-auth-scope")
	h.Issuer = cmp.Or(h.Issuer, "x-auth-issuer")
	for i := range c.Issuers {
		c.Issuers[i].applyDefaults()
	}
	c.Log.Level = cmp.Or(c.Log.Level, defaultLogLevel)
	c.Log.Format = cmp.Or(c.Log.Format, defaultLogFormat)
	c.Server.StartGrace = cmp.Or(c.Server.StartGrace, defaultStartGrace)
	c.Server.DrainTimeout = cmp.Or(c.Server.DrainTimeout, defaultDrain)
	c.Server.MaxConcurrentStreams = cmp.Or(c.Server.MaxConcurrentStreams, defaultMaxStreams)
	if f := c.Fleet; f != nil {
		fc := fleet.Config{KeyPrefix: f.KeyPrefix, Timeout: f.Timeout, HealthInterval: f.HealthInterval}
		fc.SetDefaults()
		f.KeyPrefix, f.Timeout, f.HealthInterval = fc.KeyPrefix, fc.Timeout, fc.HealthInterval
		f.OnStoreLoss = cmp.Or(f.OnStoreLoss, string(fleetmode.StoreLossStandalone))
	}
}

// FleetStoreConfig is the fleet store's view of the fleet section; nil
// without one.
func (c *Config) FleetStoreConfig() *fleet.Config {
	f := c.Fleet
	if f == nil {
		return nil
	}
	r := f.Redis
	return &fleet.Config{
		Addresses:      r.Addresses,
		MasterName:     r.MasterName,
		Username:       r.Username,
		Password:       r.Password,
		TLS:            fleet.TLSConfig{CAFile: r.TLS.CAFile, CertFile: r.TLS.CertFile, KeyFile: r.TLS.KeyFile, ServerName: r.TLS.ServerName},
		KeyPrefix:      f.KeyPrefix,
		Secret:         []byte(f.secret),
		Timeout:        f.Timeout,
		HealthInterval: f.HealthInterval,
		LeaseMax:       c.Lease.Max,
		AllowEviction:  f.AllowEviction,
	}
}

func (is *IssuerConfig) applyDefaults() {
	is.Mode = cmp.Or(is.Mode, string(authz.ModeIntrospection))
	in := &is.Introspection
	in.Auth = cmp.Or(in.Auth, issuer.AuthClientSecretBasic)
	in.Timeout = cmp.Or(in.Timeout, defaultIssuerTimeout)
	in.MaxConns = cmp.Or(in.MaxConns, defaultMaxConns)
	is.ClockSkew = cmp.Or(is.ClockSkew, defaultClockSkew)
	is.BasePath = cmp.Or(is.BasePath, defaultBasePath)
	is.Breaker.Failures = cmp.Or(is.Breaker.Failures, defaultBreakerFails)
	is.Breaker.OpenFor = cmp.Or(is.Breaker.OpenFor, defaultBreakerOpen)
}

// cacheConfig is the lease cache's view of the lease section.
func (l LeaseConfig) cacheConfig() leasecache.Config {
	return leasecache.Config{MaxMemoryMB: l.MaxMemoryMB, NegativeTTL: l.NegativeTTL, MaxAge: l.Max}
}
