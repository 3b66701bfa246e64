package fleet

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"os"
	"strings"
	"time"

	"github.com/redis/rueidis"
)

// Config is the fleet's store configuration (SPEC §8 `fleet:`). The host
// decodes YAML into it and reads secret files; defaults and checks are
// here. Field paths in Problems are the YAML keys under `fleet:`.
type Config struct {
	// Addresses of Redis: one for a standalone server (or one node of a
	// Cluster, which is detected), several for a Cluster, or the Sentinels
	// when MasterName is set.
	Addresses []string
	// MasterName selects Sentinel: Addresses are the Sentinels, and this is
	// the master set they watch.
	MasterName string
	// Username and Password for Redis ACL AUTH (Sentinels get none).
	Username string
	Password string
	// TLS is used when any of its fields is set.
	TLS TLSConfig
	// KeyPrefix starts every key this package writes, so an ACL key
	// pattern (~leasegate:*) can confine the replicas. No braces: they
	// would move the Cluster hash tags. Default "leasegate:".
	KeyPrefix string
	// Secret keys the HMACs of keys, values and records (secret_file). The
	// same on every replica; at least 32 bytes.
	Secret []byte
	// Timeout is the longest any one operation waits on the store (SPEC §8
	// fleet.timeout). Default 100ms.
	Timeout time.Duration
	// HealthInterval is how often the store is pinged. Two failed pings in
	// a row mark it down, so a hung store is noticed within
	// 2×HealthInterval + the ping timeout (SPEC §8: within 2 s). Default
	// 500ms, at most 600ms.
	HealthInterval time.Duration
	// LeaseMax is lease.max: no lease is shared longer. Revocation records
	// are kept LeaseMax + RetentionMargin (on Redis' clock), so a replica
	// can check any shared lease against every revocation that could
	// void it. Default 10m.
	LeaseMax time.Duration
	// AllowEviction lets Open accept a server whose maxmemory-policy could
	// evict the revocation log (allkeys-*). Off, Open refuses it.
	AllowEviction bool
}

// TLSConfig is the TLS towards Redis (and the Sentinels).
type TLSConfig struct {
	CAFile     string // PEM roots; empty: the system's
	CertFile   string // client certificate (PEM), with KeyFile
	KeyFile    string
	ServerName string // the name to verify; empty: the address' host
}

// Enabled reports whether any TLS field is set.
func (t TLSConfig) Enabled() bool {
	return t.CAFile != "" || t.CertFile != "" || t.KeyFile != "" || t.ServerName != ""
}

const (
	DefaultKeyPrefix      = "leasegate:"
	DefaultTimeout        = 100 * time.Millisecond
	DefaultHealthInterval = 500 * time.Millisecond
	DefaultLeaseMax       = 10 * time.Minute
	// RetentionMargin is kept beyond LeaseMax: a validation's length and
	// a writer's lag behind the log, with room to spare.
	RetentionMargin = time.Minute
	// MinSecret is the shortest Secret accepted: 256 bits, the strength
	// HMAC-SHA256 can give.
	MinSecret = 32

	maxHealthInterval = 600 * time.Millisecond
	maxTimeout        = 10 * time.Second
)

// SetDefaults fills the zero fields with their defaults.
func (c *Config) SetDefaults() {
	if c.KeyPrefix == "" {
		c.KeyPrefix = DefaultKeyPrefix
	}
	if c.Timeout == 0 {
		c.Timeout = DefaultTimeout
	}
	if c.HealthInterval == 0 {
		c.HealthInterval = DefaultHealthInterval
	}
	if c.LeaseMax <= 0 { // lease.max is checked where it is configured
		c.LeaseMax = DefaultLeaseMax
	}
}

// Problem is one reason Open refuses a Config. Field is the key under
// `fleet:` as SPEC §8 spells it ("redis.addresses"), "" when no one key
// is to blame.
type Problem struct {
	Field string
	Msg   string
}

func (p Problem) Error() string {
	if p.Field == "" {
		return p.Msg
	}
	return p.Field + ": " + p.Msg
}

