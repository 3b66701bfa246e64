package hydra

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

func TestBinaryFromEnv(t *testing.T) {
	dir := t.TempDir()
	exe := filepath.Join(dir, "hydra")
	plain := filepath.Join(dir, "plain")
	for name, mode := range map[string]os.FileMode{exe: 0o755, plain: 0o644} {
		if err := os.WriteFile(name, []byte("#!/bin/sh\n"), mode); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		name    string
		env     string
		want    string
		missing bool
	}{
		{name: "executable", env: exe, want: exe},
		{name: "absent", env: filepath.Join(dir, "nope"), missing: true},
		{name: "not executable", env: plain, missing: true},
		{name: "directory", env: dir, missing: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv(EnvBinary, tc.env)
			got, err := Binary()
			if tc.missing {
				if !errors.Is(err, ErrBinaryMissing) {
					t.Fatalf("Binary() = %q, %v; want ErrBinaryMissing", got, err)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("Binary() = %q, %v; want %q", got, err, tc.want)
			}
		})
	}
}

func TestRepoRoot(t *testing.T) {
	root := t.TempDir()
	deep := filepath.Join(root, "e2e", "internal", "hydra")
	if err := os.MkdirAll(deep, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "e2e", "go.mod"), []byte("module x\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name  string
		from  string
		want  string
		found bool
	}{
		{name: "from the package dir", from: deep, want: root, found: true},
		{name: "from the root", from: root, want: root, found: true},
		{name: "outside any repo", from: t.TempDir(), found: false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := repoRoot(tc.from)
			if !tc.found {
				if !errors.Is(err, ErrBinaryMissing) {
					t.Fatalf("repoRoot(%s) = %q, %v; want ErrBinaryMissing", tc.from, got, err)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("repoRoot(%s) = %q, %v; want %q", tc.from, got, err, tc.want)
			}
		})
	}
}
