// Package fleetlink is a replica's link to the fleet's store (SPEC §8),
// opened once at start and kept across config generations.
package fleetlink

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/leasegate/leasegate/authz/fleetmode"
	"github.com/leasegate/leasegate/leasecache"
	"github.com/leasegate/leasegate/leasecache/fleet"
)

// Link is this replica's link to the fleet's store (SPEC §8): the
// engine's SharedStore, the fan-out hooks into the lease cache, and the
// fleet's metrics. The store is opened once at start; when Redis cannot
// be reached then, the replica starts cut off (on_store_loss) and opens
// it in the background. Fleet settings are restart-only, so one link
// serves every config generation.
type Link struct {
	cfg   fleet.Config
	loss  fleetmode.StoreLoss
	keyer *fleet.Keyer // KeyOf works before the store is open
	store atomic.Pointer[fleet.Store]
	cache *leasecache.Cache
	log   *slog.Logger

	up          prometheus.Gauge
	revocations *prometheus.CounterVec
	sources     []string // the revocations' source labels, fleet.SourceAdmin first
	delay       prometheus.Histogram

	cancel context.CancelFunc
	wg     sync.WaitGroup
}

var _ fleetmode.SharedStore = (*Link)(nil)

// Open opens the store fc describes, its revocations applied to cache and
// its metrics registered on reg; loss is fleet.on_store_loss. It refuses
// to start on a configuration, an answer (AUTH, ACL, TLS) or an eviction
// policy the store refuses; when the store cannot be reached it starts cut
// off and retries. sources are the push receivers' names (SPEC §9), which
// label leasegate_fleet_revocations_total beside fleet.SourceAdmin.
func Open(ctx context.Context, fc *fleet.Config, loss fleetmode.StoreLoss, cache *leasecache.Cache, log *slog.Logger, reg prometheus.Registerer, sources ...string) (*Link, error) {
	fl := &Link{
		cfg:     *fc,
		loss:    loss,
		keyer:   fleet.NewKeyer(fc.Secret),
		cache:   cache,
		log:     log,
		sources: append([]string{fleet.SourceAdmin}, sources...),
		up: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "leasegate_fleet_store_up",
			Help: "1 while the fleet's store answers and this replica follows its revocation log.",
		}),
		revocations: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "leasegate_fleet_revocations_total",
			Help: "Revocations from other replicas applied here, by source (admin, backchannel, ssf).",
		}, []string{"source"}),
		delay: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "leasegate_fleet_revocation_delay_seconds",
			Help:    "Delay from a revocation on another replica to its application here.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5},
		}),
	}
	for _, c := range []prometheus.Collector{fl.up, fl.revocations, fl.delay} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("metrics: %w", err)
		}
	}
	for _, src := range fl.sources {
		fl.revocations.WithLabelValues(src)
	}
	octx, cancel := context.WithTimeout(ctx, 5*time.Second)
	st, err := fleet.Open(octx, fl.cfg, fl.hooks())
	cancel()
	switch {
	case err == nil:
		fl.store.Store(st)
		fl.up.Set(1)
	case errors.Is(err, fleet.ErrUnavailable):
		log.Warn("fleet store unreachable at start; serving cut off and retrying",
			slog.String("on_store_loss", string(fl.loss)), slog.String("error", err.Error()))
	default:
		return nil, fmt.Errorf("fleet: %w", err)
	}
	bg, stop := context.WithCancel(context.Background())
	fl.cancel = stop
	if st == nil {
		fl.wg.Add(1)
		go fl.reopen(bg)
	}
	return fl, nil
}

// reopen retries Open until it succeeds or ctx ends. A replica that
// served cut off may have missed revocations: once the store is open, it
// drops every local lease before trusting the fleet again.
func (fl *Link) reopen(ctx context.Context) {
	defer fl.wg.Done()
	wait := time.Second
	for {
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
		octx, cancel := context.WithTimeout(ctx, 5*time.Second)
		st, err := fleet.Open(octx, fl.cfg, fl.hooks())
		cancel()
		if err == nil {
			fl.cache.RevokeAll()
			fl.store.Store(st)
			fl.up.Set(1)
			fl.log.Info("fleet store reached; local leases dropped (revocations may have been missed while cut off)")
			return
		}
		fl.log.Debug("fleet store still unreachable", slog.String("error", err.Error()))
		wait = min(2*wait, 10*time.Second)
	}
}