// Validate reports every problem Open would refuse, after defaults, so
// `leasegate -check` and start-up run the same checks. It reads the TLS
// files (a file that cannot be loaded must fail -check too) but touches
// no network.
func (c Config) Validate() []Problem {
	c.SetDefaults()
	var ps []Problem
	add := func(field, format string, args ...any) {
		ps = append(ps, Problem{field, fmt.Sprintf(format, args...)})
	}
	if len(c.Addresses) == 0 {
		add("redis.addresses", "at least one address is required")
	}
	seen := map[string]bool{}
	for i, a := range c.Addresses {
		host, port, err := net.SplitHostPort(a)
		switch {
		case err != nil:
			add(fmt.Sprintf("redis.addresses[%d]", i), "%q is not host:port: %v", a, err)
		case host == "" || port == "":
			add(fmt.Sprintf("redis.addresses[%d]", i), "%q needs both a host and a port", a)
		case seen[a]:
			add(fmt.Sprintf("redis.addresses[%d]", i), "%q is listed twice", a)
		}
		seen[a] = true
	}
	if strings.TrimSpace(c.MasterName) != c.MasterName {
		add("redis.master_name", "%q has surrounding spaces", c.MasterName)
	}
	if strings.ContainsAny(c.KeyPrefix, "{}") {
		add("key_prefix", "%q must not contain { or }: they would change the Redis Cluster hash slots", c.KeyPrefix)
	}
	if len(c.KeyPrefix) > 64 {
		add("key_prefix", "%d bytes is longer than 64", len(c.KeyPrefix))
	}
	switch {
	case len(c.Secret) == 0:
		add("secret_file", "is required: the fleet's keys and values are authenticated with it")
	case len(c.Secret) < MinSecret:
		add("secret_file", "the secret has %d bytes; at least %d are required (e.g. `head -c 48 /dev/urandom | base64`)", len(c.Secret), MinSecret)
	}
	if c.Timeout < 0 || c.Timeout > maxTimeout {
		add("timeout", "%v must be positive and at most %v", c.Timeout, maxTimeout)
	}
	if c.HealthInterval < 0 || c.HealthInterval > maxHealthInterval {
		add("health_interval", "%v must be positive and at most %v: a hung store must be noticed within 2s", c.HealthInterval, maxHealthInterval)
	}
	if _, err := c.TLS.load(); err != nil {
		ps = append(ps, err.(Problem))
	}
	return ps
}

// load builds the tls.Config, nil when TLS is off; an error is a Problem.
func (t TLSConfig) load() (*tls.Config, error) {
	if !t.Enabled() {
		return nil, nil
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: t.ServerName}
	if t.CAFile != "" {
		pem, err := os.ReadFile(t.CAFile)
		if err != nil {
			return nil, Problem{"redis.tls.ca_file", err.Error()}
		}
		cfg.RootCAs = x509.NewCertPool()
		if !cfg.RootCAs.AppendCertsFromPEM(pem) {
			return nil, Problem{"redis.tls.ca_file", fmt.Sprintf("%s holds no PEM certificate", t.CAFile)}
		}
	} else {
		// Loaded here, not lazily in the first handshake: parsing the
		// system's roots must not count against the dial's timeout.
		roots, err := x509.SystemCertPool()
		if err != nil {
			return nil, Problem{"redis.tls.ca_file", fmt.Sprintf("is empty and the system roots cannot be read: %v", err)}
		}
		cfg.RootCAs = roots
	}
	switch {
	case t.CertFile != "" && t.KeyFile != "":
		cert, err := tls.LoadX509KeyPair(t.CertFile, t.KeyFile)
		if err != nil {
			return nil, Problem{"redis.tls.cert_file", err.Error()}
		}
		cfg.Certificates = []tls.Certificate{cert}
	case t.CertFile != "":
		return nil, Problem{"redis.tls.key_file", "is required with cert_file"}
	case t.KeyFile != "":
		return nil, Problem{"redis.tls.cert_file", "is required with key_file"}
	}
	return cfg, nil
}

// clientOption is the rueidis configuration. c has its defaults.
//
// Pinned from the measurements in shared/research/fleet.md:
//   - DisableCache: this package does not use client-side caching. The
//     local layer is leasecache, and revocations travel through the log,
//     which is ordered and resumable, not through tracking invalidations,
//     which are at-most-once and lost with the connection. No CLIENT
//     TRACKING is sent and no per-connection cache memory is allocated.
//   - Dialer.KeepAlive 200ms and ConnWriteTimeout 1s: rueidis pings each
//     connection and closes it when a reply takes longer, so a hung
//     server (SIGSTOP, sockets open) errors in about 1.4s instead of 12s.
//   - Dialer.Timeout 1s: a black-holed address fails a dial within it.
func (c Config) clientOption() (rueidis.ClientOption, error) {
	tlsCfg, err := c.TLS.load()
	if err != nil {
		return rueidis.ClientOption{}, err
	}
	dialer := net.Dialer{Timeout: time.Second, KeepAlive: 200 * time.Millisecond}
	opt := rueidis.ClientOption{
		InitAddress:      append([]string(nil), c.Addresses...),
		Username:         c.Username,
		Password:         c.Password,
		ClientName:       "leasegate",
		TLSConfig:        tlsCfg,
		Dialer:           dialer,
		ConnWriteTimeout: time.Second,
		DisableCache:     true,
	}
	if c.MasterName != "" {
		opt.Sentinel = rueidis.SentinelOption{
			MasterSet: c.MasterName,
			TLSConfig: tlsCfg,
			Dialer:    dialer,
		}
	}
	return opt, nil
}
