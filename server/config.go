package server

import (
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"golang.org/x/net/http/httpguts"
	"gopkg.in/yaml.v3"

	"github.com/leasegate/leasegate/authz"
	"github.com/leasegate/leasegate/policy"
)

// Config is the whole YAML configuration (SPEC §7). Field names are the
// contract; defaults are filled by Load.
type Config struct {
	Listen      ListenConfig          `yaml:"listen"`
	Realm       string                `yaml:"realm"`
	Issuers     []IssuerConfig        `yaml:"issuers"`
	Tiers       map[string]TierConfig `yaml:"tiers"`
	DefaultTier string                `yaml:"default_tier"`
	Routes      []RouteConfig         `yaml:"routes"`
	Lease       LeaseConfig           `yaml:"lease"`
	Upstream    UpstreamConfig        `yaml:"upstream"`
	Admin       AdminConfig           `yaml:"admin"`
	Tracing     TracingConfig         `yaml:"tracing"`
	Log         LogConfig             `yaml:"log"`
	Server      ServerConfig          `yaml:"server"`

	path    string
	lines   map[string]int  // field path → YAML line, for problems
	fromEnv map[string]bool // fields whose value came from ${VAR}
	getenv  func(string) string
}

type ListenConfig struct {
	GRPC     string `yaml:"grpc"`
	HTTP     string `yaml:"http"`
	HTTPMode string `yaml:"http_mode"` // envoy | nginx | forwarded | auto
	Admin    string `yaml:"admin"`
}

type IssuerConfig struct {
	Name             string              `yaml:"name"`
	Issuer           string              `yaml:"issuer"`
	Mode             string              `yaml:"mode"`
	DefaultForOpaque bool                `yaml:"default_for_opaque"`
	Introspection    IntrospectionConfig `yaml:"introspection"`
	JWKSURI          string              `yaml:"jwks_uri"`
	Audiences        []string            `yaml:"audiences"`
	AcceptWLCGAny    bool                `yaml:"accept_wlcg_any_audience"`
	BasePath         string              `yaml:"base_path"`
	LocalHosts       []string            `yaml:"local_hosts"`
	ClockSkew        time.Duration       `yaml:"clock_skew"`
	Breaker          BreakerConfig       `yaml:"circuit_breaker"`
	// AcceptAnyAudience lets a jwt issuer go without audiences (SPEC §2).
	AcceptAnyAudience bool `yaml:"accept_any_audience"`
}

type IntrospectionConfig struct {
	Endpoint         string        `yaml:"endpoint"`
	Auth             string        `yaml:"auth"`
	ClientID         string        `yaml:"client_id"`
	ClientSecret     string        `yaml:"client_secret"`
	ClientSecretFile string        `yaml:"client_secret_file"`
	Timeout          time.Duration `yaml:"timeout"`
	MaxConns         int           `yaml:"max_conns"`
}

// BreakerConfig tunes the per-issuer circuit breaker.
type BreakerConfig struct {
	Failures int           `yaml:"failures"` // consecutive failures that open it
	OpenFor  time.Duration `yaml:"open_for"` // how long it stays open before a probe
}

type TierConfig struct {
	Methods      []string       `yaml:"methods"`
	Window       *time.Duration `yaml:"window"`
	StaleIfError time.Duration  `yaml:"stale_if_error"`
}

type RouteConfig struct {
	Prefix     string         `yaml:"prefix"`
	Host       string         `yaml:"host"`
	Methods    []string       `yaml:"methods"`
	Tier       string         `yaml:"tier"`
	Window     *time.Duration `yaml:"window"`
	Require    string         `yaml:"require"`
	LocalHosts []string       `yaml:"local_hosts"`
}

type LeaseConfig struct {
	Max         time.Duration `yaml:"max"`
	NegativeTTL time.Duration `yaml:"negative_ttl"`
	MaxMemoryMB int           `yaml:"max_memory_mb"`
}

type UpstreamConfig struct {
	StripAuthorization bool            `yaml:"strip_authorization"`
	Headers            UpstreamHeaders `yaml:"headers"`
}

type UpstreamHeaders struct {
	Subject  string `yaml:"subject"`
	ClientID string `yaml:"client_id"`
	Scope    string `yaml:"scope"`
	Issuer   string `yaml:"issuer"`
}

