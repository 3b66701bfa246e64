package server

import (
	"fmt"
	"log/slog"
	"reflect"
	"strings"

	"github.com/leasegate/leasegate/policy"
	"github.com/leasegate/leasegate/server/config"
)

// reload re-reads the config file and builds a whole new generation
// (config, policy, engine) before anything changes; a file that is refused
// changes nothing. Leases survive: the lease cache is shared.
func (s *service) reload() {
	s.mu.Lock()
	defer s.mu.Unlock()
	old := s.gen.Load()
	path := s.opts.ConfigPath
	if path == "" {
		path = old.cfg.Path()
	}
	refuse := func(err error) {
		s.reloads.WithLabelValues("refused").Inc()
		s.log.Error("reload refused; keeping the running configuration", slog.String("config", path), slog.String("error", err.Error()))
	}
	cfg, err := config.Load(path)
	if err != nil {
		refuse(err)
		return
	}
	keys := restartOnly(old.cfg, cfg)
	keepRestartOnly(cfg, old.cfg)
	if cfg.AdminOpen() {
		// The new file may move the admin listener to loopback and drop
		// the secret; the listener stays where it is until a restart.
		refuse(fmt.Errorf("listen.admin stays %s until a restart, and a non-loopback admin listener needs admin.secret", cfg.Listen.Admin))
		return
	}
	pol, err := policy.New(cfg.PolicyConfig())
	if err != nil {
		refuse(fmt.Errorf("policy: %w", err))
		return
	}
	eng, err := s.newEngine(cfg, pol)
	if err != nil {
		refuse(err)
		return
	}
	rcv, err := s.newPush(cfg)
	if err != nil {
		eng.Close()
		refuse(err)
		return
	}
	if len(keys) > 0 {
		s.log.Warn("these settings take effect only after a restart; the running values are kept",
			slog.String("changed", strings.Join(keys, ", ")))
	}
	s.install(newGeneration(cfg, pol, eng, rcv))
	s.reloads.WithLabelValues("applied").Inc()
	b := pol.RevocationBound()
	s.log.Info("configuration reloaded",
		slog.String("revocation_bound", b.Window.String()),
		slog.String("revocation_bound_with_stale", b.WithStale.String()),
		slog.String("lease_max", b.LeaseMax.String()))
}

// restartOnly lists what differs between a and b among the settings that
// are wired once at start: listeners, the cache's size and negative TTL,
// logging, tracing, the gRPC stream limit, the realm (the gRPC and HTTP
// front ends build some answers themselves), and the fleet (its store is
// opened once).
func restartOnly(a, b *config.Config) []string {
	var keys []string
	add := func(changed bool, key string) {
		if changed {
			keys = append(keys, key)
		}
	}
	add(a.Listen != b.Listen, "listen")
	add(a.Lease.MaxMemoryMB != b.Lease.MaxMemoryMB, "lease.max_memory_mb")
	add(a.Lease.NegativeTTL != b.Lease.NegativeTTL, "lease.negative_ttl")
	add(a.Log != b.Log, "log")
	ta, tb := a.Tracing, b.Tracing
	ta.SamplerArg, tb.SamplerArg = nil, nil
	add(ta != tb || deref(a.Tracing.SamplerArg) != deref(b.Tracing.SamplerArg), "tracing")
	add(a.Server.MaxConcurrentStreams != b.Server.MaxConcurrentStreams, "server.max_concurrent_streams")
	add(a.Realm != b.Realm, "realm")
	add(!reflect.DeepEqual(a.Fleet, b.Fleet), "fleet")
	return keys
}

// keepRestartOnly puts back the running values of the settings restartOnly
// lists, so a reloaded config says what is in force (GET /config) and the
// new engine answers with the realm the front ends still use.
func keepRestartOnly(c, running *config.Config) {
	c.Listen = running.Listen
	c.Lease.MaxMemoryMB = running.Lease.MaxMemoryMB
	c.Lease.NegativeTTL = running.Lease.NegativeTTL
	c.Log = running.Log
	c.Tracing = running.Tracing
	c.Server.MaxConcurrentStreams = running.Server.MaxConcurrentStreams
	c.Realm = running.Realm
	c.Fleet = running.Fleet // the store is opened once; its link serves every generation
}

func deref(p *string) string {
	if p == nil {
		return "\x00unset"
	}
	return *p
}
