//go:build unix && !linux

package redis

import "syscall"

// sysProcAttr puts redis-server in its own process group, so Stop can signal
// exactly what it started.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true}
}
