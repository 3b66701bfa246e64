package authz

import (
	"github.com/leasegate/leasegate/authz/trust"
	"github.com/leasegate/leasegate/leasecache"
	"github.com/leasegate/leasegate/policy"
	"github.com/leasegate/leasegate/policy/lifetime"
)

// lifetimeOf is the lifetime policy (SPEC §2) a request matched as m holds
// a token of is to: the smallest of the global limit, every matching
// route's (both in m) and the issuer's. allow judges every allow by it,
// from a hit, a fresh answer or a stale lease alike, so no lease serves
// past min(exp, iat + limit).
func lifetimeOf(m *policy.Match, is *trust.Issuer) lifetime.Policy {
	lt := m.Lifetime
	lt.Limit = lt.Limit.Min(is.Lifetime)
	return lt
}

// leaseShowsAge reports whether l may answer a hit under the lifetime
// policy: always without one, and with one only when l knows the token's
// iat, or knows the issuer gave none (the hit is then refused, as the
// fresh answer was, without asking again). A lease that says neither may
// come from a replica that did not keep iat, so it is validated again.
func leaseShowsAge(m *policy.Match, is *trust.Issuer, l *leasecache.Lease) bool {
	return !l.IssuedAt.IsZero() || l.NoIssuedAt || !lifetimeOf(m, is).Limit.Set()
}
