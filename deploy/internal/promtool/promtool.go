// Package promtool runs Prometheus's promtool (Debian's prometheus
// package; make deps installs it) for the deploy tests.
package promtool

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"testing"
	"time"
)

// requireEnv makes a missing promtool a test failure instead of a skip
// (make test sets it).
const requireEnv = "LEASEGATE_E2E_REQUIRE"

// ErrMissing reports that promtool is not installed.
var ErrMissing = errors.New("promtool not found: apt-get install -y prometheus (make deps does it)")

// Find returns $LEASEGATE_PROMTOOL, promtool on PATH, or /usr/bin/promtool.
func Find() (string, error) {
	if p := os.Getenv("LEASEGATE_PROMTOOL"); p != "" {
		return p, nil
	}
	if p, err := exec.LookPath("promtool"); err == nil {
		return p, nil
	}
	if _, err := os.Stat("/usr/bin/promtool"); err == nil {
		return "/usr/bin/promtool", nil
	}
	return "", ErrMissing
}

// Require returns promtool's path, or skips t (fails it when
// LEASEGATE_E2E_REQUIRE is set) when it is missing.
func Require(t testing.TB) string {
	t.Helper()
	p, err := Find()
	if err != nil {
		if os.Getenv(requireEnv) == "" {
			t.Skipf("skipping: %v (set %s=1 to fail instead)", err, requireEnv)
		}
		t.Fatalf("%v (%s is set)", err, requireEnv)
	}
	return p
}

// Run runs promtool with args in dir and returns its combined output; a
// non-zero exit is an error carrying that output.
func Run(bin, dir string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Dir = dir
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return out.String(), fmt.Errorf("promtool %v: %w\n%s", args, err, out.String())
	}
	return out.String(), nil
}
