package fleet

import (
	"context"
	"fmt"

	"github.com/leasegate/leasegate/leasecache"
	"github.com/leasegate/leasegate/leasecache/fleet/revlog"
)

// Revoke deletes k's shared lease and appends a token revocation to the
// log; nil means the record is in the store and every connected replica
// will apply it. The caller has revoked locally first.
func (s *Store) Revoke(ctx context.Context, k leasecache.Key) error {
	ctx, cancel := s.bound(ctx)
	defer cancel()
	if err := s.c.Do(ctx, s.c.B().Del().Key(s.ks.lease(k)).Build()).Error(); err != nil {
		return s.unavailable("revoke", k, err)
	}
	if err := s.log.AppendToken(ctx, k, s.retention); err != nil {
		return s.unavailable("revoke", k, err)
	}
	return nil
}

// RevokeSubject appends a subject revocation to the log: every replica
// voids the subject's leases validated before it, local and shared
// (shared ones by their fence, without a scan).
func (s *Store) RevokeSubject(ctx context.Context, issuer, subject string) error {
	if len(issuer) > revlog.MaxNameLen || len(subject) > revlog.MaxNameLen {
		return fmt.Errorf("fleet: revoke subject: issuer or subject longer than %d bytes", revlog.MaxNameLen)
	}
	ctx, cancel := s.bound(ctx)
	defer cancel()
	if err := s.log.AppendSubject(ctx, issuer, subject, s.retention); err != nil {
		return fmt.Errorf("%w: revoke subject of %s: %w", ErrUnavailable, issuer, err)
	}
	return nil
}

// RevokeName appends a revocation by name (leasecache.NameOf: a subject,
// a session or an email of one issuer) on behalf of source, a push
// receiver ("backchannel", "ssf"), which every follower sees as
// Revocation.Source. Like RevokeSubject it voids local and shared leases
// alike; nil means the record is in the store.
func (s *Store) RevokeName(ctx context.Context, n leasecache.Name, source string) error {
	if len(n.Issuer) > revlog.MaxNameLen || len(n.Value) > revlog.MaxNameLen || len(source) > revlog.MaxNameLen {
		return fmt.Errorf("fleet: revoke %s: issuer, value or source longer than %d bytes", n.Claim, revlog.MaxNameLen)
	}
	ctx, cancel := s.bound(ctx)
	defer cancel()
	if err := s.log.AppendName(ctx, n, source, s.retention); err != nil {
		return fmt.Errorf("%w: revoke %s of %s: %w", ErrUnavailable, n.Claim, n.Issuer, err)
	}
	return nil
}
