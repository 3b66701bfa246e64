// Package policy owns leasegate's pure decisions about a request: the one
// normalised form of it (Normalize, NormalizeHost, ParseTarget) that every
// rule reads, which lease tier it falls in (method table, route rules,
// Envoy's per-route hint), how long a lease may be reused for it, which
// storage profiles its routes require, and the revocation bound that
// follows from the tiers. The storage capability-scope rules of WLCG and
// SciTokens, which read the same normalised request, are package
// policy/storage's. It does no I/O and imports no protocol packages.
package policy

import (
	"errors"
	"fmt"
	"iter"
	"slices"
	"time"

	"github.com/leasegate/leasegate/policy/lifetime"
)

// errConditionalCreate is why a route's conditional_create is refused: it
// relaxes the WLCG create rule only (SciTokens' write also modifies).
var errConditionalCreate = errors.New("conditional_create needs require: " + string(ProfileWLCG))

// Built-in tier names. Operators may define more.
const (
	TierRead     = "read"
	TierWrite    = "write"
	TierCritical = "critical"
)

// TierConfig describes one lease tier.
type TierConfig struct {
	Name    string
	Methods []string
	// Window is how long a validation may be reused for requests of this tier;
	// 0 means every request is validated with the issuer.
	Window time.Duration
	// StaleIfError lets a request be allowed on a lease this old when the
	// issuer is unreachable. Never on a window-0 tier.
	StaleIfError time.Duration
}

// RouteConfig overrides the tier, the window or the storage rules for
// requests under a path prefix, optionally only for one host and some methods.
type RouteConfig struct {
	Prefix  string   // decoded and normalised, see ValidatePrefix
	Host    string   // empty: any host; without a port: any port
	Methods []string // empty: any method
	Tier    string   // empty: keep the method's tier
	// Window, when set, caps the tier's window for this route.
	Window  *time.Duration
	Require StorageProfile // empty: no storage scope rules
	// LocalHosts are other names of this server for requests on this
	// route: a Destination or Source on one is local, not remote (SPEC §5).
	LocalHosts []string
	// ConditionalCreate is the operator's assertion that the backend
	// behind the route honours If-None-Match: * on PUT, so a
	// storage.create-only PUT may be allowed as a conditional one (SPEC
	// §5). Only with Require ProfileWLCG.
	ConditionalCreate bool
	// MaxTokenLifetime, when set, limits how long after its iat a token
	// is accepted on this route (SPEC §2); 0: no limit of the route's.
	MaxTokenLifetime time.Duration
}

// Config is everything New needs.
type Config struct {
	Tiers       []TierConfig
	DefaultTier string // tier for methods no tier lists; "critical" when empty
	Routes      []RouteConfig
	// LeaseMax caps every window; it is the operator's revocation bound.
	LeaseMax time.Duration
	// MaxTokenLifetime is lease.max_token_lifetime, the global token
	// lifetime limit (SPEC §2); 0: none.
	MaxTokenLifetime time.Duration
	// RefuseLongLived is lease.refuse_long_lived: refuse at once a token
	// minted for longer than its limit.
	RefuseLongLived bool
}

// Tier is a compiled tier. Window is already capped by LeaseMax.
type Tier struct {
	Name         string
	Window       time.Duration
	StaleIfError time.Duration
}

// Route is a compiled route rule.
type Route struct {
	Prefix     string
	Host       string // NormalizeHost's form
	Methods    []string
	Tier       string
	Window     time.Duration
	HasWindow  bool
	Require    StorageProfile
	LocalHosts []string // NormalizeHost's form
	// ConditionalCreate: see RouteConfig.
	ConditionalCreate bool
	// Lifetime is the route's own max_token_lifetime, unset when none.
	Lifetime lifetime.Limit
}

