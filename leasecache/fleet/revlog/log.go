// Package revlog is the fleet's revocation log on Redis (SPEC §8), as one
// replica keeps it: the records and their MACs, appending (each record
// names its predecessor, the log is trimmed on Redis' clock), following
// the log and handing each record on in order, noticing a gap or a
// recreated log, and the index of what was revoked since when that fences
// shared values (Position, Voids). The layout and the rules are in
// leasecache/fleet's package comment; fleet.Store is its one user.
package revlog

import (
	"encoding/binary"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/redis/rueidis"

	"github.com/leasegate/leasegate/leasecache"
)

// MAC seals and checks records under the fleet secret's record subkey.
type MAC interface {
	// Tag appends the MAC of parts to dst.
	Tag(dst []byte, parts ...[]byte) []byte
	// Verify reports whether mac is the MAC of parts, in constant time.
	Verify(mac []byte, parts ...[]byte) bool
	// Len is the length of a MAC.
	Len() int
}

// Config is where the log is and how this replica writes to it.
type Config struct {
	Client rueidis.Client
	MAC    MAC
	// LogKey and EpochKey are the stream and its epoch, on one slot.
	LogKey, EpochKey string
	// Origin names this replica in its records (Revocation.Self).
	Origin [8]byte
	// Timeout bounds one operation on the store.
	Timeout time.Duration
	// Retention is how long the index keeps what a record revoked: lease.max
	// and a margin, as long as the log keeps records.
	Retention time.Duration
}

// Hooks are the caller's side of the follower; each is called from the
// follower's goroutine, in log order, and must be quick.
type Hooks struct {
	// Revoked applies a record locally, this replica's own included.
	Revoked func(Revocation)
	// Lost says records may have been missed: drop every local lease.
	Lost func(why string)
	// Delay observes the delay of a record from another replica.
	Delay func(time.Duration)
	// Synced reports whether the follower has applied what the log holds;
	// required.
	Synced func(bool)
}

// Stats are the log's counters since New.
type Stats struct {
	Revocations   uint64 // records handed to Hooks.Revoked
	ForgedRecords uint64 // records that failed their MAC (skipped)
	Lost          uint64 // times Hooks.Lost was called
}

// Log is one replica's view of the revocation log. Safe for concurrent
// use; Follow runs on one goroutine.
type Log struct {
	cfg    Config
	hooks  Hooks
	idx    *index
	delays delayRing
	stats  struct{ revocations, forgedRecords, lost atomic.Uint64 }
}

// New is the log cfg names; Resync reads it before anything else.
func New(cfg Config, hooks Hooks) *Log {
	return &Log{cfg: cfg, hooks: hooks, idx: newIndex(cfg.Retention)}
}

// Position is the fence for a validation starting now.
func (l *Log) Position() Position { return l.idx.position() }

// Voids reports whether a shared value for k fenced at pos is overtaken
// by a revocation this replica has applied; the names of a lease are
// checked too (leasecache.(*Lease).Names), a negative lease (nil) has none.
func (l *Log) Voids(k leasecache.Key, pos Position, lease *leasecache.Lease) bool {
	return l.idx.voids(k, pos, lease)
}

// Stats returns the counters.
func (l *Log) Stats() Stats {
	return Stats{
		Revocations:   l.stats.revocations.Load(),
		ForgedRecords: l.stats.forgedRecords.Load(),
		Lost:          l.stats.lost.Load(),
	}
}

// DelayQuantile is the q-quantile of the last delays of records from
// other replicas (0 before the first), with how many it is computed over.
func (l *Log) DelayQuantile(q float64) (time.Duration, int) {
	return l.delays.quantile(q), l.delays.len()
}

// streamID is a Redis stream entry ID, ms-seq, on the server's clock.
type streamID struct{ ms, seq uint64 }

func parseID(s string) (streamID, bool) {
	a, b, ok := strings.Cut(s, "-")
	if !ok {
		return streamID{}, false
	}
	ms, err1 := strconv.ParseUint(a, 10, 64)
	seq, err2 := strconv.ParseUint(b, 10, 64)
	return streamID{ms, seq}, err1 == nil && err2 == nil
}

func (a streamID) less(b streamID) bool {
	return a.ms < b.ms || a.ms == b.ms && a.seq < b.seq
}

func (a streamID) String() string {
	return strconv.FormatUint(a.ms, 10) + "-" + strconv.FormatUint(a.seq, 10)
}

// Position is how far into the revocation log a replica had applied:
// the log's epoch and the ID of the last record applied. Read it with
// (*Store).Position before a validation starts and store the validation's
// answer with it: a reader refuses the answer if it has applied a
// revocation of the same token (or one of its names) past that position.
type Position struct {
	epoch uint64
	id    streamID
}

// PositionLen is the length of a Position's encoding.
const PositionLen = 24

// Append appends p's encoding: the epoch, the ID's ms and seq, each 8
// bytes big endian.
func (p Position) Append(b []byte) []byte {
	b = binary.BigEndian.AppendUint64(b, p.epoch)
	b = binary.BigEndian.AppendUint64(b, p.id.ms)
	return binary.BigEndian.AppendUint64(b, p.id.seq)
}

// ReadPosition reads what Append wrote; b holds at least PositionLen bytes.
func ReadPosition(b []byte) Position {
	return Position{binary.BigEndian.Uint64(b), streamID{binary.BigEndian.Uint64(b[8:]), binary.BigEndian.Uint64(b[16:])}}
}
