// Package config is leasegate's YAML configuration (SPEC §7): strict
// decoding with every problem at its line, ${VAR} and *_file secrets, the
// defaults the server owns, and each package's own checks with their field
// paths prefixed. Nothing here opens a listener or a connection.
package config

import (
	"cmp"
	"fmt"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/leasegate/leasegate/server/config/yamltree"
	"github.com/leasegate/leasegate/server/telemetry"
)

// Config is the whole YAML configuration (SPEC §7). Field names are the
// contract. Parse fills the defaults each field's comment gives: those of
// the lease cache are leasecache's (leasecache.Config.WithDefaults), the
// tier table is policy's (policy.DefaultTiers); the checks are the owning
// package's wherever it has them (see validate).
//
// Files: config.go the types and Parse; load.go decoding and line
// mapping; defaults.go the defaults; secrets.go the secrets; check.go
// validation; views.go what the other packages are given.
type Config struct {
	Listen ListenConfig `yaml:"listen"`
	// Realm is the realm of every WWW-Authenticate challenge; no quotes,
	// backslashes or control characters. Default "leasegate".
	Realm string `yaml:"realm"`
	// Issuers are the trusted token issuers; at least one is required.
	Issuers []IssuerConfig `yaml:"issuers"`
	// Tiers overlays SPEC §1's tier table (read, write, critical): a
	// built-in tier keeps its default methods and window unless given, a
	// new name adds a tier. Default: the table as it is.
	Tiers map[string]TierConfig `yaml:"tiers"`
	// DefaultTier is the tier of a method no tier lists. Default "critical".
	DefaultTier string `yaml:"default_tier"`
	// Routes override the tier, window or storage rules under a path
	// prefix. Default none.
	Routes   []RouteConfig    `yaml:"routes"`
	Lease    LeaseConfig      `yaml:"lease"`
	Upstream UpstreamConfig   `yaml:"upstream"`
	Admin    AdminConfig      `yaml:"admin"`
	Tracing  telemetry.Config `yaml:"tracing"`
	Log      LogConfig        `yaml:"log"`
	Server   ServerConfig     `yaml:"server"`
	// Fleet shares leases and revocations with the other replicas through
	// Redis (SPEC §8). Absent: a single replica. Restart-only.
	Fleet *FleetConfig `yaml:"fleet"`

	path    string
	lines   map[string]int  // field path → YAML line, for problems
	fromEnv map[string]bool // fields whose value came from ${VAR}
	getenv  func(string) string
}

// ListenConfig is where leasegate serves. Each address is host:port;
// listen.grpc may also be a Unix domain socket.
type ListenConfig struct {
	// GRPC serves ext_authz v3 and grpc.health.v1: host:port, or
	// unix:///absolute/path for a Unix domain socket, which an Envoy in the
	// same pod reaches as a pipe address (no TCP stack, no port).
	// Default ":9001".
	GRPC string `yaml:"grpc"`
	// GRPCSocket is the socket file's mode and owner when GRPC is a
	// unix:// address.
	GRPCSocket SocketConfig `yaml:"grpc_socket"`
	// HTTP serves HTTP-mode external auth. Default "": off.
	HTTP string `yaml:"http"`
	// HTTPMode is how the HTTP listener reads the original request:
	// envoy, nginx, forwarded or auto. Default "envoy".
	HTTPMode string `yaml:"http_mode"`
	// Metrics serves /healthz, /readyz and /metrics to kubelet and
	// Prometheus, open and read-only (SPEC §6). Default ":9190".
	Metrics string `yaml:"metrics"`
	// Admin serves /config and /revoke (behind admin.secret when one is
	// set) and the same probes and metrics as Metrics; off loopback it
	// needs admin.secret. Default "127.0.0.1:9191".
	Admin string `yaml:"admin"`
	// Push serves the push revocation receivers (SPEC §9) and nothing
	// else, e.g. where the issuer can reach it. Default "": on admin.
	Push string `yaml:"push"`
}

// SocketConfig is a Unix socket file's permissions. A socket left behind
// by a process that is gone is removed at start; a live one, or a file
// that is not a socket, is an error.
type SocketConfig struct {
	// Mode is the file mode, octal: who may connect (connecting needs
	// write permission). Default "0660".
	Mode string `yaml:"mode"`
	// User and Group own the file: a name or a numeric id. Default "":
	// the process's own. Changing the user needs root; the group, that
	// the process is a member of it.
	User  string `yaml:"user"`
	Group string `yaml:"group"`
}

