package leasegate

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// EnvBinary names the environment variable holding the path of a built
// leasegate binary (the Makefile sets it to the `make build` output).
const EnvBinary = "LEASEGATE_BIN"

// ErrBinaryMissing reports that no leasegate binary is available: $EnvBinary
// is unset and building one from the checkout failed (for example because
// the root module does not compile yet). Tests branch on it to skip.
var ErrBinaryMissing = errors.New("leasegate binary not available")

// Binary returns $LEASEGATE_BIN when set (it must be an executable file);
// otherwise it builds the root module of this checkout into dir with
// `go build -o dir/leasegate .` and returns that path. A failed build wraps
// ErrBinaryMissing and carries the compiler output.
func Binary(ctx context.Context, dir string) (string, error) {
	if p := os.Getenv(EnvBinary); p != "" {
		fi, err := os.Stat(p)
		switch {
		case err != nil:
			return "", fmt.Errorf("%s=%q: %w: %w", EnvBinary, p, ErrBinaryMissing, err)
		case fi.IsDir() || fi.Mode()&0o111 == 0:
			return "", fmt.Errorf("%s=%q is not an executable file: %w", EnvBinary, p, ErrBinaryMissing)
		}
		return filepath.Abs(p)
	}
	root, err := RepoRoot()
	if err != nil {
		return "", fmt.Errorf("%w: %w", ErrBinaryMissing, err)
	}
	out := filepath.Join(dir, "leasegate")
	cmd := exec.CommandContext(ctx, "go", "build", "-o", out, ".")
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if msg, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("%w: go build in %s: %v\n%s", ErrBinaryMissing, root, err, strings.TrimSpace(string(msg)))
	}
	return out, nil
}

// RepoRoot is the nearest directory at or above the working directory that
// holds e2e/go.mod: the leasegate checkout.
func RepoRoot() (string, error) {
	wd, err := os.Getwd()
	if err != nil {
		return "", fmt.Errorf("locate repository: %w", err)
	}
	for d := wd; ; {
		if _, err := os.Stat(filepath.Join(d, "e2e", "go.mod")); err == nil {
			return d, nil
		}
		parent := filepath.Dir(d)
		if parent == d {
			return "", fmt.Errorf("no directory holding e2e/go.mod at or above %s", wd)
		}
		d = parent
	}
}
