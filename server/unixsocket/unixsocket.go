// Package unixsocket owns binding a Unix socket listener safely: bound in a
// private directory, given its mode and owner there, linked into place; a
// stale socket replaced, a live one refused; removed on Close while it is
// still this listener's.
package unixsocket

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"time"
)

// Path limits: Linux's sun_path holds 107 bytes and a NUL. Listen binds
// first in a private directory beside the socket (TempPrefix and up to 10
// digits from os.MkdirTemp, then "/s"), so the socket's directory may be
// at most MaxDir bytes.
const (
	MaxPath    = 107
	TempPrefix = ".leasegate-"
	MaxDir     = MaxPath - len("/"+TempPrefix) - 10 - len("/s")
)

// Listen binds a Unix socket at path with mode and owner uid:gid (-1
// leaves one as created). It
// binds in a private directory beside path (mode 0700: nobody else can
// connect, and nothing there can be swapped for a symlink), sets both, and
// links the socket into place, which fails if anything appeared at path
// meanwhile; so the socket is never reachable with other permissions. A
// socket at path that nobody answers on (left by a process that is gone)
// is replaced first; a live one, or a file that is not a socket, is an
// error. Closing the listener removes the socket if it is still this one.
func Listen(ctx context.Context, lc *net.ListenConfig, path string, mode fs.FileMode, uid, gid int) (net.Listener, error) {
	if err := removeStaleSocket(path); err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp(filepath.Dir(path), TempPrefix)
	if err != nil {
		return nil, fmt.Errorf("socket: %w", err)
	}
	defer os.RemoveAll(dir)
	tmp := filepath.Join(dir, "s")
	l, err := lc.Listen(ctx, "unix", tmp)
	if err != nil {
		return nil, err
	}
	l.(*net.UnixListener).SetUnlinkOnClose(false) // tmp goes with dir
	fail := func(err error) (net.Listener, error) {
		l.Close()
		return nil, err
	}
	if err := os.Chmod(tmp, mode); err != nil {
		return fail(fmt.Errorf("socket mode: %w", err))
	}
	if uid >= 0 || gid >= 0 {
		if err := os.Lchown(tmp, uid, gid); err != nil {
			return fail(fmt.Errorf("socket owner: %w", err))
		}
	}
	if err := os.Link(tmp, path); err != nil {
		return fail(fmt.Errorf("socket: %w", err))
	}
	fi, err := os.Lstat(path)
	if err != nil {
		return fail(err)
	}
	return &unixListener{Listener: l, addr: &net.UnixAddr{Name: path, Net: "unix"}, file: fi}, nil
}

// removeStaleSocket removes path if it is a socket nobody answers on.
func removeStaleSocket(path string) error {
	fi, err := os.Lstat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if fi.Mode().Type() != fs.ModeSocket {
		return fmt.Errorf("%s exists and is not a socket; not removing it", path)
	}
	c, err := net.DialTimeout("unix", path, time.Second)
	if err == nil {
		c.Close()
		return fmt.Errorf("%s: another process is serving on this socket", path)
	}
	if !errors.Is(err, syscall.ECONNREFUSED) {
		return fmt.Errorf("%s: cannot tell whether the socket is in use: %w", path, err)
	}
	return os.Remove(path)
}

// unixListener is the linked socket: its address is the final path, and
// Close removes that path while it is still this socket (file), never a
// successor's.
type unixListener struct {
	net.Listener
	addr   *net.UnixAddr
	file   fs.FileInfo
	remove sync.Once
}

func (u *unixListener) Addr() net.Addr { return u.addr }

func (u *unixListener) Close() error {
	err := u.Listener.Close()
	u.remove.Do(func() {
		if fi, err := os.Lstat(u.addr.Name); err == nil && os.SameFile(fi, u.file) {
			os.Remove(u.addr.Name)
		}
	})
	return err
}