type AdminConfig struct {
	Secret     string `yaml:"secret"`
	SecretFile string `yaml:"secret_file"`
}

// TracingConfig overrides the standard OTEL_* environment when set.
type TracingConfig struct {
	Exporter    string  `yaml:"exporter"` // otlp | none; "" = OTEL_TRACES_EXPORTER
	Endpoint    string  `yaml:"endpoint"`
	Protocol    string  `yaml:"protocol"` // grpc | http/protobuf
	Sampler     string  `yaml:"sampler"`
	SamplerArg  *string `yaml:"sampler_arg"`
	ServiceName string  `yaml:"service_name"`
}

type LogConfig struct {
	Level  string `yaml:"level"`  // debug | info | warn | error
	Format string `yaml:"format"` // json | text
}

type ServerConfig struct {
	StartGrace           time.Duration `yaml:"start_grace"`
	DrainTimeout         time.Duration `yaml:"drain_timeout"`
	MaxConcurrentStreams uint32        `yaml:"max_concurrent_streams"`
}

// Problem is one configuration error, located in the YAML file.
type Problem struct {
	Line  int
	Field string
	Msg   string
}

func (p Problem) String() string {
	if p.Field == "" {
		return p.Msg
	}
	return p.Field + ": " + p.Msg
}

// Problems is every error found in a configuration.
type Problems struct {
	File string
	List []Problem
}

func (ps *Problems) Error() string {
	var b strings.Builder
	for i, p := range ps.List {
		if i > 0 {
			b.WriteByte('\n')
		}
		if p.Line > 0 {
			fmt.Fprintf(&b, "%s:%d: %s", ps.File, p.Line, p)
		} else {
			fmt.Fprintf(&b, "%s: %s", ps.File, p)
		}
	}
	return b.String()
}

// Load reads, expands, decodes strictly, defaults and validates a
// configuration file. A *Problems error lists every problem found.
func Load(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read config: %w", err)
	}
	return Parse(path, data, os.LookupEnv)
}

// Parse is Load without the file system; lookupEnv resolves ${VAR}.
func Parse(name string, data []byte, lookupEnv func(string) (string, bool)) (*Config, error) {
	ps := &Problems{File: name}
	cfg := &Config{path: name, lines: map[string]int{}, fromEnv: map[string]bool{},
		getenv: func(k string) string { v, _ := lookupEnv(k); return v }}

	// Strict pass: unknown keys and type errors, with yaml's own line numbers.
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	var strict Config
	if err := dec.Decode(&strict); err != nil && !errors.Is(err, io.EOF) {
		ps.List = append(ps.List, yamlProblems(err)...)
		var te *yaml.TypeError
		if !errors.As(err, &te) {
			return nil, ps // a syntax error: nothing more can be read
		}
		// Unknown keys and bad values: keep going, so one run reports
		// every problem, not just the first kind.
	}
	strictProblems := len(ps.List)

	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil {
		ps.List = append(ps.List, yamlProblems(err)...)
		return nil, ps
	}
	if len(root.Content) > 0 {
		indexLines(root.Content[0], "", cfg.lines)
		expandEnv(root.Content[0], "", lookupEnv, cfg.fromEnv, ps)
		if err := root.Content[0].Decode(cfg); err != nil {
			var te *yaml.TypeError
			if !errors.As(err, &te) {
				ps.List = append(ps.List, yamlProblems(err)...)
				return nil, ps
			}
			if strictProblems == 0 { // else the strict pass reported these already
				ps.List = append(ps.List, yamlProblems(err)...)
			}
		}
	}
	cfg.applyDefaults()
	cfg.readSecretFiles(ps)
	cfg.validate(ps)
	if len(ps.List) > 0 {
		sort.SliceStable(ps.List, func(i, j int) bool { return ps.List[i].Line < ps.List[j].Line })
		return nil, ps
	}
	return cfg, nil
}

var yamlLine = regexp.MustCompile(`^line (\d+): (.*)$`)

