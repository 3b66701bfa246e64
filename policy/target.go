package policy

// AddTargets folds a request's Destination and Source (from ParseTarget;
// the zero Target for a header the request does not carry) into m, its
// Classify match. A MOVE or COPY touches the target's path as well as the
// request path, so for each target that names this server:
//
//   - every route matching the target's path adds its require: and its
//     local_hosts to m (SPEC §1: "every matching route's require: ...
//     applies"); AuthorizeStorage then checks both paths against every
//     profile in m.Require;
//   - the window is the smaller of m's and the one the target's first
//     matching route sets (its tier's window capped by its own window, or
//     its own window: what a request for the target's path would get from
//     its route). When that route names a tier, stale_if_error becomes the
//     smaller of both tiers', and when its window is also the smaller, that
//     tier replaces m's: a MOVE into a critical area is validated fresh
//     whatever the tier of the path it leaves, even one Envoy named. A target whose path matches no tier or window route
//     changes neither: the request's method already chose the tier.
//
// A target's routes are matched with the request's method, as for the
// request path; whatever the method, a Destination or Source the request
// carries is read as part of it. A route with a host: matches when it
// meets the request's host or the target's: a local target names this
// server, and either name may be the one a host rule was written for, so
// both are read and the stricter outcome wins (on requirements and window).
//
// A target names this server (SPEC §5, as AuthorizeStorage decides it) when
// it is an absolute path, or its host is the request's, an IP literal,
// localhost, an unqualified name, or one of the local_hosts of the routes
// matching the request path or a local target, or one of issuerHosts. The
// engine passes every issuer's local_hosts, as the token's issuer is not
// known before the lease lookup needs the window: AddTargets never finds a
// target remote that AuthorizeStorage, given m.LocalHosts and one issuer's
// local_hosts, finds local. A target on another server changes nothing:
// that server authorizes its own side of the operation.
func (p *Policy) AddTargets(m *Match, destination, source Target, issuerHosts []string) {
	ts := [2]Target{destination, source}
	var done [2]bool
	// A local target's local_hosts can make the other target local: fold
	// until nothing changes (at most twice).
	for again := true; again; {
		again = false
		for i := range ts {
			if !done[i] && ts[i].path != "" && p.addTarget(m, ts[i], issuerHosts) {
				done[i], again = true, true
			}
		}
	}
}

// addTarget folds t into m when t names this server, and reports whether
// it did.
func (p *Policy) addTarget(m *Match, t Target, issuerHosts []string) bool {
	reqHost := m.Request.host
	r := Request{method: m.Request.method, host: reqHost, path: t.path, literal: t.literal}
	here := p.Classify(r, "")
	hosts := appendHosts(m.LocalHosts, here.LocalHosts)
	var there Match // the target's own host, when it names one of its own
	byTargetHost := t.host != "" && t.host != reqHost
	if byTargetHost {
		r.host = t.host
		there = p.Classify(r, "")
		hosts = appendHosts(hosts, there.LocalHosts)
	}
	if !t.namesHost(reqHost, hosts, issuerHosts) {
		return false
	}
	m.LocalHosts = hosts
	m.Require |= here.Require | there.Require
	m.tighten(&here)
	if byTargetHost {
		m.tighten(&there)
	}
	return true
}

// tighten lowers m's window, and its stale allowance, to what the first
// route of tm (a local target's Classify) sets.
func (m *Match) tighten(tm *Match) {
	rt := tm.Route
	switch {
	case rt == nil:
	case rt.Tier != "":
		m.StaleIfError = min(m.StaleIfError, tm.StaleIfError)
		if tm.Window < m.Window {
			m.Tier, m.Window = tm.Tier, tm.Window
		}
	case rt.HasWindow:
		m.Window = min(m.Window, rt.Window)
	}
}
