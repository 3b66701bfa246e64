package server

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"sync"
	"syscall"
	"time"

	"github.com/leasegate/leasegate/server/config"
)

// listenGRPC binds listen.grpc: host:port, or a Unix socket.
func listenGRPC(ctx context.Context, lc *net.ListenConfig, l config.ListenConfig) (net.Listener, error) {
	path, unix := l.UnixSocket()
	if !unix {
		return lc.Listen(ctx, "tcp", l.GRPC)
	}
	return listenUnix(ctx, lc, path, l.GRPCSocket)
}

// listenUnix binds a Unix socket at path with sc's mode and owner. It
// binds a temporary name beside path, sets both, and renames it into
// place, so the socket is never reachable with other permissions. A socket
// at path that nobody answers on (left by a process that is gone) is
// replaced; a live one, or a file that is not a socket, is an error.
// Closing the listener removes the socket.
func listenUnix(ctx context.Context, lc *net.ListenConfig, path string, sc config.SocketConfig) (net.Listener, error) {
	mode, err := sc.FileMode()
	if err != nil {
		return nil, fmt.Errorf("listen.grpc_socket.mode: %w", err)
	}
	uid, gid, err := sc.Owner()
	if err != nil {
		return nil, err
	}
	tmp := path + ".tmp"
	for _, p := range []string{path, tmp} {
		if err := removeStaleSocket(p); err != nil {
			return nil, err
		}
	}
	l, err := lc.Listen(ctx, "unix", tmp)
	if err != nil {
		return nil, err
	}
	l.(*net.UnixListener).SetUnlinkOnClose(false) // it will have been renamed
	fail := func(err error) (net.Listener, error) {
		l.Close()
		os.Remove(tmp)
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
	if err := os.Rename(tmp, path); err != nil {
		return fail(err)
	}
	return &unixListener{Listener: l, addr: &net.UnixAddr{Name: path, Net: "unix"}}, nil
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

// unixListener is the renamed socket: its address is the final path, and
// Close removes that path.
type unixListener struct {
	net.Listener
	addr   *net.UnixAddr
	remove sync.Once
}

func (u *unixListener) Addr() net.Addr { return u.addr }

func (u *unixListener) Close() error {
	err := u.Listener.Close()
	u.remove.Do(func() { os.Remove(u.addr.Name) })
	return err
}