// yamlProblems splits a yaml error into located problems.
func yamlProblems(err error) []Problem {
	var te *yaml.TypeError
	msgs := []string{err.Error()}
	if errors.As(err, &te) {
		msgs = te.Errors
	}
	var out []Problem
	for _, m := range msgs {
		m = strings.TrimPrefix(m, "yaml: ")
		if g := yamlLine.FindStringSubmatch(m); g != nil {
			n, _ := strconv.Atoi(g[1])
			out = append(out, Problem{Line: n, Msg: g[2]})
			continue
		}
		out = append(out, Problem{Msg: m})
	}
	return out
}

// indexLines records the line of every mapping key and sequence item.
func indexLines(n *yaml.Node, path string, lines map[string]int) {
	switch n.Kind {
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			p := k.Value
			if path != "" {
				p = path + "." + k.Value
			}
			lines[p] = k.Line
			indexLines(v, p, lines)
		}
	case yaml.SequenceNode:
		for i, v := range n.Content {
			p := fmt.Sprintf("%s[%d]", path, i)
			lines[p] = v.Line
			indexLines(v, p, lines)
		}
	}
}

var envRef = regexp.MustCompile(`\$\{([A-Za-z_][A-Za-z0-9_]*)\}`)

// expandEnv replaces ${VAR} in scalar values. It works on the parsed tree, so
// a variable's value can never change the YAML structure.
func expandEnv(n *yaml.Node, path string, lookup func(string) (string, bool), fromEnv map[string]bool, ps *Problems) {
	switch n.Kind {
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			p := n.Content[i].Value
			if path != "" {
				p = path + "." + p
			}
			expandEnv(n.Content[i+1], p, lookup, fromEnv, ps)
		}
	case yaml.SequenceNode:
		for i, v := range n.Content {
			expandEnv(v, fmt.Sprintf("%s[%d]", path, i), lookup, fromEnv, ps)
		}
	case yaml.ScalarNode:
		if !strings.Contains(n.Value, "${") {
			return
		}
		n.Value = envRef.ReplaceAllStringFunc(n.Value, func(ref string) string {
			name := ref[2 : len(ref)-1]
			v, ok := lookup(name)
			if !ok {
				ps.List = append(ps.List, Problem{Line: n.Line, Field: path, Msg: fmt.Sprintf("environment variable %s is not set", name)})
			}
			return v
		})
		n.Tag = "!!str"
		fromEnv[path] = true
	}
}

// Defaults that are not the zero value.
const (
	defaultGRPC         = ":9001"
	defaultAdmin        = "127.0.0.1:9191"
	defaultRealm        = "leasegate"
	defaultLeaseMax     = 10 * time.Minute
	defaultNegativeTTL  = 10 * time.Second
	defaultMaxMemoryMB  = 256
	defaultIssuerTO     = 2 * time.Second
	defaultClockSkew    = 60 * time.Second
	defaultMaxConns     = 64
	defaultBreakerFails = 5
	defaultBreakerOpen  = 5 * time.Second
	defaultStartGrace   = 30 * time.Second
	defaultDrain        = 15 * time.Second
	defaultMaxStreams   = 1024
)

func (c *Config) applyDefaults() {
	if c.Listen.GRPC == "" {
		c.Listen.GRPC = defaultGRPC
	}
	if c.Listen.Admin == "" {
		c.Listen.Admin = defaultAdmin
	}
	if c.Listen.HTTPMode == "" {
		c.Listen.HTTPMode = "envoy"
	}
	if c.Realm == "" {
		c.Realm = defaultRealm
	}
	if c.DefaultTier == "" {
		c.DefaultTier = policy.TierCritical
	}
	if c.Lease.Max == 0 {
		c.Lease.Max = defaultLeaseMax
	}
	if c.Lease.NegativeTTL == 0 {
		c.Lease.NegativeTTL = defaultNegativeTTL
	}
	if c.Lease.MaxMemoryMB == 0 {
		c.Lease.MaxMemoryMB = defaultMaxMemoryMB
	}
	h := &c.Upstream.Headers
	h.Subject = cmp.Or(h.Subject, "x-auth-subject")
	h.ClientID = cmp.Or(h.ClientID, "x-auth-client-id")
	h.Scope = cmp.Or(h.Scope, "x-auth-scope")
	h.Issuer = cmp.Or(h.Issuer, "x-auth-issuer")
	for i := range c.Issuers {
		is := &c.Issuers[i]
		if is.Mode == "" {
			is.Mode = "introspection"
		}
		if is.Introspection.Auth == "" {
			is.Introspection.Auth = "client_secret_basic"
		}
		if is.Introspection.Timeout == 0 {
			is.Introspection.Timeout = defaultIssuerTO
		}
		if is.Introspection.MaxConns == 0 {
			is.Introspection.MaxConns = defaultMaxConns
		}
		if is.ClockSkew == 0 {
			is.ClockSkew = defaultClockSkew
		}
		if is.BasePath == "" {
			is.BasePath = "/"
		}
		if is.Breaker.Failures == 0 {
			is.Breaker.Failures = defaultBreakerFails
		}
		if is.Breaker.OpenFor == 0 {
			is.Breaker.OpenFor = defaultBreakerOpen
		}
	}
	if c.Log.Level == "" {
		c.Log.Level = "info"
	}
	if c.Log.Format == "" {
		c.Log.Format = "json"
	}
	if c.Server.StartGrace == 0 {
		c.Server.StartGrace = defaultStartGrace
	}
	if c.Server.DrainTimeout == 0 {
		c.Server.DrainTimeout = defaultDrain
	}
	if c.Server.MaxConcurrentStreams == 0 {
		c.Server.MaxConcurrentStreams = defaultMaxStreams
	}
}