// UnixSocketPrefix marks listen.grpc as a Unix socket path.
const UnixSocketPrefix = "unix://"

// UnixSocket returns the socket path when GRPC is a unix:// address.
func (l ListenConfig) UnixSocket() (string, bool) {
	return strings.CutPrefix(l.GRPC, UnixSocketPrefix)
}

// IssuerConfig is one trusted issuer (authz.IssuerConfig in YAML).
type IssuerConfig struct {
	// Name names the issuer in metrics, logs and leases; unique; required.
	Name string `yaml:"name"`
	// Issuer is the exact iss value; unique; required.
	Issuer string `yaml:"issuer"`
	// Mode is introspection, jwt or jwt+introspection. Default
	// "introspection".
	Mode string `yaml:"mode"`
	// DefaultForOpaque sends opaque (non-JWT) tokens to this issuer; at
	// most one, and only an introspection issuer. Default false.
	DefaultForOpaque bool `yaml:"default_for_opaque"`
	// Introspection is the RFC 7662 client, for the introspection modes.
	Introspection IntrospectionConfig `yaml:"introspection"`
	// JWKSURI is the JWKS location for the jwt modes. Default "": OIDC
	// discovery from Issuer.
	JWKSURI string `yaml:"jwks_uri"`
	// Audiences: the token's aud must contain one. Required in the jwt
	// modes unless AcceptAnyAudience. Default none.
	Audiences []string `yaml:"audiences"`
	// AcceptWLCGAny also accepts https://wlcg.cern.ch/jwt/v1/any. Default
	// false.
	AcceptWLCGAny bool `yaml:"accept_wlcg_any_audience"`
	// BasePath is what storage scope paths are relative to. Default "/".
	BasePath string `yaml:"base_path"`
	// LocalHosts are other names of the storage this issuer's tokens are
	// used on (SPEC §5); host names or IP literals, no port. Default none.
	LocalHosts []string `yaml:"local_hosts"`
	// ClockSkew is the leeway for exp, nbf and iat; 0 to 10m. Default 60s.
	ClockSkew time.Duration `yaml:"clock_skew"`
	// Breaker is the per-issuer circuit breaker.
	Breaker BreakerConfig `yaml:"circuit_breaker"`
	// AcceptAnyAudience lets a jwt issuer go without audiences (SPEC §2).
	// Default false.
	AcceptAnyAudience bool `yaml:"accept_any_audience"`
	// BackchannelLogout and SSF are the issuer's push revocation (SPEC
	// §9; push.go). Default: off.
	BackchannelLogout BackchannelLogoutConfig `yaml:"backchannel_logout"`
	SSF               SSFConfig               `yaml:"ssf"`
	// MaxTokenLifetime limits how long after its iat this issuer's tokens
	// are accepted (trust.IssuerConfig). Default 0: no limit of its own.
	MaxTokenLifetime time.Duration `yaml:"max_token_lifetime"`
}

// IntrospectionConfig is one issuer's RFC 7662 client.
type IntrospectionConfig struct {
	// Endpoint is the absolute http(s) introspection URL, without
	// credentials; required in the introspection modes.
	Endpoint string `yaml:"endpoint"`
	// Auth is client_secret_basic, client_secret_post or none. Default
	// "client_secret_basic".
	Auth string `yaml:"auth"`
	// ClientID is needed unless auth is none. Default "".
	ClientID string `yaml:"client_id"`
	// ClientSecret must come from ${VAR}; an inline literal is refused.
	// Needed unless auth is none, and refused then. Default "".
	ClientSecret string `yaml:"client_secret"`
	// ClientSecretFile holds the client secret instead (trailing line
	// breaks dropped); not with ClientSecret. Default "".
	ClientSecretFile string `yaml:"client_secret_file"`
	// Timeout bounds one issuer call. Default 2s.
	Timeout time.Duration `yaml:"timeout"`
	// MaxConns bounds the connections to the issuer's host. Default 64.
	MaxConns int `yaml:"max_conns"`
}

// BreakerConfig tunes the per-issuer circuit breaker.
type BreakerConfig struct {
	// Failures is how many consecutive issuer faults open it. Default 5.
	Failures int `yaml:"failures"`
	// OpenFor is how long it stays open before a probe. Default 5s.
	OpenFor time.Duration `yaml:"open_for"`
}

