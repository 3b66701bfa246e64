package trust

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/leasegate/leasegate/authz/issuer"
)

// Verify asks the issuer in its mode. jwt+introspection verifies locally
// first, so forged, expired or foreign tokens never reach the issuer.
// Local verification runs before and outside the circuit breaker: SPEC §2,
// "A token refused locally (forged, expired, wrong audience) neither
// resets nor trips it, and is refused with 401 even while the breaker is
// open". JWKS fetches are not breaker calls either: the verifier already
// bounds them (one on-demand fetch per MinRefetchInterval), and an open
// breaker must not stop tokens whose keys are known.
func (is *Issuer) Verify(ctx context.Context, tok string) (issuer.Claims, error) {
	var local issuer.Claims
	if is.JWT != nil {
		c, err := is.JWT.Verify(ctx, tok)
		if err != nil || is.Introspector == nil {
			return c, err
		}
		local = c
	}
	c, err := is.introspect(ctx, tok)
	if err != nil || !c.Active || is.JWT == nil {
		return c, err
	}
	// Both agree the token is good; the signed claims fill what the
	// introspection answer left out.
	c.Subject = cmp.Or(c.Subject, local.Subject)
	c.ClientID = cmp.Or(c.ClientID, local.ClientID)
	c.Scope = cmp.Or(c.Scope, local.Scope)
	c.WLCGVersion = cmp.Or(c.WLCGVersion, local.WLCGVersion)
	c.SessionID = cmp.Or(c.SessionID, local.SessionID)
	c.Email = cmp.Or(c.Email, local.Email)
	if c.Expiry.IsZero() || (!local.Expiry.IsZero() && local.Expiry.Before(c.Expiry)) {
		c.Expiry = local.Expiry
	}
	if len(c.Audience) == 0 {
		c.Audience = local.Audience
	}
	// The earlier iat, as the earlier exp: the lifetime policy then
	// judges the older reading of the token's age.
	if c.IssuedAt.IsZero() || (!local.IssuedAt.IsZero() && local.IssuedAt.Before(c.IssuedAt)) {
		c.IssuedAt = local.IssuedAt
	}
	return c, nil
}

// CircuitOpenError: the breaker refused the issuer call; it opens again
// for a call after Wait.
type CircuitOpenError struct {
	Issuer string
	Wait   time.Duration
}

func (e *CircuitOpenError) Error() string {
	return fmt.Sprintf("validate with %s: circuit open", e.Issuer)
}

func (e *CircuitOpenError) Unwrap() error { return issuer.ErrIssuerUnavailable }

// introspect is the one issuer call the circuit breaker wraps (SPEC §2:
// "The circuit breaker counts issuer calls only"). An answer about the
// token, whatever it says, is a success; no usable answer is a failure.
func (is *Issuer) introspect(ctx context.Context, tok string) (issuer.Claims, error) {
	if ok, wait := is.breaker.allow(); !ok {
		return issuer.Claims{}, &CircuitOpenError{Issuer: is.Config.Name, Wait: wait}
	}
	answered := false
	defer func() {
		// A panic in the call is a failed call; a half-open probe that
		// never reported would keep the breaker refusing forever.
		if !answered {
			is.breaker.failure(0)
		}
	}()
	c, err := is.Introspector.Introspect(ctx, tok)
	answered = true
	var ie *issuer.IssuerError
	switch {
	case err == nil, errors.Is(err, issuer.ErrInvalidToken):
		is.breaker.success()
	case errors.As(err, &ie):
		is.breaker.failure(ie.RetryAfter)
	default:
		is.breaker.failure(0)
	}
	return c, err
}
