package fleet

import (
	"context"
	"fmt"
	"time"

	"github.com/redis/rueidis"

	"github.com/leasegate/leasegate/leasecache"
)

// releaseScript deletes a lock only while this Store still holds it: a
// lock that expired and was taken by another replica is theirs.
var releaseScript = rueidis.NewLuaScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
`)

// Acquire takes k's fleet-wide coalescing lock for ttl (the issuer
// timeout): won true means this replica validates k and then Stores (or
// StoreNegative) and Releases; false means another replica is validating
// it and this one should Wait. The lock expires by itself after ttl, so
// a replica that dies holding it delays the others by ttl at most. Either
// way, since is the store's clock as it answered: pass it to Store with
// the answer of a validation started after Acquire returned.
func (s *Store) Acquire(ctx context.Context, k leasecache.Key, ttl time.Duration) (won bool, since Stamp, err error) {
	if ttl <= 0 {
		return false, 0, fmt.Errorf("fleet: acquire %s: ttl %v is not positive", k.Prefix(), ttl)
	}
	if !s.Up() {
		return false, 0, s.unavailable("acquire", k, errDown)
	}
	ctx, cancel := s.bound(ctx)
	defer cancel()
	keys := []string{s.ks.lock(k), s.ks.order(k), s.ks.lease(k)}
	res, err := acquireScript.Exec(ctx, s.c, keys, []string{s.owner, ms(ttl), "", ms(OrderHorizon)}).AsIntSlice()
	if err == nil && len(res) != 2 {
		err = fmt.Errorf("%d values, want 2", len(res))
	}
	if err != nil {
		return false, 0, s.unavailable("acquire", k, err)
	}
	return res[0] == 1, Stamp(res[1]), nil
}

// Release gives up k's lock if this Store holds it. Store the answer
// first: a waiter that sees the lock gone without a value validates on
// its own.
func (s *Store) Release(ctx context.Context, k leasecache.Key) error {
	ctx, cancel := s.bound(ctx)
	defer cancel()
	if err := releaseScript.Exec(ctx, s.c, []string{s.ks.lock(k)}, []string{s.owner}).Error(); err != nil {
		return s.unavailable("release", k, err)
	}
	return nil
}

// Wait polls until another replica's answer for k is shared (Hit or
// Negative, with the lease), until k's lock is gone without a usable
// answer (Miss: the holder failed or gave up; validate on your own), or
// until ctx ends (its error, wrapped). The caller bounds ctx by the
// issuer timeout and its own deadline (SPEC §8).
//
// A shared lease validated at or before after is not an answer: it is the
// lease whose window had closed and made the caller ask (the zero after
// takes any lease). Without this, a refresh would find the old lease on
// the first poll and never wait for the fresh one.
//
// Polling, not a notification: one GET and EXISTS (one slot, one round
// trip) after 0.5 ms, then backing off by half up to 10 ms, so a waiter
// learns of the answer at most ~10 ms late and costs the store at most
// ~100 small reads a second while it waits. A push channel (pub/sub,
// keyspace events) would need server configuration and still a poll to
// cover a missed message.
func (s *Store) Wait(ctx context.Context, k leasecache.Key, after time.Time) (leasecache.Lease, Outcome, error) {
	key, lock := s.ks.lease(k), s.ks.lock(k)
	delay := 500 * time.Microsecond
	t := time.NewTimer(delay)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return leasecache.Lease{}, Unavailable, fmt.Errorf("fleet: wait %s: %w", k.Prefix(), ctx.Err())
		case <-t.C:
		}
		if !s.Up() {
			return leasecache.Lease{}, Unavailable, s.unavailable("wait", k, errDown)
		}
		l, o, held, err := s.poll(ctx, k, key, lock)
		switch {
		case err != nil:
			return leasecache.Lease{}, Unavailable, s.unavailable("wait", k, err)
		case o == Negative || o == Hit && l.ValidatedAt.After(after):
			return l, o, nil
		case !held:
			return leasecache.Lease{}, Miss, nil
		}
		delay = min(delay*3/2, 10*time.Millisecond)
		t.Reset(delay)
	}
}

func (s *Store) poll(ctx context.Context, k leasecache.Key, key, lock string) (leasecache.Lease, Outcome, bool, error) {
	ctx, cancel := s.bound(ctx)
	defer cancel()
	res := s.c.DoMulti(ctx, s.c.B().Get().Key(key).Build(), s.c.B().Exists().Key(lock).Build())
	held, err := res[1].AsInt64()
	if err != nil {
		return leasecache.Lease{}, Unavailable, false, err
	}
	b, err := res[0].AsBytes()
	if rueidis.IsRedisNil(err) {
		return leasecache.Lease{}, Miss, held == 1, nil
	}
	if err != nil {
		return leasecache.Lease{}, Unavailable, false, err
	}
	l, o := s.read(k, key, b)
	return l, o, held == 1, nil
}
