package config

import (
	"context"
	"os"
	"strings"
	"testing"

	"github.com/leasegate/leasegate/server/telemetry"
)

// An OTEL_* environment that start-up refuses fails -check too (SPEC §6).
func TestTracingEnvironmentChecked(t *testing.T) {
	const yamlText = `
listen: { grpc: "127.0.0.1:0", admin: "127.0.0.1:0", metrics: "127.0.0.1:0" }
issuers:
  - { name: idp, issuer: "https://idp.example/", default_for_opaque: true, introspection: { endpoint: "http://127.0.0.1:1/i", auth: none } }
`
	for _, tc := range []struct {
		name string
		env  map[string]string
		want string // "" = accepted
	}{
		{name: "no tracing", env: nil},
		{name: "otlp over grpc", env: map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4317", "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"}},
		{name: "unknown exporter", env: map[string]string{"OTEL_TRACES_EXPORTER": "zipkin"}, want: `tracing: OTEL_TRACES_EXPORTER "zipkin" is not otlp, console or none`},
		{name: "exporter list", env: map[string]string{"OTEL_TRACES_EXPORTER": "otlp,console"}, want: "OTEL_TRACES_EXPORTER"},
		{name: "unknown protocol", env: map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318", "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "http/json"}, want: "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL"},
		{name: "SDK disabled", env: map[string]string{"OTEL_SDK_DISABLED": "true", "OTEL_TRACES_EXPORTER": "zipkin"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// The real environment: autoexport reads it itself.
			for _, k := range []string{"OTEL_SDK_DISABLED", "OTEL_TRACES_EXPORTER", "OTEL_EXPORTER_OTLP_ENDPOINT",
				"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_PROTOCOL", "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL"} {
				t.Setenv(k, tc.env[k])
			}
			_, checkErr := Parse("t.yaml", []byte(yamlText), os.LookupEnv)
			_, shutdown, startErr := telemetry.Setup(context.Background(), telemetry.Config{}, "test", os.Getenv)
			if shutdown != nil {
				defer shutdown(context.Background())
			}
			if (checkErr == nil) != (startErr == nil) {
				t.Fatalf("-check: %v; tracing at start: %v", checkErr, startErr)
			}
			switch {
			case tc.want == "" && checkErr != nil:
				t.Fatalf("refused: %v", checkErr)
			case tc.want != "" && (checkErr == nil || !strings.Contains(checkErr.Error(), tc.want)):
				t.Fatalf("error %v, want it to name %q", checkErr, tc.want)
			}
		})
	}
}
