package server

import (
	"fmt"
	"os"
	"slices"
	"sort"
	"strings"
	"time"
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

	if !cfg.decode(data, lookupEnv, ps) {
		return nil, ps // nothing more can be read
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

// has reports whether a problem names field.
func (ps *Problems) has(field string) bool {
	return slices.ContainsFunc(ps.List, func(p Problem) bool { return p.Field == field })
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