// TierConfig is one lease tier (policy.TierConfig in YAML).
type TierConfig struct {
	// Methods are the HTTP methods in the tier, case-sensitive, each in
	// one tier. Default: the built-in tier's, none for a new tier.
	Methods []string `yaml:"methods"`
	// Window is how long a validation is reused for the tier's requests;
	// 0 to lease.max. Default: the built-in tier's, 0 for a new tier.
	Window *time.Duration `yaml:"window"`
	// StaleIfError allows a lease this old while the issuer is
	// unreachable; not on a window-0 tier, at most lease.max. Default 0.
	StaleIfError time.Duration `yaml:"stale_if_error"`
}

// RouteConfig is one route rule (policy.RouteConfig in YAML).
type RouteConfig struct {
	// Prefix is the path prefix, from "/", written decoded and
	// normalised; required ("/" for every path).
	Prefix string `yaml:"prefix"`
	// Host limits the rule to one host (any port unless given). Default
	// "": any host.
	Host string `yaml:"host"`
	// Methods limit the rule to these methods. Default: any method.
	Methods []string `yaml:"methods"`
	// Tier replaces the method's tier. Default "": keep it.
	Tier string `yaml:"tier"`
	// Window caps the tier's window on this route; 0 to lease.max.
	// Default: no cap.
	Window *time.Duration `yaml:"window"`
	// Require applies a storage profile's scope rules: wlcg_storage or
	// scitokens. Default "": none.
	Require string `yaml:"require"`
	// LocalHosts are other names of this server on the route (SPEC §5).
	// Default none.
	LocalHosts []string `yaml:"local_hosts"`
	// ConditionalCreate says the backend honours If-None-Match: * on PUT,
	// so a storage.create-only plain PUT is allowed with that condition
	// added upstream (SPEC §5); only with require: wlcg_storage. Default
	// false.
	ConditionalCreate bool `yaml:"conditional_create"`
	// MaxTokenLifetime limits how long after its iat a token is accepted
	// on this route (policy.RouteConfig). Default 0: no limit of its own.
	MaxTokenLifetime time.Duration `yaml:"max_token_lifetime"`
}

// LeaseConfig sizes the lease cache (leasecache.Config in YAML).
type LeaseConfig struct {
	// Max caps every window and stale_if_error; must be positive (policy).
	// Default 10m (leasecache.DefaultMaxAge).
	Max time.Duration `yaml:"max"`
	// NegativeTTL is how long an inactive answer is remembered; not
	// negative. Default 10s (leasecache.DefaultNegativeTTL).
	NegativeTTL time.Duration `yaml:"negative_ttl"`
	// MaxMemoryMB bounds the cache, 2 to 1048576; an eighth of it holds
	// negative leases. Default 256 (leasecache.DefaultMaxMemoryMB).
	MaxMemoryMB int `yaml:"max_memory_mb"`
	// MaxTokenLifetime is the global token lifetime limit (SPEC §2,
	// policy.Config). Default 0: none.
	MaxTokenLifetime time.Duration `yaml:"max_token_lifetime"`
	// RefuseLongLived refuses at once a token whose exp − iat exceeds its
	// limit (policy.Config). Default false.
	RefuseLongLived bool `yaml:"refuse_long_lived"`
}

// UpstreamConfig is what an allowed request carries upstream.
type UpstreamConfig struct {
	// StripAuthorization removes Authorization before the upstream.
	// Default false.
	StripAuthorization bool            `yaml:"strip_authorization"`
	Headers            UpstreamHeaders `yaml:"headers"`
}

// UpstreamHeaders name the identity headers set on an allowed request;
// distinct, and not Authorization, Host or a pseudo-header.
type UpstreamHeaders struct {
	// Subject carries sub. Default "x-auth-subject".
	Subject string `yaml:"subject"`
	// ClientID carries client_id. Default "x-auth-client-id".
	ClientID string `yaml:"client_id"`
	// Scope carries scope. Default "x-auth-scope".
	Scope string `yaml:"scope"`
	// Issuer carries the issuer's name. Default "x-auth-issuer".
	Issuer string `yaml:"issuer"`
}

