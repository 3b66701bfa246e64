package fleet

import (
	"strconv"

	"github.com/redis/rueidis"
)

// Stamp is a time on the store's clock, in microseconds: one clock for
// the fleet, so ordering two replicas' answers about a token does not
// depend on how well their own clocks agree. Acquire returns it; a
// validation that starts after Acquire answered is newer than it.
type Stamp int64

// stampLen is the width of the decimal stamp the put script writes in
// front of every shared value; the MAC does not cover it (see putScript).
const stampLen = 16

// putScript writes a shared value behind its stamp, ordered: a refusal
// (ARGV[3] empty) is stamped now and always written; a lease is stamped
// with its Acquire's time and written only over an older value (or
// none), so a validation that began before another replica's refusal
// was stored cannot bring the token back. The stamp is outside the MAC:
// it orders writes and nothing reads it as an answer, so a writer to
// Redis who alters it can only keep leases from being shared, which it
// can do by deleting them anyway.
//
// KEYS[1] the lease key; ARGV[1] the sealed value, ARGV[2] PX, ARGV[3]
// the lease's stamp (empty for a refusal). Returns 1 when written, 0
// when a newer value is kept.
var putScript = rueidis.NewLuaScript(`
local stamp = ARGV[3]
if stamp == '' then
  local t = redis.call('TIME')
  stamp = tonumber(t[1]) * 1000000 + tonumber(t[2])
else
  stamp = tonumber(stamp)
  local cur = redis.call('GET', KEYS[1])
  if cur then
    local at = tonumber(string.sub(cur, 1, 16))
    if not at or at >= stamp then return 0 end
  end
end
redis.call('SET', KEYS[1], string.format('%016d', stamp) .. ARGV[1], 'PX', ARGV[2])
return 1
`)

// acquireScript takes a coalescing lock (SET NX PX) and reads the
// store's clock after it: {1 if taken, the stamp}.
var acquireScript = rueidis.NewLuaScript(`
local won = redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2])
local t = redis.call('TIME')
return {won and 1 or 0, tonumber(t[1]) * 1000000 + tonumber(t[2])}
`)

// arg is the put script's ARGV[3] for a value of kind.
func (s Stamp) arg(kind byte) string {
	if kind == kindNegative {
		return ""
	}
	return strconv.FormatInt(int64(s), 10)
}

// unstamped is a stored value without its stamp (nil when too short:
// it then fails to open, as forged).
func unstamped(b []byte) []byte {
	if len(b) < stampLen {
		return nil
	}
	return b[stampLen:]
}
