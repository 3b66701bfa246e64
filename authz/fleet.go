package authz

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"github.com/leasegate/leasegate/authz/trust"
	"github.com/leasegate/leasegate/leasecache"
	"github.com/leasegate/leasegate/leasecache/fleet"
)

// SharedStore is the fleet's shared lease store (SPEC §8) as the engine
// uses it; leasecache/fleet's *Store is one. Every call is bounded by the
// store's own timeout (fleet.timeout) on top of ctx, and returns at once
// while the store is down. The engine imports leasecache/fleet only for
// the two value types Position and Outcome.
type SharedStore interface {
	// KeyOf maps a token's SHA-256 to its fleet-wide key; in fleet mode it
	// is the local cache's key too.
	KeyOf(tokenSHA leasecache.Key) leasecache.Key
	// Up reports whether the store answers and this replica follows the
	// revocation log.
	Up() bool
	// Position is the fence for a validation starting now (read with the
	// cache's Generation).
	Position() fleet.Position
	Lookup(ctx context.Context, k leasecache.Key) (leasecache.Lease, fleet.Outcome, error)
	Store(ctx context.Context, k leasecache.Key, l leasecache.Lease, ttl time.Duration, pos fleet.Position) error
	StoreNegative(ctx context.Context, k leasecache.Key, ttl time.Duration, pos fleet.Position) error
	Acquire(ctx context.Context, k leasecache.Key, ttl time.Duration) (bool, error)
	Release(ctx context.Context, k leasecache.Key) error
	// Wait waits for another replica's answer for k, a lease validated
	// after after (see fleet.Store.Wait).
	Wait(ctx context.Context, k leasecache.Key, after time.Time) (leasecache.Lease, fleet.Outcome, error)
}

// StoreLoss is what a replica does while its shared store is down
// (fleet.on_store_loss).
type StoreLoss string

const (
	// StoreLossStandalone goes on as a single replica: local leases,
	// validations with the issuer. The default.
	StoreLossStandalone StoreLoss = "standalone"
	// StoreLossRevalidate serves no lease hit: every request is validated
	// with the issuer, coalesced per replica.
	StoreLossRevalidate StoreLoss = "revalidate"
	// StoreLossDeny answers 503 (ReasonFleetUnavailable).
	StoreLossDeny StoreLoss = "deny"
)

// Valid reports whether l is one of the three modes.
func (l StoreLoss) Valid() bool {
	return l == StoreLossStandalone || l == StoreLossRevalidate || l == StoreLossDeny
}

// FleetConfig puts the engine in fleet mode.
type FleetConfig struct {
	Store SharedStore
	// OnStoreLoss: "" is StoreLossStandalone.
	OnStoreLoss StoreLoss
	// NegativeTTL is how long a shared negative lease lives
	// (lease.negative_ttl).
	NegativeTTL time.Duration
	// LeaseMax caps a shared lease's TTL (lease.max).
	LeaseMax time.Duration
}

// ReasonFleetUnavailable: on_store_loss is deny and the store is down.
const ReasonFleetUnavailable Reason = "fleet_store_unavailable"

// fleetState is the engine's fleet mode; nil when off.
type fleetState struct {
	store       SharedStore
	loss        StoreLoss
	negativeTTL time.Duration
	leaseMax    time.Duration
}

func newFleetState(c *FleetConfig) (*fleetState, error) {
	if c == nil || c.Store == nil {
		return nil, nil
	}
	f := &fleetState{store: c.Store, loss: c.OnStoreLoss, negativeTTL: c.NegativeTTL, leaseMax: c.LeaseMax}
	if f.loss == "" {
		f.loss = StoreLossStandalone
	}
	if !f.loss.Valid() {
		return nil, fmt.Errorf("authz: on_store_loss %q is not standalone, revalidate or deny", c.OnStoreLoss)
	}
	if f.negativeTTL <= 0 {
		f.negativeTTL = leasecache.DefaultNegativeTTL
	}
	if f.leaseMax <= 0 {
		f.leaseMax = leasecache.DefaultMaxAge
	}
	return f, nil
}

// lost reports whether the store is down in a mode that changes the
// decision (revalidate, deny); standalone never looks, so its hit path
// costs nothing.
func (f *fleetState) lost() bool {
	return f.loss != StoreLossStandalone && !f.store.Up()
}

// fleetSpan starts a child span of the Check when it is traced.
func (e *Engine) fleetSpan(ctx context.Context, name string) (context.Context, trace.Span) {
	if !trace.SpanFromContext(ctx).IsRecording() {
		return ctx, nil
	}
	return e.tracer.Start(ctx, name)
}

