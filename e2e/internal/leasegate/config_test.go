package leasegate

import (
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"
)

func TestConfigMarshal(t *testing.T) {
	c := Config{
		Issuers: []Issuer{{
			Name: "hydra", Issuer: "http://127.0.0.1:4444", Mode: "introspection", DefaultForOpaque: true,
			Introspection: &Introspection{Endpoint: "http://127.0.0.1:4445/admin/oauth2/introspect", Auth: "none", Timeout: Duration(500 * time.Millisecond)},
		}},
		Tiers: StandardTiers(3*time.Second, time.Second, 0, 20*time.Second),
		Lease: Lease{Max: Duration(time.Minute)},
	}
	b, err := c.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	var got map[string]any
	if err := yaml.Unmarshal(b, &got); err != nil {
		t.Fatalf("output is not YAML: %v\n%s", err, b)
	}
	tiers := got["tiers"].(map[string]any)
	for _, c := range []struct {
		name string
		got  any
		want any
	}{
		{name: "durations as Go strings", got: tiers["read"].(map[string]any)["window"], want: "3s"},
		{name: "stale_if_error", got: tiers["read"].(map[string]any)["stale_if_error"], want: "20s"},
		{name: "window 0 written explicitly", got: tiers["critical"].(map[string]any)["window"], want: "0s"},
		{name: "zero stale_if_error omitted", got: tiers["write"].(map[string]any)["stale_if_error"], want: nil},
		{name: "sub-second timeout", got: got["issuers"].([]any)[0].(map[string]any)["introspection"].(map[string]any)["timeout"], want: "500ms"},
		{name: "lease.max", got: got["lease"].(map[string]any)["max"], want: "1m0s"},
	} {
		t.Run(c.name, func(t *testing.T) {
			if c.got != c.want {
				t.Errorf("got %#v, want %#v", c.got, c.want)
			}
		})
	}
	for _, absent := range []string{"routes:", "realm:", "jwks_uri:", "circuit_breaker:", "negative_ttl:", "fleet:"} {
		if strings.Contains(string(b), absent) {
			t.Errorf("zero field %s written:\n%s", absent, b)
		}
	}
}

// TestConfigMarshalFleet: the fleet block in SPEC §8's names.
func TestConfigMarshalFleet(t *testing.T) {
	c := Config{Fleet: &Fleet{
		Redis:          FleetRedis{Addresses: []string{"127.0.0.1:1", "127.0.0.1:2"}},
		KeyPrefix:      "lg:",
		SecretFile:     "/tmp/fleet.key",
		OnStoreLoss:    "revalidate",
		Timeout:        Duration(100 * time.Millisecond),
		HealthInterval: Duration(200 * time.Millisecond),
	}}
	b, err := c.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	var got struct {
		Fleet map[string]any `yaml:"fleet"`
	}
	if err := yaml.Unmarshal(b, &got); err != nil {
		t.Fatalf("output is not YAML: %v\n%s", err, b)
	}
	f := got.Fleet
	addrs, _ := f["redis"].(map[string]any)["addresses"].([]any)
	if len(addrs) != 2 || addrs[1] != "127.0.0.1:2" {
		t.Errorf("fleet.redis.addresses = %v", addrs)
	}
	for k, want := range map[string]any{"key_prefix": "lg:", "secret_file": "/tmp/fleet.key", "on_store_loss": "revalidate", "timeout": "100ms", "health_interval": "200ms"} {
		if f[k] != want {
			t.Errorf("fleet.%s = %#v, want %#v", k, f[k], want)
		}
	}
	if _, ok := f["allow_eviction"]; ok {
		t.Errorf("allow_eviction false written:\n%s", b)
	}
}

func TestLineLog(t *testing.T) {
	l := newLineLog()
	_, changed := l.Since(0)
	l.Write([]byte(`{"msg":"a"}` + "\n" + `{"msg":"b`))
	select {
	case <-changed:
	default:
		t.Fatal("waiters not woken by a complete line")
	}
	if lines, _ := l.Since(0); len(lines) != 1 {
		t.Fatalf("%d lines, want 1 (the partial line is held back)", len(lines))
	}
	l.Write([]byte(`"}` + "\n"))
	lines, _ := l.Since(1)
	if len(lines) != 1 || string(lines[0]) != `{"msg":"b"}` {
		t.Fatalf("Since(1) = %q", lines)
	}
	if l.Mark() != 2 || l.String() != "{\"msg\":\"a\"}\n{\"msg\":\"b\"}\n" {
		t.Errorf("Mark %d String %q", l.Mark(), l.String())
	}
}
