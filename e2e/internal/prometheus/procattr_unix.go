//go:build unix && !linux

package prometheus

import "syscall"

// sysProcAttr puts prometheus in its own process group, so Stop can signal
// exactly what it started.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true}
}
