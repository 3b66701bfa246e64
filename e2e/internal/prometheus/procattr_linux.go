package prometheus

import "syscall"

// sysProcAttr puts prometheus in its own process group, so Stop can signal
// exactly what it started, and has the kernel kill it if the test process
// dies without calling Stop.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}
