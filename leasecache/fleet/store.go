package fleet

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/rueidis"

	"github.com/leasegate/leasegate/leasecache"
	"github.com/leasegate/leasegate/leasecache/fleet/revlog"
)

var (
	// ErrUnavailable: the store cannot be reached, answered too late, or
	// is known to be down (then nothing is sent). The caller goes on as
	// on_store_loss says.
	ErrUnavailable = errors.New("fleet: store unavailable")
	// ErrEvictionPolicy: Open refused a server whose maxmemory-policy
	// could evict the revocation log (Config.AllowEviction overrides).
	ErrEvictionPolicy = errors.New("fleet: the Redis maxmemory-policy could evict revocation records")
	// ErrConfig: Open refused its Config; the error also wraps each Problem.
	ErrConfig = errors.New("fleet: invalid configuration")
	// ErrRefused: the store answered Open, but with an error (AUTH,
	// an ACL that does not cover the key prefix or a command, a TLS
	// handshake that failed): retrying will not help.
	ErrRefused = errors.New("fleet: the store refused")
)

// openErr classes an error of Open: an answer from Redis or a failed TLS
// handshake (ErrRefused) or none (ErrUnavailable).
func openErr(what string, err error) error {
	var (
		re   *rueidis.RedisError
		verr *tls.CertificateVerificationError
		oerr *net.OpError // "remote error": the server's TLS alert
	)
	if errors.As(err, &re) || errors.As(err, &verr) || errors.As(err, &oerr) && oerr.Op == "remote error" {
		return fmt.Errorf("%w: %s: %w", ErrRefused, what, err)
	}
	return fmt.Errorf("%w: %s: %w", ErrUnavailable, what, err)
}

// Outcome is what a shared lookup found.
type Outcome uint8

const (
	// Miss: nothing shared for the key; ask the issuer (or Acquire first).
	Miss Outcome = iota
	// Hit: a lease another replica (or this one) validated.
	Hit
	// Negative: a replica recently heard the token is not active.
	Negative
	// Forged: a value that fails its MAC or does not parse: treat as a
	// miss, and count it (someone or something wrote to the store).
	Forged
	// Revoked: a value validated before a revocation of its token or
	// subject that this replica has applied: a miss.
	Revoked
	// Unavailable: the store could not answer; the error says why.
	Unavailable
)

func (o Outcome) String() string {
	switch o {
	case Hit:
		return "hit"
	case Negative:
		return "negative"
	case Forged:
		return "forged"
	case Revoked:
		return "revoked"
	case Unavailable:
		return "error"
	default:
		return "miss"
	}
}

// Revocation is one record of the revocation log, as a follower hands it
// to Hooks.Revoked (revlog.Revocation).
type Revocation = revlog.Revocation

// SourceAdmin is the Source of POST /revoke's records (revlog.SourceAdmin).
const SourceAdmin = revlog.SourceAdmin

// Hooks are the caller's side of the fan-out. Each is called from the
// Store's background goroutines, never concurrently with itself, never
// after Close returns; each must be quick (the follower waits for it).
type Hooks struct {
	// Revoked applies a revocation record locally (leasecache Revoke or
	// RevokeName), in log order, records from this Store included
	// (Self).
	Revoked func(Revocation)
	// Lost says revocations may have been missed (the log was trimmed past
	// this replica or recreated): drop every local lease, and void local
	// fills in flight, before serving another hit.
	Lost func(why string)
	// Health reports Up changing.
	Health func(up bool)
	// Delay observes each revocation's delay from another replica (now −
	// Revocation.At), e.g. into leasegate_fleet_revocation_delay_seconds.
	Delay func(time.Duration)
}

// Stats are counters since Open.
type Stats struct {
	Revocations   uint64 // records handed to Hooks.Revoked
	ForgedValues  uint64 // shared values that failed their MAC
	ForgedRecords uint64 // log records that failed their MAC (skipped)
	RevokedValues uint64 // shared values refused by their fence
	Lost          uint64 // times Hooks.Lost was called
}

