package authz

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/leasegate/leasegate/authz/issuer"
	"github.com/leasegate/leasegate/authz/metrics"
	"github.com/leasegate/leasegate/authz/panics"
	"github.com/leasegate/leasegate/authz/trust"
	"github.com/leasegate/leasegate/leasecache"
	"github.com/leasegate/leasegate/leasecache/fleet"
	"github.com/leasegate/leasegate/policy"
)

// answerMargin is how long before the caller's deadline a still-pending
// validation is answered with 503 (at most a fifth of the time left).
const answerMargin = 50 * time.Millisecond

// result is what one validation with an issuer established.
type result struct {
	lease      leasecache.Lease
	active     bool
	reason     Reason // why not active
	desc       string
	err        error // issuer fault
	retryAfter time.Duration
	// kept: the answer (lease or negative lease) is in the local cache,
	// no revoke overtook it; only then is it shared with the fleet.
	kept bool
}

func (e *Engine) validate(ctx context.Context, d Decision, r *Request, m policy.Match, tok string, key leasecache.Key, old leasecache.Lease, haveOld bool) Decision {
	is := e.pickIssuer(tok)
	if is == nil {
		return e.deny(d, http.StatusUnauthorized, ReasonUnknownIssuer, ErrCodeInvalidToken, "token issuer is not accepted", "")
	}
	d.Issuer = is.Config.Name
	res := e.flight(ctx, is, tok, key, old, haveOld)
	if res == nil {
		return e.unavailable(d, ReasonCanceled, "issuer did not answer in time", time.Second)
	}

	switch {
	case res.err != nil:
		// m.Window, not the tier's: a route that sets window 0 gets no stale
		// allowance either (every request there must be validated fresh),
		// nor does a MOVE or COPY into one. m.StaleIfError is the smaller
		// of the request's and a local target's tier's.
		stale := m.StaleIfError
		if haveOld && stale > 0 && m.Window > 0 && old.Issuer == is.Config.Name {
			// A validation "in the future" (the clock stepped back since the
			// lookup) has no age to judge: SPEC §1, never a longer allowance.
			now := e.now()
			if age := now.Sub(old.ValidatedAt); age >= 0 && age < stale && !issuer.Expired(old.Expiry, now) {
				d.Lease = LeaseStale
				e.allow(&d, r, &m, is, &old, nil, now)
				return d
			}
		}
		return e.unavailable(d, ReasonIssuerUnavailable, "token issuer is unavailable", res.retryAfter)
	case !res.active:
		return e.deny(d, http.StatusUnauthorized, res.reason, ErrCodeInvalidToken, res.desc, "")
	}
	e.allow(&d, r, &m, is, &res.lease, nil, e.now())
	return d
}

