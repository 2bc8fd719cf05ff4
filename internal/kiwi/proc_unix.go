//go:build !windows

package kiwi

import (
	"errors"
	"os"
	"os/exec"
	"syscall"
	"time"
)

// setProcessGroup starts cmd in a process group of its own, so that
// kiwi-ng and everything it starts can be signalled together.
func setProcessGroup(cmd *exec.Cmd) { cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true} }

// signalGroup sends sig to every process of the group.
func signalGroup(pgid int, sig syscall.Signal) error { return syscall.Kill(-pgid, sig) }

// killGroup SIGKILLs what is left of a process group and waits (up to two
// seconds) until no live member remains. Orphans are reparented to init
// (or a subreaper), which reaps them; zombies do not count.
func killGroup(pgid int) {
	if err := syscall.Kill(-pgid, syscall.SIGKILL); errors.Is(err, syscall.ESRCH) {
		return
	}
	for i := 0; i < 200 && groupAlive(pgid); i++ {
		time.Sleep(10 * time.Millisecond)
	}
}

// groupAlive reports whether a process group has a member that is not a
// zombie, from /proc (or from kill(0) where /proc is missing).
func groupAlive(pgid int) bool {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return syscall.Kill(-pgid, 0) == nil
	}
	for _, e := range entries {
		if e.Name()[0] < '0' || e.Name()[0] > '9' {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		state, group, ok := statStateGroup(string(b))
		if ok && group == pgid && state != 'Z' && state != 'X' {
			return true
		}
	}
	return false
}