func endSpan(span trace.Span, attrs ...attribute.KeyValue) {
	if span != nil {
		span.SetAttributes(attrs...)
		span.End()
	}
}

// sharedLookup asks the store after a local miss. On a shared lease it
// fills the local cache at gen (refused if a revoke came meanwhile) and
// judges the window with the local rules; on a shared negative lease it
// remembers it locally. It returns what the local cache now says, or Miss.
// A shared lease no fresher than after (the local lease whose window
// closed) changes nothing.
func (e *Engine) sharedLookup(ctx context.Context, key leasecache.Key, w time.Duration, after time.Time) (leasecache.Lease, leasecache.Outcome) {
	f := e.fleet
	gen := e.cache.Generation()
	sctx, span := e.fleetSpan(ctx, "fleet.lookup")
	l, o, err := f.store.Lookup(sctx, key)
	endSpan(span, attribute.String("leasegate.fleet.outcome", o.String()))
	e.metrics.observeFleetLookup(o)
	switch o {
	case fleet.Hit:
		l.Gen = gen
		if !l.ValidatedAt.After(after) || e.cache.Store(key, l) != nil {
			return leasecache.Lease{}, leasecache.Miss
		}
		return e.cache.Lookup(key, w)
	case fleet.Negative:
		if e.cache.StoreNegative(key, gen) == nil {
			return leasecache.Lease{}, leasecache.Negative
		}
	case fleet.Unavailable:
		e.log.LogAttrs(ctx, slog.LevelDebug, "fleet lookup failed", slog.String("token_id", key.Prefix()), slog.Any("error", err))
	}
	return leasecache.Lease{}, leasecache.Miss
}

// validateFleet is one coalesced flight in fleet mode: take the fleet's
// lock for key; holding it, validate and share the answer; else wait for
// the holder's answer, at most the issuer timeout and until deadline (the
// leading caller's), and validate on our own when none comes. after is
// the validated_at of the lease whose window closed (zero for none).
func (e *Engine) validateFleet(ctx context.Context, is *trust.Issuer, tok string, key leasecache.Key, gen uint64, pos fleet.Position, deadline time.Time, after time.Time) *result {
	f := e.fleet
	timeout := is.Timeout()
	actx, span := e.fleetSpan(ctx, "fleet.acquire")
	won, err := f.store.Acquire(actx, key, timeout)
	endSpan(span, attribute.Bool("leasegate.fleet.won", won))
	if err == nil && !won {
		if res := e.waitFleet(ctx, key, gen, timeout, deadline, after); res != nil {
			return res
		}
	}
	res := e.validateWithIssuer(ctx, is, tok, key, gen)
	if res.kept {
		sctx, span := e.fleetSpan(ctx, "fleet.store")
		var serr error
		if res.active {
			ttl := f.leaseMax
			if !res.lease.Expiry.IsZero() {
				ttl = min(ttl, res.lease.Expiry.Sub(e.now()))
			}
			serr = f.store.Store(sctx, key, res.lease, ttl, pos)
		} else {
			serr = f.store.StoreNegative(sctx, key, f.negativeTTL, pos)
		}
		endSpan(span)
		if serr != nil && !errors.Is(serr, fleet.ErrUnavailable) && !errors.Is(serr, leasecache.ErrRevokedSince) {
			e.log.LogAttrs(ctx, slog.LevelWarn, "fleet: answer not shared", slog.String("token_id", key.Prefix()), slog.String("error", serr.Error()))
		}
	}
	if won {
		_ = f.store.Release(ctx, key)
	}
	return res
}

// waitFleet waits for another replica's answer; nil means validate here.
func (e *Engine) waitFleet(ctx context.Context, key leasecache.Key, gen uint64, timeout time.Duration, deadline, after time.Time) *result {
	wctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	if !deadline.IsZero() {
		var c2 context.CancelFunc
		wctx, c2 = context.WithDeadline(wctx, deadline)
		defer c2()
	}
	wctx, span := e.fleetSpan(wctx, "fleet.wait")
	l, o, _ := e.fleet.store.Wait(wctx, key, after)
	endSpan(span, attribute.String("leasegate.fleet.outcome", o.String()))
	switch o {
	case fleet.Hit:
		l.Gen = gen
		if e.cache.Store(key, l) != nil {
			return nil // revoked meanwhile: ask the issuer
		}
		e.metrics.observeCoalesced()
		return &result{lease: l, active: true}
	case fleet.Negative:
		if e.cache.StoreNegative(key, gen) != nil {
			return nil
		}
		e.metrics.observeCoalesced()
		return &result{reason: ReasonNegative, desc: "token is not active"}
	}
	return nil
}