// flight joins (or leads) the coalesced validation of tok at is and waits
// for its result; nil when the caller's time ran out first. old is the
// lease whose window closed, when haveOld.
func (e *Engine) flight(ctx context.Context, is *trust.Issuer, tok string, key leasecache.Key, old leasecache.Lease, haveOld bool) *result {
	// SPEC §1: "A request that arrives after an admin revoke of its token
	// (or subject) is never answered from an issuer call that started
	// before that revoke". Every revoke advances the cache's generation,
	// so a request that arrives after one cannot join an older flight.
	// The generation lives in the cache, which outlives engine rebuilds.
	gen := e.cache.Generation()
	var pos fleet.Position
	var deadline, after time.Time
	if e.fleet != nil {
		pos = e.fleet.Position() // the fence, read with gen
		deadline, _ = ctx.Deadline()
		if haveOld {
			after = old.ValidatedAt
		}
	}
	leader := false
	ch := e.group.DoChan(flightKey(is.Config.Name, key, gen), func() (any, error) {
		leader = true
		// A flight that ended after this caller's lookup may have left a
		// negative lease it came too early to see: refuse on it, as a
		// lookup now would, rather than ask the issuer again. (A lease is
		// not reused here: the callers' windows differ.)
		if _, o := e.cache.Lookup(key, 0); o == leasecache.Negative {
			return &result{reason: ReasonNegative, desc: "token is not active"}, nil
		}
		// The shared call outlives any one caller: a caller with a short
		// deadline gets its 503 on time while the answer still fills the
		// lease for the next request. The issuer client applies its timeout.
		fctx := context.WithoutCancel(ctx)
		if e.fleet != nil {
			return e.validateFleet(fctx, is, tok, key, gen, pos, deadline, after), nil
		}
		return e.validateWithIssuer(fctx, is, tok, key, gen), nil
	})
	// Answer a little before the caller's deadline: a 503 that arrives after
	// it is a gRPC DEADLINE_EXCEEDED to Envoy, which then applies
	// failure_mode_allow instead of our decision.
	var early <-chan time.Time
	if dl, ok := ctx.Deadline(); ok {
		rem := time.Until(dl)
		t := time.NewTimer(rem - min(answerMargin, rem/5))
		defer t.Stop()
		early = t.C
	}
	var res *result // nil: no answer in time
	select {
	case v := <-ch:
		if res, _ = v.Val.(*result); res == nil {
			res = &result{err: fmt.Errorf("validate with %s: no result: %w", is.Config.Name, issuer.ErrIssuerUnavailable)}
		}
		if !leader {
			e.metrics.Coalesced()
		}
	case <-early:
	case <-ctx.Done():
	}
	return res
}

// validateFleet is one coalesced flight in fleet mode: take the fleet's
// lock for key; holding it, validate and share the answer; else wait for
// the holder's answer, at most the issuer timeout and until deadline (the
// leading caller's), and validate on our own when none comes (taking the
// lock again: it may be free, and the stamp is then this one's). after is
// the validated_at of the lease whose window closed (zero for none).
func (e *Engine) validateFleet(ctx context.Context, is *trust.Issuer, tok string, key leasecache.Key, gen uint64, pos fleet.Position, deadline time.Time, after time.Time) *result {
	f := e.fleet
	timeout := is.Timeout()
	// The holder's answer is the only one worth waiting for, and its
	// validation began at most the lock's life (timeout) before this
	// Acquire. A shared lease validated earlier is no answer, even when
	// this caller knows no lease (after is zero: the store lookup failed
	// or found none): served, it would pass any tier's window, 0 too.
	if early := e.now().Add(-timeout); after.Before(early) {
		after = early
	}
	won, since, err := f.Acquire(ctx, key, timeout)
	if err == nil && !won {
		switch l, o := f.Wait(ctx, key, gen, timeout, deadline, after); o {
		case fleet.Hit:
			e.metrics.Coalesced()
			return &result{lease: l, active: true}
		case fleet.Negative:
			e.metrics.Coalesced()
			return &result{reason: ReasonNegative, desc: "token is not active"}
		}
		// No answer came: a stamp of our own, taken now, orders what this
		// validation shares (the wait's would count against its horizon).
		if w, s, err := f.Acquire(ctx, key, timeout); err == nil {
			won, since = w, s
		}
	}
	res := e.validateWithIssuer(ctx, is, tok, key, gen)
	if res.kept && !f.Share(ctx, key, res.lease, res.active, pos, since) {
		// The lease left the local cache (a newer refusal, or too old to
		// order): a request from now on must not join this flight.
		e.group.Forget(flightKey(is.Config.Name, key, gen))
	}
	if won {
		f.Release(ctx, key)
	}
	return res
}

// flightKey coalesces validations of one token at one issuer that started
// at the same revocation generation.
func flightKey(issuer string, key leasecache.Key, gen uint64) string {
	b := make([]byte, 0, len(issuer)+1+len(key)+8)
	b = append(b, issuer...)
	b = append(b, 0)
	b = append(b, key[:]...)
	b = binary.LittleEndian.AppendUint64(b, gen)
	return string(b)
}

