// Package fleet owns the lease store a fleet of leasegate replicas shares
// on Redis (SPEC §8): shared leases and negative leases, fleet-wide
// coalescing locks, the revocation log and its fan-out to every replica,
// and the health of the store. It sits beside the in-process leasecache,
// never in front of it: a local hit never reaches this package.
//
// It never sees a raw token. Callers hand it leasecache.Key values that
// are already keyed hashes: KeyOf maps a token's SHA-256 to
// HMAC-SHA256(fleet secret, SHA-256), and in fleet mode that one key is
// used everywhere, in the local cache, in Redis and in revocation records.
// Without the secret, nothing in Redis confirms a token: keys are keyed
// hashes, values and revocation records carry a MAC over (key, value).
// A value that fails its MAC is a miss (Forged); a record that fails its
// MAC is skipped and counted.
//
// # Keys
//
//	<prefix>l:{K}      a lease or a negative lease behind its Stamp, with the Redis TTL the caller chose
//	<prefix>c:{K}      a coalescing lock (SET NX PX), on the same slot as its lease
//	<prefix>o:{K}      the order of K's answers: the last Stamp handed out, the last refusal's (OrderHorizon)
//	<prefix>{rev}:log  the revocation log, a stream (no TTL)
//	<prefix>{rev}:epoch the log's epoch, random, created with the log (no TTL)
//
// K is the base64url HMAC key. In Redis Cluster the {…} hash tags spread
// leases over the slots and keep the log and its epoch on one slot, so
// the scripts that append to it are single-slot.
//
// # Revocations
//
// Revoke, RevokeSubject and RevokeName (a push revocation by subject,
// session or email, with its source) delete what they can (the token's
// shared lease) and append a record to the log; they return nil only
// once Redis has the record (SPEC §6: /revoke answers 200 only then).
// Every Store follows the log with XREAD BLOCK from its last ID and hands each record to
// Hooks.Revoked, in log order. The log is a chain: each record names the
// ID of the one before it, so a follower that finds a record whose
// predecessor is not the last one it applied knows it missed some
// (trimmed while it was cut off, lost by a restart) and calls Hooks.Lost
// so the caller drops every local lease before another hit. The epoch
// key tells a log that was recreated (Redis restarted empty) from one
// that is merely quiet. Records are trimmed by MINID, on Redis' clock, to
// Config.LeaseMax plus a margin: nothing a lease could still need.
//
// # Fences
//
// A lease stored before a revocation can be written to Redis after it (a
// validation that started before the revoke and finished after). So each
// shared value carries a Position, the log position the writing replica
// had applied when its validation began, and every reader refuses a value
// whose Position is older than a revocation of that key (or, for a lease,
// of one of its names: subject, session, email) that the reader has
// applied. The check needs no clock shared between replicas: log IDs are
// the order. See Lookup for the one
// step the caller adds, the local cache's revocation generation.
//
// # Order
//
// Two replicas can validate one token at once (a waiter gives up on the
// lock and asks on its own), and the older validation's answer can land
// last. Writes are ordered by Stamps the store hands out (see putScript):
// a refusal takes one as it is written, a lease carries the one Acquire
// returned before its validation, and a lease is never written over a
// value stamped at or after it, after a refusal stamped later (the order
// key remembers refusals for OrderHorizon), or once its stamp is older
// than OrderHorizon. So a late "active" cannot undo a newer "not active"
// that another replica shared; Store says so (ErrNewerRefusal) and the
// caller drops its own copy.
//
// The log itself (records, appending, the follower, the fence index) is
// leasecache/fleet/revlog; a Store owns one.
package fleet
