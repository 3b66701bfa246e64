package fleet

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestValidate(t *testing.T) {
	secret := []byte("0123456789abcdef0123456789abcdef")
	good := func() Config { return Config{Addresses: []string{"127.0.0.1:6379"}, Secret: secret} }
	missing := filepath.Join(t.TempDir(), "missing.pem")
	notPEM := filepath.Join(t.TempDir(), "not.pem")
	if err := os.WriteFile(notPEM, []byte("hello"), 0o600); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name   string
		mut    func(*Config)
		fields []string // the fields blamed, in order
	}{
		{name: "defaults", mut: func(*Config) {}},
		{name: "cluster", mut: func(c *Config) { c.Addresses = []string{"10.0.0.1:6379", "10.0.0.2:6379", "[::1]:6379"} }},
		{name: "sentinel", mut: func(c *Config) { c.MasterName = "mymaster" }},
		{name: "no address", mut: func(c *Config) { c.Addresses = nil }, fields: []string{"redis.addresses"}},
		{name: "no port", mut: func(c *Config) { c.Addresses = []string{"redis"} }, fields: []string{"redis.addresses[0]"}},
		{name: "empty host", mut: func(c *Config) { c.Addresses = []string{"a:1", ":6379"} }, fields: []string{"redis.addresses[1]"}},
		{name: "duplicate", mut: func(c *Config) { c.Addresses = []string{"a:1", "a:1"} }, fields: []string{"redis.addresses[1]"}},
		{name: "master name spaces", mut: func(c *Config) { c.MasterName = " m" }, fields: []string{"redis.master_name"}},
		{name: "no secret", mut: func(c *Config) { c.Secret = nil }, fields: []string{"secret_file"}},
		{name: "short secret", mut: func(c *Config) { c.Secret = secret[:31] }, fields: []string{"secret_file"}},
		{name: "braces in prefix", mut: func(c *Config) { c.KeyPrefix = "lg{x}:" }, fields: []string{"key_prefix"}},
		{name: "long prefix", mut: func(c *Config) { c.KeyPrefix = strings.Repeat("p", 65) }, fields: []string{"key_prefix"}},
		{name: "negative timeout", mut: func(c *Config) { c.Timeout = -1 }, fields: []string{"timeout"}},
		{name: "huge timeout", mut: func(c *Config) { c.Timeout = time.Minute }, fields: []string{"timeout"}},
		{name: "slow health", mut: func(c *Config) { c.HealthInterval = time.Second }, fields: []string{"health_interval"}},
		{name: "cert without key", mut: func(c *Config) { c.TLS.CertFile = missing }, fields: []string{"redis.tls.key_file"}},
		{name: "key without cert", mut: func(c *Config) { c.TLS.KeyFile = missing }, fields: []string{"redis.tls.cert_file"}},
		{name: "missing CA", mut: func(c *Config) { c.TLS.CAFile = missing }, fields: []string{"redis.tls.ca_file"}},
		{name: "CA not PEM", mut: func(c *Config) { c.TLS.CAFile = notPEM }, fields: []string{"redis.tls.ca_file"}},
		{name: "missing keypair", mut: func(c *Config) { c.TLS.CertFile, c.TLS.KeyFile = missing, missing }, fields: []string{"redis.tls.cert_file"}},
		{name: "server name only", mut: func(c *Config) { c.TLS.ServerName = "redis.internal" }},
		{name: "everything wrong", mut: func(c *Config) { c.Addresses, c.Secret, c.KeyPrefix = nil, nil, "{" },
			fields: []string{"redis.addresses", "key_prefix", "secret_file"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cfg := good()
			c.mut(&cfg)
			var got []string
			for _, p := range cfg.Validate() {
				got = append(got, p.Field)
				if p.Msg == "" || !strings.HasPrefix(p.Error(), p.Field) {
					t.Errorf("problem %+v reads %q", p, p.Error())
				}
			}
			if !slices.Equal(got, c.fields) {
				t.Errorf("fields %q, want %q (%v)", got, c.fields, cfg.Validate())
			}
		})
	}
}

func TestDefaults(t *testing.T) {
	var c Config
	c.SetDefaults()
	if c.KeyPrefix != "leasegate:" || c.Timeout != 100*time.Millisecond || c.HealthInterval != 500*time.Millisecond || c.LeaseMax != 10*time.Minute {
		t.Errorf("defaults %+v", c)
	}
	// SPEC §8: a hung store is noticed within 2 s, whatever is accepted.
	if worst := 2*maxHealthInterval + maxHealthInterval; worst > 2*time.Second {
		t.Errorf("the longest accepted health_interval notices a hung store after %v", worst)
	}
	opt, err := Config{Addresses: []string{"a:1"}, MasterName: "m", Secret: make([]byte, 32)}.clientOption()
	if err != nil {
		t.Fatal(err)
	}
	if !opt.DisableCache || opt.Dialer.KeepAlive != 200*time.Millisecond || opt.ConnWriteTimeout != time.Second || opt.Sentinel.MasterSet != "m" {
		t.Errorf("rueidis options not pinned: %+v", opt)
	}
}