// pickIssuer: a JWT by its iss claim, an opaque token to default_for_opaque.
func (e *Engine) pickIssuer(tok string) *trust.Issuer {
	if iss, ok := issuer.PeekIssuer(tok); ok {
		return e.byIss[iss]
	}
	return e.opaque
}

// validateWithIssuer runs once per coalesced flight; gen is the cache's
// revocation generation read before it started.
func (e *Engine) validateWithIssuer(ctx context.Context, is *trust.Issuer, tok string, key leasecache.Key, gen uint64) (res *result) {
	name := is.Config.Name
	start := time.Now()
	defer e.panicAsFault(ctx, name, key, start, &res)
	validatedAt := e.now()
	claims, err := is.Verify(ctx, tok)
	took := time.Since(start)
	if err != nil {
		return e.notValidated(ctx, is, key, gen, err, took)
	}
	is.MarkReached()
	if !claims.Active {
		e.metrics.Issuer(ctx, name, metrics.IssuerInactive, took)
		return &result{reason: ReasonInactive, desc: "token is not active", kept: e.storeNegative(ctx, key, gen)}
	}
	if issuer.Expired(claims.Expiry, validatedAt) {
		e.metrics.Issuer(ctx, name, metrics.IssuerInactive, took)
		return &result{reason: ReasonExpired, desc: "token expired", kept: e.storeNegative(ctx, key, gen)}
	}
	// The JWT verifier's nbf rule, for an introspection answer too (in
	// the jwt modes the signed claims passed it already). Its iat is the
	// lifetime policy's to judge, per route (allow), as README says.
	if why := issuer.NotYetValid(claims.NotBefore, time.Time{}, validatedAt, is.ClockSkew); why != "" {
		e.metrics.Issuer(ctx, name, metrics.IssuerInvalid, took)
		return &result{reason: ReasonInvalidToken, desc: why, kept: e.storeNegative(ctx, key, gen)}
	}
	e.metrics.Issuer(ctx, name, metrics.IssuerActive, took)
	l := leasecache.Lease{
		ValidatedAt: validatedAt,
		Expiry:      claims.Expiry,
		IssuedAt:    claims.IssuedAt,
		NoIssuedAt:  claims.IssuedAt.IsZero(),
		Subject:     claims.Subject,
		ClientID:    claims.ClientID,
		Scope:       claims.Scope,
		Issuer:      name,
		Audience:    strings.Join(claims.Audience, " "),
		WLCGVersion: claims.WLCGVersion,
		SessionID:   claims.SessionID,
		Email:       claims.Email,
		Gen:         gen,
	}
	return &result{lease: l, active: true, kept: e.storeLease(ctx, name, key, l)}
}

// panicAsFault, deferred by validateWithIssuer, turns a panic into its
// result. singleflight re-panics a DoChan panic on a goroutine of its own,
// past every recover, and the process dies. A panic here is an issuer fault
// instead: 503 for every caller of the flight, counted, and logged without
// its value (which could quote the token).
func (e *Engine) panicAsFault(ctx context.Context, name string, key leasecache.Key, start time.Time, res **result) {
	if p := recover(); p != nil {
		e.metrics.Issuer(ctx, name, metrics.IssuerError, time.Since(start))
		attrs := append([]slog.Attr{slog.String("issuer", name), slog.String("token_id", key.Prefix())}, panics.Attrs(p)...)
		e.log.LogAttrs(ctx, slog.LevelError, "panic while validating a token; answered as an issuer fault", attrs...)
		*res = &result{err: fmt.Errorf("validate with %s: panic (%T): %w", name, p, issuer.ErrIssuerUnavailable), retryAfter: time.Second}
	}
}

