package main

import (
	"os/exec"
	"syscall"
)

// dieWithParent has the kernel SIGKILL the program when the host dies, however it dies (even
// SIGKILL, or SIGPIPE writing to a dead engine's pipe): nothing else would stop it then.
func dieWithParent(cmd *exec.Cmd) {
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Pdeathsig = syscall.SIGKILL
}
