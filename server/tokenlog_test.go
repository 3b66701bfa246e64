package server

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"
)

// TestRunRefusesTokenLogging: grpc-go's binary logging and Go's HTTP/2
// debug logging, each switched on by an environment variable, would write
// CheckRequests' Authorization headers or an issuer's client secret out,
// so leasegate does not start with either.
func TestRunRefusesTokenLogging(t *testing.T) {
	iss := newFakeIssuer(t)
	cfg := loadYAML(t, fmt.Sprintf(testConfigTmpl, iss.URL, "60s"))
	tests := []struct{ key, value, want string }{
		{"GRPC_BINARY_LOG_FILTER", "*", "GRPC_BINARY_LOG_FILTER"},
		{"GRPC_BINARY_LOG_FILTER", "envoy.service.auth.v3.Authorization/Check", "GRPC_BINARY_LOG_FILTER"},
		{"GODEBUG", "madvdontneed=1,http2debug=2", "http2debug"},
		{"GODEBUG", "http2debug=1", "http2debug"},
	}
	for _, tc := range tests {
		t.Run(tc.key+"="+tc.value, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
			defer cancel()
			err := Run(ctx, Options{Config: cfg, Logger: slog.New(slog.DiscardHandler), Getenv: func(k string) string {
				if k == tc.key {
					return tc.value
				}
				return ""
			}})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Run: %v, want a refusal naming %s", err, tc.want)
			}
		})
	}
	if err := tokenLoggingEnv(func(k string) string { return map[string]string{"GODEBUG": "http2client=0"}[k] }); err != nil {
		t.Errorf("another GODEBUG setting: %v", err)
	}
}
