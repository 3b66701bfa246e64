package policy

import (
	"fmt"
	"strings"
)

// ConfigProblem is one reason Validate refuses a Config. Field is the key's
// path in SPEC §7's spelling, relative to Config: "default_tier",
// "tiers.read.window" (tiers by name), "routes[0].local_hosts[1]",
// "lease_max", "max_token_lifetime" (both under lease:); "tiers" when no
// one tier is to blame. A caller prefixes it
// and points at the line.
type ConfigProblem struct {
	Field string
	Msg   string
}

func (p ConfigProblem) Error() string { return p.Field + ": " + p.Msg }

// Validate reports every problem in c, as an operator wrote it, with no
// side effects. A Config it accepts compiles: Validate refuses all that New
// refuses, and more: a window or stale_if_error above LeaseMax (New caps
// them) and a method that is not an HTTP token.
func (c Config) Validate() []ConfigProblem {
	v := &validator{cfg: c, tiers: make(map[string]bool, len(c.Tiers))}
	v.checkTiers()
	v.checkDefaultTier()
	for i, r := range c.Routes {
		v.checkRoute(fmt.Sprintf("routes[%d]", i), r)
	}
	if c.LeaseMax <= 0 {
		v.add("lease_max", "must be positive")
	}
	checkLifetime(v, "max_token_lifetime", c.MaxTokenLifetime)
	return v.out
}

type validator struct {
	cfg   Config
	tiers map[string]bool // defined tier names
	out   []ConfigProblem
}

func (v *validator) add(field, msg string) {
	v.out = append(v.out, ConfigProblem{Field: field, Msg: msg})
}

// checkTiers holds each tier to SPEC §1: durations within 0..lease.max, no
// stale_if_error without a window, each method an HTTP token in one tier.
func (v *validator) checkTiers() {
	if len(v.cfg.Tiers) == 0 {
		v.add("tiers", "no tiers defined")
	}
	byMethod := map[string]string{}
	max := v.cfg.LeaseMax
	for _, t := range v.cfg.Tiers {
		f := "tiers." + t.Name
		switch {
		case t.Name == "":
			v.add("tiers", "tier with an empty name")
			continue
		case v.tiers[t.Name]:
			v.add(f, "tier defined twice")
			continue
		}
		v.tiers[t.Name] = true
		if t.Window < 0 || t.StaleIfError < 0 {
			v.add(f, "durations must not be negative")
		}
		if t.Window > max {
			v.add(f+".window", fmt.Sprintf("%v exceeds lease.max %v", t.Window, max))
		}
		if t.StaleIfError > 0 && t.Window == 0 {
			v.add(f+".stale_if_error", "not allowed on a tier with window 0")
		}
		if t.StaleIfError > max {
			v.add(f+".stale_if_error", fmt.Sprintf("%v exceeds lease.max %v", t.StaleIfError, max))
		}
		for _, m := range t.Methods {
			v.checkMethod(f+".methods", m)
			if other, dup := byMethod[m]; dup {
				v.add(f+".methods", fmt.Sprintf("method %s is also in tier %q", m, other))
			}
			byMethod[m] = t.Name
		}
	}
}

func (v *validator) checkDefaultTier() {
	def := v.cfg.DefaultTier
	if def == "" {
		def = TierCritical // as New reads it
	}
	if !v.tiers[def] {
		v.add("default_tier", fmt.Sprintf("%q is not a defined tier", def))
	}
}

// checkRoute runs a route's prefix and hosts through the normalisers
// requests go through, so a rule can only be written in the form it
// matches in.
func (v *validator) checkRoute(f string, r RouteConfig) {
	if err := ValidatePrefix(r.Prefix); err != nil {
		v.add(f+".prefix", err.Error())
	}
	if _, err := NormalizeHost(r.Host); err != nil {
		v.add(f+".host", fmt.Sprintf("%q: %v", r.Host, err))
	}
	for i, h := range r.LocalHosts {
		if _, err := NormalizeLocalHost(h); err != nil {
			v.add(fmt.Sprintf("%s.local_hosts[%d]", f, i), err.Error())
		}
	}
	if r.Tier != "" && !v.tiers[r.Tier] {
		v.add(f+".tier", fmt.Sprintf("%q is not a defined tier", r.Tier))
	}
	if r.Window != nil && (*r.Window < 0 || *r.Window > v.cfg.LeaseMax) {
		v.add(f+".window", fmt.Sprintf("%v is outside 0..lease.max", *r.Window))
	}
	switch r.Require {
	case "", ProfileWLCG, ProfileSciTokens:
	default:
		v.add(f+".require", fmt.Sprintf("%q is not %s or %s", r.Require, ProfileWLCG, ProfileSciTokens))
	}
	if r.ConditionalCreate && r.Require != ProfileWLCG {
		v.add(f+".conditional_create", errConditionalCreate.Error())
	}
	for _, m := range r.Methods {
		v.checkMethod(f+".methods", m)
	}
	checkLifetime(v, f+".max_token_lifetime", r.MaxTokenLifetime)
}

func (v *validator) checkMethod(field, m string) {
	if !isMethodToken(m) {
		v.add(field, fmt.Sprintf("%q is not an HTTP method token", m))
	}
}

// isMethodToken reports whether m is a non-empty run of RFC 9110 token
// characters (the backquote excepted, as leasegate always has).
func isMethodToken(m string) bool {
	return m != "" && strings.IndexFunc(m, func(r rune) bool {
		return !('a' <= r && r <= 'z' || 'A' <= r && r <= 'Z' || '0' <= r && r <= '9' || strings.ContainsRune("!#$%&'*+.^_|~-", r))
	}) < 0
}
