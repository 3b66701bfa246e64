package server

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/leasegate/leasegate/authz"
	"github.com/leasegate/leasegate/envoy"
	"github.com/leasegate/leasegate/leasecache"
	"github.com/leasegate/leasegate/policy"
	"github.com/leasegate/leasegate/server/config"
	"github.com/leasegate/leasegate/server/forwardauth"
	"github.com/leasegate/leasegate/server/push"
)

// generation is one configuration in force: the config, the policy built
// from it, the engine deciding with both and the push receivers (nil when
// no issuer pushes). A reload builds a new one and swaps it in whole, so
// neither a check nor an admin call can see the config of one generation
// with the policy or engine of another.
type generation struct {
	cfg  *config.Config
	pol  *policy.Policy
	eng  *authz.Engine
	push *push.Receivers

	inflight atomic.Int64 // checks running on eng
	retired  atomic.Bool
	idle     chan struct{} // closed once retired with no check in flight
	idleOnce sync.Once
}

func newGeneration(cfg *config.Config, pol *policy.Policy, eng *authz.Engine, rcv *push.Receivers) *generation {
	return &generation{cfg: cfg, pol: pol, eng: eng, push: rcv, idle: make(chan struct{})}
}

func (g *generation) release() {
	if g.inflight.Add(-1) == 0 && g.retired.Load() {
		g.idleOnce.Do(func() { close(g.idle) })
	}
}

// retire marks g replaced; idle closes when its last check is done.
func (g *generation) retire() {
	g.retired.Store(true)
	if g.inflight.Load() == 0 {
		g.idleOnce.Do(func() { close(g.idle) })
	}
}

// acquire returns the generation in force, counted as in use until
// release. A check that started on a generation finishes on it.
func (s *service) acquire() *generation {
	for {
		g := s.gen.Load()
		g.inflight.Add(1)
		// Counted before this second look: a reload that swapped g out
		// after it will wait for this check.
		if s.gen.Load() == g {
			return g
		}
		g.release()
	}
}

// install puts g in force and retires the generation before it, whose
// engine is closed (idle issuer connections, JWKS refresh) once the checks
// still running on it are done, never under them.
func (s *service) install(g *generation) {
	s.liveMu.Lock()
	s.live[g] = struct{}{}
	s.applyLeaseMax()
	s.liveMu.Unlock()
	old := s.gen.Swap(g)
	if old == nil {
		return
	}
	old.retire()
	s.retiring.Add(1)
	go func() {
		defer s.retiring.Done()
		select {
		case <-old.idle:
		case <-s.stopping: // Run is returning; its drain bounded the checks
		}
		// A validation that outlives its checks cannot undo a revoke: the
		// shared cache refuses a fill older than one (revoke generations).
		old.eng.Close()
		closePush(old.push)
		s.liveMu.Lock()
		delete(s.live, old)
		s.applyLeaseMax()
		s.liveMu.Unlock()
	}()
}

// applyLeaseMax gives the shared lease cache the longest lease.max of the
// generations still deciding, so no window in use outlives what the cache
// keeps (subject revokes). Called with liveMu held.
func (s *service) applyLeaseMax() {
	var m int64
	for g := range s.live {
		m = max(m, int64(g.cfg.Lease.Max))
	}
	s.cache.SetMaxAge(time.Duration(m))
}

// revoke is an admin revoke of one token; key is the token's SHA-256.
// The engines share one lease cache, whose revoke generation also voids
// any validation still in flight in an engine a reload replaced, so the
// engine in force revokes for all. In fleet mode the local cache is keyed
// by the fleet key, and the revoke then goes to the store (errStore: it
// could not, the local revoke stands).
func (s *service) revoke(ctx context.Context, key leasecache.Key) (found bool, errStore error) {
	if s.fleet != nil {
		key = s.fleet.KeyOf(key)
	}
	found = s.gen.Load().eng.Revoke(key)
	if s.fleet != nil {
		errStore = s.fleet.Revoke(ctx, key)
	}
	return found, errStore
}

// revokeSubject names the issuer (by name or iss) as the configuration in
// force knows it. In fleet mode the revoke then goes to the store, by
// issuer name.
func (s *service) revokeSubject(ctx context.Context, issuer, subject string) (errStore, err error) {
	name, err := s.gen.Load().eng.RevokeName(issuer, leasecache.ClaimSubject, subject)
	if err != nil {
		return nil, err
	}
	if s.fleet != nil {
		errStore = s.fleet.RevokeSubject(ctx, name, subject)
	}
	return errStore, nil
}

// revokeNames is a push revocation (SPEC §9): revokeSubject for each name
// (a subject, session or email), its fleet records marked with source.
// The error joins every name the engine refused and every record the
// store did not take; the names it could revoke stand.
func (s *service) revokeNames(ctx context.Context, source string, names []leasecache.Name) error {
	g := s.gen.Load()
	var errs []error
	for _, n := range names {
		issuer, err := g.eng.RevokeName(n.Issuer, n.Claim, n.Value)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if s.fleet != nil {
			if err := s.fleet.RevokeName(ctx, leasecache.NameOf(issuer, n.Claim, n.Value), source); err != nil {
				errs = append(errs, err)
			}
		}
	}
	return errors.Join(errs...)
}

// checker is what the gRPC and HTTP front ends call: each check runs on
// the generation in force when it starts.
type checker struct{ s *service }

var (
	_ envoy.Checker       = checker{}
	_ forwardauth.Checker = checker{}
)

func (c checker) Check(ctx context.Context, r *authz.Request) authz.Decision {
	g := c.s.acquire()
	defer g.release()
	return g.eng.Check(ctx, r)
}
