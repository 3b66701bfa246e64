package server

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"
)

// TestRunRefusesGRPCBinaryLog: grpc-go's binary logging, switched on by its
// environment variable, would write every CheckRequest's Authorization
// header to a file, so leasegate does not start with it.
func TestRunRefusesGRPCBinaryLog(t *testing.T) {
	iss := newFakeIssuer(t)
	cfg := loadYAML(t, fmt.Sprintf(testConfigTmpl, iss.URL, "60s"))
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	err := Run(ctx, Options{Config: cfg, Logger: slog.New(slog.DiscardHandler), Getenv: func(k string) string {
		if k == "GRPC_BINARY_LOG_FILTER" {
			return "*"
		}
		return ""
	}})
	if err == nil || !strings.Contains(err.Error(), "GRPC_BINARY_LOG_FILTER") {
		t.Fatalf("Run with binary logging on: %v, want a refusal naming the variable", err)
	}
}