// readSecretFiles resolves *_file keys; a secret given both ways is an
// error. So is a secret that is configured but empty (SPEC §6): an empty
// file, a ${VAR} set to "" or a bare "" must never read as "no secret",
// which for admin.secret would turn admin authentication off.
func (c *Config) readSecretFiles(ps *Problems) {
	read := func(field, file string, dst *string) {
		fileField := field + "_file"
		_, keyed := c.lines[field]
		_, fileKeyed := c.lines[fileField]
		switch {
		case c.hasProblem(ps, field) || c.hasProblem(ps, fileField):
			// An unset ${VAR}: said already.
		case file == "" && fileKeyed:
			c.problem(ps, fileField, "is configured but empty")
		case file == "" && *dst != "" && !c.fromEnv[field]:
			c.problem(ps, field, "inline secrets are refused: use ${ENV_VAR} or "+fileField[strings.LastIndexByte(fileField, '.')+1:])
		case file == "" && keyed && strings.TrimSpace(*dst) == "":
			how := "an empty value"
			if c.fromEnv[field] {
				how = "its environment variable is empty"
			}
			c.problem(ps, field, "is configured but empty ("+how+"); remove the key for no secret")
		case file == "":
		case keyed:
			c.problem(ps, field, "set either the secret or its _file, not both")
		default:
			b, err := os.ReadFile(file)
			if err != nil {
				c.problem(ps, fileField, fmt.Sprintf("read secret: %v", err))
				return
			}
			*dst = strings.TrimRight(string(b), "\r\n")
			if strings.TrimSpace(*dst) == "" {
				c.problem(ps, fileField, fmt.Sprintf("%s is empty or blank; a configured secret must not be", file))
			}
		}
	}
	for i := range c.Issuers {
		read(fmt.Sprintf("issuers[%d].introspection.client_secret", i), c.Issuers[i].Introspection.ClientSecretFile, &c.Issuers[i].Introspection.ClientSecret)
	}
	read("admin.secret", c.Admin.SecretFile, &c.Admin.Secret)
}

func (c *Config) hasProblem(ps *Problems, field string) bool {
	for _, p := range ps.List {
		if p.Field == field {
			return true
		}
	}
	return false
}

// problem records msg at field's line, or the nearest enclosing field's.
func (c *Config) problem(ps *Problems, field, msg string) {
	line := 0
	for p := field; p != ""; p = parentPath(p) {
		if l, ok := c.lines[p]; ok {
			line = l
			break
		}
	}
	ps.List = append(ps.List, Problem{Line: line, Field: field, Msg: msg})
}

func parentPath(p string) string {
	if i := strings.LastIndexAny(p, ".["); i > 0 {
		return p[:i]
	}
	return ""
}

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
		case !httpguts.ValidHeaderFieldName(lv):
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
		if !c.hasProblem(ps, f) && !c.hasProblem(ps, f+"_file") {
			c.problem(ps, f, p.Msg)
		}
	}
}

