package fleet

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

// follow applies the log until ctx ends.
func (s *Store) follow(ctx context.Context) {
	defer s.wg.Done()
	backoff := 50 * time.Millisecond
	for ctx.Err() == nil {
		if err := s.followOnce(ctx); err != nil {
			s.setSynced(false)
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
func (s *Store) followOnce(ctx context.Context) error {
	pos := s.idx.position()
	rctx, cancel := context.WithTimeout(ctx, followBlock+s.cfg.Timeout+100*time.Millisecond)
	defer cancel()
	res := s.c.DoMulti(rctx,
		s.c.B().Get().Key(s.ks.epoch).Build(),
		s.c.B().Xread().Count(followCount).Block(followBlock.Milliseconds()).Streams().Key(s.ks.log).Id(pos.id.String()).Build())
	epoch, err := res[0].ToString()
	if err != nil && !rueidis.IsRedisNil(err) {
		return err
	}
	if e, ok := parseEpoch(epoch); !ok || e != pos.epoch {
		return s.lost(ctx, "the log's epoch changed: the store was emptied or its log recreated")
	}
	streams, err := res[1].AsXRead()
	if rueidis.IsRedisNil(err) {
		s.setSynced(true)
		return nil
	}
	if err != nil {
		return err
	}
	entries := streams[s.ks.log]
	last := pos.id
	for _, e := range entries {
		id, ok := parseID(e.ID)
		if !ok {
			return fmt.Errorf("fleet: log entry ID %q", e.ID)
		}
		if e.FieldValues["p"] != last.String() {
			return s.lost(ctx, fmt.Sprintf("log record %s follows %s, not %s: records were missed", e.ID, e.FieldValues["p"], last))
		}
		s.apply(id, e.FieldValues["r"])
		last = id
	}
	if len(entries) < followCount {
		s.setSynced(true)
	}
	return nil
}

// apply records one log entry in the index, then hands it to the caller:
// that order lets Lookup's fence check and the caller's generation check
// between them close every race (see Lookup).
func (s *Store) apply(id streamID, raw string) {
	r, kind, origin, ok := s.k.openRecord(s.ks.log, []byte(raw))
	if !ok {
		s.stats.forgedRecords.Add(1)
		s.idx.add(id, 0, nil)
		return
	}
	s.idx.add(id, kind, &r)
	if kind == recGenesis {
		return
	}
	r.ID, r.Self = id.String(), origin == s.origin
	s.stats.revocations.Add(1)
	if s.hooks.Revoked != nil {
		s.hooks.Revoked(r)
	}
	if !r.Self {
		d := max(0, time.Since(r.At))
		s.delays.add(d)
		if s.hooks.Delay != nil {
			s.hooks.Delay(d)
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
func (s *Store) lost(ctx context.Context, why string) error {
	s.setSynced(false)
	err := s.resync(ctx)
	s.stats.lost.Add(1)
	if s.hooks.Lost != nil {
		s.hooks.Lost(why)
	}
	if err != nil {
		return err
	}
	s.setSynced(true)
	return nil
}

// resync makes sure the log and its epoch exist, reads every record the
// log keeps into a fresh index, and swaps it in. The floor is the
// predecessor of the oldest record kept (and of any record after a gap):
// below it this replica cannot check a fence.
func (s *Store) resync(ctx context.Context) error {
	rctx, cancel := context.WithTimeout(ctx, 10*s.cfg.Timeout+time.Second)
	defer cancel()
	es, err := initScript.Exec(rctx, s.c, []string{s.ks.epoch, s.ks.log}, []string{randomEpoch(), s.genesis()}).ToString()
	if err != nil {
		return fmt.Errorf("fleet: open the revocation log: %w", err)
	}
	epoch, ok := parseEpoch(es)
	if !ok {
		return fmt.Errorf("fleet: revocation log epoch %q", es)
	}
	b := newIndex(s.idx.retention)
	b.epoch = epoch
	start, first := "-", true
	for {
		entries, err := s.c.Do(rctx, s.c.B().Xrange().Key(s.ks.log).Start(start).End("+").Count(rangePage).Build()).AsXRange()
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
			r, kind, _, ok := s.k.openRecord(s.ks.log, []byte(e.FieldValues["r"]))
			if !ok {
				s.stats.forgedRecords.Add(1)
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
	s.idx.replace(b)
	return nil
}

func maxID(a, b streamID) streamID {
	if a.less(b) {
		return b
	}
	return a
}
