// Package trust is the engine's trusted issuers, one Issuer each: its
// configuration and the checks authz.New would refuse (ValidateIssuers),
// the issuer clients built from it (authz/issuer) with their connection
// pools, the order a mode verifies a token in, and the circuit breaker
// around the issuer calls. It knows nothing of leases, requests or
// decisions.
package trust

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/leasegate/leasegate/authz/issuer"
	"github.com/leasegate/leasegate/policy/lifetime"
)

// Mode is how an issuer's tokens are validated.
type Mode string

const (
	ModeIntrospection    Mode = "introspection"
	ModeJWT              Mode = "jwt"
	ModeJWTIntrospection Mode = "jwt+introspection"
)

// IssuerConfig is one trusted issuer.
type IssuerConfig struct {
	Name             string
	Issuer           string // the exact iss value
	Mode             Mode
	DefaultForOpaque bool
	Introspection    issuer.IntrospectionConfig // for the introspection modes
	JWT              issuer.JWTConfig           // for the jwt modes
	// Audiences, when set, must meet the token's aud; AcceptWLCGAny also
	// accepts issuer.WLCGAnyAudience. The one check runs where the token's
	// claims are first read: on the signed JWT in the jwt modes (before
	// the issuer is asked), on the answer in introspection mode. When
	// Audiences is nil, JWT.Audiences is used; JWT.AcceptWLCGAny counts too.
	// The jwt modes require them (RFC 9068 §4) unless AcceptAnyAudience.
	Audiences     []string
	AcceptWLCGAny bool
	// AcceptAnyAudience is the explicit opt-out for a jwt issuer without
	// Audiences; only then is "no audiences" read as "any audience".
	AcceptAnyAudience bool

	BasePath string // storage scope paths are relative to it
	// LocalHosts are other names of the storage this issuer's tokens are
	// used on: a Destination or Source on one is local (SPEC §5).
	LocalHosts []string
	// BreakerFailures consecutive issuer faults open the circuit for
	// BreakerOpenFor.
	BreakerFailures int
	BreakerOpenFor  time.Duration
	// MaxTokenLifetime, when set, limits how long after its iat one of
	// this issuer's tokens is accepted (SPEC §2, with the global and the
	// route limits: the smallest applies); 0: no limit of the issuer's.
	MaxTokenLifetime time.Duration
}

// ConfigProblem is one reason authz.New refuses its issuers. Field is the key as
// SPEC §7 spells it inside issuers[] ("introspection.endpoint"), "" when no
// one key is to blame, so a caller can point at the line.
type ConfigProblem struct {
	Issuer int // index into the issuer list
	Field  string
	Msg    string
}

func (p ConfigProblem) Error() string {
	if p.Field == "" {
		return fmt.Sprintf("issuers[%d]: %s", p.Issuer, p.Msg)
	}
	return fmt.Sprintf("issuers[%d].%s: %s", p.Issuer, p.Field, p.Msg)
}

// ValidateIssuers reports every problem authz.New would refuse in
// issuers, with no I/O and nothing built, so `leasegate -check` and
// start-up run the same checks (SPEC §6: a configuration -check accepts
// must start). authz.New calls it first.
func ValidateIssuers(issuers []IssuerConfig) []ConfigProblem {
	var out []ConfigProblem
	names := map[string]bool{}
	isses := map[string]bool{}
	opaque := ""
	for i, ic := range issuers {
		ps := ic.problems()
		if ic.Name != "" && names[ic.Name] {
			ps = append(ps, issuer.Problem{Field: "name", Msg: fmt.Sprintf("%q is used by two issuers", ic.Name)})
		}
		names[ic.Name] = true
		// Two issuers with one iss: a token would silently go to the last.
		if ic.Issuer != "" && isses[ic.Issuer] {
			ps = append(ps, issuer.Problem{Field: "issuer", Msg: fmt.Sprintf("%q is configured twice", ic.Issuer)})
		}
		isses[ic.Issuer] = true
		if ic.DefaultForOpaque {
			if opaque != "" {
				ps = append(ps, issuer.Problem{Field: "default_for_opaque", Msg: fmt.Sprintf("issuer %q is already default_for_opaque; at most one may be", opaque)})
			}
			opaque = cmp.Or(ic.Name, fmt.Sprintf("#%d", i))
		}
		seen := map[issuer.Problem]bool{}
		for _, p := range ps {
			if !seen[p] { // the issuer and its JWT verifier may both say it
				seen[p] = true
				out = append(out, ConfigProblem{Issuer: i, Field: p.Field, Msg: p.Msg})
			}
		}
	}
	return out
}