// authzIssuers is the engine's view of the issuers: what -check validates
// is what start-up builds.
func (c *Config) authzIssuers() []authz.IssuerConfig {
	out := make([]authz.IssuerConfig, 0, len(c.Issuers))
	for _, is := range c.Issuers {
		in := is.Introspection
		out = append(out, authz.IssuerConfig{
			Name:             is.Name,
			Issuer:           is.Issuer,
			Mode:             authz.Mode(is.Mode),
			DefaultForOpaque: is.DefaultForOpaque,
			Introspection: authz.IntrospectionConfig{
				Endpoint:     in.Endpoint,
				Auth:         in.Auth,
				ClientID:     in.ClientID,
				ClientSecret: in.ClientSecret,
				Timeout:      in.Timeout,
				MaxConns:     in.MaxConns,
			},
			JWT: authz.JWTConfig{
				JWKSURI:       is.JWKSURI,
				Audiences:     is.Audiences,
				AcceptWLCGAny: is.AcceptWLCGAny,
				ClockSkew:     is.ClockSkew,
			},
			Audiences:         is.Audiences,
			AcceptAnyAudience: is.AcceptAnyAudience,
			BasePath:          is.BasePath,
			LocalHosts:        is.LocalHosts,
			BreakerFailures:   is.Breaker.Failures,
			BreakerOpenFor:    is.Breaker.OpenFor,
		})
	}
	return out
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
	return httpguts.ValidHeaderFieldName(m) // RFC 9110: a method is a token
}

// tierSet is the default table overlaid with the configured tiers: a
// built-in tier keeps its default methods and window unless set.
func (c *Config) tierSet() map[string]policy.TierConfig {
	out := map[string]policy.TierConfig{}
	for _, t := range policy.DefaultTiers() {
		out[t.Name] = t
	}
	for name, tc := range c.Tiers {
		t := out[name]
		t.Name = name
		if tc.Methods != nil {
			t.Methods = tc.Methods
		}
		if tc.Window != nil {
			t.Window = *tc.Window
		}
		t.StaleIfError = tc.StaleIfError
		out[name] = t
	}
	return out
}

// tierNames lists tiers in a stable order: built-ins first, then by name.
func (c *Config) tierNames() []string {
	set := c.tierSet()
	names := make([]string, 0, len(set))
	for n := range set {
		names = append(names, n)
	}
	rank := map[string]int{policy.TierRead: 0, policy.TierWrite: 1, policy.TierCritical: 2}
	sort.Slice(names, func(i, j int) bool {
		ri, iok := rank[names[i]]
		rj, jok := rank[names[j]]
		switch {
		case iok && jok:
			return ri < rj
		case iok != jok:
			return iok
		}
		return names[i] < names[j]
	})
	return names
}

func (c *Config) effectiveTier(name string) policy.TierConfig { return c.tierSet()[name] }

// PolicyConfig is the policy package's view of the configuration.
func (c *Config) PolicyConfig() policy.Config {
	pc := policy.Config{DefaultTier: c.DefaultTier, LeaseMax: c.Lease.Max}
	for _, n := range c.tierNames() {
		pc.Tiers = append(pc.Tiers, c.effectiveTier(n))
	}
	for _, r := range c.Routes {
		pc.Routes = append(pc.Routes, policy.RouteConfig{
			Prefix: r.Prefix, Host: r.Host, Methods: r.Methods, Tier: r.Tier,
			Window: r.Window, Require: policy.StorageProfile(r.Require), LocalHosts: r.LocalHosts,
		})
	}
	return pc
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

// Summary is the one-line description -check prints for a valid file.
func (c *Config) Summary() string {
	p, err := policy.New(c.PolicyConfig())
	if err != nil {
		return "invalid: " + err.Error()
	}
	var tiers []string
	for _, t := range p.Tiers() {
		s := fmt.Sprintf("%s=%v", t.Name, t.Window)
		if t.StaleIfError > 0 {
			s += fmt.Sprintf("(stale %v)", t.StaleIfError)
		}
		tiers = append(tiers, s)
	}
	b := p.RevocationBound()
	return fmt.Sprintf("config ok: %d issuer(s); tiers %s; default %s; %d route(s); revocation bound %v (%v with stale_if_error), lease.max %v",
		len(c.Issuers), strings.Join(tiers, " "), c.DefaultTier, len(c.Routes), b.Window, b.WithStale, c.Lease.Max)
}
