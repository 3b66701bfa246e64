package revlog

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

// AppendToken appends a token revocation of k (its fleet key) and records
// it in the index at once; nil means the log holds it. The append trims
// records older than retention, on Redis' clock.
func (l *Log) AppendToken(ctx context.Context, k leasecache.Key, retention time.Duration) error {
	rec := sealRecord(l.cfg.MAC, l.cfg.LogKey, recToken, time.Now(), l.cfg.Origin, k[:])
	id, err := l.appendRecord(ctx, rec, retention)
	if err != nil {
		return err
	}
	l.pin(id, recToken, &Revocation{Key: k})
	return nil
}

// AppendSubject appends a subject revocation, as AppendToken does; issuer
// and subject are at most MaxNameLen bytes.
func (l *Log) AppendSubject(ctx context.Context, issuer, subject string, retention time.Duration) error {
	rec := sealRecord(l.cfg.MAC, l.cfg.LogKey, recSubject, time.Now(), l.cfg.Origin, subjectBody(issuer, subject))
	id, err := l.appendRecord(ctx, rec, retention)
	if err != nil {
		return err
	}
	l.pin(id, recSubject, &Revocation{BySubject: true, Issuer: issuer, Subject: subject, Source: SourceAdmin})
	return nil
}

// AppendName appends a revocation by name (a subject, a session or an
// email of one issuer) on behalf of source, which followers see as
// Revocation.Source; as AppendToken does. The issuer, the value and
// source are at most MaxNameLen bytes.
func (l *Log) AppendName(ctx context.Context, n leasecache.Name, source string, retention time.Duration) error {
	rec := sealRecord(l.cfg.MAC, l.cfg.LogKey, recName, time.Now(), l.cfg.Origin, nameBody(source, n))
	id, err := l.appendRecord(ctx, rec, retention)
	if err != nil {
		return err
	}
	l.pin(id, recName, &Revocation{BySubject: true, Issuer: n.Issuer, Subject: n.Value, Claim: n.Claim, Source: source})
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

func (l *Log) genesis() string {
	return string(sealRecord(l.cfg.MAC, l.cfg.LogKey, recGenesis, time.Now(), l.cfg.Origin, nil))
}

// pin puts our own record into the index at once (index.pin); an ID we
// cannot read leaves it to the follower.
func (l *Log) pin(raw string, kind byte, r *Revocation) {
	if id, ok := parseID(raw); ok {
		l.idx.pin(id, kind, r)
	}
}

// appendRecord appends one sealed record and returns its ID.
func (l *Log) appendRecord(ctx context.Context, rec []byte, retention time.Duration) (string, error) {
	res, err := appendScript.Exec(ctx, l.cfg.Client, []string{l.cfg.EpochKey, l.cfg.LogKey},
		[]string{randomEpoch(), l.genesis(), string(rec), strconv.FormatInt(retention.Milliseconds(), 10)}).ToArray()
	if err != nil {
		return "", err
	}
	if len(res) != 2 {
		return "", errors.New("fleet: append script: unexpected reply")
	}
	return res[1].ToString()
}
