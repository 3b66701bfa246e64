package e2e

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/leasegate/leasegate/e2e/internal/leasegate"
)

// TestCLI: -version, -check on valid and broken files (problems with their
// YAML line, exit 1).
func TestCLI(t *testing.T) {
	t.Parallel()
	bin := leasegateBin(t)
	ctx := testCtx(t, time.Minute)

	t.Run("version", func(t *testing.T) {
		out, errOut, code, err := leasegate.RunCLI(ctx, bin, "-version")
		if err != nil || code != 0 {
			t.Fatalf("-version: exit %d, err %v, stderr %q", code, err, errOut)
		}
		if !strings.HasPrefix(out, "leasegate ") || len(strings.TrimSpace(out)) <= len("leasegate") {
			t.Errorf("-version printed %q, want \"leasegate <version>\"", out)
		}
	})

	t.Run("check valid", func(t *testing.T) {
		cfg := leasegate.Config{
			Listen:  leasegate.Listen{GRPC: "127.0.0.1:0", Admin: "127.0.0.1:0"},
			Issuers: []leasegate.Issuer{{Name: issuerName, Issuer: "http://127.0.0.1:4444", DefaultForOpaque: true, Introspection: &leasegate.Introspection{Endpoint: "http://127.0.0.1:4445/admin/oauth2/introspect", Auth: "none"}}},
			Tiers:   leasegate.StandardTiers(3*time.Second, time.Second, 0, 2*time.Minute),
			Lease:   leasegate.Lease{Max: leasegate.Duration(10 * time.Minute)},
		}
		b, err := cfg.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		path := filepath.Join(t.TempDir(), "ok.yaml")
		if err := os.WriteFile(path, b, 0o600); err != nil {
			t.Fatal(err)
		}
		out, errOut, code, err := leasegate.RunCLI(ctx, bin, "-config", path, "-check")
		if err != nil || code != 0 {
			t.Fatalf("-check valid file: exit %d, err %v, stderr %q", code, err, errOut)
		}
		for _, want := range []string{"config ok", "revocation bound 3s", "2m0s with stale_if_error"} {
			if !strings.Contains(out, want) {
				t.Errorf("-check summary %q lacks %q", out, want)
			}
		}
	})

	for _, tc := range []struct {
		name string
		file string
		want []string // substrings of stderr, each "file:line: ..."
	}{
		{
			name: "unknown key and bad duration",
			file: "testdata/unknown-key.yaml",
			want: []string{"unknown-key.yaml:13: ", "timeuot", "unknown-key.yaml:15: ", "3 seconds"},
		},
		{
			name: "invalid values",
			file: "testdata/invalid-values.yaml",
			want: []string{
				"invalid-values.yaml:8: issuers[0].mode",
				"invalid-values.yaml:14: tiers.read.window",
				"invalid-values.yaml:16: tiers.critical.stale_if_error",
				"invalid-values.yaml:17: default_tier",
			},
		},
	} {
		t.Run("check "+tc.name, func(t *testing.T) {
			out, errOut, code, err := leasegate.RunCLI(ctx, bin, "-config", tc.file, "-check")
			if err != nil {
				t.Fatal(err)
			}
			if code != 1 {
				t.Errorf("exit code %d, want 1", code)
			}
			if strings.Contains(out, "config ok") {
				t.Errorf("broken file reported ok: %q", out)
			}
			for _, w := range tc.want {
				if !strings.Contains(errOut, w) {
					t.Errorf("stderr lacks %q:\n%s", w, errOut)
				}
			}
		})
	}
}

