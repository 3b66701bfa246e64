package server

import (
	"time"

	"github.com/leasegate/leasegate/policy"
)

// Defaults that are not the zero value.
const (
	defaultGRPC         = ":9001"
	defaultAdmin        = "127.0.0.1:9191"
	defaultRealm        = "leasegate"
	defaultLeaseMax     = 10 * time.Minute
	defaultNegativeTTL  = 10 * time.Second
	defaultMaxMemoryMB  = 256
	defaultIssuerTO     = 2 * time.Second
	defaultClockSkew    = 60 * time.Second
	defaultMaxConns     = 64
	defaultBreakerFails = 5
	defaultBreakerOpen  = 5 * time.Second
	defaultStartGrace   = 30 * time.Second
	defaultDrain        = 15 * time.Second
	defaultMaxStreams   = 1024
)

func (c *Config) applyDefaults() {
	if c.Listen.GRPC == "" {
		c.Listen.GRPC = defaultGRPC
	}
	if c.Listen.Admin == "" {
		c.Listen.Admin = defaultAdmin
	}
	if c.Listen.HTTPMode == "" {
		c.Listen.HTTPMode = "envoy"
	}
	if c.Realm == "" {
		c.Realm = defaultRealm
	}
	if c.DefaultTier == "" {
		c.DefaultTier = policy.TierCritical
	}
	if c.Lease.Max == 0 {
		c.Lease.Max = defaultLeaseMax
	}
	if c.Lease.NegativeTTL == 0 {
		c.Lease.NegativeTTL = defaultNegativeTTL
	}
	if c.Lease.MaxMemoryMB == 0 {
		c.Lease.MaxMemoryMB = defaultMaxMemoryMB
	}
	h := &c.Upstream.Headers
	h.Subject = cmpOr(h.Subject, "x-auth-subject")
	h.ClientID = cmpOr(h.ClientID, "x-auth-client-id")
	h.Scope = cmpOr(h.Scope, "x-auth-scope")
	h.Issuer = cmpOr(h.Issuer, "x-auth-issuer")
	for i := range c.Issuers {
		is := &c.Issuers[i]
		if is.Mode == "" {
			is.Mode = "introspection"
		}
		if is.Introspection.Auth == "" {
			is.Introspection.Auth = "client_secret_basic"
		}
		if is.Introspection.Timeout == 0 {
			is.Introspection.Timeout = defaultIssuerTO
		}
		if is.Introspection.MaxConns == 0 {
			is.Introspection.MaxConns = defaultMaxConns
		}
		if is.ClockSkew == 0 {
			is.ClockSkew = defaultClockSkew
		}
		if is.BasePath == "" {
			is.BasePath = "/"
		}
		if is.Breaker.Failures == 0 {
			is.Breaker.Failures = defaultBreakerFails
		}
		if is.Breaker.OpenFor == 0 {
			is.Breaker.OpenFor = defaultBreakerOpen
		}
	}
	if c.Log.Level == "" {
		c.Log.Level = "info"
	}
	if c.Log.Format == "" {
		c.Log.Format = "json"
	}
	if c.Server.StartGrace == 0 {
		c.Server.StartGrace = defaultStartGrace
	}
	if c.Server.DrainTimeout == 0 {
		c.Server.DrainTimeout = defaultDrain
	}
	if c.Server.MaxConcurrentStreams == 0 {
		c.Server.MaxConcurrentStreams = defaultMaxStreams
	}
}

func cmpOr(v, def string) string {
	if v == "" {
		return def
	}
	return v
}
