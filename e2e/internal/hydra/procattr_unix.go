//go:build unix && !linux

package hydra

import "syscall"

// sysProcAttr puts Hydra in its own process group, so Stop can signal
// exactly what it started.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true}
}
