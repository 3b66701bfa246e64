package config

import (
	"bytes"
	"errors"
	"io"
	"reflect"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/leasegate/leasegate/server/config/yamltree"
)

// issuerHead is a valid issuer; the cases below add to it from line 8.
const issuerHead = `issuers:
  - name: hydra
    issuer: "http://127.0.0.1:4444"
    default_for_opaque: true
    introspection:
      endpoint: "http://127.0.0.1:4445/introspect"
      auth: none
`

// TestDecodeProblems: every problem of the strict decoding has the field
// path and the line of its own node, read from the tree, not from yaml's
// error text.
func TestDecodeProblems(t *testing.T) {
	tests := []struct {
		name string
		yaml string
		env  map[string]string
		want []string // each a line of the error, in order
	}{
		{
			name: "unknown key deep in a list",
			yaml: issuerHead + "      timeuot: 2s\n    circuit_breaker: {failurs: 3}\n",
			want: []string{
				"t.yaml:8: issuers[0].introspection.timeuot: unknown key; issuers[0].introspection takes endpoint, auth, client_id, client_secret, client_secret_file, timeout, max_conns",
				"t.yaml:9: issuers[0].circuit_breaker.failurs: unknown key; issuers[0].circuit_breaker takes failures, open_for",
			},
		},
		{
			name: "type errors at the offending node in flow style",
			yaml: issuerHead + "tiers:\n  read: { methods: GET,\n    window: 3 seconds }\nserver: {max_concurrent_streams: -1}\n",
			want: []string{
				`t.yaml:9: tiers.read.methods: must be a list, not "GET"`,
				`t.yaml:10: tiers.read.window: "3 seconds" is not a duration (90s, 5m, 1h)`,
				`t.yaml:11: server.max_concurrent_streams: "-1" is not a whole number from 0 to 4294967295`,
			},
		},
		{
			name: "a key twice",
			yaml: issuerHead + "lease:\n  max: 5m\n  max: 6m\n",
			want: []string{"t.yaml:10: lease.max: is given twice (first on line 9)"},
		},
		{
			name: "wrong kinds",
			yaml: issuerHead + "listen: [a]\nroutes: {prefix: /a/}\nupstream: {strip_authorization: maybe}\n",
			want: []string{
				"t.yaml:8: listen: must be a mapping, not a list",
				"t.yaml:9: routes: must be a list, not a mapping",
				`t.yaml:10: upstream.strip_authorization: "maybe" is not true or false`,
			},
		},
		{
			name: "not a mapping",
			yaml: "- a\n",
			want: []string{
				"t.yaml: issuers: at least one issuer is needed",
				"t.yaml:1: the configuration must be a mapping, not a list",
			},
		},
		{
			name: "an unknown key in a merged mapping, at its own line",
			yaml: issuerHead + "base: &base\n  max: 5m\nlease:\n  <<: *base\n  negative_ttl: 5s\n",
			want: []string{"t.yaml:8: base: unknown key; the top level takes listen, realm, issuers, tiers, default_tier, routes, lease, upstream, admin, tracing, log, server, fleet"},
		},
		{
			name: "a value from the environment is not repeated",
			yaml: issuerHead + "lease:\n  max_memory_mb: ${N}\n",
			env:  map[string]string{"N": "hunter2"},
			want: []string{"t.yaml:9: lease.max_memory_mb: the value of its environment variable is not a whole number"},
		},
		{
			name: "an unset variable is said once",
			yaml: issuerHead + "lease:\n  max: ${UNSET}\n",
			want: []string{"t.yaml:9: lease.max: environment variable UNSET is not set"},
		},
		{
			name: "syntax",
			yaml: issuerHead + "lease:\n  max: a: b\n",
			want: []string{"t.yaml: YAML syntax: line 9: mapping values are not allowed in this context"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse("t.yaml", []byte(tc.yaml), testEnv(tc.env))
			var ps *Problems
			if !errors.As(err, &ps) {
				t.Fatalf("Parse error = %v, want *Problems", err)
			}
			if got := strings.Split(err.Error(), "\n"); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(tc.want, "\n"))
			}
		})
	}
}

// TestDecodeAccepts: what yaml.v3 decodes, the walk lets through:
// anchors, aliases, merge keys, nulls, and ${VAR} in a duration.
func TestDecodeAccepts(t *testing.T) {
	cfg, err := Parse("t.yaml", []byte(`issuers:
  - name: a
    issuer: "http://a.example"
    default_for_opaque: true
    local_hosts: &hosts [dav.example.org]
    introspection: &intro
      endpoint: "http://a.example/introspect"
      auth: none
      timeout: ${TIMEOUT}
  - name: b
    issuer: "http://b.example"
    local_hosts: *hosts
    clock_skew: ~
    introspection:
      <<: *intro
      endpoint: "http://b.example/introspect"
tiers:
  read: { window: 30s }
  write:
`), testEnv(map[string]string{"TIMEOUT": "3s"}))
	if err != nil {
		t.Fatal(err)
	}
	a, b := cfg.Issuers[0], cfg.Issuers[1]
	if a.Introspection.Timeout.String() != "3s" || b.Introspection.Timeout.String() != "3s" ||
		b.Introspection.Endpoint != "http://b.example/introspect" || b.Introspection.Auth != "none" ||
		len(b.LocalHosts) != 1 || b.ClockSkew.String() != "1m0s" {
		t.Errorf("issuers = %+v", cfg.Issuers)
	}
	if cfg.lines["issuers[1].introspection.endpoint"] != 16 {
		t.Errorf("line of issuers[1].introspection.endpoint = %d, want 16", cfg.lines["issuers[1].introspection.endpoint"])
	}
}

// checkStrictAgrees: the walk and yaml.v3's own strict decoder
// (KnownFields) are two readings of one tree and must refuse the same
// documents. Failures yaml does not type (an alias cycle, bad base64,
// excessive aliasing) end decoding in both; the walk need not name them.
func checkStrictAgrees(t *testing.T, data []byte) {
	var root yaml.Node
	if yaml.Unmarshal(data, &root) != nil || len(root.Content) == 0 {
		return
	}
	// Each ${VAR} expands to itself, so the walk sees the text yaml sees.
	ps := &Problems{}
	self := func(name string) (string, bool) { return "${" + name + "}", true }
	yamltree.Decode(data, new(Config), self, map[string]int{}, map[string]bool{}, &ps.List)
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	var te *yaml.TypeError
	switch err := dec.Decode(new(Config)); {
	case err == nil || errors.Is(err, io.EOF):
		if len(ps.List) > 0 {
			t.Fatalf("the walk refuses what yaml accepts:\n%s\n%q", ps, data)
		}
	case errors.As(err, &te):
		if len(ps.List) == 0 {
			t.Fatalf("yaml refuses what the walk accepts: %v\n%q", err, data)
		}
	}
}
