package policy

import (
	"time"

	"github.com/leasegate/leasegate/policy/lifetime"
)

// routeLifetime is the limit route r's max_token_lifetime sets.
func routeLifetime(r *Route, max time.Duration) lifetime.Limit {
	src := "route " + r.Prefix
	if r.Host != "" {
		src += " on " + r.Host
	}
	return lifetime.Limit{Max: max, Source: src}
}

// Lifetime is the global part of the lifetime policy
// (lease.max_token_lifetime and lease.refuse_long_lived).
func (p *Policy) Lifetime() lifetime.Policy { return p.lifetime }

// RouteLifetimes are the routes' own limits, in configuration order, each
// already the stricter of the route's and the global one; unset where
// neither sets one. A request's limit is also held to its issuer's and to
// every other route it matches.
func (p *Policy) RouteLifetimes() []lifetime.Limit {
	out := make([]lifetime.Limit, len(p.routes))
	for i := range p.routes {
		out[i] = p.lifetime.Limit.Min(p.routes[i].Lifetime)
	}
	return out
}

// checkLifetime is Validate's lifetime.Problem at field.
func checkLifetime(v *validator, field string, d time.Duration) {
	if msg := lifetime.Problem(d); msg != "" {
		v.add(field, msg)
	}
}