func (fl *Link) hooks() fleet.Hooks {
	return fleet.Hooks{
		Revoked: func(r fleet.Revocation) {
			// Our own records too: between the local revoke and the
			// store write, a local miss can refill the lease from Redis
			// (the store's index does not hold the record yet). Applied
			// again now, after the index holds it, nothing can refill it.
			if r.BySubject {
				fl.cache.RevokeName(r.Name())
			} else {
				fl.cache.Revoke(r.Key)
			}
			if r.Self {
				return
			}
			fl.revocations.WithLabelValues(fl.sourceLabel(r.Source)).Inc()
		},
		Lost: func(why string) {
			fl.cache.RevokeAll()
			fl.log.Warn("fleet: revocations may have been missed; every local lease dropped", slog.String("why", why))
		},
		Health: func(up bool) {
			if up {
				fl.up.Set(1)
				fl.log.Info("fleet store up")
			} else {
				fl.up.Set(0)
				fl.log.Warn("fleet store down", slog.String("on_store_loss", string(fl.loss)))
			}
		},
		Delay: func(d time.Duration) { fl.delay.Observe(d.Seconds()) },
	}
}

// Close stops the retries and the store.
func (fl *Link) Close() {
	fl.cancel()
	fl.wg.Wait()
	if st := fl.store.Load(); st != nil {
		st.Close()
	}
}

// Loss is fleet.on_store_loss.
func (fl *Link) Loss() fleetmode.StoreLoss { return fl.loss }

// Mode is what the replica is in now: connected, or its on_store_loss.
func (fl *Link) Mode() string {
	if fl.Up() {
		return "connected"
	}
	return string(fl.loss)
}

// DelayP99 is the 99th percentile of the revocation delay from other
// replicas, 0 before the store is open.
func (fl *Link) DelayP99() time.Duration {
	if st := fl.store.Load(); st != nil {
		return st.DelayP99()
	}
	return 0
}

var errNotOpen = fmt.Errorf("%w: not connected since start", fleet.ErrUnavailable)

// The SharedStore methods: the open store's, or unavailable at once.

func (fl *Link) KeyOf(k leasecache.Key) leasecache.Key { return fl.keyer.KeyOf(k) }

func (fl *Link) Up() bool {
	st := fl.store.Load()
	return st != nil && st.Up()
}

func (fl *Link) Position() fleet.Position {
	if st := fl.store.Load(); st != nil {
		return st.Position()
	}
	return fleet.Position{}
}

func (fl *Link) Lookup(ctx context.Context, k leasecache.Key) (leasecache.Lease, fleet.Outcome, error) {
	if st := fl.store.Load(); st != nil {
		return st.Lookup(ctx, k)
	}
	return leasecache.Lease{}, fleet.Unavailable, errNotOpen
}

func (fl *Link) Store(ctx context.Context, k leasecache.Key, l leasecache.Lease, ttl time.Duration, pos fleet.Position, since fleet.Stamp) error {
	if st := fl.store.Load(); st != nil {
		return st.Store(ctx, k, l, ttl, pos, since)
	}
	return errNotOpen
}

func (fl *Link) StoreNegative(ctx context.Context, k leasecache.Key, ttl time.Duration, pos fleet.Position) error {
	if st := fl.store.Load(); st != nil {
		return st.StoreNegative(ctx, k, ttl, pos)
	}
	return errNotOpen
}

func (fl *Link) Acquire(ctx context.Context, k leasecache.Key, ttl time.Duration) (bool, fleet.Stamp, error) {
	if st := fl.store.Load(); st != nil {
		return st.Acquire(ctx, k, ttl)
	}
	return false, 0, errNotOpen
}

func (fl *Link) Release(ctx context.Context, k leasecache.Key) error {
	if st := fl.store.Load(); st != nil {
		return st.Release(ctx, k)
	}
	return nil
}

func (fl *Link) Wait(ctx context.Context, k leasecache.Key, after time.Time) (leasecache.Lease, fleet.Outcome, error) {
	if st := fl.store.Load(); st != nil {
		return st.Wait(ctx, k, after)
	}
	return leasecache.Lease{}, fleet.Unavailable, errNotOpen
}

// Revoke puts a token revocation (k is its fleet key) in the store.
func (fl *Link) Revoke(ctx context.Context, k leasecache.Key) error {
	if st := fl.store.Load(); st != nil {
		return st.Revoke(ctx, k)
	}
	return errNotOpen
}

// RevokeName puts a push revocation by name in the store, marked with
// its source; n.Issuer is leasegate's issuer name.
func (fl *Link) RevokeName(ctx context.Context, n leasecache.Name, source string) error {
	if st := fl.store.Load(); st != nil {
		return st.RevokeName(ctx, n, source)
	}
	return errNotOpen
}

// sourceLabel bounds the metric's source label to the sources leasegate
// writes; a record's source is authenticated, but may come from a newer
// replica.
func (fl *Link) sourceLabel(src string) string {
	if slices.Contains(fl.sources, src) {
		return src
	}
	return "other"
}

// RevokeSubject puts a subject revocation in the store; issuer is
// leasegate's issuer name.
func (fl *Link) RevokeSubject(ctx context.Context, issuer, subject string) error {
	if st := fl.store.Load(); st != nil {
		return st.RevokeSubject(ctx, issuer, subject)
	}
	return errNotOpen
}
