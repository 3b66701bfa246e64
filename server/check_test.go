package server

import (
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/leasegate/leasegate/server/config"
)

// checkEnv is the environment of config's testdata/config/check files.
var checkEnv = map[string]string{"TEST_SECRET": "s3cr:t", "LEASEGATE_TEST_EMPTY": ""}

// SPEC §6: a configuration -check accepts must start, and one it refuses
// must not. Each check file goes through config.Parse (what -check runs)
// and through Run (start-up, which loads the file itself) and both must
// agree. The files name their secrets relative to the config package.
func TestCheckAgreesWithStart(t *testing.T) {
	t.Chdir("config")
	for k, v := range checkEnv {
		t.Setenv(k, v)
	}
	files, err := filepath.Glob(filepath.Join("testdata", "config", "check", "*.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no check files: %v", err)
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			out, checkOK := checkOutput(f)
			startErr := tryStart(t, f)
			if checkOK != (startErr == nil) {
				t.Fatalf("-check and start disagree:\n-check: %s start: %v", out, startErr)
			}
		})
	}
}

// checkOutput is what leasegate -check prints for a file: its problems, or
// the summary.
func checkOutput(path string) (string, bool) {
	data, err := os.ReadFile(path)
	if err != nil {
		return err.Error(), false
	}
	cfg, err := config.Parse(filepath.Base(path), data, func(k string) (string, bool) { v, ok := checkEnv[k]; return v, ok })
	if err != nil {
		return err.Error() + "\n", false
	}
	return cfg.Summary() + "\n", true
}

// tryStart runs the server on path until its listeners are up, then stops
// it; the error is why it did not start.
func tryStart(t *testing.T, path string) error {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	up := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		done <- Run(ctx, Options{
			ConfigPath: path,
			Logger:     slog.New(slog.NewTextHandler(io.Discard, nil)),
			Getenv:     func(string) string { return "" }, // no OTEL_* from the test's environment
			OnListen:   func(Addrs) { close(up) },
		})
	}()
	select {
	case <-up:
		cancel()
		if err := <-done; err != nil {
			t.Fatalf("Run after a clean start: %v", err)
		}
		return nil
	case err := <-done:
		if err == nil {
			t.Fatal("Run returned nil without starting")
		}
		return err
	case <-time.After(10 * time.Second):
		t.Fatal("Run neither started nor failed")
		return nil
	}
}