// Store is one replica's handle on the fleet's shared store. Safe for
// concurrent use. Every call is bounded by Config.Timeout on top of ctx.
type Store struct {
	cfg   Config
	c     rueidis.Client
	k     *Keyer
	ks    keys
	hooks Hooks
	owner string // this Store, in its locks
	log   *revlog.Log
	// retention is how long the log keeps records: LeaseMax +
	// RetentionMargin.
	retention time.Duration

	healthy, synced atomic.Bool
	upMu            sync.Mutex
	upSaid          bool

	stats struct{ forgedValues, revokedValues atomic.Uint64 }

	cancel    context.CancelFunc
	wg        sync.WaitGroup
	closeOnce sync.Once
}

// Open connects to the store, refuses a server that could evict the
// revocation log (unless AllowEviction), reads the log, and starts the
// health checks and the log follower. ctx bounds Open only. Open does
// not call Hooks.Lost: the caller's local cache is taken to be empty.
//
// The error wraps ErrConfig, ErrUnavailable (the store cannot be reached
// now: a caller may retry later), ErrRefused or ErrEvictionPolicy.
func Open(ctx context.Context, cfg Config, hooks Hooks) (*Store, error) {
	if ps := cfg.Validate(); len(ps) > 0 {
		errs := []error{ErrConfig}
		for _, p := range ps {
			errs = append(errs, p)
		}
		return nil, errors.Join(errs...)
	}
	cfg.SetDefaults()
	opt, err := cfg.clientOption()
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrConfig, err)
	}
	c, err := rueidis.NewClient(opt)
	if err != nil {
		return nil, openErr(fmt.Sprintf("connect %v", cfg.Addresses), err)
	}
	s := &Store{
		cfg:   cfg,
		c:     c,
		k:     NewKeyer(cfg.Secret),
		ks:    newKeys(cfg.KeyPrefix),
		hooks: hooks,

		retention: cfg.LeaseMax + RetentionMargin,
	}
	var origin [8]byte // this Store, in its records
	_, _ = rand.Read(origin[:])
	s.owner = hex.EncodeToString(origin[:])
	s.log = revlog.New(revlog.Config{
		Client: c, MAC: s.k.record, LogKey: s.ks.log, EpochKey: s.ks.epoch, Origin: origin,
		Timeout: cfg.Timeout, Retention: s.retention,
	}, revlog.Hooks{Revoked: hooks.Revoked, Lost: hooks.Lost, Delay: hooks.Delay, Synced: s.setSynced})
	if !cfg.AllowEviction {
		if err := s.checkEviction(ctx); err != nil {
			c.Close()
			return nil, err
		}
	}
	if err := s.log.Resync(ctx); err != nil {
		c.Close()
		return nil, openErr("read the revocation log", err)
	}
	s.healthy.Store(true)
	s.synced.Store(true)
	s.upSaid = true
	bg, cancel := context.WithCancel(context.Background())
	s.cancel = cancel
	s.wg.Add(2)
	go s.health(bg)
	go func() { defer s.wg.Done(); s.log.Follow(bg) }()
	return s, nil
}

// Close stops the background work and the connections; it may wait for
// the follower's read in flight (followBlock). The hooks are not called
// after it returns. Idempotent.
func (s *Store) Close() {
	s.closeOnce.Do(func() {
		s.cancel()
		s.wg.Wait()
		s.c.Close()
	})
}

// KeyOf is the fleet-wide key of a token's SHA-256 (see Keyer.KeyOf).
func (s *Store) KeyOf(tokenSHA leasecache.Key) leasecache.Key { return s.k.KeyOf(tokenSHA) }

// Position is the fence for a validation starting now: read it with
// leasecache's Generation, before the validation, and pass it to Store or
// StoreNegative with the validation's answer. The zero Position is
// refused (like a zero Lease.Gen in leasecache).
func (s *Store) Position() Position { return s.log.Position() }

