//go:build unix

package qemu

import (
	"os/exec"
	"syscall"
)

// setProcAttr puts QEMU in its own process group (so a kill reaches every
// thread and helper it forks) and, on Linux, has it killed with the plugin.
func setProcAttr(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	setPdeathsig(cmd.SysProcAttr)
}

func killGroup(cmd *exec.Cmd) {
	if err := syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL); err != nil {
		cmd.Process.Kill()
	}
}