// Match is the outcome of classifying a request.
type Match struct {
	Request Request // what was classified, for storage.Authorize
	Tier    *Tier
	Route   *Route // the first matching route rule, nil when none
	// Window is min(tier window, first route's window, lease.max); the
	// token's expiry is applied at lookup (leasecache's Cache.Lookup).
	// AddTargets lowers it to a local target's.
	Window time.Duration
	// StaleIfError is the tier's stale_if_error, lowered by AddTargets to
	// a local target's tier's; it never applies while Window is 0.
	StaleIfError time.Duration
	// Require holds every matching route's require:, not only the first's,
	// and with AddTargets every route's of a local target.
	Require Requirements
	// LocalHosts are every matching route's local_hosts (and, with
	// AddTargets, a local target's routes').
	LocalHosts []string
	// ConditionalCreate is the conditional_create of the first matching
	// route with a require: (the most specific storage area, which names
	// the backend; a tier-only route has no say, and AddTargets takes it
	// away when a local target's says no): a create-only PUT may then be
	// allowed as a conditional one.
	ConditionalCreate bool
	// HintUnknown is set when Envoy named a tier that does not exist; the
	// strictest tier is used then, so a typo never widens a window.
	HintUnknown bool
	// Lifetime is the global lifetime policy held to the limit of every
	// matching route (and, with AddTargets, a local target's routes); the
	// engine adds the token's issuer's limit.
	Lifetime lifetime.Policy

	loose []*Route // the routes matched only loosely (hostMatches)
}

// StorageProfile names a family of capability scopes a route can require;
// package policy/storage enforces them.
type StorageProfile string

const (
	// ProfileWLCG is the WLCG Common JWT Profile: storage.read,
	// storage.create, storage.modify (plus storage.stage and storage.poll,
	// which only grant metadata requests here).
	ProfileWLCG StorageProfile = "wlcg_storage"
	// ProfileSciTokens is the SciTokens profile: read and write.
	ProfileSciTokens StorageProfile = "scitokens"
)

// Requirements is a set of storage profiles a request must satisfy, each
// on its own.
type Requirements uint8

const (
	requireWLCG Requirements = 1 << iota
	requireSciTokens
)

func requirementOf(p StorageProfile) Requirements {
	switch p {
	case ProfileWLCG:
		return requireWLCG
	case ProfileSciTokens:
		return requireSciTokens
	}
	return 0
}

// Has reports whether p is in s.
func (s Requirements) Has(p StorageProfile) bool {
	r := requirementOf(p)
	return r != 0 && s&r == r
}

// All yields the profiles in s, WLCG first.
func (s Requirements) All() iter.Seq[StorageProfile] {
	return func(yield func(StorageProfile) bool) {
		for _, p := range [...]StorageProfile{ProfileWLCG, ProfileSciTokens} {
			if s.Has(p) && !yield(p) {
				return
			}
		}
	}
}

// Policy is a compiled, immutable Config; safe for concurrent use.
type Policy struct {
	tiers       []Tier
	byName      map[string]int
	byMethod    map[string]int
	defaultTier int
	strictest   int
	routes      []Route
	leaseMax    time.Duration
	lifetime    lifetime.Policy // the global part
}

// DefaultTiers returns SPEC §1's default tier table.
func DefaultTiers() []TierConfig {
	return []TierConfig{
		{Name: TierRead, Methods: []string{"GET", "HEAD", "OPTIONS", "PROPFIND"}, Window: 60 * time.Second},
		{Name: TierWrite, Methods: []string{"PUT", "POST", "PATCH", "MKCOL", "COPY", "MOVE", "PROPPATCH", "LOCK", "UNLOCK"}, Window: 5 * time.Second},
		{Name: TierCritical, Methods: []string{"DELETE"}, Window: 0},
	}
}

