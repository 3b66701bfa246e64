package config

import (
	"fmt"
	"io/fs"
	"os/user"
	"strconv"
)

// FileMode parses Mode: octal permission bits, at most 0777.
func (s SocketConfig) FileMode() (fs.FileMode, error) {
	m, err := strconv.ParseUint(s.Mode, 8, 32)
	if err != nil || m > 0o777 || s.Mode == "" {
		return 0, fmt.Errorf("%q is not an octal file mode such as 0660", s.Mode)
	}
	return fs.FileMode(m), nil
}

// Owner returns the uid and gid to give the socket file; -1 leaves one
// as created.
func (s SocketConfig) Owner() (uid, gid int, err error) {
	if uid, err = lookupID(s.User, true); err != nil {
		return -1, -1, fmt.Errorf("listen.grpc_socket.user: %w", err)
	}
	if gid, err = lookupID(s.Group, false); err != nil {
		return -1, -1, fmt.Errorf("listen.grpc_socket.group: %w", err)
	}
	return uid, gid, nil
}

// lookupID resolves a user or group, by name or numeric id; "" is -1.
func lookupID(name string, isUser bool) (int, error) {
	if name == "" {
		return -1, nil
	}
	if id, err := strconv.ParseUint(name, 10, 31); err == nil {
		return int(id), nil
	}
	if isUser {
		u, err := user.Lookup(name)
		if err != nil {
			return -1, fmt.Errorf("user %q: %w", name, err)
		}
		return strconv.Atoi(u.Uid)
	}
	g, err := user.LookupGroup(name)
	if err != nil {
		return -1, fmt.Errorf("group %q: %w", name, err)
	}
	return strconv.Atoi(g.Gid)
}
