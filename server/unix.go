package server

import (
	"context"
	"fmt"
	"net"

	"github.com/leasegate/leasegate/server/config"
	"github.com/leasegate/leasegate/server/unixsocket"
)

// listenGRPC binds listen.grpc: host:port, or a Unix socket.
func listenGRPC(ctx context.Context, lc *net.ListenConfig, l config.ListenConfig) (net.Listener, error) {
	path, unix := l.UnixSocket()
	if !unix {
		return lc.Listen(ctx, "tcp", l.GRPC)
	}
	mode, err := l.GRPCSocket.FileMode()
	if err != nil {
		return nil, fmt.Errorf("listen.grpc_socket.mode: %w", err)
	}
	uid, gid, err := l.GRPCSocket.Owner()
	if err != nil {
		return nil, err
	}
	return unixsocket.Listen(ctx, lc, path, mode, uid, gid)
}
