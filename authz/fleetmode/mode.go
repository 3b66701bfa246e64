// Package fleetmode is the engine's side of fleet mode (SPEC §8): the
// shared store it consumes (SharedStore), what it does while the store is
// down (StoreLoss), and the steps of a lease miss that go through the
// store: the shared lookup, the fleet lock, waiting for another replica's
// answer and sharing its own. It moves leases between the store and the
// local cache; authz decides what they allow.
package fleetmode

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"github.com/leasegate/leasegate/leasecache"
	"github.com/leasegate/leasegate/leasecache/fleet"
)

// SharedStore is the fleet's shared lease store (SPEC §8) as the engine
// uses it; leasecache/fleet's *Store is one. Every call is bounded by the
// store's own timeout (fleet.timeout) on top of ctx, and returns at once
// while the store is down. The engine imports leasecache/fleet only for
// the value types Position, Stamp and Outcome.
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
	// Store shares a lease unless a newer answer is shared (since: the
	// store's clock at the Acquire before the validation).
	Store(ctx context.Context, k leasecache.Key, l leasecache.Lease, ttl time.Duration, pos fleet.Position, since fleet.Stamp) error
	StoreNegative(ctx context.Context, k leasecache.Key, ttl time.Duration, pos fleet.Position) error
	Acquire(ctx context.Context, k leasecache.Key, ttl time.Duration) (bool, fleet.Stamp, error)
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
	// StoreLossDeny answers 503 (authz.ReasonFleetUnavailable).
	StoreLossDeny StoreLoss = "deny"
)

// Valid reports whether l is one of the three modes.
func (l StoreLoss) Valid() bool {
	return l == StoreLossStandalone || l == StoreLossRevalidate || l == StoreLossDeny
}

// Config puts the engine in fleet mode.
type Config struct {
	Store SharedStore
	// OnStoreLoss: "" is StoreLossStandalone.
	OnStoreLoss StoreLoss
	// NegativeTTL is how long a shared negative lease lives
	// (lease.negative_ttl).
	NegativeTTL time.Duration
	// LeaseMax caps a shared lease's TTL (lease.max).
	LeaseMax time.Duration
}

// Local is what a Mode needs of its engine.
type Local struct {
	Cache  *leasecache.Cache
	Tracer trace.Tracer
	Log    *slog.Logger
	Now    func() time.Time
	// OnLookup counts a shared lookup by its outcome.
	OnLookup func(fleet.Outcome)
}

// Mode is an engine's fleet mode.
type Mode struct {
	store       SharedStore
	loss        StoreLoss
	negativeTTL time.Duration
	leaseMax    time.Duration
	local       Local
}

