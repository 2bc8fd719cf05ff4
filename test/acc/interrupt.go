package acc

import (
	"os"
	"os/exec"
	"syscall"
	"testing"
	"time"

	"github.com/osimage/packer-plugin-osimage/internal/testutil"
)

// Started is a packer run in its own process group, for tests that
// interrupt it the way Ctrl-C in a terminal does (SIGINT to the group).
type Started struct {
	cmd  *exec.Cmd
	out  testutil.SyncBuffer
	done chan error
}

// Start starts packer with args in dir without waiting for it.
func (e *Env) Start(t testing.TB, dir string, extraEnv []string, args ...string) *Started {
	t.Helper()
	s := &Started{cmd: exec.Command(e.Packer, args...), done: make(chan error, 1)}
	s.cmd.Dir = dir
	s.cmd.Env = append(append(os.Environ(), "CHECKPOINT_DISABLE=1", "PACKER_PLUGIN_PATH="+e.PluginDir, "PACKER_NO_COLOR=1"), extraEnv...)
	s.cmd.Stdout, s.cmd.Stderr = &s.out, &s.out
	s.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := s.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { s.done <- s.cmd.Wait() }()
	t.Cleanup(func() { syscall.Kill(-s.cmd.Process.Pid, syscall.SIGKILL) })
	return s
}

// Wait waits for packer to end and returns what it printed and its error.
func (s *Started) Wait() (string, error) {
	err := <-s.done
	s.done <- err // for a later Wait or WaitUntil
	return s.Output(), err
}

// Output is what packer printed so far.
func (s *Started) Output() string { return s.out.String() }

// WaitUntil polls cond until it holds; it fails the test, killing packer,
// when packer ends first or timeout passes (what names the awaited event).
func (s *Started) WaitUntil(t testing.TB, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(timeout); !cond(); time.Sleep(50 * time.Millisecond) {
		select {
		case err := <-s.done:
			t.Fatalf("packer ended (%v) before %s:\n%s", err, what, s.Output())
		default:
		}
		if time.Now().After(deadline) {
			syscall.Kill(-s.cmd.Process.Pid, syscall.SIGKILL)
			t.Fatalf("no %s within %v:\n%s", what, timeout, s.Output())
		}
	}
}

// Interrupt sends SIGINT to packer's process group and waits up to timeout
// for packer to exit; it fails the test when packer succeeds or still runs.
// It returns how long packer took to exit.
func (s *Started) Interrupt(t testing.TB, timeout time.Duration) time.Duration {
	t.Helper()
	t0 := time.Now()
	syscall.Kill(-s.cmd.Process.Pid, syscall.SIGINT)
	select {
	case err := <-s.done:
		if err == nil {
			t.Fatalf("packer succeeded after Ctrl-C:\n%s", s.Output())
		}
	case <-time.After(timeout):
		syscall.Kill(-s.cmd.Process.Pid, syscall.SIGKILL)
		t.Fatalf("packer still runs %v after Ctrl-C:\n%s", timeout, s.Output())
	}
	return time.Since(t0)
}
