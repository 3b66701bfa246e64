package leasegate

import (
	"fmt"
	"time"

	"go.yaml.in/yaml/v3"
)

// Config is the part of leasegate's YAML configuration (SPEC §7) the
// end-to-end tests and the demo set. Zero fields are left out, so
// leasegate's defaults apply; Listen addresses left empty become
// 127.0.0.1:0 in Start.
type Config struct {
	Listen      Listen          `yaml:"listen"`
	Realm       string          `yaml:"realm,omitempty"`
	Issuers     []Issuer        `yaml:"issuers"`
	Tiers       map[string]Tier `yaml:"tiers,omitempty"`
	DefaultTier string          `yaml:"default_tier,omitempty"`
	Routes      []Route         `yaml:"routes,omitempty"`
	Lease       Lease           `yaml:"lease,omitempty"`
	Log         Log             `yaml:"log,omitempty"`
	Server      Server          `yaml:"server,omitempty"`
	Fleet       *Fleet          `yaml:"fleet,omitempty"`
}

// Listen is the listen block.
type Listen struct {
	GRPC    string `yaml:"grpc,omitempty"`
	HTTP    string `yaml:"http,omitempty"`
	Metrics string `yaml:"metrics,omitempty"`
	Admin   string `yaml:"admin,omitempty"`
	Push    string `yaml:"push,omitempty"`
}

// Issuer is one issuers[] entry.
type Issuer struct {
	Name             string         `yaml:"name"`
	Issuer           string         `yaml:"issuer"`
	Mode             string         `yaml:"mode,omitempty"`
	DefaultForOpaque bool           `yaml:"default_for_opaque,omitempty"`
	Introspection    *Introspection `yaml:"introspection,omitempty"`
	JWKSURI          string         `yaml:"jwks_uri,omitempty"`
	Audiences        []string       `yaml:"audiences,omitempty"`
	CircuitBreaker   *Breaker       `yaml:"circuit_breaker,omitempty"`
	MaxTokenLifetime Duration       `yaml:"max_token_lifetime,omitempty"`
	// BackchannelLogout and SSF are the issuer's push revocation receivers.
	BackchannelLogout *BackchannelLogout `yaml:"backchannel_logout,omitempty"`
	SSF               *SSF               `yaml:"ssf,omitempty"`
}

// BackchannelLogout is an issuer's backchannel_logout block.
type BackchannelLogout struct {
	ClientIDs []string `yaml:"client_ids"`
}

// SSF is an issuer's ssf block.
type SSF struct {
	Audience string `yaml:"audience"`
}

// Introspection is an issuer's RFC 7662 client block.
type Introspection struct {
	Endpoint string   `yaml:"endpoint"`
	Auth     string   `yaml:"auth,omitempty"`
	Timeout  Duration `yaml:"timeout,omitempty"`
}

// Breaker is an issuer's circuit_breaker block.
type Breaker struct {
	Failures int      `yaml:"failures,omitempty"`
	OpenFor  Duration `yaml:"open_for,omitempty"`
}

// Tier is one tiers entry. Window is always written, so a zero Window is
// an explicit "0s" (no lease), not the built-in default.
type Tier struct {
	Methods      []string `yaml:"methods,omitempty"`
	Window       Duration `yaml:"window"`
	StaleIfError Duration `yaml:"stale_if_error,omitempty"`
}

// Route is one routes[] entry.
type Route struct {
	Prefix           string   `yaml:"prefix"`
	Tier             string   `yaml:"tier,omitempty"`
	MaxTokenLifetime Duration `yaml:"max_token_lifetime,omitempty"`
}

// Lease is the lease block.
type Lease struct {
	Max              Duration `yaml:"max,omitempty"`
	NegativeTTL      Duration `yaml:"negative_ttl,omitempty"`
	MaxTokenLifetime Duration `yaml:"max_token_lifetime,omitempty"`
	RefuseLongLived  bool     `yaml:"refuse_long_lived,omitempty"`
}

// Log is the log block.
type Log struct {
	Level  string `yaml:"level,omitempty"`
	Format string `yaml:"format,omitempty"`
}

// Server is the server block.
type Server struct {
	StartGrace   Duration `yaml:"start_grace,omitempty"`
	DrainTimeout Duration `yaml:"drain_timeout,omitempty"`
}

// Fleet is the fleet block (SPEC §8): replicas sharing leases and
// revocations through Redis.
type Fleet struct {
	Redis          FleetRedis `yaml:"redis"`
	KeyPrefix      string     `yaml:"key_prefix,omitempty"`
	SecretFile     string     `yaml:"secret_file"`
	OnStoreLoss    string     `yaml:"on_store_loss,omitempty"` // standalone | revalidate | deny
	Timeout        Duration   `yaml:"timeout,omitempty"`
	HealthInterval Duration   `yaml:"health_interval,omitempty"`
	AllowEviction  bool       `yaml:"allow_eviction,omitempty"`
}

// FleetRedis is fleet.redis: several addresses mean a Redis Cluster.
type FleetRedis struct {
	Addresses    []string `yaml:"addresses"`
	MasterName   string   `yaml:"master_name,omitempty"`
	Username     string   `yaml:"username,omitempty"`
	PasswordFile string   `yaml:"password_file,omitempty"`
}

// Duration is a time.Duration written the way leasegate reads it ("1.5s"),
// not as yaml.v3's integer nanoseconds.
type Duration time.Duration

// MarshalYAML implements yaml.Marshaler.
func (d Duration) MarshalYAML() (any, error) { return time.Duration(d).String(), nil }

// IsZero lets omitempty drop a zero Duration.
func (d Duration) IsZero() bool { return d == 0 }

// StandardTiers is the default method table with the given windows: read
// (GET, HEAD, OPTIONS, PROPFIND), write (PUT, POST, PATCH, MKCOL, COPY,
// MOVE, PROPPATCH, LOCK, UNLOCK) and critical (DELETE), plus stale_if_error
// for read.
func StandardTiers(read, write, critical, readStale time.Duration) map[string]Tier {
	return map[string]Tier{
		"read":     {Methods: []string{"GET", "HEAD", "OPTIONS", "PROPFIND"}, Window: Duration(read), StaleIfError: Duration(readStale)},
		"write":    {Methods: []string{"PUT", "POST", "PATCH", "MKCOL", "COPY", "MOVE", "PROPPATCH", "LOCK", "UNLOCK"}, Window: Duration(write)},
		"critical": {Methods: []string{"DELETE"}, Window: Duration(critical)},
	}
}

// Marshal renders c as YAML with a header comment.
func (c Config) Marshal() ([]byte, error) {
	b, err := yaml.Marshal(c)
	if err != nil {
		return nil, fmt.Errorf("render leasegate config: %w", err)
	}
	return append([]byte("# written by the leasegate e2e harness\n"), b...), nil
}
