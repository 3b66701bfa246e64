package server

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"
)

// TestRunRefusesTokenLogging: grpc-go's binary logging and x/net's HTTP/2
// frame logging, each switched on by an environment variable, would write
// CheckRequests' Authorization headers out, so leasegate does not start
// with either.
func TestRunRefusesTokenLogging(t *testing.T) {
	iss := newFakeIssuer(t)
	cfg := loadYAML(t, fmt.Sprintf(testConfigTmpl, iss.URL, "60s"))
	tests := []struct{ key, value, want string }{
		{"GRPC_BINARY_LOG_FILTER", "*", "GRPC_BINARY_LOG_FILTER"},
		{"GRPC_BINARY_LOG_FILTER", "envoy.service.auth.v3.Authorization/Check", "GRPC_BINARY_LOG_FILTER"},
		{"GODEBUG", "madvdontneed=1,http2debug=2", "http2debug=2"},
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
	if err := tokenLoggingEnv(func(k string) string { return map[string]string{"GODEBUG": "http2debug=1"}[k] }); err != nil {
		t.Errorf("http2debug=1 (no frame contents): %v", err)
	}
}