func (ic IssuerConfig) wantsIntrospection() bool {
	return ic.Mode == ModeIntrospection || ic.Mode == ModeJWTIntrospection
}

func (ic IssuerConfig) wantsJWT() bool { return ic.Mode == ModeJWT || ic.Mode == ModeJWTIntrospection }

// problems is what authz.New refuses in one issuer.
func (ic IssuerConfig) problems() []issuer.Problem {
	var ps []issuer.Problem
	add := func(field, msg string) { ps = append(ps, issuer.Problem{Field: field, Msg: msg}) }
	if ic.Name == "" {
		add("name", "is required")
	}
	if ic.Issuer == "" {
		add("issuer", "issuer is required")
	}
	if !ic.wantsIntrospection() && !ic.wantsJWT() {
		add("mode", fmt.Sprintf("%q is not introspection, jwt or jwt+introspection", ic.Mode))
	}
	if ic.DefaultForOpaque && ic.wantsJWT() {
		// jwt+introspection verifies the JWT first; an opaque token never
		// gets as far as introspection.
		add("default_for_opaque", fmt.Sprintf("a %s issuer verifies every token as a JWT, so it can never accept an opaque token; only an introspection issuer can be default_for_opaque", ic.Mode))
	}
	if slices.Contains(ic.Audiences, "") {
		add("audiences", "audiences must not contain an empty string")
	}
	if ic.AcceptAnyAudience && len(ic.Audiences)+len(ic.JWT.Audiences) > 0 {
		add("accept_any_audience", "contradicts audiences: set one or the other")
	}
	if ic.wantsJWT() && !ic.AcceptAnyAudience && len(ic.jwtConfig().Audiences) == 0 {
		// RFC 9068 §4: the resource server checks that it is the audience.
		add("audiences", fmt.Sprintf("is required for a %s issuer (RFC 9068 §4); set accept_any_audience: true to accept tokens for any audience", ic.Mode))
	}
	if ic.BreakerFailures < 0 || ic.BreakerOpenFor < 0 {
		add("circuit_breaker", "failures and open_for must not be negative")
	}
	if msg := lifetime.Problem(ic.MaxTokenLifetime); msg != "" {
		add("max_token_lifetime", msg)
	}
	if ic.wantsIntrospection() {
		for _, p := range ic.introspectionConfig().Validate() {
			add(strings.TrimSuffix("introspection."+p.Field, "."), p.Msg)
		}
	}
	if ic.wantsJWT() {
		ps = append(ps, ic.jwtConfig().Validate()...)
	}
	return ps
}

// introspectionConfig is the introspection client's view of ic.
func (ic IssuerConfig) introspectionConfig() issuer.IntrospectionConfig {
	c := ic.Introspection
	c.Name, c.ExpectedIssuer = ic.Name, ic.Issuer
	// SPEC §2: accept_wlcg_any_audience holds "wherever the audience is
	// checked", and that is one place per mode: the answer in
	// introspection mode, the signed JWT in the jwt modes.
	if ic.Mode == ModeIntrospection {
		c.Audiences, c.AcceptWLCGAny = ic.audiences(), ic.wlcgAny()
	}
	return c
}

func (ic IssuerConfig) audiences() []string {
	if ic.Audiences == nil {
		return ic.JWT.Audiences
	}
	return ic.Audiences
}

func (ic IssuerConfig) wlcgAny() bool { return ic.AcceptWLCGAny || ic.JWT.AcceptWLCGAny }

// jwtConfig is the JWT verifier's view of ic, before New adds its clock,
// logger and HTTP client.
func (ic IssuerConfig) jwtConfig() issuer.JWTConfig {
	c := ic.JWT
	c.Name, c.Issuer = ic.Name, ic.Issuer
	c.Audiences, c.AcceptWLCGAny = ic.audiences(), ic.wlcgAny()
	return c
}