// TestReloadAndDrain: SIGHUP applies a new read window without dropping
// leases, an invalid file is refused and the running config kept, and
// SIGTERM and SIGINT each drain and exit 0.
func TestReloadAndDrain(t *testing.T) {
	t.Parallel()
	s := newStack(t, stackOptions{Tiers: leasegate.StandardTiers(time.Minute, time.Second, 0, 0)})
	ctx := testCtx(t, time.Minute)
	tok := s.token(t)
	get := leasegate.Request{Method: "GET", Path: "/data/r", Token: tok}
	s.expect(t, get, expectation{allowed: true, lease: "miss", calls: 1})
	s.expect(t, get, expectation{allowed: true, lease: "hit", calls: 0})

	reload := func(t *testing.T, read time.Duration) {
		t.Helper()
		cfg := s.cfg
		cfg.Tiers = leasegate.StandardTiers(read, time.Second, 0, 0)
		if err := s.leasegate.Reload(ctx, cfg); err != nil {
			t.Fatalf("reload: %v", err)
		}
		w, err := s.leasegate.TierWindow(ctx, "read")
		if err != nil {
			t.Fatal(err)
		}
		if w != read.String() {
			t.Fatalf("GET /config read window %q after reload, want %s", w, read)
		}
	}

	t.Run("shorter window keeps the lease", func(t *testing.T) {
		reload(t, 30*time.Second)
		s.expect(t, get, expectation{allowed: true, lease: "hit", calls: 0})
		b, err := s.leasegate.RevocationBound(ctx)
		if err != nil || b.Window != 30*time.Second {
			t.Errorf("revocation bound after reload %v (%v), want 30s", b.Window, err)
		}
	})

	t.Run("window 0 sends every read to Hydra", func(t *testing.T) {
		reload(t, 0)
		s.expect(t, get, expectation{allowed: true, lease: "miss", calls: 1})
		s.expect(t, get, expectation{allowed: true, lease: "miss", calls: 1})
	})

	t.Run("invalid file refused", func(t *testing.T) {
		broken, err := os.ReadFile("testdata/invalid-values.yaml")
		if err != nil {
			t.Fatal(err)
		}
		if err := s.leasegate.WriteConfigYAML(broken); err != nil {
			t.Fatal(err)
		}
		if err := s.leasegate.SignalReload(ctx); !errors.Is(err, leasegate.ErrReloadRefused) {
			t.Fatalf("reload of a broken file: %v, want refused", err)
		}
		if w, err := s.leasegate.TierWindow(ctx, "read"); err != nil || w != "0s" {
			t.Errorf("read window after a refused reload %q (%v), want the running 0s", w, err)
		}
		s.expect(t, get, expectation{allowed: true, lease: "miss", calls: 1})
	})

	drains := func(t *testing.T, p *leasegate.Process, sig syscall.Signal) {
		t.Helper()
		if err := p.Signal(sig); err != nil {
			t.Fatal(err)
		}
		code, err := p.Wait(10 * time.Second)
		if err != nil {
			t.Fatal(err)
		}
		if code != 0 {
			t.Errorf("exit code after %v %d, want 0", sig, code)
		}
		wctx, cancel := context.WithTimeout(ctx, time.Second)
		defer cancel()
		if _, err := p.WaitLog(wctx, func(e leasegate.LogEntry) bool { return e.Msg == "draining" }); err != nil {
			t.Errorf("no \"draining\" log line after %v: %v", sig, err)
		}
		if _, err := p.WaitLog(wctx, func(e leasegate.LogEntry) bool { return e.Msg == "stopped" }); err != nil {
			t.Errorf("no \"stopped\" log line after %v: %v", sig, err)
		}
	}
	t.Run("SIGTERM drains and exits 0", func(t *testing.T) {
		ok, err := s.client.Serving(ctx, "envoy.service.auth.v3.Authorization")
		if err != nil || !ok {
			t.Fatalf("grpc health before SIGTERM: serving=%v err=%v", ok, err)
		}
		drains(t, s.leasegate, syscall.SIGTERM)
	})
	t.Run("SIGINT drains and exits 0", func(t *testing.T) { // SPEC §6: either signal
		drains(t, s.startLeasegate(t, ctx, leasegateBin(t), s.cfg, nil), syscall.SIGINT)
	})
}
