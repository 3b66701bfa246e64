package config

import (
	"fmt"
	"net"
	"net/url"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/net/http/httpguts"

	"github.com/leasegate/leasegate/authz/fleetmode"
	"github.com/leasegate/leasegate/authz/trust"
	"github.com/leasegate/leasegate/policy"
	"github.com/leasegate/leasegate/policy/storage"
	"github.com/leasegate/leasegate/server/telemetry"
	"github.com/leasegate/leasegate/server/unixsocket"
)

// validate reports every problem in a decoded, defaulted configuration.
// What a package owns it checks itself: the issuers authz/trust
// (trust.ValidateIssuers), tiers, routes and lease.max the policy
// (policy.Config.Validate), the rest of lease the cache
// (leasecache.Config.Validate); validate prefixes their field paths and
// finds the lines. The checks here are of what no package below server
// owns, or does not check yet (see checkIssuers).
func (c *Config) validate(ps *Problems) {
	c.checkListen(ps)
	if strings.ContainsAny(c.Realm, "\"\\\r\n") || strings.IndexFunc(c.Realm, func(r rune) bool { return r < 0x20 || r == 0x7f }) >= 0 {
		c.problem(ps, "realm", "must not contain quotes, backslashes or control characters (it goes into WWW-Authenticate)")
	}
	c.checkIssuers(ps)
	for _, p := range c.PolicyConfig().Validate() {
		f := p.Field
		switch f {
		case "lease_max":
			f = "lease.max"
		case "max_token_lifetime":
			f = "lease.max_token_lifetime"
		}
		c.problem(ps, f, p.Msg)
	}
	for _, p := range c.Lease.cacheConfig().Validate() {
		c.problem(ps, "lease."+p.Field, p.Msg)
	}
	c.checkUpstreamHeaders(ps)
	c.checkPush(ps)
	c.checkFleet(ps)
	c.checkLog(ps)
	c.checkTracing(ps)
	if c.Server.StartGrace < 0 || c.Server.DrainTimeout < 0 {
		c.problem(ps, "server", "durations must not be negative")
	}
	if len(ps.List) == 0 {
		// policy.Config.Validate covers New (policy's FuzzValidateCoversNew);
		// should it ever not, -check still refuses what start-up would.
		if _, err := policy.New(c.PolicyConfig()); err != nil {
			c.problem(ps, "tiers", err.Error())
		}
	}
}

func (c *Config) checkListen(ps *Problems) {
	if path, unix := c.Listen.UnixSocket(); unix {
		c.checkSocket(ps, path)
	} else {
		c.checkAddr(ps, "listen.grpc", c.Listen.GRPC, false)
		if c.Listen.GRPCSocket != (SocketConfig{}) {
			c.problem(ps, "listen.grpc_socket", "applies only to a unix:// listen.grpc")
		}
	}
	c.checkAddr(ps, "listen.http", c.Listen.HTTP, true)
	c.checkAddr(ps, "listen.admin", c.Listen.Admin, false)
	c.checkAddr(ps, "listen.metrics", c.Listen.Metrics, false)
	c.checkAddr(ps, "listen.push", c.Listen.Push, true)
	c.checkListenClash(ps)
	switch c.Listen.HTTPMode {
	case "envoy", "nginx", "forwarded", "auto":
	default:
		c.problem(ps, "listen.http_mode", fmt.Sprintf("%q is not one of envoy, nginx, forwarded, auto", c.Listen.HTTPMode))
	}
	if c.AdminOpen() {
		c.problem(ps, "listen.admin", "a non-loopback admin listener needs admin.secret (POST /revoke must not be open)")
	}
}

func (c *Config) checkAddr(ps *Problems, field, addr string, optional bool) {
	if addr == "" && optional {
		return
	}
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		c.problem(ps, field, fmt.Sprintf("%q is not host:port: %v", addr, err))
		return
	}
	// SplitHostPort takes any port text; Listen would refuse at start.
	if _, err := net.LookupPort("tcp", port); err != nil {
		c.problem(ps, field, fmt.Sprintf("%q: port %q is not a TCP port (0-65535 or a service name)", addr, port))
	}
}

