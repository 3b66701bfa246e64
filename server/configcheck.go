package server

import (
	"fmt"
	"net"
	"net/url"
	"regexp"
	"strings"
	"time"

	"github.com/leasegate/leasegate/authz"
	"github.com/leasegate/leasegate/policy"
)

var headerName = regexp.MustCompile(`^[a-z0-9!#$%&'*+.^_|~-]+$`)

func (c *Config) validate(ps *Problems) {
	checkAddr := func(field, addr string, optional bool) {
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
	checkAddr("listen.grpc", c.Listen.GRPC, false)
	checkAddr("listen.http", c.Listen.HTTP, true)
	checkAddr("listen.admin", c.Listen.Admin, false)
	switch c.Listen.HTTPMode {
	case "envoy", "nginx", "forwarded", "auto":
	default:
		c.problem(ps, "listen.http_mode", fmt.Sprintf("%q is not one of envoy, nginx, forwarded, auto", c.Listen.HTTPMode))
	}
	if c.adminOpen() {
		c.problem(ps, "listen.admin", "a non-loopback admin listener needs admin.secret (POST /revoke must not be open)")
	}
	if strings.ContainsAny(c.Realm, "\"\\\r\n") || strings.IndexFunc(c.Realm, func(r rune) bool { return r < 0x20 || r == 0x7f }) >= 0 {
		c.problem(ps, "realm", "must not contain quotes, backslashes or control characters (it goes into WWW-Authenticate)")
	}

	c.validateIssuers(ps)
	c.validateTiers(ps)

	if c.Lease.Max <= 0 {
		c.problem(ps, "lease.max", "must be positive")
	}
	if c.Lease.NegativeTTL < 0 {
		c.problem(ps, "lease.negative_ttl", "must not be negative")
	}
	if c.Lease.MaxMemoryMB < 2 || c.Lease.MaxMemoryMB > 1<<20 {
		c.problem(ps, "lease.max_memory_mb", fmt.Sprintf("%d is outside 2..1048576", c.Lease.MaxMemoryMB))
	}

	h := c.Upstream.Headers
	seen := map[string]string{}
	for field, v := range map[string]string{"subject": h.Subject, "client_id": h.ClientID, "scope": h.Scope, "issuer": h.Issuer} {
		f := "upstream.headers." + field
		lv := strings.ToLower(v)
		switch {
		case !headerName.MatchString(lv):
			c.problem(ps, f, fmt.Sprintf("%q is not a valid header name", v))
		case lv == "authorization" || strings.HasPrefix(lv, ":") || lv == "host":
			c.problem(ps, f, fmt.Sprintf("%q may not be used for identity", v))
		case seen[lv] != "":
			c.problem(ps, f, fmt.Sprintf("%q is also used for %s", v, seen[lv]))
		}
		seen[lv] = field
	}

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
		if _, err := sampler(c.Tracing.Sampler, c.Tracing.SamplerArg); err != nil {
			c.problem(ps, "tracing.sampler", err.Error())
		}
	} else if c.Tracing.SamplerArg != nil {
		c.problem(ps, "tracing.sampler_arg", "has no effect without tracing.sampler")
	}
	// The OTLP exporters take a bad URL without an error and send the
	// spans to their default endpoint instead.
	checkURL(c, ps, "tracing.endpoint", c.Tracing.Endpoint, false)
	// The OTEL_* environment can refuse start-up too; say so here.
	if _, err := tracingExporter(c.Tracing, c.getenv); err != nil {
		c.problem(ps, "tracing", err.Error()+" (environment)")
	}
	if c.Server.StartGrace < 0 || c.Server.DrainTimeout < 0 {
		c.problem(ps, "server", "durations must not be negative")
	}
	if len(ps.List) == 0 {
		// Anything policy still refuses is a bug in the checks above; report it anyway.
		if _, err := policy.New(c.PolicyConfig()); err != nil {
			c.problem(ps, "tiers", err.Error())
		}
	}
}