// New is c's fleet mode for an engine with l; nil, nil without c or its
// store (a single replica).
func New(c *Config, l Local) (*Mode, error) {
	if c == nil || c.Store == nil {
		return nil, nil
	}
	f := &Mode{store: c.Store, loss: c.OnStoreLoss, negativeTTL: c.NegativeTTL, leaseMax: c.LeaseMax, local: l}
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

// Lost reports whether the store is down in a mode that changes the
// decision (revalidate, deny); standalone never looks, so its hit path
// costs nothing.
func (f *Mode) Lost() bool {
	return f.loss != StoreLossStandalone && !f.store.Up()
}

// Loss is what the engine does while the store is down.
func (f *Mode) Loss() StoreLoss { return f.loss }

// KeyOf is the fleet key of a token's SHA-256, the local cache's key too.
func (f *Mode) KeyOf(tokenSHA leasecache.Key) leasecache.Key { return f.store.KeyOf(tokenSHA) }

// Position is the fence for a validation starting now.
func (f *Mode) Position() fleet.Position { return f.store.Position() }

// span starts a child span of the Check when it is traced.
func (f *Mode) span(ctx context.Context, name string) (context.Context, trace.Span) {
	if !trace.SpanFromContext(ctx).IsRecording() {
		return ctx, nil
	}
	return f.local.Tracer.Start(ctx, name)
}

func endSpan(span trace.Span, attrs ...attribute.KeyValue) {
	if span != nil {
		span.SetAttributes(attrs...)
		span.End()
	}
}

// Lookup asks the store after a local miss. On a shared lease it
// fills the local cache at gen (refused if a revoke came meanwhile) and
// judges the window with the local rules; on a shared negative lease it
// remembers it locally. It returns what the local cache now says, or Miss.
// A shared lease no fresher than after (the local lease whose window
// closed) changes nothing.
func (f *Mode) Lookup(ctx context.Context, key leasecache.Key, w time.Duration, after time.Time) (leasecache.Lease, leasecache.Outcome) {
	cache := f.local.Cache
	gen := cache.Generation()
	sctx, span := f.span(ctx, "fleet.lookup")
	l, o, err := f.store.Lookup(sctx, key)
	endSpan(span, attribute.String("leasegate.fleet.outcome", o.String()))
	f.local.OnLookup(o)
	switch o {
	case fleet.Hit:
		// At the generation of the lease's own validation, not of this
		// lookup: a revoke here since then refuses it, also one that
		// never reached the store (SPEC §6, revoked locally).
		l.Gen = cache.GenerationAt(l.ValidatedAt, gen)
		if !l.ValidatedAt.After(after) || cache.Store(key, l) != nil {
			return leasecache.Lease{}, leasecache.Miss
		}
		return cache.Lookup(key, w)
	case fleet.Negative:
		if cache.StoreNegative(key, gen) == nil {
			return leasecache.Lease{}, leasecache.Negative
		}
	case fleet.Unavailable:
		f.local.Log.LogAttrs(ctx, slog.LevelDebug, "fleet lookup failed", slog.String("token_id", key.Prefix()), slog.Any("error", err))
	}
	return leasecache.Lease{}, leasecache.Miss
}

// Acquire takes the fleet's lock for key for at most ttl; won false
// with a nil error means another replica holds it. since goes to Share
// with the answer of the validation that follows.
func (f *Mode) Acquire(ctx context.Context, key leasecache.Key, ttl time.Duration) (won bool, since fleet.Stamp, err error) {
	actx, span := f.span(ctx, "fleet.acquire")
	won, since, err = f.store.Acquire(actx, key, ttl)
	endSpan(span, attribute.Bool("leasegate.fleet.won", won))
	return won, since, err
}

// Share writes what this replica validated for key to the store: l when
// active, else a negative lease. A revoke since pos, a newer answer
// shared since the Acquire that returned since, or a store that is down,
// leaves it unshared. When the newer answer is a refusal (another replica
// heard "not active" after this validation began), or the validation is
// too old to be ordered against one, l leaves the local cache too and
// Share reports false: the answer should serve no one who asks from now.
func (f *Mode) Share(ctx context.Context, key leasecache.Key, l leasecache.Lease, active bool, pos fleet.Position, since fleet.Stamp) bool {
	sctx, span := f.span(ctx, "fleet.store")
	var serr error
	if active {
		ttl := f.leaseMax
		if !l.Expiry.IsZero() {
			ttl = min(ttl, l.Expiry.Sub(f.local.Now()))
		}
		serr = f.store.Store(sctx, key, l, ttl, pos, since)
	} else {
		serr = f.store.StoreNegative(sctx, key, f.negativeTTL, pos)
	}
	endSpan(span)
	if active && (errors.Is(serr, fleet.ErrNewerRefusal) || errors.Is(serr, fleet.ErrTooOld)) {
		// Our answer is older than a refusal, or may be: the next request
		// here reads the fleet's answer. A newer local lease stays.
		f.local.Cache.Forget(key, l.ValidatedAt)
		return false
	}
	if serr != nil && !errors.Is(serr, fleet.ErrUnavailable) && !errors.Is(serr, leasecache.ErrRevokedSince) && !errors.Is(serr, leasecache.ErrSuperseded) {
		f.local.Log.LogAttrs(ctx, slog.LevelWarn, "fleet: answer not shared", slog.String("token_id", key.Prefix()), slog.String("error", serr.Error()))
	}
	return true
}

// Release gives the fleet's lock for key back.
func (f *Mode) Release(ctx context.Context, key leasecache.Key) {
	_ = f.store.Release(ctx, key)
}

// Wait waits for another replica's answer for key, at most timeout and
// until deadline (zero: none), a lease validated after after. A Hit or a
// Negative is in the local cache at gen; any other outcome means validate
// here.
func (f *Mode) Wait(ctx context.Context, key leasecache.Key, gen uint64, timeout time.Duration, deadline, after time.Time) (leasecache.Lease, fleet.Outcome) {
	wctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	if !deadline.IsZero() {
		var c2 context.CancelFunc
		wctx, c2 = context.WithDeadline(wctx, deadline)
		defer c2()
	}
	wctx, span := f.span(wctx, "fleet.wait")
	l, o, _ := f.store.Wait(wctx, key, after)
	endSpan(span, attribute.String("leasegate.fleet.outcome", o.String()))
	switch o {
	case fleet.Hit:
		l.Gen = f.local.Cache.GenerationAt(l.ValidatedAt, gen) // as in Lookup
		if f.local.Cache.Store(key, l) != nil {
			return leasecache.Lease{}, fleet.Miss // revoked meanwhile: ask the issuer
		}
		return l, o
	case fleet.Negative:
		if f.local.Cache.StoreNegative(key, gen) != nil {
			return leasecache.Lease{}, fleet.Miss
		}
	}
	return leasecache.Lease{}, o
}
