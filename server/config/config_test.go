package config

import (
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite the testdata/config/check/*.golden files")

// checkEnv is the environment of the testdata/config/check files.
var checkEnv = map[string]string{"TEST_SECRET": "s3cr:t", "LEASEGATE_TEST_EMPTY": ""}

// checkFiles are the configurations whose -check output is kept as a golden
// file; each binds 127.0.0.1:0 only, so it can also be started.
func checkFiles(t *testing.T) []string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join("testdata", "config", "check", "*.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no check files: %v", err)
	}
	return files
}

// checkOutput is what leasegate -check prints for a file: its problems, or
// the summary.
func checkOutput(path string) (string, bool) {
	data, err := os.ReadFile(path)
	if err != nil {
		return err.Error(), false
	}
	cfg, err := Parse(filepath.Base(path), data, testEnv(checkEnv))
	if err != nil {
		return err.Error() + "\n", false
	}
	return cfg.Summary() + "\n", true
}

func TestCheckGolden(t *testing.T) {
	for _, f := range checkFiles(t) {
		t.Run(filepath.Base(f), func(t *testing.T) {
			got, _ := checkOutput(f)
			golden := strings.TrimSuffix(f, ".yaml") + ".golden"
			if *update {
				if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (go test -run TestCheckGolden -update writes it)", err)
			}
			if got != string(want) {
				t.Errorf("-check output differs from %s:\n got: %s\nwant: %s", golden, got, want)
			}
		})
	}
}

func testEnv(vars map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) { v, ok := vars[k]; return v, ok }
}

func parseFile(t *testing.T, name string, env map[string]string) (*Config, error) {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", "config", name))
	if err != nil {
		t.Fatal(err)
	}
	return Parse(name, data, testEnv(env))
}

func TestParseValid(t *testing.T) {
	cfg, err := parseFile(t, "valid.yaml", map[string]string{"TEST_SECRET": "s3cr:t", "TEST_ADMIN_SECRET": "adm"})
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	if got := cfg.Issuers[0].Introspection.ClientSecret; got != "s3cr:t" {
		t.Errorf("client_secret = %q, want the env value", got)
	}
	if cfg.Lease.NegativeTTL != 10*time.Second || cfg.Lease.Max != 10*time.Minute || cfg.Lease.MaxMemoryMB != 64 {
		t.Errorf("lease = %+v", cfg.Lease)
	}
	pc := cfg.PolicyConfig()
	if len(pc.Tiers) != 3 || pc.Tiers[0].Name != "read" || pc.Tiers[0].StaleIfError != 5*time.Minute {
		t.Fatalf("tiers = %+v", pc.Tiers)
	}
	// read kept its default methods though only window was set.
	if strings.Join(pc.Tiers[0].Methods, ",") != "GET,HEAD,OPTIONS,PROPFIND" {
		t.Errorf("read methods = %v", pc.Tiers[0].Methods)
	}
	want := "revocation bound 1m0s (5m0s with stale_if_error), lease.max 10m0s"
	if s := cfg.Summary(); !strings.Contains(s, want) {
		t.Errorf("Summary = %q, want it to contain %q", s, want)
	}
}

func TestParseDefaults(t *testing.T) {
	cfg, err := Parse("min.yaml", []byte(`
issuers:
  - name: hydra
    issuer: "http://127.0.0.1:4444"
    default_for_opaque: true
    introspection:
      endpoint: "http://127.0.0.1:4445/admin/oauth2/introspect"
      auth: none
`), testEnv(nil))
	if err != nil {
		t.Fatal(err)
	}
	is := cfg.Issuers[0]
	if cfg.Listen.GRPC != ":9001" || cfg.Listen.Admin != "127.0.0.1:9191" || cfg.Realm != "leasegate" ||
		cfg.DefaultTier != "critical" || cfg.Lease.NegativeTTL != 10*time.Second || cfg.Lease.MaxMemoryMB != 256 ||
		is.Mode != "introspection" || is.Introspection.Timeout != 2*time.Second || is.ClockSkew != time.Minute ||
		cfg.Upstream.Headers.Subject != "x-auth-subject" {
		t.Fatalf("defaults not applied: %+v", cfg)
	}
}

func TestParseProblems(t *testing.T) {
	tests := []struct {
		file string
		env  map[string]string
		want []string // each must appear in the error, with its line
	}{
		{file: "unknown_key.yaml", want: []string{"unknown_key.yaml:5: lease.maxx_memory: unknown key; lease takes max, negative_ttl, max_memory_mb"}},
		{file: "bad_duration.yaml", want: []string{`bad_duration.yaml:8: lease.max: "ten minutes" is not a duration (90s, 5m, 1h)`}},
		{file: "inline_secret.yaml", want: []string{"inline_secret.yaml:8: issuers[0].introspection.client_secret: inline secrets are refused"}},
		{file: "unset_env.yaml", want: []string{"unset_env.yaml:7: issuers[0].introspection.client_secret: environment variable LEASEGATE_TEST_UNSET_VAR is not set"}},
		{file: "stale_too_long.yaml", want: []string{
			"stale_too_long.yaml:8: tiers.read.stale_if_error: 20m0s exceeds lease.max 10m0s",
			"stale_too_long.yaml:9: tiers.write.stale_if_error: not allowed on a tier with window 0",
		}},
		{file: "mixed_problems.yaml", want: []string{
			"mixed_problems.yaml:3: listen.grpcc: unknown key",
			`mixed_problems.yaml:10: issuers[0].introspection.timeout: "soon" is not a duration`,
			"mixed_problems.yaml:12: tiers.read.window: 20m0s exceeds lease.max 10m0s",
		}},
		{file: "many_problems.yaml", want: []string{
			`many_problems.yaml:2: listen.grpc: "nonsense" is not host:port`,
			"many_problems.yaml:3: listen.admin: a non-loopback admin listener needs admin.secret",
			"many_problems.yaml:4: realm: must not contain quotes",
			`many_problems.yaml:11: issuers[0].introspection.endpoint: endpoint "not%20a%20url": scheme must be http or https`,
			`many_problems.yaml:12: issuers[1].name: "a" is used by two issuers`,
			`many_problems.yaml:14: issuers[1].mode: "magic" is not introspection, jwt or jwt+introspection`,
			`many_problems.yaml:15: issuers[1].default_for_opaque: issuer "a" is already default_for_opaque`,
			"many_problems.yaml:17: tiers.read.window: 20m0s exceeds lease.max 10m0s",
			"many_problems.yaml:18: tiers.critical.stale_if_error: not allowed on a tier with window 0",
			`many_problems.yaml:18: tiers.critical.methods: method GET is also in tier "read"`,
			`many_problems.yaml:19: default_tier: "platinum" is not a defined tier`,
			`many_problems.yaml:22: routes[0].tier: "gold" is not a defined tier`,
		}},
	}
	for _, tc := range tests {
		t.Run(tc.file, func(t *testing.T) {
			_, err := parseFile(t, tc.file, tc.env)
			var ps *Problems
			if !errors.As(err, &ps) {
				t.Fatalf("Parse error = %v, want *Problems", err)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("missing %q in:\n%s", w, err)
				}
			}
		})
	}
}

func TestSecretFile(t *testing.T) {
	dir := t.TempDir()
	f := filepath.Join(dir, "secret")
	if err := os.WriteFile(f, []byte("from-file\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := Parse("f.yaml", []byte(`
issuers:
  - name: hydra
    issuer: "http://127.0.0.1:4444"
    introspection:
      endpoint: "http://127.0.0.1:4445/introspect"
      client_id: leasegate
      client_secret_file: `+f+`
`), testEnv(nil))
	if err != nil {
		t.Fatal(err)
	}
	if got := cfg.Issuers[0].Introspection.ClientSecret; got != "from-file" {
		t.Fatalf("secret = %q", got)
	}
}

// An environment value is data: it cannot inject YAML structure.
func TestEnvCannotInjectStructure(t *testing.T) {
	cfg, err := Parse("e.yaml", []byte(`
realm: "${R}"
issuers:
  - name: hydra
    issuer: "http://127.0.0.1:4444"
    introspection:
      endpoint: "http://127.0.0.1:4445/introspect"
      auth: none
`), testEnv(map[string]string{"R": "x\nadmin:\n  secret: pwned"}))
	if err == nil {
		t.Fatalf("a realm with a newline was accepted: %+v", cfg.Admin)
	}
	if !strings.Contains(err.Error(), "realm: must not contain") {
		t.Fatalf("err = %v", err)
	}
}

func TestExampleConfigIsValid(t *testing.T) {
	matches, err := filepath.Glob(filepath.Join("..", "..", "examples", "*.yaml"))
	if err != nil || len(matches) == 0 {
		t.Fatalf("no example configs: %v", err)
	}
	env := testEnv(map[string]string{"LEASEGATE_CLIENT_SECRET": "x", "LEASEGATE_ADMIN_SECRET": "y"})
	for _, m := range matches {
		t.Run(filepath.Base(m), func(t *testing.T) {
			data, err := os.ReadFile(m)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := Parse(m, data, env); err != nil {
				t.Fatalf("%v", err)
			}
		})
	}
}

func FuzzParse(f *testing.F) {
	for _, name := range []string{"valid.yaml", "many_problems.yaml", "unknown_key.yaml", "inline_secret.yaml"} {
		b, err := os.ReadFile(filepath.Join("testdata", "config", name))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte("tiers: {read: {window: -1s}}\nroutes: [{prefix: x}]"))
	f.Add([]byte("&a [*a]"))
	f.Add([]byte("lease:\n  <<: [{max: 5m, bogus: 1}, {max: x}]\n  max: 1m\nx: !!binary y\n"))
	f.Add([]byte("tiers: {a: {window: [1]}, ~: 5, <<: {b: {}}}\nroutes: [{prefix: /a/, methods: GET}]\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		checkStrictAgrees(t, data)
		cfg, err := Parse("fuzz.yaml", data, testEnv(map[string]string{"TEST_SECRET": "s"}))
		if err == nil && cfg == nil {
			t.Fatal("nil config without error")
		}
		if err != nil {
			if strings.Contains(err.Error(), "fuzz.yaml: tiers: ") || strings.Contains(err.Error(), ": YAML: ") {
				t.Fatalf("a check below the walk or policy.Config.Validate caught this:\n%v", err)
			}
			return
		}
		if s := cfg.Summary(); strings.HasPrefix(s, "invalid: ") {
			t.Fatalf("Parse accepted what policy.New refuses: %s", s)
		}
	})
}

// TestParseRouteSpellings covers issue 19 class 1 in the configuration:
// route prefixes and hosts are checked by the normaliser requests go
// through, so a rule can only be written in the form it matches in.
func TestParseRouteSpellings(t *testing.T) {
	_, err := Parse("bad.yaml", []byte(`
issuers:
  - name: hydra
    issuer: "http://127.0.0.1:4444"
    default_for_opaque: true
    introspection:
      endpoint: "http://127.0.0.1:4445/admin/oauth2/introspect"
      auth: none
routes:
  - prefix: /my%20dir/
    host: "storage example org"
  - prefix: /data;v=1/
    host: Storage.Example.org.
`), testEnv(nil))
	if err == nil {
		t.Fatal("accepted")
	}
	for _, w := range []string{
		`bad.yaml:10: routes[0].prefix: prefix "/my%20dir/" must be written decoded`,
		`bad.yaml:11: routes[0].host: "storage example org": invalid host`,
		`bad.yaml:12: routes[1].prefix: prefix "/data;v=1/" must be written decoded`,
	} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("missing %q in:\n%s", w, err)
		}
	}
	if strings.Contains(err.Error(), "routes[1].host") {
		t.Errorf("a host in another spelling was refused:\n%s", err)
	}
}

// TestParseLocalHosts covers issue 19 class 13's configuration keys,
// routes[].local_hosts and issuers[].local_hosts: each entry must be a host
// name or IP literal without a port, reported at its own line.
func TestParseLocalHosts(t *testing.T) {
	const head = `
issuers:
  - name: hydra
    issuer: "http://127.0.0.1:4444"
    default_for_opaque: true
    introspection:
      endpoint: "http://127.0.0.1:4445/admin/oauth2/introspect"
      auth: none
`
	t.Run("valid", func(t *testing.T) {
		cfg, err := Parse("ok.yaml", []byte(head+`    local_hosts: [dav.example.org, "Storage.Example.org."]
routes:
  - prefix: /atlas/
    host: Storage.Example.org.
    require: wlcg_storage
    local_hosts: [dav, "[2001:db8::1]"]
`), testEnv(nil))
		if err != nil {
			t.Fatal(err)
		}
		if got := cfg.Issuers[0].LocalHosts; strings.Join(got, " ") != "dav.example.org Storage.Example.org." {
			t.Errorf("issuer local_hosts = %v", got)
		}
		if got := cfg.PolicyConfig().Routes[0].LocalHosts; strings.Join(got, " ") != "dav [2001:db8::1]" {
			t.Errorf("route local_hosts = %v", got)
		}
	})
	t.Run("problems", func(t *testing.T) {
		_, err := Parse("bad.yaml", []byte(head+`    local_hosts: ["dav.example.org:443", ""]
routes:
  - prefix: /atlas/
    local_hosts: [ok.example.org, "a..b"]
`), testEnv(nil))
		if err == nil {
			t.Fatal("accepted")
		}
		for _, w := range []string{
			`bad.yaml:9: issuers[0].local_hosts[0]: invalid host: local host "dav.example.org:443" names a port`,
			`bad.yaml:9: issuers[0].local_hosts[1]: invalid host: empty local host`,
			`bad.yaml:12: routes[0].local_hosts[1]: local host "a..b": invalid host: empty label`,
		} {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("missing %q in:\n%s", w, err)
			}
		}
	})
}

// TestOwnersReport: server checks no setting a package below it owns; it
// places the owner's problems at their lines. Breaker: authz; tiers and
// lease.max: policy; the rest of lease: leasecache.
func TestOwnersReport(t *testing.T) {
	_, err := Parse("o.yaml", []byte(`issuers:
  - name: hydra
    issuer: "http://127.0.0.1:4444"
    default_for_opaque: true
    introspection:
      endpoint: "http://127.0.0.1:4445/introspect"
      auth: none
    circuit_breaker: {failures: -1}
tiers:
  write: { methods: [PUT, GET] }
lease:
  max: -1m
  negative_ttl: -1s
  max_memory_mb: 1
`), testEnv(nil))
	want := []string{
		"o.yaml:8: issuers[0].circuit_breaker: failures and open_for must not be negative",
		"o.yaml:10: tiers.write.window: 5s exceeds lease.max -1m0s",
		`o.yaml:10: tiers.write.methods: method GET is also in tier "read"`,
		"o.yaml:12: lease.max: must be positive",
		"o.yaml:13: lease.negative_ttl: must not be negative",
		"o.yaml:14: lease.max_memory_mb: 1 is outside 2..1048576",
	}
	if err == nil {
		t.Fatal("accepted")
	}
	for _, w := range want {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("missing %q in:\n%s", w, err)
		}
	}
}
