package config

import (
	"fmt"
	"net"

	"github.com/leasegate/leasegate/authz/denylog"
)

// checkListenClash refuses two listeners on one port whose hosts overlap
// (the same host, or either on every interface): start-up could bind only
// one of them, and -check must refuse what start-up would (SPEC §6). Port
// 0 (any free port) never clashes. Malformed addresses are checkAddr's.
func (c *Config) checkListenClash(ps *Problems) {
	type bound struct{ field, host, port string }
	var seen []bound
	for _, l := range [...]struct{ field, addr string }{
		{"listen.grpc", c.Listen.GRPC}, {"listen.http", c.Listen.HTTP},
		{"listen.admin", c.Listen.Admin}, {"listen.metrics", c.Listen.Metrics},
		{"listen.push", c.Listen.Push},
	} {
		host, port, err := net.SplitHostPort(l.addr)
		if l.addr == "" || err != nil {
			continue
		}
		n, err := net.LookupPort("tcp", port)
		if err != nil || n == 0 {
			continue
		}
		b := bound{l.field, host, fmt.Sprint(n)}
		for _, o := range seen {
			if o.port == b.port && (o.host == b.host || anyHost(o.host) || anyHost(b.host)) {
				c.problem(ps, b.field, fmt.Sprintf("%q: port %s is also %s's (%s)", l.addr, b.port, o.field, net.JoinHostPort(o.host, o.port)))
			}
		}
		seen = append(seen, b)
	}
}

func anyHost(h string) bool { return h == "" || h == "0.0.0.0" || h == "::" }

// DenialLogConfig is the engine's view of log.denials_per_second.
func (c *Config) DenialLogConfig() denylog.Config {
	return denylog.Config{PerSecond: c.Log.DenialsPerSecond}
}
