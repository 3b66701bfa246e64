package config

import (
	"strings"
	"testing"
)

const listenIssuer = `
issuers:
  - name: hydra
    issuer: "http://127.0.0.1:4444"
    default_for_opaque: true
    introspection: { endpoint: "http://127.0.0.1:4445/introspect", auth: none }
`

func TestMetricsListenerAndDenialLogDefaults(t *testing.T) {
	cfg, err := Parse("d.yaml", []byte(listenIssuer), testEnv(nil))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Listen.Metrics != ":9190" || cfg.Log.DenialsPerSecond != 0 {
		t.Fatalf("listen.metrics %q, log.denials_per_second %v; want \":9190\" and 0", cfg.Listen.Metrics, cfg.Log.DenialsPerSecond)
	}
	if dl := cfg.DenialLogConfig(); dl.PerSecond != 0 {
		t.Fatalf("DenialLogConfig %+v", dl)
	}
}

func TestListenAndLogProblems(t *testing.T) {
	for _, tc := range []struct {
		name string
		yaml string
		want string // "" for no problem
	}{
		{name: "metrics port given", yaml: "listen: { metrics: \"127.0.0.1:9300\" }\n"},
		{name: "metrics not host:port", yaml: "listen: { metrics: \"9190\" }\n", want: `d.yaml:2: listen.metrics: "9190" is not host:port`},
		{name: "metrics on admin's port", yaml: "listen: { metrics: \"127.0.0.1:9191\" }\n",
			want: `d.yaml:2: listen.metrics: "127.0.0.1:9191": port 9191 is also listen.admin's (127.0.0.1:9191)`},
		{name: "metrics on every interface, grpc's port", yaml: "listen: { grpc: \"127.0.0.1:9005\", metrics: \":9005\" }\n",
			want: `listen.metrics: ":9005": port 9005 is also listen.grpc's (127.0.0.1:9005)`},
		{name: "one port, two hosts", yaml: "listen: { admin: \"127.0.0.1:9190\", metrics: \"127.0.0.2:9190\" }\n"},
		{name: "port 0 twice", yaml: "listen: { grpc: \"127.0.0.1:0\", admin: \"127.0.0.1:0\", metrics: \"127.0.0.1:0\" }\n"},
		{name: "http on grpc's port by name", yaml: "listen: { grpc: \":9001\", http: \"0.0.0.0:9001\" }\n",
			want: `listen.http: "0.0.0.0:9001": port 9001 is also listen.grpc's (:9001)`},
		{name: "push on its own port", yaml: "listen: { push: \"0.0.0.0:9192\" }\n"},
		{name: "push on metrics' port", yaml: "listen: { push: \"0.0.0.0:9190\" }\n",
			want: `d.yaml:2: listen.push: "0.0.0.0:9190": port 9190 is also listen.metrics's (:9190)`},
		{name: "denial rate", yaml: "log: { denials_per_second: 0.5 }\n"},
		{name: "negative denial rate", yaml: "log: { denials_per_second: -1 }\n", want: "d.yaml:2: log.denials_per_second: -1 is outside 0..1e+06"},
		{name: "infinite denial rate", yaml: "log: { denials_per_second: .inf }\n", want: "log.denials_per_second: +Inf is outside"},
		{name: "denial rate as text", yaml: "log: { denials_per_second: lots }\n", want: "d.yaml:2: log.denials_per_second:"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse("d.yaml", []byte("\n"+tc.yaml+listenIssuer), testEnv(nil))
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Fatalf("error %v, want one containing %q", err, tc.want)
			}
		})
	}
}
