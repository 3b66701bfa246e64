package leasecache

import "strings"

// Claim is which identity claim of a lease a revocation by name matches.
type Claim uint8

const (
	// ClaimSubject matches the lease's sub (an admin subject revoke, a
	// logout or security event naming the user).
	ClaimSubject Claim = iota
	// ClaimSession matches the lease's sid, the OpenID Connect session the
	// token was issued in (a back-channel logout naming the session).
	ClaimSession
	// ClaimEmail matches the lease's email, compared case-insensitively (a
	// security event naming the user by email).
	ClaimEmail
	// ClaimSessionlessSubject matches the lease's sub when the lease knows
	// no sid: a logout of one session of a user voids that session's
	// leases (ClaimSession) and those that cannot say which session they
	// belong to, not the user's other sessions.
	ClaimSessionlessSubject
)

// Valid reports whether c is one of the claims above.
func (c Claim) Valid() bool { return c <= ClaimSessionlessSubject }

func (c Claim) String() string {
	switch c {
	case ClaimSession:
		return "sid"
	case ClaimEmail:
		return "email"
	case ClaimSessionlessSubject:
		return "sub without sid"
	default:
		return "sub"
	}
}

// Name is what a revocation by name voids: the leases of one issuer whose
// claim has this value. Build it with NameOf, which gives every value of a
// claim one spelling.
type Name struct {
	Issuer string // leasegate's issuer name
	Claim  Claim
	Value  string
}

// NameOf is the Name of (issuer, claim, value). An email is lower-cased:
// mailbox names are case-sensitive only in theory, and matching more
// leases only costs revalidations, never an allow.
func NameOf(issuer string, c Claim, value string) Name {
	if c == ClaimEmail {
		value = strings.ToLower(value)
	}
	return Name{Issuer: issuer, Claim: c, Value: value}
}

// Names are the names a revocation can void l by: its subject, session,
// email, and its subject again when it knows no session. A claim the lease
// lacks has Value "", which no revocation names (RevokeName ignores an
// empty value).
func (l *Lease) Names() [4]Name {
	sessionless := l.Subject
	if l.SessionID != "" {
		sessionless = ""
	}
	return [4]Name{
		NameOf(l.Issuer, ClaimSubject, l.Subject),
		NameOf(l.Issuer, ClaimSession, l.SessionID),
		NameOf(l.Issuer, ClaimEmail, l.Email),
		NameOf(l.Issuer, ClaimSessionlessSubject, sessionless),
	}
}
