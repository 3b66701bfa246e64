package server

import (
	"context"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"

	"github.com/leasegate/leasegate/server/config"
)

// unixConfig is testConfigTmpl with listen.grpc on a Unix socket.
func unixConfig(issuerURL, sock, mode string) string {
	return strings.Replace(fmt.Sprintf(testConfigTmpl, issuerURL, "60s"), `  grpc: "127.0.0.1:0"`,
		fmt.Sprintf("  grpc: \"unix://%s\"\n  grpc_socket: { mode: \"%s\" }", sock, mode), 1)
}

// TestUnixSocketServesChecks: listen.grpc unix:///path serves ext_authz on
// a socket with the configured mode, answers hits as over TCP, and is gone
// once the server stops.
func TestUnixSocketServesChecks(t *testing.T) {
	iss := newFakeIssuer(t)
	iss.set("good-token", true)
	sock := filepath.Join(t.TempDir(), "authz.sock")
	r := startConfigured(t, unixConfig(iss.URL, sock, "0600"), nil)
	if r.addrs.GRPC != "unix://"+sock {
		t.Fatalf("Addrs.GRPC = %q, want unix://%s", r.addrs.GRPC, sock)
	}
	fi, err := os.Lstat(sock)
	if err != nil || fi.Mode().Type() != fs.ModeSocket || fi.Mode().Perm() != 0o600 {
		t.Fatalf("socket file: %v, %v; want a socket with mode 0600", fi, err)
	}
	if entries, err := os.ReadDir(filepath.Dir(sock)); err != nil || len(entries) != 1 {
		t.Fatalf("beside the socket: %v, %v; want the socket alone (no temporary directory left)", entries, err)
	}
	waitServing(t, r)
	for i, want := range []string{"miss", "hit"} {
		resp, err := r.client.Check(context.Background(), envoyRequest("GET", "/data/f", "good-token"))
		if err != nil || codes.Code(resp.GetStatus().GetCode()) != codes.OK {
			t.Fatalf("check %d over the socket: %v, %v", i, resp, err)
		}
		if got := resp.GetDynamicMetadata().GetFields()["lease"].GetStringValue(); got != want {
			t.Fatalf("check %d: lease %q, want %q", i, got, want)
		}
	}
	r.cancel()
	if err := <-r.done; err != nil {
		t.Fatalf("Run: %v", err)
	}
	r.done <- nil // for the cleanup
	if _, err := os.Lstat(sock); err == nil {
		t.Fatal("socket still there after the server stopped")
	}
}

// TestUnixSocketStale: a socket nobody answers on (its process is gone) is
// replaced at start; a live socket or a file that is not a socket is not
// touched, and start-up fails with the reason.
func TestUnixSocketStale(t *testing.T) {
	iss := newFakeIssuer(t)
	dir := t.TempDir()

	stale := filepath.Join(dir, "stale.sock")
	l, err := net.Listen("unix", stale)
	if err != nil {
		t.Fatal(err)
	}
	l.(*net.UnixListener).SetUnlinkOnClose(false)
	l.Close()
	r := startConfigured(t, unixConfig(iss.URL, stale, "0660"), nil)
	waitServing(t, r)

	live := filepath.Join(dir, "live.sock")
	other, err := net.Listen("unix", live)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	file := filepath.Join(dir, "file.sock")
	if err := os.WriteFile(file, []byte("keep me"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ path, want string }{
		{live, "another process is serving"},
		{file, "is not a socket"},
	} {
		cfg := loadYAML(t, unixConfig(iss.URL, tc.path, "0660"))
		err := Run(context.Background(), Options{Config: cfg, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("start on %s: %v, want %q", filepath.Base(tc.path), err, tc.want)
		}
	}
	if b, err := os.ReadFile(file); err != nil || string(b) != "keep me" {
		t.Fatalf("the regular file was changed: %q, %v", b, err)
	}
}

// TestMemoryLimitOption: Options.MemoryLimit sets the runtime's soft limit
// from lease.max_memory_mb, and leaves one GOMEMLIMIT gave alone.
func TestMemoryLimitOption(t *testing.T) {
	iss := newFakeIssuer(t)
	before := debug.SetMemoryLimit(-1)
	t.Cleanup(func() { debug.SetMemoryLimit(before) })
	for _, tc := range []struct {
		env  string
		want int64
	}{
		{"", 8<<20*3/2 + 64<<20}, // testConfigTmpl: max_memory_mb 8
		{"1GiB", before},
	} {
		debug.SetMemoryLimit(before)
		r := startConfiguredOpts(t, fmt.Sprintf(testConfigTmpl, iss.URL, "60s"), nil, nil, func(o *Options) {
			o.MemoryLimit = true
			o.Getenv = func(k string) string {
				if k == "GOMEMLIMIT" {
					return tc.env
				}
				return ""
			}
		})
		if got := debug.SetMemoryLimit(-1); got != tc.want {
			t.Errorf("GOMEMLIMIT=%q: limit %d, want %d", tc.env, got, tc.want)
		}
		r.cancel()
		<-r.done
		r.done <- nil
	}
}

func loadYAML(t *testing.T, yamlText string) *config.Config {
	t.Helper()
	p := filepath.Join(t.TempDir(), "leasegate.yaml")
	if err := os.WriteFile(p, []byte(yamlText), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(p)
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}
