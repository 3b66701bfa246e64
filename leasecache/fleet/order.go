package fleet

import (
	"errors"
	"strconv"

	"github.com/redis/rueidis"

	"github.com/leasegate/leasegate/leasecache"
)

// Stamp orders the answers about one token: microseconds on the store's
// clock, and never less than a stamp handed out for that token, or one
// its shared value carries (so a store clock stepping back does not
// reorder them). Acquire returns one; a validation that starts after
// Acquire answered is newer than it.
type Stamp int64

// stampLen is the width of the decimal stamp the put script writes in
// front of every shared value; the MAC does not cover it (see putScript).
const stampLen = 16

// OrderHorizon bounds how old a lease's stamp may be when it is shared:
// a validation that took longer (from its Acquire to its Store) is not
// shared, and a refusal's order is remembered that long, past its own
// value's expiry. Longer than any issuer timeout plus a JWKS fetch; the
// lease cache's own horizon for the same.
const OrderHorizon = leasecache.FlightHorizon

// ErrNewerRefusal: Store found that a refusal of the token, stamped after
// the lease's Acquire, is the newest answer about it; ErrTooOld: the
// lease's stamp is older than OrderHorizon, so a refusal since may be
// forgotten. Each also wraps leasecache.ErrSuperseded, and after either
// the caller drops its own copy of the lease.
var (
	ErrNewerRefusal = errors.New("fleet: a newer refusal of the token is shared")
	ErrTooOld       = errors.New("fleet: the validation began too long ago to be ordered")
)

// readOrder, inside a script, reads KEYS[2], the order key ("hi neg": the
// highest stamp handed out for the token, the last refusal's or empty),
// and sets s to the next stamp: the store's clock, or past hi and past
// the stamp of the value at KEYS[3] when the clock is behind them.
// writeOrder keeps hi = s and neg for OrderHorizon (ARGV[4] ms) past the
// time s stands for, and a second more: stamps ahead of a clock that
// stepped back keep it that much longer, and every write sets the span
// from its own stamp, so the key's life only ever grows. A string, not a
// hash: the scripts need only GET, SET and TIME.
const readOrder = `
local o = redis.call('GET', KEYS[2])
local hi, neg = nil, ''
if o then
  local h, n = string.match(o, '^(%d+) (%d*)$')
  hi, neg = tonumber(h), n or ''
end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local s = now
if hi and s <= hi then s = hi + 1 end
local cur = redis.call('GET', KEYS[3])
local at = cur and tonumber(string.sub(cur, 1, 16))
if at and s <= at then s = at + 1 end
`

const writeOrder = `
redis.call('SET', KEYS[2], string.format('%d %s', s, neg), 'PX', tonumber(ARGV[4]) + 1000 + math.floor(math.max(0, s - now) / 1000))
`

// putScript writes a shared value behind its stamp, ordered. A refusal
// (ARGV[3] empty) takes the next stamp, is remembered in the order key
// and is always written. A lease, stamped with its Acquire's stamp, is
// written only when the value there is older (or none), no refusal was
// stamped after it, and that stamp is within OrderHorizon (checked last,
// so a refusal the store still knows is always reported as one). So a
// validation that began before another replica's refusal cannot bring
// the token back, whenever its answer lands. The stamp is outside the MAC: it
// orders writes and nothing reads it as an answer, so a writer to Redis
// who alters it can only keep leases from being shared, as deleting them
// would.
//
// KEYS[1] and KEYS[3] the lease key, KEYS[2] the order key; ARGV[1] the
// sealed value, ARGV[2] PX, ARGV[3] the lease's stamp (empty for a
// refusal), ARGV[4] OrderHorizon in ms. Returns putWritten or what was
// kept. A kept value's kind is read at byte 18 (1-based: after the stamp
// and the version byte), kindNegative being 2.
var putScript = rueidis.NewLuaScript(`
if ARGV[3] == '' then` + readOrder + `
  neg = string.format('%d', s)` + writeOrder + `
  redis.call('SET', KEYS[1], string.format('%016d', s) .. ARGV[1], 'PX', ARGV[2])
  return 1
end
local since = tonumber(ARGV[3])
local cur = redis.call('GET', KEYS[1])
if cur then
  local at = tonumber(string.sub(cur, 1, 16))
  if not at then return 4 end
  if at >= since then
    if string.byte(cur, 18) == 2 then return 3 end
    return 2
  end
end
local o = redis.call('GET', KEYS[2])
local neg = o and tonumber(string.match(o, '^%d+ (%d+)$'))
if neg and neg >= since then return 3 end
local t = redis.call('TIME')
if tonumber(t[1]) * 1000000 + tonumber(t[2]) - since > tonumber(ARGV[4]) * 1000 then return 5 end
redis.call('SET', KEYS[1], string.format('%016d', since) .. ARGV[1], 'PX', ARGV[2])
return 1
`)

// What putScript did.
const (
	putWritten     = 1
	putKeptLease   = 2 // a lease stamped at or after since
	putKeptRefusal = 3 // the newest answer is a refusal stamped after since
	putKeptUnknown = 4 // a value without a readable stamp
	putTooOld      = 5 // since is older than OrderHorizon
)

// acquireScript takes a coalescing lock (SET NX PX) and the next stamp:
// {1 if taken, the stamp}. KEYS[1] the lock, KEYS[2] the order key,
// KEYS[3] the lease key; ARGV[1] the owner, ARGV[2] PX, ARGV[3] unused,
// ARGV[4] OrderHorizon in ms.
var acquireScript = rueidis.NewLuaScript(`
local won = redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2])` + readOrder + writeOrder + `
return {won and 1 or 0, s}
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
