// Package deploy_test checks what operators install from deploy/: the Helm
// chart (helm/leasegate) with the real helm, its rendered objects decoded
// strictly into the k8s.io/api types, its configuration through
// `leasegate -check`, and the Istio and Envoy Gateway examples against
// those projects' published API types and CRD schemas.
//
// Run: cd deploy && go test ./...   HELM and LEASEGATE_BIN name prebuilt
// binaries; without them TestMain takes helm from `go tool` (the tool
// pinned in go.mod, built once into the build cache: about 3-4 minutes
// cold on two cores) and builds leasegate from the checkout at .. into a
// temp dir.
package deploy_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

var (
	helmBin      string // helm v3, the tool pinned in go.mod
	leasegateBin string // the leasegate binary under test
)

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "leasegate-deploy-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := 1
	if err := buildTools(dir); err != nil {
		fmt.Fprintln(os.Stderr, "deploy tests:", err)
	} else {
		code = m.Run()
	}
	os.RemoveAll(dir)
	os.Exit(code)
}

// buildTools sets helmBin and leasegateBin, from the environment or built
// into dir.
func buildTools(dir string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 9*time.Minute)
	defer cancel()
	helmBin = os.Getenv("HELM")
	if helmBin == "" {
		// -n builds the tool (or finds it cached) and prints its path.
		out, err := exec.CommandContext(ctx, "go", "tool", "-n", "helm").Output()
		if err != nil {
			return fmt.Errorf("go tool -n helm: %w", exitStderr(err))
		}
		helmBin = strings.TrimSpace(string(out))
	}
	leasegateBin = os.Getenv("LEASEGATE_BIN")
	if leasegateBin == "" {
		leasegateBin = filepath.Join(dir, "leasegate")
		if err := goBuild(ctx, "..", leasegateBin, "."); err != nil {
			return err
		}
	}
	return nil
}

func exitStderr(err error) error {
	if ee, ok := err.(*exec.ExitError); ok {
		return fmt.Errorf("%w\n%s", err, ee.Stderr)
	}
	return err
}

func goBuild(ctx context.Context, dir, out, pkg string) error {
	cmd := exec.CommandContext(ctx, "go", "build", "-o", out, pkg)
	cmd.Dir = dir
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build %s: %v\n%s", pkg, err, b)
	}
	return nil
}
