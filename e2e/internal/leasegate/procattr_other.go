//go:build unix && !linux

package leasegate

import "syscall"

// sysProcAttr puts leasegate in its own process group, so a terminal's
// Ctrl-C reaches only the caller, which then stops leasegate in order.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true}
}
