package fleet

import (
	"bufio"
	"context"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/redis/rueidis"
)

// health pings every node each HealthInterval. Two failures in a row mark
// the store down, one success marks it up again: a hung server (sockets
// open, no answers) is down within 2×HealthInterval + the ping timeout,
// 1.25 s with the defaults.
func (s *Store) health(ctx context.Context) {
	defer s.wg.Done()
	timeout := min(max(s.cfg.HealthInterval/2, s.cfg.Timeout), s.cfg.HealthInterval)
	tick := time.NewTicker(s.cfg.HealthInterval)
	defer tick.Stop()
	failures := 0
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		if err := s.ping(ctx, timeout); err != nil {
			if failures++; failures >= 2 {
				s.setHealthy(false)
			}
			continue
		}
		failures = 0
		s.setHealthy(true)
	}
}

// ping sends PING to every node the client knows (a Cluster's primaries
// and replicas, a Sentinel's current master), all within timeout.
func (s *Store) ping(ctx context.Context, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	nodes := s.c.Nodes()
	errs := make(chan error, len(nodes))
	for addr, n := range nodes {
		go func() {
			if err := n.Do(ctx, n.B().Ping().Build()).Error(); err != nil {
				errs <- fmt.Errorf("%s: %w", addr, err)
				return
			}
			errs <- nil
		}()
	}
	var first error
	for range nodes {
		if err := <-errs; err != nil && first == nil {
			first = err
		}
	}
	return first
}

// checkEviction refuses a node whose maxmemory-policy could evict the
// revocation log. Safe are noeviction (a full server refuses writes: a
// revoke then fails loudly, 503) and volatile-* (only keys with a TTL are
// evicted: leases and locks, whose loss is a miss; the log and its epoch
// have none). allkeys-* could evict the log, reviving revoked tokens;
// refused whatever maxmemory is now, since it can be set at run time.
// CONFIG GET may be forbidden by ACL or renamed; INFO memory says the
// same. A node that answers neither is refused: the policy is unknown.
func (s *Store) checkEviction(ctx context.Context) error {
	nodes := s.c.Nodes()
	addrs := make([]string, 0, len(nodes))
	for a := range nodes {
		addrs = append(addrs, a)
	}
	sort.Strings(addrs)
	for _, addr := range addrs {
		policy, err := maxmemoryPolicy(ctx, nodes[addr])
		if err != nil {
			return fmt.Errorf("%w: %s: cannot read maxmemory-policy (CONFIG GET and INFO memory): %w; set allow_eviction to start anyway", ErrEvictionPolicy, addr, err)
		}
		if !safePolicy(policy) {
			return fmt.Errorf("%w: %s has maxmemory-policy %s; use noeviction or a volatile-* policy, or set allow_eviction: true", ErrEvictionPolicy, addr, policy)
		}
	}
	return nil
}

func safePolicy(p string) bool {
	switch p {
	case "noeviction", "volatile-lru", "volatile-lfu", "volatile-random", "volatile-ttl":
		return true
	}
	return false
}

func maxmemoryPolicy(ctx context.Context, n rueidis.Client) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	m, err := n.Do(ctx, n.B().ConfigGet().Parameter("maxmemory-policy").Build()).AsStrMap()
	if p, ok := m["maxmemory-policy"]; err == nil && ok {
		return p, nil
	}
	info, err2 := n.Do(ctx, n.B().Info().Section("memory").Build()).ToString()
	if err2 != nil {
		if err == nil {
			err = fmt.Errorf("no maxmemory-policy in the reply")
		}
		return "", fmt.Errorf("%w; %w", err, err2)
	}
	sc := bufio.NewScanner(strings.NewReader(info))
	for sc.Scan() {
		if v, ok := strings.CutPrefix(strings.TrimSpace(sc.Text()), "maxmemory_policy:"); ok {
			return v, nil
		}
	}
	return "", fmt.Errorf("INFO memory has no maxmemory_policy")
}
