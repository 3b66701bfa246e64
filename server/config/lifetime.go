package config

import (
	"strings"

	"github.com/leasegate/leasegate/policy"
	"github.com/leasegate/leasegate/policy/lifetime"
)

// The token lifetime policy (SPEC §2) as -check and GET /config show it:
// the effective limit of each issuer and of each route, each the stricter
// of its own and the global one, with where it comes from. A request's
// limit is also held to the other one (issuer and routes): the smallest of
// all that apply, which policy and authz compute.

// issuerLifetimes are the issuers' effective limits, in configuration
// order.
func (c *Config) issuerLifetimes(p *policy.Policy) []lifetime.Limit {
	out := make([]lifetime.Limit, len(c.Issuers))
	for i, is := range c.Issuers {
		out[i] = p.Lifetime().Limit.Min(lifetime.Issuer(is.Name, is.MaxTokenLifetime))
	}
	return out
}

// lifetimeSummary is the -check summary's lifetime part, "" when no limit
// is set and refuse_long_lived is off.
func (c *Config) lifetimeSummary(p *policy.Policy) string {
	global := p.Lifetime()
	issuers, routes := c.issuerLifetimes(p), p.RouteLifetimes()
	limited := global.Limit.Set()
	for _, l := range append(append([]lifetime.Limit(nil), issuers...), routes...) {
		limited = limited || l.Set()
	}
	switch {
	case !limited && global.RefuseLongLived:
		return "; lease.refuse_long_lived has no effect: no max_token_lifetime is set"
	case !limited:
		return ""
	}
	var b strings.Builder
	b.WriteString("; max_token_lifetime: global " + shortLimit(global.Limit))
	b.WriteString("; issuers")
	for i, l := range issuers {
		b.WriteString(sep(i) + c.Issuers[i].Name + "=" + effective(l))
	}
	if len(routes) > 0 {
		b.WriteString("; routes")
		for i, l := range routes {
			b.WriteString(sep(i) + c.Routes[i].Prefix + "=" + effective(l))
		}
	}
	if global.RefuseLongLived {
		b.WriteString("; refuse_long_lived")
	}
	return b.String()
}

func sep(i int) string {
	if i == 0 {
		return " "
	}
	return ", "
}

// shortLimit is a limit's duration, or none.
func shortLimit(l lifetime.Limit) string {
	if !l.Set() {
		return "none"
	}
	return lifetime.FormatDuration(l.Max)
}

// effective is an issuer's or a route's effective limit, marked when the
// global one is the stricter: "12h (global)".
func effective(l lifetime.Limit) string {
	if l.Set() && l.Source == lifetime.SourceGlobal {
		return shortLimit(l) + " (global)"
	}
	return shortLimit(l)
}

// LifetimeView is GET /config's token_lifetime: the global limit,
// refuse_long_lived, and the effective limit of each issuer and route.
func (c *Config) LifetimeView(p *policy.Policy) map[string]any {
	global := p.Lifetime()
	issuers := []map[string]any{}
	for i, l := range c.issuerLifetimes(p) {
		v := limitView(l)
		v["name"] = c.Issuers[i].Name
		issuers = append(issuers, v)
	}
	routes := []map[string]any{}
	for i, l := range p.RouteLifetimes() {
		v := limitView(l)
		v["prefix"] = c.Routes[i].Prefix
		if h := c.Routes[i].Host; h != "" {
			v["host"] = h
		}
		routes = append(routes, v)
	}
	return map[string]any{
		"global":            limitView(global.Limit),
		"refuse_long_lived": global.RefuseLongLived,
		"issuers":           issuers,
		"routes":            routes,
		"rule":              "a token is accepted while now < min(exp, iat + limit); a request's limit is the smallest of the global one, its issuer's and every matching route's",
	}
}

func limitView(l lifetime.Limit) map[string]any {
	if !l.Set() {
		return map[string]any{"max_token_lifetime": "none"}
	}
	return map[string]any{
		"max_token_lifetime":         lifetime.FormatDuration(l.Max),
		"max_token_lifetime_seconds": l.Max.Seconds(),
		"source":                     l.Source,
	}
}
