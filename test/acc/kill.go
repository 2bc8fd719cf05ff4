package acc

import (
	"syscall"
	"testing"
	"time"
)

// Kill sends SIGKILL to packer's whole process group (packer, the plugin
// and whatever they started), as an OOM killer or a lost CI runner does:
// nothing gets to clean up. It waits up to timeout for packer to end.
func (s *Started) Kill(t testing.TB, timeout time.Duration) {
	t.Helper()
	syscall.Kill(-s.cmd.Process.Pid, syscall.SIGKILL)
	select {
	case <-s.done:
		s.done <- nil // for a later Wait
	case <-time.After(timeout):
		t.Fatalf("packer still runs %v after SIGKILL", timeout)
	}
}
