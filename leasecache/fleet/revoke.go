package fleet

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/rueidis"

	"github.com/leasegate/leasegate/leasecache"
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
	rec := s.k.sealRecord(s.ks.log, recToken, time.Now(), s.origin, k[:])
	id, err := s.appendRecord(ctx, rec)
	if err != nil {
		return s.unavailable("revoke", k, err)
	}
	s.pin(id, recToken, &Revocation{Key: k})
	return nil
}

// RevokeSubject appends a subject revocation to the log: every replica
// voids the subject's leases validated before it, local and shared
// (shared ones by their fence, without a scan).
func (s *Store) RevokeSubject(ctx context.Context, issuer, subject string) error {
	if len(issuer) > maxNameLen || len(subject) > maxNameLen {
		return fmt.Errorf("fleet: revoke subject: issuer or subject longer than %d bytes", maxNameLen)
	}
	ctx, cancel := s.bound(ctx)
	defer cancel()
	rec := s.k.sealRecord(s.ks.log, recSubject, time.Now(), s.origin, subjectBody(issuer, subject))
	id, err := s.appendRecord(ctx, rec)
	if err != nil {
		return fmt.Errorf("%w: revoke subject of %s: %w", ErrUnavailable, issuer, err)
	}
	s.pin(id, recSubject, &Revocation{BySubject: true, Issuer: issuer, Subject: subject, Source: SourceAdmin})
	return nil
}

// RevokeName appends a revocation by name (leasecache.NameOf: a subject,
// a session or an email of one issuer) on behalf of source, a push
// receiver ("backchannel", "ssf"), which every follower sees as
// Revocation.Source. Like RevokeSubject it voids local and shared leases
// alike; nil means the record is in the store.
func (s *Store) RevokeName(ctx context.Context, n leasecache.Name, source string) error {
	if len(n.Issuer) > maxNameLen || len(n.Value) > maxNameLen || len(source) > maxNameLen {
		return fmt.Errorf("fleet: revoke %s: issuer, value or source longer than %d bytes", n.Claim, maxNameLen)
	}
	ctx, cancel := s.bound(ctx)
	defer cancel()
	rec := s.k.sealRecord(s.ks.log, recName, time.Now(), s.origin, nameBody(source, n))
	id, err := s.appendRecord(ctx, rec)
	if err != nil {
		return fmt.Errorf("%w: revoke %s of %s: %w", ErrUnavailable, n.Claim, n.Issuer, err)
	}
	s.pin(id, recName, &Revocation{BySubject: true, Issuer: n.Issuer, Subject: n.Value, Claim: n.Claim, Source: source})
	return nil
}

// The log's scripts. KEYS[1] is the epoch, KEYS[2] the log: one slot (the
// {rev} hash tag). ensure() makes the pair consistent: a log without its
// epoch, or an epoch without its log (Redis restarted empty, a key
// deleted), is replaced by a new epoch and a log holding only a genesis
// record, so a follower can never mistake a recreated log for a quiet one.
const ensureLua = `
local function ensure()
  local e = redis.call('GET', KEYS[1])
  if e and string.len(e) == 16 and redis.call('EXISTS', KEYS[2]) == 1 then return e end
  redis.call('DEL', KEYS[2])
  redis.call('SET', KEYS[1], ARGV[1])
  redis.call('XADD', KEYS[2], '*', 'r', ARGV[2], 'p', '0-0')
  return ARGV[1]
end
`

// initScript: ARGV[1] a fresh epoch, ARGV[2] a genesis record.
var initScript = rueidis.NewLuaScript(ensureLua + `return ensure()`)

// appendScript: ARGV[1..2] as initScript, ARGV[3] the record, ARGV[4] the
// retention in ms. The record names its predecessor ("p") and the log is
// trimmed by MINID on Redis' own clock, in one step.
var appendScript = rueidis.NewLuaScript(ensureLua + `
local e = ensure()
local last = redis.call('XREVRANGE', KEYS[2], '+', '-', 'COUNT', 1)
local prev = '0-0'
if #last > 0 then prev = last[1][1] end
local t = redis.call('TIME')
local minid = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) - tonumber(ARGV[4])
if minid < 0 then minid = 0 end
local id = redis.call('XADD', KEYS[2], 'MINID', '=', string.format('%.0f', minid), '*', 'r', ARGV[3], 'p', prev)
return {e, id}
`)

func randomEpoch() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return fmt.Sprintf("%016x", binary.BigEndian.Uint64(b[:]))
}

func parseEpoch(s string) (uint64, bool) {
	if len(s) != 16 {
		return 0, false
	}
	e, err := strconv.ParseUint(s, 16, 64)
	return e, err == nil
}

func (s *Store) genesis() string {
	return string(s.k.sealRecord(s.ks.log, recGenesis, time.Now(), s.origin, nil))
}

// pin puts our own record into the index at once (index.pin); an ID we
// cannot read leaves it to the follower.
func (s *Store) pin(raw string, kind byte, r *Revocation) {
	if id, ok := parseID(raw); ok {
		s.idx.pin(id, kind, r)
	}
}

// appendRecord appends one sealed record and returns its ID.
func (s *Store) appendRecord(ctx context.Context, rec []byte) (string, error) {
	res, err := appendScript.Exec(ctx, s.c, []string{s.ks.epoch, s.ks.log},
		[]string{randomEpoch(), s.genesis(), string(rec), strconv.FormatInt(s.retention.Milliseconds(), 10)}).ToArray()
	if err != nil {
		return "", err
	}
	if len(res) != 2 {
		return "", errors.New("fleet: append script: unexpected reply")
	}
	return res[1].ToString()
}