// Up reports whether the store answers its pings and this replica follows
// the revocation log (it has applied everything the log holds, give or
// take one read). While it is not, Lookup, Store, StoreNegative, Acquire
// and Wait return ErrUnavailable at once, without waiting on the network;
// Revoke and RevokeSubject still try (a revoke must get through if it can).
func (s *Store) Up() bool { return s.healthy.Load() && s.synced.Load() }

// Stats returns the counters.
func (s *Store) Stats() Stats {
	ls := s.log.Stats()
	return Stats{
		Revocations:   ls.Revocations,
		ForgedValues:  s.stats.forgedValues.Load(),
		ForgedRecords: ls.ForgedRecords,
		RevokedValues: s.stats.revokedValues.Load(),
		Lost:          ls.Lost,
	}
}

// DelayP99 is the 99th percentile of the last revocation delays observed
// (records from other replicas), 0 before the first.
func (s *Store) DelayP99() time.Duration {
	d, _ := s.log.DelayQuantile(0.99)
	return d
}

// DelayQuantile is DelayP99 for any quantile q in [0, 1], with the number
// of delays it is computed over.
func (s *Store) DelayQuantile(q float64) (time.Duration, int) { return s.log.DelayQuantile(q) }

func (s *Store) setHealthy(v bool) { s.healthy.Store(v); s.sayUp() }
func (s *Store) setSynced(v bool)  { s.synced.Store(v); s.sayUp() }

func (s *Store) sayUp() {
	s.upMu.Lock()
	defer s.upMu.Unlock()
	if up := s.Up(); up != s.upSaid {
		s.upSaid = up
		if s.hooks.Health != nil {
			s.hooks.Health(up)
		}
	}
}

// bound limits ctx to Config.Timeout.
func (s *Store) bound(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, s.cfg.Timeout)
}

func (s *Store) unavailable(op string, k leasecache.Key, err error) error {
	return fmt.Errorf("%w: %s %s: %w", ErrUnavailable, op, k.Prefix(), err)
}

var errDown = errors.New("known down")

// Lookup reports what the fleet shares for k: a lease (Hit), a negative
// lease (Negative), or a Miss; Forged and Revoked are misses to count.
// The lease's Gen is 0: it is this replica's to set.
//
// Filling the local cache from a Hit races with a revocation arriving at
// the same time. The caller closes the race with leasecache's
// generation: read g := cache.Generation() before Lookup, set lease.Gen =
// g, and cache.Store it (or cache.StoreNegative(k, g)); serve the hit only
// if that store succeeds. The follower records a revocation here (which
// Lookup checks) before it calls Hooks.Revoked (which advances the
// generation), so a revocation is either seen by Lookup, or refuses the
// fill by generation, or evicts the filled lease after it: never missed.
func (s *Store) Lookup(ctx context.Context, k leasecache.Key) (leasecache.Lease, Outcome, error) {
	if !s.Up() {
		return leasecache.Lease{}, Unavailable, s.unavailable("lookup", k, errDown)
	}
	ctx, cancel := s.bound(ctx)
	defer cancel()
	key := s.ks.lease(k)
	b, err := s.c.Do(ctx, s.c.B().Get().Key(key).Build()).AsBytes()
	if rueidis.IsRedisNil(err) {
		return leasecache.Lease{}, Miss, nil
	}
	if err != nil {
		return leasecache.Lease{}, Unavailable, s.unavailable("lookup", k, err)
	}
	l, o := s.read(k, key, b)
	return l, o, nil
}

// read checks a shared value and its fence.
func (s *Store) read(k leasecache.Key, key string, b []byte) (leasecache.Lease, Outcome) {
	kind, pos, l, err := s.k.openValue(key, unstamped(b))
	if err != nil {
		s.stats.forgedValues.Add(1)
		return leasecache.Lease{}, Forged
	}
	lp := &l
	if kind != kindLease {
		lp = nil
	}
	if s.log.Voids(k, pos, lp) {
		s.stats.revokedValues.Add(1)
		return leasecache.Lease{}, Revoked
	}
	if kind == kindNegative {
		return leasecache.Lease{}, Negative
	}
	return l, Hit
}