// New compiles cfg. It reports every problem it finds at once.
func New(cfg Config) (*Policy, error) {
	var errs []error
	if cfg.LeaseMax <= 0 {
		errs = append(errs, errors.New("lease.max must be positive"))
	}
	if cfg.MaxTokenLifetime < 0 {
		errs = append(errs, errors.New("lease.max_token_lifetime must not be negative"))
	}
	p := &Policy{
		byName:   make(map[string]int, len(cfg.Tiers)),
		byMethod: make(map[string]int),
		leaseMax: cfg.LeaseMax,
		lifetime: lifetime.Policy{
			Limit:           lifetime.Limit{Max: cfg.MaxTokenLifetime, Source: lifetime.SourceGlobal},
			RefuseLongLived: cfg.RefuseLongLived,
		},
	}
	for _, tc := range cfg.Tiers {
		errs = append(errs, p.addTier(tc)...)
	}
	if len(p.tiers) == 0 {
		errs = append(errs, errors.New("no tiers defined"))
		return nil, errors.Join(errs...)
	}
	if err := p.setDefaultTier(cfg.DefaultTier); err != nil {
		errs = append(errs, err)
	}
	for i, t := range p.tiers {
		if t.Window < p.tiers[p.strictest].Window {
			p.strictest = i
		}
	}
	for i, rc := range cfg.Routes {
		r, rerrs := p.compileRoute(i, rc)
		errs = append(errs, rerrs...)
		p.routes = append(p.routes, r)
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return p, nil
}

// addTier compiles one tier into p, its windows capped at lease.max, and
// claims its methods. A tier without a name, or defined twice, is left out.
func (p *Policy) addTier(tc TierConfig) (errs []error) {
	if tc.Name == "" {
		return []error{errors.New("tier with an empty name")}
	}
	if _, dup := p.byName[tc.Name]; dup {
		return []error{fmt.Errorf("tier %q defined twice", tc.Name)}
	}
	if tc.Window < 0 || tc.StaleIfError < 0 {
		errs = append(errs, fmt.Errorf("tier %q: negative duration", tc.Name))
	}
	if tc.Window == 0 && tc.StaleIfError > 0 {
		errs = append(errs, fmt.Errorf("tier %q: stale_if_error is not allowed on a window-0 tier", tc.Name))
	}
	idx := len(p.tiers)
	p.byName[tc.Name] = idx
	p.tiers = append(p.tiers, Tier{
		Name:         tc.Name,
		Window:       capAt(tc.Window, p.leaseMax),
		StaleIfError: capAt(tc.StaleIfError, p.leaseMax),
	})
	for _, m := range tc.Methods {
		if other, dup := p.byMethod[m]; dup {
			errs = append(errs, fmt.Errorf("method %s is in tiers %q and %q", m, p.tiers[other].Name, tc.Name))
			continue
		}
		p.byMethod[m] = idx
	}
	return errs
}

// setDefaultTier picks the tier for methods no tier lists: name, or
// "critical" when name is empty.
func (p *Policy) setDefaultTier(name string) error {
	def := name
	if def == "" {
		def = TierCritical
	}
	i, ok := p.byName[def]
	if !ok {
		return fmt.Errorf("default_tier %q is not a defined tier", def)
	}
	p.defaultTier = i
	return nil
}

// compileRoute compiles route i through the normalisers requests go
// through; its window is capped at lease.max. The route is returned even
// when it has problems, so every problem of every route is reported.
func (p *Policy) compileRoute(i int, rc RouteConfig) (Route, []error) {
	var errs []error
	r := Route{
		Prefix:            rc.Prefix,
		Methods:           rc.Methods,
		Tier:              rc.Tier,
		Require:           rc.Require,
		ConditionalCreate: rc.ConditionalCreate,
	}
	if err := ValidatePrefix(rc.Prefix); err != nil {
		errs = append(errs, fmt.Errorf("route %d: %w", i, err))
	}
	// One host normaliser for rules, requests and targets alike.
	var err error
	if r.Host, err = NormalizeHost(rc.Host); err != nil {
		errs = append(errs, fmt.Errorf("route %d (%s): host %q: %w", i, rc.Prefix, rc.Host, err))
	}
	for _, h := range rc.LocalHosts {
		n, err := NormalizeLocalHost(h)
		if err != nil {
			errs = append(errs, fmt.Errorf("route %d (%s): local_hosts: %w", i, rc.Prefix, err))
			continue
		}
		r.LocalHosts = append(r.LocalHosts, n)
	}
	if _, ok := p.byName[rc.Tier]; rc.Tier != "" && !ok {
		errs = append(errs, fmt.Errorf("route %d (%s): tier %q is not a defined tier", i, rc.Prefix, rc.Tier))
	}
	if rc.Window != nil {
		if *rc.Window < 0 {
			errs = append(errs, fmt.Errorf("route %d (%s): negative window", i, rc.Prefix))
		}
		r.Window, r.HasWindow = capAt(*rc.Window, p.leaseMax), true
	}
	if rc.MaxTokenLifetime < 0 {
		errs = append(errs, fmt.Errorf("route %d (%s): negative max_token_lifetime", i, rc.Prefix))
	}
	r.Lifetime = routeLifetime(&r, rc.MaxTokenLifetime)
	switch rc.Require {
	case "", ProfileWLCG, ProfileSciTokens:
	default:
		errs = append(errs, fmt.Errorf("route %d (%s): require %q is not one of %s, %s", i, rc.Prefix, rc.Require, ProfileWLCG, ProfileSciTokens))
	}
	if rc.ConditionalCreate && rc.Require != ProfileWLCG {
		errs = append(errs, fmt.Errorf("route %d (%s): %s", i, rc.Prefix, errConditionalCreate))
	}
	return r, errs
}

func capAt(d, max time.Duration) time.Duration {
	if max > 0 && d > max {
		return max
	}
	return d
}

// Classify picks the tier for r (from Normalize); hint is Envoy's per-route
// context_extensions["leasegate.tier"], "" when absent. Precedence, highest
// first: the hint, the first matching route rule, the method table, the
// default tier. SPEC §1: "the tier and window come from the first matching
// route, but every matching route's require: ... applies".
//
// Classify reads the request path only. A request with a Destination or
// Source also touches that path: pass them to AddTargets.
func (p *Policy) Classify(r Request, hint string) Match {
	m := Match{Request: r, Lifetime: p.lifetime}
	spoken := false // a storage route has said whether creates are conditional
	for i := range p.routes {
		rt := &p.routes[i]
		ok, loose := rt.matches(r)
		if !ok {
			continue
		}
		// A loose match (see hostMatches) only tightens: its require,
		// lifetime and local hosts apply, its tier and window only where
		// stricter (tightenLoose), and it never makes creates conditional.
		if loose {
			m.loose = append(m.loose, rt)
		} else if m.Route == nil {
			m.Route = rt
		}
		m.Require |= requirementOf(rt.Require)
		m.Lifetime.Limit = m.Lifetime.Limit.Min(rt.Lifetime)
		m.LocalHosts = appendHosts(m.LocalHosts, rt.LocalHosts)
		if rt.Require != "" && !spoken {
			m.ConditionalCreate, spoken = rt.ConditionalCreate && !loose, true
		}
	}
	route := m.Route
	base := p.methodTier(r.method) // the tier a route without one leaves
	switch {
	case hint != "":
		i, ok := p.byName[hint]
		if !ok {
			i, m.HintUnknown = p.strictest, true
		}
		m.Tier = &p.tiers[i]
		base = m.Tier
	case route != nil && route.Tier != "":
		m.Tier = &p.tiers[p.byName[route.Tier]]
	default:
		m.Tier = base
	}
	m.Window, m.StaleIfError = m.Tier.Window, m.Tier.StaleIfError
	if route != nil && route.HasWindow && route.Window < m.Window {
		m.Window = route.Window
	}
	p.tightenLoose(&m, m.loose, base)
	return m
}

// methodTier is the method table's tier for method, else the default.
func (p *Policy) methodTier(method string) *Tier {
	if i, ok := p.byMethod[method]; ok {
		return &p.tiers[i]
	}
	return &p.tiers[p.defaultTier]
}

// tightenLoose holds m to routes matched only loosely, as if each had
// matched first but never looser than m: a route's tier, or base for one
// without (the tier it would have left the request; nil for a local
// target's, which like tighten holds m to windows only), where its window
// (capped by the route's own) is shorter, and the smaller stale_if_error.
func (p *Policy) tightenLoose(m *Match, routes []*Route, base *Tier) {
	for _, rt := range routes {
		t := base
		if rt.Tier != "" {
			t = &p.tiers[p.byName[rt.Tier]]
		}
		if t == nil {
			if rt.HasWindow {
				m.Window = min(m.Window, rt.Window)
			}
			continue
		}
		w := t.Window
		if rt.HasWindow {
			w = min(w, rt.Window)
		}
		m.tightenTo(t, w, t.StaleIfError)
	}
}

// appendHosts adds more to have, sharing a route's own slice while only one
// matching route lists local hosts (the common case: no allocation).
func appendHosts(have, more []string) []string {
	switch {
	case len(more) == 0:
		return have
	case len(have) == 0:
		return more
	}
	out := make([]string, 0, len(have)+len(more))
	return append(append(out, have...), more...)
}

// matches reports whether the rule applies to r, and whether only
// loosely (hostMatches). Prefix and path are both decoded and normalised
// (Normalize, ValidatePrefix): "/data" also matches the prefix "/data/".
func (rt *Route) matches(r Request) (ok, loose bool) {
	if rt.Host != "" {
		if ok, loose = hostMatches(rt.Host, r.host); !ok {
			return false, false
		}
	}
	if len(rt.Methods) > 0 && !slices.Contains(rt.Methods, r.method) {
		return false, false
	}
	p := r.path
	ok = len(p) >= len(rt.Prefix) && p[:len(rt.Prefix)] == rt.Prefix ||
		len(p)+1 == len(rt.Prefix) && rt.Prefix[len(p)] == '/' && rt.Prefix[:len(p)] == p
	return ok, loose && ok
}

// hostMatches compares a rule's host with a request's, both in
// NormalizeHost's form. A rule without a port matches the host on any port.
// A request host without a port meets a rule for that host with one only
// loosely, and an absent host meets every rule loosely: the request may be
// for that rule's host and port (Envoy's :authority and nginx's $host
// carry whatever the client wrote, or no port at all), so the rule's
// requirements apply and its tier and window where stricter, but it may as
// well be for another, so the rule does not loosen anything.
func hostMatches(want, host string) (ok, loose bool) {
	// A request that names no host could be for any of them: every host
	// rule applies, loosely, so not even an absent host selects a weaker
	// route (SPEC §1), as the storage policy counts it as this server.
	switch {
	case want == host:
		return true, false
	case host == "":
		return true, true
	}
	name := hostOnly(want)
	switch {
	case name == want: // the rule names no port
		return hostOnly(host) == want, false
	case host == name: // the request names no port
		return true, true
	}
	return false, false
}

// Bound is the revocation bound the configuration promises.
type Bound struct {
	// Window is the longest a revoked token keeps working while the issuer
	// answers: the largest tier window.
	Window time.Duration
	// WithStale adds stale_if_error: the longest while the issuer is down.
	WithStale time.Duration
	// LeaseMax is the cap both are held under.
	LeaseMax time.Duration
}

// RevocationBound reports how long a token revoked at the issuer may still
// be accepted (an admin revoke is immediate).
func (p *Policy) RevocationBound() Bound {
	b := Bound{LeaseMax: p.leaseMax}
	for _, t := range p.tiers {
		b.Window = max(b.Window, t.Window)
		b.WithStale = max(b.WithStale, t.Window, t.StaleIfError)
	}
	return b
}

// Tiers returns the compiled tiers in configuration order.
func (p *Policy) Tiers() []Tier { return p.tiers }
