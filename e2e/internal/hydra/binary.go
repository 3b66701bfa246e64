package hydra

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// EnvBinary names the environment variable that, when set, overrides where
// Binary looks for the hydra executable.
const EnvBinary = "LEASEGATE_HYDRA"

// ErrBinaryMissing reports that no hydra executable was found. Tests branch
// on it to skip when the binary has not been built.
var ErrBinaryMissing = errors.New("hydra binary not found (build it with e2e/build-hydra.sh)")

// Binary returns the path of the hydra executable: $LEASEGATE_HYDRA when set,
// otherwise <repo>/.cache/bin/hydra, where <repo> is the nearest directory at
// or above the working directory that holds e2e/go.mod. The error wraps
// ErrBinaryMissing when the file is absent.
func Binary() (string, error) {
	if p := os.Getenv(EnvBinary); p != "" {
		if err := checkExecutable(p); err != nil {
			return "", fmt.Errorf("%s=%q: %w", EnvBinary, p, err)
		}
		return p, nil
	}
	wd, err := os.Getwd()
	if err != nil {
		return "", fmt.Errorf("locate hydra: %w", err)
	}
	root, err := repoRoot(wd)
	if err != nil {
		return "", fmt.Errorf("locate hydra: %w", err)
	}
	p := filepath.Join(root, ".cache", "bin", "hydra")
	if err := checkExecutable(p); err != nil {
		return "", fmt.Errorf("%s: %w; run %s", p, err, filepath.Join(root, "e2e", "build-hydra.sh"))
	}
	return p, nil
}

// repoRoot walks up from dir to the first directory containing e2e/go.mod.
func repoRoot(dir string) (string, error) {
	for d := dir; ; {
		if _, err := os.Stat(filepath.Join(d, "e2e", "go.mod")); err == nil {
			return d, nil
		}
		parent := filepath.Dir(d)
		if parent == d {
			return "", fmt.Errorf("no directory holding e2e/go.mod at or above %s: %w", dir, ErrBinaryMissing)
		}
		d = parent
	}
}

func checkExecutable(p string) error {
	fi, err := os.Stat(p)
	if errors.Is(err, os.ErrNotExist) {
		return ErrBinaryMissing
	}
	if err != nil {
		return err
	}
	if fi.IsDir() || fi.Mode()&0o111 == 0 {
		return fmt.Errorf("not an executable file: %w", ErrBinaryMissing)
	}
	return nil
}