// AdminConfig guards GET /config and POST /revoke.
type AdminConfig struct {
	// Secret is the admin bearer secret; from ${VAR}, never inline.
	// Default "": none (then listen.admin must be loopback).
	Secret string `yaml:"secret"`
	// SecretFile holds the admin secret instead; not with Secret.
	// Default "".
	SecretFile string `yaml:"secret_file"`
}

// LogConfig configures the slog logger.
type LogConfig struct {
	// Level is debug, info, warn or error. Default "info".
	Level string `yaml:"level"`
	// Format is json or text. Default "json".
	Format string `yaml:"format"`
	// DenialsPerSecond limits the denial lines (authz.DenialLogConfig):
	// that many per second on average, bursts of one second's worth, the
	// next line logged counting those left out ("suppressed"); 0 to 1e6.
	// Default 0: every denial is logged.
	DenialsPerSecond float64 `yaml:"denials_per_second"`
}

// ServerConfig tunes start-up, drain and the gRPC server.
type ServerConfig struct {
	// StartGrace is how long readiness waits for every issuer before
	// serving anyway. Default 30s.
	StartGrace time.Duration `yaml:"start_grace"`
	// DrainTimeout is how long in-flight checks get on SIGTERM. Default
	// 15s.
	DrainTimeout time.Duration `yaml:"drain_timeout"`
	// MaxConcurrentStreams is the per-connection gRPC stream limit.
	// Default 1024.
	MaxConcurrentStreams uint32 `yaml:"max_concurrent_streams"`
}

// FleetConfig is fleet mode (fleet.Config in YAML; its defaults and checks
// are leasecache/fleet's, on_store_loss authz's).
type FleetConfig struct {
	Redis RedisConfig `yaml:"redis"`
	// KeyPrefix starts every key in Redis; no braces. Default "leasegate:".
	KeyPrefix string `yaml:"key_prefix"`
	// SecretFile holds the fleet secret (at least 32 bytes, trailing line
	// breaks dropped), the same on every replica; required.
	SecretFile string `yaml:"secret_file"`
	// OnStoreLoss is standalone, revalidate or deny. Default "standalone".
	OnStoreLoss string `yaml:"on_store_loss"`
	// Timeout is the longest wait on the store per operation. Default 100ms.
	Timeout time.Duration `yaml:"timeout"`
	// HealthInterval is how often the store is pinged, at most 600ms.
	// Default 500ms.
	HealthInterval time.Duration `yaml:"health_interval"`
	// AllowEviction starts against an evicting maxmemory-policy. Default
	// false.
	AllowEviction bool `yaml:"allow_eviction"`

	secret string // read from SecretFile
}

// RedisConfig is where the fleet's Redis is and how to log in.
type RedisConfig struct {
	// Addresses: one (standalone or a Cluster node), several (Cluster), or
	// the Sentinels with MasterName; required.
	Addresses  []string `yaml:"addresses"`
	MasterName string   `yaml:"master_name"`
	Username   string   `yaml:"username"`
	// Password must come from ${VAR}, or PasswordFile.
	Password     string         `yaml:"password"`
	PasswordFile string         `yaml:"password_file"`
	TLS          RedisTLSConfig `yaml:"tls"`
}

// RedisTLSConfig is TLS towards Redis; on when any field is set.
type RedisTLSConfig struct {
	CAFile     string `yaml:"ca_file"`
	CertFile   string `yaml:"cert_file"`
	KeyFile    string `yaml:"key_file"`
	ServerName string `yaml:"server_name"`
}

// Problem is one configuration error, located in the YAML file.
type Problem = yamltree.Problem

// decode reads data into c through the yaml.Node tree (yamltree), each
// problem with the field path and line of its node. It reports false when
// nothing more can be checked.
func (c *Config) decode(data []byte, lookupEnv func(string) (string, bool), ps *Problems) bool {
	return yamltree.Decode(data, c, lookupEnv, c.lines, c.fromEnv, &ps.List)
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

// has reports whether a problem names field.
func (ps *Problems) has(field string) bool {
	return slices.ContainsFunc(ps.List, func(p Problem) bool { return p.Field == field })
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
		slices.SortStableFunc(ps.List, func(a, b Problem) int { return cmp.Compare(a.Line, b.Line) })
		return nil, ps
	}
	return cfg, nil
}

// Path is the file the configuration was read from.
func (c *Config) Path() string { return c.path }

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
