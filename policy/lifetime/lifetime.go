// Package lifetime owns the token lifetime policy's arithmetic (SPEC §2,
// max_token_lifetime): a limit and where it is set, the stricter of two,
// the deadline a token is judged by and the judgement. Pure, no I/O;
// package policy composes the limits of a request's routes.
package lifetime

import (
	"fmt"
	"strings"
	"time"
)

// minLimit is the smallest max_token_lifetime that may be set:
// iat has whole seconds, so a shorter limit could refuse a token the
// instant it is issued.
const minLimit = time.Second

// Limit is one max_token_lifetime and where it is set (SPEC §2,
// token lifetime policy).
type Limit struct {
	// Max is the longest after its iat a token may be accepted; 0 is no
	// limit.
	Max time.Duration
	// Source names the setting in error_description, the -check summary
	// and /config: "global", "issuer hydra" or "route /data/".
	Source string
}

// SourceGlobal, Issuer and the policy's routes name the three places a
// limit is set: one spelling each, wherever it is shown.
const SourceGlobal = "global"

// Issuer is the limit an issuer's max_token_lifetime sets.
func Issuer(name string, max time.Duration) Limit {
	return Limit{Max: max, Source: "issuer " + name}
}

// Set reports whether l limits anything.
func (l Limit) Set() bool { return l.Max > 0 }

// Min is the stricter of l and o, SPEC §2's "the minimum of those that
// are set": the smaller Max, an unset limit losing to any set one. On a
// tie l is kept, so the broader setting (global, then issuer, then the
// first route) is the one named.
func (l Limit) Min(o Limit) Limit {
	if o.Set() && (!l.Set() || o.Max < l.Max) {
		return o
	}
	return l
}

// String is "issuer hydra: 1h", or "none".
func (l Limit) String() string {
	if !l.Set() {
		return "none"
	}
	return l.Source + ": " + FormatDuration(l.Max)
}

// Policy is the lifetime policy a request's token is held to: the
// limit, the smallest of the global one, the issuer's and every matching
// route's, and whether a token minted for longer is refused at once.
type Policy struct {
	Limit Limit
	// RefuseLongLived is lease.refuse_long_lived: a token whose exp − iat
	// exceeds Limit.Max (or that has no exp) is refused from its first
	// request, not only once it is older than the limit.
	RefuseLongLived bool
}

// Deadline is the instant from which a token issued at iat and expiring
// at exp (zero: no exp) is no longer accepted: min(exp, iat + limit).
// Zero when nothing bounds it. It is the one deadline a fresh answer and
// a lease are both judged by (Judge), so a lease never outlives it.
func (lt Policy) Deadline(iat, exp time.Time) time.Time {
	if !lt.Limit.Set() || iat.IsZero() {
		return exp
	}
	end := iat.Add(lt.Limit.Max)
	if !exp.IsZero() && exp.Before(end) {
		return exp
	}
	return end
}

// Judge applies the lifetime policy at now to a token's iat and exp, as
// an issuer answered or a lease recorded them: "" when the token may be
// accepted, else why not, worded as an RFC 6750 error_description that
// names the limit. Without a limit it judges nothing (the exp rule alone
// is issuer.Expired's).
//
// skew is the issuer's clock_skew, applied as to a JWT's iat: an iat up
// to skew in the future is the issuer's clock running ahead, and
// accepted; beyond it the token is refused. Skew never extends the
// deadline, as it never extends exp: a token is accepted only while
// now < min(exp, iat + limit).
func (lt Policy) Judge(iat, exp, now time.Time, skew time.Duration) string {
	if !lt.Limit.Set() {
		return ""
	}
	switch {
	case iat.IsZero():
		return fmt.Sprintf("token has no iat, which the lifetime policy (%s) requires", lt.Limit)
	case iat.After(now.Add(skew)):
		return "token issued in the future"
	case lt.RefuseLongLived && (exp.IsZero() || exp.Sub(iat) > lt.Limit.Max):
		return fmt.Sprintf("token lifetime is longer than the lifetime policy allows (%s)", lt.Limit)
	}
	deadline := lt.Deadline(iat, exp)
	switch {
	case now.Before(deadline):
		return ""
	case deadline.Equal(exp):
		return "token expired"
	}
	return fmt.Sprintf("token older than the lifetime policy allows (%s)", lt.Limit)
}

// FormatDuration writes d as a Go duration without the zero units
// time.Duration.String keeps: 12h, 1h30m, 90s.
func FormatDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = s[:len(s)-2]
	}
	if strings.HasSuffix(s, "h0m") {
		s = s[:len(s)-2]
	}
	return s
}

// Problem is what is wrong with a max_token_lifetime d, "" when
// nothing: the one rule for the global, an issuer's and a route's (0 is no
// limit, else at least minLimit).
func Problem(d time.Duration) string {
	switch {
	case d < 0:
		return "must not be negative"
	case d > 0 && d < minLimit:
		return fmt.Sprintf("%v is below %v (iat has whole seconds); 0 sets no limit", d, minLimit)
	}
	return ""
}
