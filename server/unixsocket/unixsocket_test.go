package unixsocket

import (
	"context"
	"errors"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"testing"
)

// TestUnixSocketCloseKeepsSuccessor: closing a listener removes its socket
// only while the path is still that socket; a successor bound at the same
// path after the first one's file went away keeps serving. No temporary
// directory is left beside the socket.
func TestUnixSocketCloseKeepsSuccessor(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "authz.sock")
	ctx := context.Background()
	a, err := Listen(ctx, &net.ListenConfig{}, path, 0o600, -1, -1)
	if err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Lstat(path); err != nil || fi.Mode().Perm() != 0o600 || fi.Mode().Type() != fs.ModeSocket {
		t.Fatalf("socket at the path: %v, %v; want a socket of mode 0600", fi, err)
	}
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	b, err := Listen(ctx, &net.ListenConfig{}, path, 0o600, -1, -1)
	if err != nil {
		t.Fatal(err)
	}
	a.Close()
	c, err := net.Dial("unix", path)
	if err != nil {
		t.Fatalf("the successor's socket after the first one closed: %v", err)
	}
	c.Close()
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Fatalf("beside the socket: %v, want the socket alone", entries)
	}
	b.Close()
	if _, err := os.Lstat(path); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("after the successor closed: %v, want no socket", err)
	}
}