// notValidated is the result of a verification that failed with err: the
// breaker refused the call, the token was refused (a negative lease since
// gen), or the issuer failed.
func (e *Engine) notValidated(ctx context.Context, is *trust.Issuer, key leasecache.Key, gen uint64, err error, took time.Duration) *result {
	name := is.Config.Name
	var open *trust.CircuitOpenError
	var ie *issuer.IssuerError
	var te *issuer.TokenError
	switch {
	case errors.As(err, &open):
		e.metrics.Issuer(ctx, name, metrics.IssuerCircuitOpen, 0)
		return &result{err: err, retryAfter: open.Wait}
	case errors.As(err, &te) || errors.Is(err, issuer.ErrInvalidToken):
		e.metrics.Issuer(ctx, name, metrics.IssuerInvalid, took)
		kept := e.storeNegative(ctx, key, gen)
		desc := "token is invalid"
		if te != nil {
			desc = te.Reason
		}
		return &result{reason: tokenReason(err), desc: desc, kept: kept}
	}
	retry := time.Duration(0)
	if errors.As(err, &ie) {
		retry = ie.RetryAfter
		if ie.Status != 0 {
			is.MarkReached()
		}
	}
	e.metrics.Issuer(ctx, name, metrics.IssuerError, took)
	e.log.LogAttrs(ctx, slog.LevelWarn, "issuer fault", slog.String("issuer", name), slog.String("token_id", key.Prefix()), slog.String("error", err.Error()))
	return &result{err: err, retryAfter: max(retry, time.Second)}
}

// storeLease keeps l for the next request. An admin revoke that landed
// during the call wins: the cache refuses this older answer. The callers of
// this flight, who all arrived before the revoke, get it; the next request
// asks the issuer again. It reports whether the lease was kept.
func (e *Engine) storeLease(ctx context.Context, name string, key leasecache.Key, l leasecache.Lease) bool {
	if e.now().Sub(l.ValidatedAt) > leasecache.FlightHorizon {
		// Too slow to order against a refusal met meanwhile (remembered that
		// long): this flight's callers get it; as in the fleet, not kept.
		e.log.LogAttrs(ctx, slog.LevelDebug, "lease not kept: the validation outlasted the order horizon", slog.String("issuer", name), slog.String("token_id", key.Prefix()))
		return false
	}
	err := e.cache.Store(key, l)
	switch {
	case errors.Is(err, leasecache.ErrRevokedSince):
		e.log.LogAttrs(ctx, slog.LevelDebug, "lease not kept: revoked during validation", slog.String("issuer", name), slog.String("token_id", key.Prefix()))
	case errors.Is(err, leasecache.ErrSuperseded):
		e.log.LogAttrs(ctx, slog.LevelDebug, "lease not kept: a later validation's answer is stored", slog.String("issuer", name), slog.String("token_id", key.Prefix()))
	case err != nil:
		// Not fatal: the decision stands, the next request asks again.
		e.log.LogAttrs(ctx, slog.LevelWarn, "lease not stored", slog.String("issuer", name), slog.String("error", err.Error()))
	}
	return err == nil
}

// storeNegative remembers a refusal; a revoke since gen drops it. It
// reports whether the negative lease was kept.
func (e *Engine) storeNegative(ctx context.Context, key leasecache.Key, gen uint64) bool {
	err := e.cache.StoreNegative(key, gen)
	if err != nil && !errors.Is(err, leasecache.ErrRevokedSince) {
		e.log.LogAttrs(ctx, slog.LevelWarn, "negative lease not stored", slog.String("token_id", key.Prefix()), slog.String("error", err.Error()))
	}
	return err == nil
}

// tokenReason is the Reason for a refusal the issuer clients reported.
func tokenReason(err error) Reason {
	switch {
	case errors.Is(err, issuer.ErrExpired):
		return ReasonExpired
	case errors.Is(err, issuer.ErrNotAccessToken):
		return ReasonNotAccessToken
	case errors.Is(err, issuer.ErrAudience):
		return ReasonAudience
	}
	return ReasonInvalidToken
}