// checkSocket checks a unix:// listen.grpc and its grpc_socket block. The
// user and group are looked up here, so -check refuses a name start-up
// could not use.
func (c *Config) checkSocket(ps *Problems, path string) {
	switch {
	case !filepath.IsAbs(path) || filepath.Clean(path) != path:
		c.problem(ps, "listen.grpc", fmt.Sprintf("%q: a unix socket needs a clean absolute path (unix:///run/leasegate/authz.sock)", c.Listen.GRPC))
	case len(path) > unixsocket.MaxPath:
		c.problem(ps, "listen.grpc", fmt.Sprintf("socket path is %d bytes, at most %d fit a sockaddr_un", len(path), unixsocket.MaxPath))
	case len(filepath.Dir(path)) > unixsocket.MaxDir:
		c.problem(ps, "listen.grpc", fmt.Sprintf("socket directory is %d bytes, at most %d (the socket is bound in a temporary directory beside it first)", len(filepath.Dir(path)), unixsocket.MaxDir))
	}
	sc := c.Listen.GRPCSocket
	if _, err := sc.FileMode(); err != nil {
		c.problem(ps, "listen.grpc_socket.mode", err.Error())
	}
	if _, err := lookupID(sc.User, true); err != nil {
		c.problem(ps, "listen.grpc_socket.user", err.Error())
	}
	if _, err := lookupID(sc.Group, false); err != nil {
		c.problem(ps, "listen.grpc_socket.group", err.Error())
	}
}

// checkIssuers runs the engine's own issuer checks (trust.ValidateIssuers,
// which authz.New runs too), so -check refuses exactly what start-up would
// (SPEC §6). Before them come the checks of issuer keys authz does not
// check yet: at least one issuer, base_path and local_hosts (which
// authz.New refuses without ValidateIssuers saying so), and clock_skew's
// 0..10m (authz refuses a negative skew only in the jwt modes). They move
// into authz with its issuer package (issue 18 item 1).
func (c *Config) checkIssuers(ps *Problems) {
	if len(c.Issuers) == 0 {
		c.problem(ps, "issuers", "at least one issuer is needed")
	}
	for i, is := range c.Issuers {
		f := fmt.Sprintf("issuers[%d]", i)
		if err := storage.ValidateBasePath(is.BasePath); err != nil {
			c.problem(ps, f+".base_path", fmt.Sprintf("%q: %v", is.BasePath, err))
		}
		for j, h := range is.LocalHosts {
			if _, err := policy.NormalizeLocalHost(h); err != nil {
				c.problem(ps, fmt.Sprintf("%s.local_hosts[%d]", f, j), err.Error())
			}
		}
		if is.ClockSkew < 0 || is.ClockSkew > 10*time.Minute {
			c.problem(ps, f+".clock_skew", "must be between 0 and 10m")
		}
	}
	for _, p := range trust.ValidateIssuers(c.AuthzIssuers()) {
		f := fmt.Sprintf("issuers[%d]", p.Issuer)
		if p.Field != "" {
			f += "." + p.Field
		}
		// A key already refused (an empty secret or secret file, a skew
		// out of range, a value of the wrong type) needs no second line.
		if !ps.has(f) && !ps.has(f+"_file") {
			c.problem(ps, f, p.Msg)
		}
	}
}

