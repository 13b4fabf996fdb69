package redistest

import (
	"os/exec"
	"syscall"
)

// dieWithParent makes the server get SIGKILL if the test process dies
// without its cleanups (a panic, a timeout), so that no server outlives it.
func dieWithParent(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