// validateIssuers runs the engine's own issuer checks (authz.ValidateIssuers,
// which authz.New runs too), so -check refuses exactly what start-up would
// (SPEC §6), and adds the limits that are leasegate's and not the engine's.
func (c *Config) validateIssuers(ps *Problems) {
	if len(c.Issuers) == 0 {
		c.problem(ps, "issuers", "at least one issuer is needed")
	}
	for i, is := range c.Issuers {
		f := fmt.Sprintf("issuers[%d]", i)
		if err := policy.ValidateBasePath(is.BasePath); err != nil {
			c.problem(ps, f+".base_path", fmt.Sprintf("%q: %v", is.BasePath, err))
		}
		c.checkLocalHosts(ps, f+".local_hosts", is.LocalHosts)
		if is.ClockSkew < 0 || is.ClockSkew > 10*time.Minute {
			c.problem(ps, f+".clock_skew", "must be between 0 and 10m")
		}
		if is.Breaker.Failures < 1 || is.Breaker.OpenFor < 0 {
			c.problem(ps, f+".circuit_breaker", "failures must be ≥ 1 and open_for not negative")
		}
	}
	for _, p := range authz.ValidateIssuers(c.authzIssuers()) {
		f := fmt.Sprintf("issuers[%d]", p.Issuer)
		if p.Field != "" {
			f += "." + p.Field
		}
		// A key leasegate already refused (an empty secret or secret file,
		// a skew out of range) needs no second line.
		if !ps.has(f) && !ps.has(f+"_file") {
			c.problem(ps, f, p.Msg)
		}
	}
}

func checkURL(c *Config, ps *Problems, field, raw string, required bool) {
	if raw == "" {
		if required {
			c.problem(ps, field, "is required")
		}
		return
	}
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		c.problem(ps, field, fmt.Sprintf("%q is not an absolute http(s) URL", raw))
	}
}

func (c *Config) validateTiers(ps *Problems) {
	byMethod := map[string]string{}
	for _, name := range c.tierNames() {
		t := c.effectiveTier(name)
		f := "tiers." + name
		if t.Window < 0 || t.StaleIfError < 0 {
			c.problem(ps, f, "durations must not be negative")
		}
		if t.Window > c.Lease.Max {
			c.problem(ps, f+".window", fmt.Sprintf("%v exceeds lease.max %v", t.Window, c.Lease.Max))
		}
		if t.StaleIfError > 0 && t.Window == 0 {
			c.problem(ps, f+".stale_if_error", "not allowed on a tier with window 0")
		}
		if t.StaleIfError > c.Lease.Max {
			c.problem(ps, f+".stale_if_error", fmt.Sprintf("%v exceeds lease.max %v", t.StaleIfError, c.Lease.Max))
		}
		for _, m := range t.Methods {
			if !validMethod(m) {
				c.problem(ps, f+".methods", fmt.Sprintf("%q is not an HTTP method token", m))
			}
			if other, dup := byMethod[m]; dup {
				c.problem(ps, f+".methods", fmt.Sprintf("method %s is also in tier %q", m, other))
			}
			byMethod[m] = name
		}
	}
	known := func(n string) bool { _, ok := c.tierSet()[n]; return ok }
	if !known(c.DefaultTier) {
		c.problem(ps, "default_tier", fmt.Sprintf("%q is not a defined tier", c.DefaultTier))
	}
	for i, r := range c.Routes {
		f := fmt.Sprintf("routes[%d]", i)
		if err := policy.ValidatePrefix(r.Prefix); err != nil {
			c.problem(ps, f+".prefix", err.Error())
		}
		if _, err := policy.NormalizeHost(r.Host); err != nil {
			c.problem(ps, f+".host", fmt.Sprintf("%q: %v", r.Host, err))
		}
		c.checkLocalHosts(ps, f+".local_hosts", r.LocalHosts)
		if r.Tier != "" && !known(r.Tier) {
			c.problem(ps, f+".tier", fmt.Sprintf("%q is not a defined tier", r.Tier))
		}
		if r.Window != nil && (*r.Window < 0 || *r.Window > c.Lease.Max) {
			c.problem(ps, f+".window", fmt.Sprintf("%v is outside 0..lease.max", *r.Window))
		}
		switch policy.StorageProfile(r.Require) {
		case "", policy.ProfileWLCG, policy.ProfileSciTokens:
		default:
			c.problem(ps, f+".require", fmt.Sprintf("%q is not %s or %s", r.Require, policy.ProfileWLCG, policy.ProfileSciTokens))
		}
		for _, m := range r.Methods {
			if !validMethod(m) {
				c.problem(ps, f+".methods", fmt.Sprintf("%q is not an HTTP method token", m))
			}
		}
	}
}

// checkLocalHosts reports each local_hosts entry that is not a plausible
// host name (policy.NormalizeLocalHost), at its own line.
func (c *Config) checkLocalHosts(ps *Problems, field string, hosts []string) {
	for i, h := range hosts {
		if _, err := policy.NormalizeLocalHost(h); err != nil {
			c.problem(ps, fmt.Sprintf("%s[%d]", field, i), err.Error())
		}
	}
}

func validMethod(m string) bool {
	return m != "" && headerName.MatchString(strings.ToLower(m))
}

// adminOpen: the admin API would listen beyond loopback with no secret.
func (c *Config) adminOpen() bool { return !isLoopback(c.Listen.Admin) && c.Admin.Secret == "" }

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
