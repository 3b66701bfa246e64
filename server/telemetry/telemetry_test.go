package telemetry

import (
	"context"
	"testing"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
)

func TestSetupTracing(t *testing.T) {
	arg := "0.5"
	bad := "2"
	tests := []struct {
		name    string
		cfg     Config
		env     map[string]string
		wantSDK bool
		wantErr bool
	}{
		{name: "nothing configured: off", wantSDK: false},
		{name: "OTEL_SDK_DISABLED wins", env: map[string]string{"OTEL_SDK_DISABLED": "true", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4317"}, wantSDK: false},
		{name: "OTEL_TRACES_EXPORTER=none", env: map[string]string{"OTEL_TRACES_EXPORTER": "none", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4317"}, wantSDK: false},
		{name: "config exporter none beats env", cfg: Config{Exporter: "none"}, env: map[string]string{"OTEL_TRACES_EXPORTER": "otlp"}, wantSDK: false},
		{name: "config endpoint, grpc", cfg: Config{Endpoint: "http://127.0.0.1:4317"}, wantSDK: true},
		{name: "config endpoint, http", cfg: Config{Endpoint: "http://127.0.0.1:4318", Protocol: "http/protobuf"}, wantSDK: true},
		{name: "console exporter", cfg: Config{Exporter: "console", Sampler: "parentbased_traceidratio", SamplerArg: &arg}, wantSDK: true},
		{name: "bad sampler arg", cfg: Config{Exporter: "console", Sampler: "traceidratio", SamplerArg: &bad}, wantErr: true},
		{name: "unknown sampler", cfg: Config{Exporter: "console", Sampler: "sometimes"}, wantErr: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tp, shutdown, err := Setup(context.Background(), tc.cfg, "test", func(k string) string { return tc.env[k] })
			if tc.wantErr {
				if err == nil {
					t.Fatal("want an error")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer shutdown(context.Background())
			if _, isSDK := tp.(*sdktrace.TracerProvider); isSDK != tc.wantSDK {
				t.Fatalf("SDK provider = %v, want %v (%T)", isSDK, tc.wantSDK, tp)
			}
		})
	}
}
