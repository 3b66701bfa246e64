package policy

import (
	"errors"
	"fmt"
	"strings"
	"time"
)

// Target is a Destination or Source value as ParseTarget reads it: the host
// it names and its path, normalised as Normalize normalises a request's. The
// zero Target stands for no such header (AddTargets ignores it).
type Target struct {
	host    string // NormalizeHost's form; "" for an absolute path
	path    string // as Request.Path
	literal string // as Request.LiteralPath
}

// ParseTarget reads a Destination or Source value; an error means 400
// invalid_request. The engine applies it to every request (SPEC §5 refuses
// such a value with 400 whatever the route), and storage.Authorize reads
// targets with the same parser.
//
// SPEC §5: "Destination and Source are single absolute URIs or absolute
// paths; one with a fragment (#), userinfo, or an unparseable authority is
// refused with 400." A backend drops a fragment, so "/a#/../b" would be
// checked as /b and executed on /a. A network-path reference ("//host/…")
// is refused as ambiguous, and so is a value that reads as two targets
// joined by ',' (Envoy's headers map joins repeated fields that way). For
// an already clean, lower-case value it does not allocate.
func ParseTarget(v string) (Target, error) {
	v = strings.Trim(v, " \t")
	if v == "" {
		return Target{}, errors.New("empty")
	}
	for i := 0; i < len(v); i++ {
		switch c := v[i]; {
		case c <= ' ' || c == 0x7f:
			return Target{}, errors.New("whitespace or a control character")
		case c == '#':
			return Target{}, errors.New("a fragment")
		case c == ',' && startsTarget(v[i+1:]):
			return Target{}, errors.New("two values joined by ','")
		}
	}
	if commaInPath(v) {
		return Target{}, errors.New("a ',' in the path (two values joined by ','; a name with ',' is sent as %2C)")
	}
	if strings.HasPrefix(v, "//") {
		return Target{}, errors.New("network-path reference")
	}
	var t Target
	rawPath := v
	if v[0] != '/' {
		i := strings.Index(v, "://")
		if i <= 0 || !isScheme(v[:i]) {
			return Target{}, errors.New("neither an absolute URI nor an absolute path")
		}
		rest := v[i+3:]
		end := strings.IndexAny(rest, "/?")
		if end < 0 {
			end = len(rest)
		}
		authority := rest[:end]
		if strings.IndexByte(authority, '@') >= 0 {
			return Target{}, errors.New("userinfo")
		}
		if authority == "" {
			return Target{}, errors.New("empty authority")
		}
		h, err := NormalizeHost(authority)
		if err != nil {
			return Target{}, fmt.Errorf("unparseable authority: %w", err)
		}
		t.host = h
		rawPath = rest[end:]
		if rawPath == "" || rawPath[0] == '?' {
			rawPath = "/" + rawPath
		}
	}
	var err error
	if t.path, t.literal, err = normalizePath(rawPath); err != nil {
		return Target{}, err
	}
	return t, nil
}

// commaInPath reports whether v has a "," before its query. Envoy's
// headers map joins repeated fields with ",", and read as one value the
// second field moves the path wherever its text says: "/atlas" + "x" reads
// as the sibling /atlas,x, "/atlas/alice/.." + "x" as a name inside alice,
// "/victim" + "x/../../atlas/y" as /atlas/y, while a backend that takes the
// first field acts on /atlas, /atlas or /victim. A name with a "," is sent
// percent-encoded (%2C), which no join produces.
func commaInPath(v string) bool {
	if i := strings.IndexByte(v, '?'); i >= 0 {
		v = v[:i]
	}
	return strings.IndexByte(v, ',') >= 0
}

// startsTarget reports whether s (after optional whitespace) begins like a
// Destination or Source value: an absolute path or "scheme://".
func startsTarget(s string) bool {
	s = strings.TrimLeft(s, " \t")
	if strings.HasPrefix(s, "/") {
		return true
	}
	// Scan only the scheme-like run, so many commas stay linear.
	n := 0
	for n < len(s) && isSchemeChar(s[n], n) {
		n++
	}
	return n > 0 && strings.HasPrefix(s[n:], "://")
}

func isScheme(s string) bool {
	for i := 0; i < len(s); i++ {
		if !isSchemeChar(s[i], i) {
			return false
		}
	}
	return s != ""
}

// isSchemeChar: RFC 3986 scheme = ALPHA *( ALPHA / DIGIT / "+" / "-" / "." ).
func isSchemeChar(c byte, i int) bool {
	switch {
	case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z':
		return true
	case i > 0 && ('0' <= c && c <= '9' || c == '+' || c == '-' || c == '.'):
		return true
	}
	return false
}

// Path is the target's path in Request.Path's form; "" for the zero Target.
func (t Target) Path() string { return t.path }

// LiteralPath is the target's path in Request.LiteralPath's form.
func (t Target) LiteralPath() string { return t.literal }

// NamesThisServer reports whether t points at the server that received a
// request for reqHost (SPEC §5, see namesThisServer), given further names
// of it in local and more (NormalizeHost's form); a path-only target always
// does. AddTargets and storage.Authorize both decide it here.
func (t Target) NamesThisServer(reqHost string, local, more []string) bool {
	return t.host == "" || namesThisServer(t.host, reqHost, local, more)
}

// AddTargets folds a request's Destination and Source (from ParseTarget;
// the zero Target for a header the request does not carry) into m, its
// Classify match. A MOVE or COPY touches the target's path as well as the
// request path, so for each target that names this server:
//
//   - every route matching the target's path adds its require: and its
//     local_hosts to m (SPEC §1: "every matching route's require: ...
//     applies"); storage.Authorize then checks both paths against every
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
// A target names this server (SPEC §5, as storage.Authorize decides it) when
// it is an absolute path, or its host is the request's, an IP literal,
// localhost, an unqualified name, or one of the local_hosts of the routes
// matching the request path or a local target, or one of issuerHosts. The
// engine passes every issuer's local_hosts, as the token's issuer is not
// known before the lease lookup needs the window: AddTargets never finds a
// target remote that storage.Authorize, given m.LocalHosts and one issuer's
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
	if !t.NamesThisServer(reqHost, hosts, issuerHosts) {
		return false
	}
	m.LocalHosts = hosts
	m.Require |= here.Require | there.Require
	// The target's storage area must vouch for its backend too.
	if here.Require != 0 && !here.ConditionalCreate || there.Require != 0 && !there.ConditionalCreate {
		m.ConditionalCreate = false
	}
	m.Lifetime.Limit = m.Lifetime.Limit.Min(here.Lifetime.Limit).Min(there.Lifetime.Limit)
	m.tighten(&here)
	p.tightenLoose(m, here.loose, nil)
	if byTargetHost {
		m.tighten(&there)
		p.tightenLoose(m, there.loose, nil)
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
		m.tightenTo(tm.Tier, tm.Window, tm.StaleIfError)
	case rt.HasWindow:
		m.Window = min(m.Window, rt.Window)
	}
}

// tightenTo takes tier t with window w where w is shorter than m's, and
// the smaller stale allowance: never looser than m.
func (m *Match) tightenTo(t *Tier, w, stale time.Duration) {
	m.StaleIfError = min(m.StaleIfError, stale)
	if w < m.Window {
		m.Tier, m.Window = t, w
	}
}
