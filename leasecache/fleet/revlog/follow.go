package revlog

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/redis/rueidis"
)

const (
	// followBlock is the XREAD BLOCK time: how long a quiet follower waits
	// before it checks the epoch again. A record wakes it at once.
	followBlock = 200 * time.Millisecond
	followCount = 512
	rangePage   = 1000
)

// Follow applies the log until ctx ends.
func (l *Log) Follow(ctx context.Context) {
	backoff := 50 * time.Millisecond
	for ctx.Err() == nil {
		if err := l.followOnce(ctx); err != nil {
			l.hooks.Synced(false)
			select {
			case <-ctx.Done():
			case <-time.After(backoff):
			}
			backoff = min(2*backoff, 500*time.Millisecond)
			continue
		}
		backoff = 50 * time.Millisecond
	}
}

// followOnce reads the epoch and the next records in one round trip on
// one connection (the read blocks up to followBlock), and applies them.
func (l *Log) followOnce(ctx context.Context) error {
	pos := l.idx.position()
	rctx, cancel := context.WithTimeout(ctx, followBlock+l.cfg.Timeout+100*time.Millisecond)
	defer cancel()
	res := l.cfg.Client.DoMulti(rctx,
		l.cfg.Client.B().Get().Key(l.cfg.EpochKey).Build(),
		l.cfg.Client.B().Xread().Count(followCount).Block(followBlock.Milliseconds()).Streams().Key(l.cfg.LogKey).Id(pos.id.String()).Build())
	epoch, err := res[0].ToString()
	if err != nil && !rueidis.IsRedisNil(err) {
		return err
	}
	if e, ok := parseEpoch(epoch); !ok || e != pos.epoch {
		return l.lost(ctx, "the log's epoch changed: the store was emptied or its log recreated")
	}
	streams, err := res[1].AsXRead()
	if rueidis.IsRedisNil(err) {
		l.hooks.Synced(true)
		return nil
	}
	if err != nil {
		return err
	}
	entries := streams[l.cfg.LogKey]
	last := pos.id
	for _, e := range entries {
		id, ok := parseID(e.ID)
		if !ok {
			return fmt.Errorf("fleet: log entry ID %q", e.ID)
		}
		if e.FieldValues["p"] != last.String() {
			return l.lost(ctx, fmt.Sprintf("log record %s follows %s, not %s: records were missed", e.ID, e.FieldValues["p"], last))
		}
		l.apply(id, e.FieldValues["r"])
		last = id
	}
	if len(entries) < followCount {
		l.hooks.Synced(true)
	}
	return nil
}

// apply records one log entry in the index, then hands it to the caller:
// that order lets Lookup's fence check and the caller's generation check
// between them close every race (see Lookup).
func (l *Log) apply(id streamID, raw string) {
	r, kind, origin, ok := openRecord(l.cfg.MAC, l.cfg.LogKey, []byte(raw))
	if !ok {
		l.stats.forgedRecords.Add(1)
		l.idx.add(id, 0, nil)
		return
	}
	l.idx.add(id, kind, &r)
	if kind == recGenesis {
		return
	}
	r.ID, r.Self = id.String(), origin == l.cfg.Origin
	l.stats.revocations.Add(1)
	if l.hooks.Revoked != nil {
		l.hooks.Revoked(r)
	}
	if !r.Self {
		d := max(0, time.Since(r.At))
		l.delays.add(d)
		if l.hooks.Delay != nil {
			l.hooks.Delay(d)
		}
	}
}

// lost handles a log this replica cannot follow on from (recreated, or
// trimmed past it): it rebuilds the index from the log, then tells the
// caller to drop its local leases, then follows on from the rebuilt
// position, so a record appended after the rebuild comes through Revoked
// and one before it is covered by the drop. Until then the store is not
// Up. When the rebuild fails the caller is told at once; the next round
// finds the same gap and tries again, and tells it again.
func (l *Log) lost(ctx context.Context, why string) error {
	l.hooks.Synced(false)
	err := l.Resync(ctx)
	l.stats.lost.Add(1)
	if l.hooks.Lost != nil {
		l.hooks.Lost(why)
	}
	if err != nil {
		return err
	}
	l.hooks.Synced(true)
	return nil
}

// Resync makes sure the log and its epoch exist, reads every record the
// log keeps into a fresh index, and swaps it in. The floor is the
// predecessor of the oldest record kept (and of any record after a gap):
// below it this replica cannot check a fence.
func (l *Log) Resync(ctx context.Context) error {
	rctx, cancel := context.WithTimeout(ctx, 10*l.cfg.Timeout+time.Second)
	defer cancel()
	es, err := initScript.Exec(rctx, l.cfg.Client, []string{l.cfg.EpochKey, l.cfg.LogKey}, []string{randomEpoch(), l.genesis()}).ToString()
	if err != nil {
		return fmt.Errorf("fleet: open the revocation log: %w", err)
	}
	epoch, ok := parseEpoch(es)
	if !ok {
		return fmt.Errorf("fleet: revocation log epoch %q", es)
	}
	b := newIndex(l.idx.retention)
	b.epoch = epoch
	start, first := "-", true
	for {
		entries, err := l.cfg.Client.Do(rctx, l.cfg.Client.B().Xrange().Key(l.cfg.LogKey).Start(start).End("+").Count(rangePage).Build()).AsXRange()
		if err != nil {
			return fmt.Errorf("fleet: read the revocation log: %w", err)
		}
		for _, e := range entries {
			id, ok := parseID(e.ID)
			if !ok {
				return fmt.Errorf("fleet: log entry ID %q", e.ID)
			}
			if prev := e.FieldValues["p"]; first || prev != b.last.String() {
				// The oldest record kept, or one after a gap: what came
				// before it is unknown, so fences older than its
				// predecessor (or, unreadable, than itself) are void.
				p, ok := parseID(prev)
				if !ok {
					p = id
				}
				b.floor = maxID(b.floor, p)
			}
			first = false
			r, kind, _, ok := openRecord(l.cfg.MAC, l.cfg.LogKey, []byte(e.FieldValues["r"]))
			if !ok {
				l.stats.forgedRecords.Add(1)
				kind = 0
			}
			b.addLocked(id, kind, &r)
			start = "(" + e.ID
		}
		if len(entries) < rangePage {
			break
		}
	}
	if first { // an empty log: ensure() just made it, or it was deleted since
		return errors.New("fleet: the revocation log is empty")
	}
	l.idx.replace(b)
	return nil
}

func maxID(a, b streamID) streamID {
	if a.less(b) {
		return b
	}
	return a
}