// Store shares a fresh validation of k for ttl, which the caller computes
// as min(lease.max, exp − now) (never more than Config.LeaseMax is kept);
// ttl ≤ 0 stores nothing. pos is Position() read before the validation
// started, since the Stamp of the Acquire made before it. When the shared
// value is stamped at or after since, or a refusal was, or since is older
// than OrderHorizon or zero (no Acquire answered), nothing is written and
// the error wraps leasecache.ErrSuperseded (and ErrNewerRefusal when a
// refusal is the newest answer, ErrTooOld when since is too old); an
// older value is replaced. When
// this replica has already applied a revocation that voids the lease,
// nothing is stored and the error wraps leasecache.ErrRevokedSince.
func (s *Store) Store(ctx context.Context, k leasecache.Key, l leasecache.Lease, ttl time.Duration, pos Position, since Stamp) error {
	l.Gen = 0
	enc, err := leasecache.EncodeLease(l)
	if err != nil {
		return fmt.Errorf("fleet: store %s: %w", k.Prefix(), err)
	}
	return s.put(ctx, k, kindLease, enc, &l, ttl, pos, since)
}

// StoreNegative shares that k is not active, for ttl (lease.negative_ttl),
// as Store does. It replaces whatever is shared for k, even a newer lease
// (a late refusal errs on the side of denying), takes the next stamp, and
// is remembered for OrderHorizon, past its own value's expiry, against
// leases of validations that began before it.
func (s *Store) StoreNegative(ctx context.Context, k leasecache.Key, ttl time.Duration, pos Position) error {
	return s.put(ctx, k, kindNegative, nil, nil, ttl, pos, 0)
}

// put shares enc, the encoding of l (nil for a negative lease).
func (s *Store) put(ctx context.Context, k leasecache.Key, kind byte, enc []byte, l *leasecache.Lease, ttl time.Duration, pos Position, since Stamp) error {
	ttl = min(ttl, s.cfg.LeaseMax)
	if ttl <= 0 {
		return nil
	}
	if !s.Up() {
		return s.unavailable("store", k, errDown)
	}
	if s.log.Voids(k, pos, l) {
		return fmt.Errorf("fleet: store %s: %w", k.Prefix(), leasecache.ErrRevokedSince)
	}
	if kind == kindLease && since <= 0 {
		// Without a stamp nothing orders it against a refusal.
		return fmt.Errorf("fleet: store %s: no Acquire stamp, not shared: %w", k.Prefix(), leasecache.ErrSuperseded)
	}
	ctx, cancel := s.bound(ctx)
	defer cancel()
	key := s.ks.lease(k)
	v := s.k.sealValue(key, kind, pos, enc)
	done, err := putScript.Exec(ctx, s.c, []string{key, s.ks.order(k), key}, []string{
		rueidis.BinaryString(v), ms(ttl), since.arg(kind), ms(OrderHorizon),
	}).AsInt64()
	if err != nil {
		return s.unavailable("store", k, err)
	}
	switch done {
	case putWritten:
		return nil
	case putKeptRefusal:
		return fmt.Errorf("fleet: store %s: %w: %w", k.Prefix(), ErrNewerRefusal, leasecache.ErrSuperseded)
	case putTooOld:
		return fmt.Errorf("fleet: store %s: %w: %w", k.Prefix(), ErrTooOld, leasecache.ErrSuperseded)
	default:
		return fmt.Errorf("fleet: store %s: %w", k.Prefix(), leasecache.ErrSuperseded)
	}
}

// ms is d in whole milliseconds, at least 1, as PX and PEXPIRE take it.
func ms(d time.Duration) string { return strconv.FormatInt(max(d.Milliseconds(), 1), 10) }
