package leasegate

import "syscall"

// sysProcAttr puts leasegate in its own process group (a terminal's Ctrl-C
// reaches only the caller, which then stops leasegate in order) and has
// the kernel kill it if the caller dies without stopping it.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}
