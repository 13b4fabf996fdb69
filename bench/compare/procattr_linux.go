package main

import (
	"os/exec"
	"syscall"
)

// dieWithParent makes a contender get SIGKILL if this program dies without
// stopping it (a panic, a kill), so that no proxy outlives the benchmark.
func dieWithParent(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