// checkUpstreamHeaders: the identity headers are authz's, which defaults
// them but does not check them. Each must be a header name that cannot
// carry a client's credentials or routing, and no two alike.
func (c *Config) checkUpstreamHeaders(ps *Problems) {
	h := c.Upstream.Headers
	seen := map[string]string{}
	for _, kv := range [...]struct{ field, v string }{
		{"subject", h.Subject}, {"client_id", h.ClientID}, {"scope", h.Scope}, {"issuer", h.Issuer},
	} {
		f := "upstream.headers." + kv.field
		lv := strings.ToLower(kv.v)
		switch {
		case !httpguts.ValidHeaderFieldName(lv):
			c.problem(ps, f, fmt.Sprintf("%q is not a valid header name", kv.v))
		case lv == "authorization" || strings.HasPrefix(lv, ":") || lv == "host":
			c.problem(ps, f, fmt.Sprintf("%q may not be used for identity", kv.v))
		case seen[lv] != "":
			c.problem(ps, f, fmt.Sprintf("%q is also used for %s", kv.v, seen[lv]))
		}
		seen[lv] = kv.field
	}
}

// checkFleet runs the fleet store's own checks (fleet.Config.Validate,
// which fleet.Open runs too) and authz's on_store_loss.
func (c *Config) checkFleet(ps *Problems) {
	fc := c.FleetStoreConfig()
	if fc == nil {
		return
	}
	if l := fleetmode.StoreLoss(c.Fleet.OnStoreLoss); !l.Valid() {
		c.problem(ps, "fleet.on_store_loss", fmt.Sprintf("%q is not standalone, revalidate or deny", l))
	}
	for _, p := range fc.Validate() {
		f := "fleet"
		if p.Field != "" {
			f += "." + p.Field
		}
		// An empty or unreadable secret_file, a password from an unset
		// ${VAR}: said already.
		if !ps.has(f) && !(p.Field == "secret_file" && ps.has("fleet.secret_file")) {
			c.problem(ps, f, p.Msg)
		}
	}
}

func (c *Config) checkLog(ps *Problems) {
	switch c.Log.Level {
	case "debug", "info", "warn", "error":
	default:
		c.problem(ps, "log.level", fmt.Sprintf("%q is not one of debug, info, warn, error", c.Log.Level))
	}
	switch c.Log.Format {
	case "json", "text":
	default:
		c.problem(ps, "log.format", fmt.Sprintf("%q is not json or text", c.Log.Format))
	}
	for _, p := range c.DenialLogConfig().Validate() {
		c.problem(ps, "log."+p.Field, p.Msg)
	}
}

// checkTracing checks the tracing keys with the functions start-up builds
// the exporter and sampler with (server/telemetry).
func (c *Config) checkTracing(ps *Problems) {
	switch c.Tracing.Exporter {
	case "", "otlp", "none", "console":
	default:
		c.problem(ps, "tracing.exporter", fmt.Sprintf("%q is not otlp, console or none", c.Tracing.Exporter))
	}
	switch c.Tracing.Protocol {
	case "", "grpc", "http/protobuf":
	default:
		c.problem(ps, "tracing.protocol", fmt.Sprintf("%q is not grpc or http/protobuf", c.Tracing.Protocol))
	}
	if c.Tracing.Sampler != "" {
		if _, err := telemetry.Sampler(c.Tracing.Sampler, c.Tracing.SamplerArg); err != nil {
			c.problem(ps, "tracing.sampler", err.Error())
		}
	} else if c.Tracing.SamplerArg != nil {
		c.problem(ps, "tracing.sampler_arg", "has no effect without tracing.sampler")
	}
	// The OTLP exporters take a bad URL without an error and send the
	// spans to their default endpoint instead.
	if raw := c.Tracing.Endpoint; raw != "" {
		u, err := url.Parse(raw)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			c.problem(ps, "tracing.endpoint", fmt.Sprintf("%q is not an absolute http(s) URL", raw))
		}
	}
	// The OTEL_* environment can refuse start-up too; say so here.
	if _, err := telemetry.Exporter(c.Tracing, c.getenv); err != nil {
		c.problem(ps, "tracing", err.Error()+" (environment)")
	}
}

// AdminOpen: the admin API would listen beyond loopback with no secret.
func (c *Config) AdminOpen() bool { return !isLoopback(c.Listen.Admin) && c.Admin.Secret == "" }

func isLoopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
