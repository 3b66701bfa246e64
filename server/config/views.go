package config

import (
	"fmt"
	"slices"
	"strings"

	"github.com/leasegate/leasegate/authz"
	"github.com/leasegate/leasegate/authz/issuer"
	"github.com/leasegate/leasegate/policy"
)

// PolicyConfig is the policy package's view of the configuration.
func (c *Config) PolicyConfig() policy.Config {
	pc := policy.Config{DefaultTier: c.DefaultTier, LeaseMax: c.Lease.Max,
		MaxTokenLifetime: c.Lease.MaxTokenLifetime, RefuseLongLived: c.Lease.RefuseLongLived}
	set := c.tierSet()
	for _, n := range tierNames(set) {
		pc.Tiers = append(pc.Tiers, set[n])
	}
	for _, r := range c.Routes {
		pc.Routes = append(pc.Routes, policy.RouteConfig{
			Prefix: r.Prefix, Host: r.Host, Methods: r.Methods, Tier: r.Tier,
			Window: r.Window, Require: policy.StorageProfile(r.Require), LocalHosts: r.LocalHosts,
			ConditionalCreate: r.ConditionalCreate,
			MaxTokenLifetime:  r.MaxTokenLifetime,
		})
	}
	return pc
}

// tierSet is the default table overlaid with the configured tiers: a
// built-in tier keeps its default methods and window unless set.
func (c *Config) tierSet() map[string]policy.TierConfig {
	out := map[string]policy.TierConfig{}
	for _, t := range policy.DefaultTiers() {
		out[t.Name] = t
	}
	for name, tc := range c.Tiers {
		t := out[name]
		t.Name = name
		if tc.Methods != nil {
			t.Methods = tc.Methods
		}
		if tc.Window != nil {
			t.Window = *tc.Window
		}
		t.StaleIfError = tc.StaleIfError
		out[name] = t
	}
	return out
}

// tierNames lists a tier set in a stable order: built-ins first, then by
// name.
func tierNames(set map[string]policy.TierConfig) []string {
	rank := map[string]int{policy.TierRead: 1, policy.TierWrite: 2, policy.TierCritical: 3}
	names := make([]string, 0, len(set))
	for n := range set {
		names = append(names, n)
	}
	slices.SortFunc(names, func(a, b string) int {
		ra, rb := rank[a], rank[b]
		switch {
		case ra != 0 && rb != 0:
			return ra - rb
		case ra != 0 || rb != 0:
			return rb - ra // the built-in first
		}
		return strings.Compare(a, b)
	})
	return names
}

// AuthzIssuers is the engine's view of the issuers: what -check validates
// is what start-up builds.
func (c *Config) AuthzIssuers() []authz.IssuerConfig {
	out := make([]authz.IssuerConfig, 0, len(c.Issuers))
	for _, is := range c.Issuers {
		in := is.Introspection
		out = append(out, authz.IssuerConfig{
			Name:             is.Name,
			Issuer:           is.Issuer,
			Mode:             authz.Mode(is.Mode),
			DefaultForOpaque: is.DefaultForOpaque,
			Introspection: issuer.IntrospectionConfig{
				Endpoint:     in.Endpoint,
				Auth:         in.Auth,
				ClientID:     in.ClientID,
				ClientSecret: in.ClientSecret,
				Timeout:      in.Timeout,
				MaxConns:     in.MaxConns,
			},
			JWT: issuer.JWTConfig{
				JWKSURI:       is.JWKSURI,
				Audiences:     is.Audiences,
				AcceptWLCGAny: is.AcceptWLCGAny,
				ClockSkew:     is.ClockSkew,
			},
			Audiences:         is.Audiences,
			AcceptAnyAudience: is.AcceptAnyAudience,
			BasePath:          is.BasePath,
			LocalHosts:        is.LocalHosts,
			BreakerFailures:   is.Breaker.Failures,
			BreakerOpenFor:    is.Breaker.OpenFor,
			MaxTokenLifetime:  is.MaxTokenLifetime,
		})
	}
	return out
}

// Summary is the one-line description -check prints for a valid file.
func (c *Config) Summary() string {
	p, err := policy.New(c.PolicyConfig())
	if err != nil {
		return "invalid: " + err.Error()
	}
	var tiers []string
	for _, t := range p.Tiers() {
		s := fmt.Sprintf("%s=%v", t.Name, t.Window)
		if t.StaleIfError > 0 {
			s += fmt.Sprintf("(stale %v)", t.StaleIfError)
		}
		tiers = append(tiers, s)
	}
	b := p.RevocationBound()
	return fmt.Sprintf("config ok: %d issuer(s); tiers %s; default %s; %d route(s); revocation bound %v (%v with stale_if_error), lease.max %v",
		len(c.Issuers), strings.Join(tiers, " "), c.DefaultTier, len(c.Routes), b.Window, b.WithStale, c.Lease.Max) +
		c.lifetimeSummary(p)
}
