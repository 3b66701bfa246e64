// Package storage runs a real grid storage element for leasegate's
// end-to-end tests and the demo: XRootD's HTTP interface (XrdHttp) behind
// nginx (auth_request) or Caddy (forward_auth), each started from the
// shipped configurations in examples/storage with only addresses and paths
// changed, as foreground children on free loopback ports with temporary
// directories; and the grid clients that talk to it, davix
// (davix-put/-get/-ls/-mkdir/-rm) and gfal2 (gfal-copy/-ls/-rm, bearer
// token from BEARER_TOKEN). The Debian packages are installed with apt-get
// when missing and the caller is root (Ensure).
package storage

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"time"
)

// Debian 12 names: gfal2-util is split into gfal2-util-scripts (the gfal-*
// commands) and python3-gfal2-util.
var debianPackages = []string{
	"xrootd-server", "xrootd-plugins", "nginx", "caddy", "davix",
	"gfal2", "gfal2-plugin-http", "gfal2-plugin-file", "gfal2-util-scripts", "python3-gfal2-util", "openssl",
}

// needed are the files the packages provide that the harness uses.
var needed = []string{
	"xrootd", "nginx", "caddy", "openssl",
	"davix-put", "davix-get", "davix-ls", "davix-mkdir", "davix-rm",
	"gfal-copy", "gfal-ls", "gfal-rm",
}

// ErrMissing reports that a tool is not installed and could not be.
var ErrMissing = errors.New("storage tools unavailable")

var (
	ensureOnce sync.Once
	ensureErr  error
)

// Ensure makes sure XRootD (with XrdHttp), nginx, Caddy, davix and gfal2
// are installed, installing the Debian packages with apt-get when some are
// missing and the process is root. It runs once per process; an error
// wraps ErrMissing.
func Ensure(ctx context.Context) error {
	ensureOnce.Do(func() { ensureErr = ensure(ctx) })
	return ensureErr
}

func ensure(ctx context.Context) error {
	missing := missingTools()
	if len(missing) == 0 {
		return nil
	}
	if os.Geteuid() != 0 {
		return fmt.Errorf("%w: %s not installed and not root (apt-get install %s)", ErrMissing,
			strings.Join(missing, ", "), strings.Join(debianPackages, " "))
	}
	if _, err := exec.LookPath("apt-get"); err != nil {
		return fmt.Errorf("%w: %s not installed and no apt-get", ErrMissing, strings.Join(missing, ", "))
	}
	ctx, cancel := context.WithTimeout(ctx, 15*time.Minute)
	defer cancel()
	apt := func(args ...string) ([]byte, error) {
		cmd := exec.CommandContext(ctx, "apt-get", append([]string{"-o", "DPkg::Lock::Timeout=300", "-q"}, args...)...)
		cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
		return cmd.CombinedOutput()
	}
	install := append([]string{"install", "-y", "--no-install-recommends"}, debianPackages...)
	if _, err := apt(install...); err != nil {
		// Stale package lists: refresh once and retry.
		if out, err := apt("update"); err != nil {
			return fmt.Errorf("%w: apt-get update: %v\n%s", ErrMissing, err, lastLines(out, 10))
		}
		if out, err := apt(install...); err != nil {
			return fmt.Errorf("%w: apt-get install: %v\n%s", ErrMissing, err, lastLines(out, 20))
		}
	}
	if missing := missingTools(); len(missing) > 0 {
		return fmt.Errorf("%w: still missing after apt-get install: %s", ErrMissing, strings.Join(missing, ", "))
	}
	return nil
}

func missingTools() []string {
	var out []string
	for _, n := range needed {
		if _, err := lookPath(n); err != nil {
			out = append(out, n)
		}
	}
	if _, err := os.Stat(xrdHTTPLib); err != nil {
		out = append(out, xrdHTTPLib)
	}
	if pythonForGfal() == "" {
		out = append(out, "python3 with the gfal2 module")
	}
	return out
}

// xrdHTTPLib is XrdHttp in Debian's xrootd-plugins (amd64 and arm64 alike
// install into the multiarch directory; the loader finds it by name).
var xrdHTTPLib = func() string {
	for _, d := range []string{"/usr/lib/x86_64-linux-gnu", "/usr/lib/aarch64-linux-gnu", "/usr/lib64", "/usr/lib"} {
		if p := d + "/libXrdHttp-5.so"; fileExists(p) {
			return p
		}
	}
	return "/usr/lib/x86_64-linux-gnu/libXrdHttp-5.so"
}()

// lookPath finds a tool on PATH or in the sbin directories a non-login
// root PATH may lack.
func lookPath(name string) (string, error) {
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	for _, d := range []string{"/usr/sbin", "/usr/bin", "/sbin"} {
		if p := d + "/" + name; fileExists(p) {
			return p, nil
		}
	}
	return "", fmt.Errorf("%s not found", name)
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// pythonForGfal is the Python that has Debian's gfal2 bindings: the
// gfal-* scripts take the first python on PATH that imports them, or
// GFAL_PYTHONBIN; a pyenv or venv python earlier on PATH would not.
func pythonForGfal() string {
	for _, p := range []string{"/usr/bin/python3", "python3"} {
		if exec.Command(p, "-c", "import gfal2, gfal2_util").Run() == nil {
			return p
		}
	}
	return ""
}

func lastLines(b []byte, n int) string {
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}
