package qemu

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// TailLines is how many serial lines an error shows.
const TailLines = 40

// pollInterval is how often the serial log is read while waiting.
const pollInterval = 100 * time.Millisecond

// VM is a running QEMU. Stop it with Shutdown or Kill; cancelling the
// context given to Start kills it too.
type VM struct {
	Launch Launch
	cmd    *exec.Cmd
	stderr *tailBuffer
	done   chan struct{} // closed when QEMU has exited
	err    error         // QEMU's exit error, valid after done
	stop   chan struct{} // closed by Kill to end the context watcher
	once   sync.Once
	killed atomic.Bool // set by kill before it signals QEMU
}

// reaped, when set (tests only) before Start, runs after that VM's QEMU has
// been reaped and before Done is closed: it widens the window in which QEMU is gone but the VM
// does not know it yet, the race a guest that powers itself off right
// after its boot check runs into.
var reaped func()

// Error is a failure of a running VM with the end of its serial console.
type Error struct {
	Op     string   // what was going on: "boot_check", "shutdown", ...
	Err    error    // the cause
	Log    string   // serial log path
	Tail   []string // last TailLines lines of the serial console
	Stderr string   // what QEMU itself printed
}

func (e *Error) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s: %v", e.Op, e.Err)
	if e.Stderr != "" {
		fmt.Fprintf(&b, "\nqemu: %s", strings.TrimSpace(e.Stderr))
	}
	if len(e.Tail) == 0 {
		fmt.Fprintf(&b, "\nserial console (%s) is empty", e.Log)
	} else {
		fmt.Fprintf(&b, "\nlast %d lines of the serial console (%s):\n%s", len(e.Tail), e.Log, strings.Join(e.Tail, "\n"))
	}
	return b.String()
}

func (e *Error) Unwrap() error { return e.Err }

// ErrTimeout is the cause when a wait ran out of time.
var ErrTimeout = errors.New("timed out")

// ErrExited is the cause when QEMU exited while it was expected to run.
var ErrExited = errors.New("QEMU exited")

// Start launches QEMU for l (no shell; its own process group, killed with
// the plugin). The serial log is truncated first.
func Start(ctx context.Context, l Launch) (*VM, error) {
	argv, err := l.Args()
	if err != nil {
		return nil, err
	}
	bin, err := exec.LookPath(argv[0])
	if err != nil {
		return nil, fmt.Errorf("%s not found: install the Debian/Ubuntu package %s (or set the qemu binary): %w",
			argv[0], DebianPackage(l.Arch), err)
	}
	if err := os.WriteFile(l.SerialLog, nil, 0o644); err != nil {
		return nil, fmt.Errorf("serial log: %w", err)
	}
	os.Remove(l.QMPSocket)
	cmd := exec.Command(bin, argv[1:]...)
	v := &VM{Launch: l, cmd: cmd, stderr: &tailBuffer{max: 4096}, done: make(chan struct{}), stop: make(chan struct{})}
	cmd.Stdout = v.stderr
	cmd.Stderr = v.stderr
	setProcAttr(cmd)
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", bin, err)
	}
	hook := reaped
	go func() {
		v.err = cmd.Wait()
		if hook != nil {
			hook()
		}
		close(v.done)
	}()
	go func() {
		select {
		case <-ctx.Done():
			v.kill()
		case <-v.done:
		case <-v.stop:
		}
	}()
	return v, nil
}

// Pid is QEMU's process id.
func (v *VM) Pid() int { return v.cmd.Process.Pid }

// Done is closed when QEMU has exited.
func (v *VM) Done() <-chan struct{} { return v.done }

// WaitFor watches the serial console until re matches what the guest has
// printed since it started, for at most timeout. It fails, with the serial
// tail, on timeout, on QEMU exiting and on ctx ending.
func (v *VM) WaitFor(ctx context.Context, re *regexp.Regexp, timeout time.Duration) error {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	tick := time.NewTicker(pollInterval)
	defer tick.Stop()
	for {
		text, _ := os.ReadFile(v.Launch.SerialLog)
		if re.Match(text) {
			return nil
		}
		select {
		case <-v.done:
			text, _ := os.ReadFile(v.Launch.SerialLog)
			if re.Match(text) {
				return nil
			}
			return v.fail("boot_check", fmt.Errorf("%w (%s) before the serial console matched %q", ErrExited, v.status(), re))
		case <-ctx.Done():
			return v.fail("boot_check", ctx.Err())
		case <-deadline.C:
			return v.fail("boot_check", fmt.Errorf("%w after %v waiting for %q on the serial console", ErrTimeout, timeout, re))
		case <-tick.C:
		}
	}
}

// Powerdown asks the guest to power off (ACPI power button) through QMP.
func (v *VM) Powerdown() error {
	return qmp(v.Launch.QMPSocket, "system_powerdown")
}

// Wait waits up to timeout for QEMU to exit by itself. QEMU exiting with
// status 0 is a clean power-off (nil); any other status is an *Error
// naming it. A QEMU this VM killed counts as exited: whoever killed it has
// reported why.
func (v *VM) Wait(ctx context.Context, timeout time.Duration) error {
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case <-v.done:
		return v.exitErr("shutdown")
	case <-ctx.Done():
		return v.fail("shutdown", ctx.Err())
	case <-t.C:
		return v.fail("shutdown", fmt.Errorf("%w: qemu still running %v after the shutdown request", ErrTimeout, timeout))
	}
}

// Shutdown powers the guest off through QMP and waits up to timeout for
// QEMU to exit; then it kills QEMU. It returns nil when QEMU exited with
// status 0, whether the power button did it or the guest powered itself
// off before, during or after the request (a guest that powers off right
// after its boot check closes the QMP socket under the request). It
// returns an *Error when QEMU exited with another status, or stayed up
// past timeout (QEMU killed; a QMP failure is named then).
func (v *VM) Shutdown(ctx context.Context, timeout time.Duration) error {
	select {
	case <-v.done:
		return v.exitErr("shutdown")
	default:
	}
	qerr := v.Powerdown()
	err := v.Wait(ctx, timeout)
	if err == nil || !v.stillRunning() {
		return err
	}
	v.Kill()
	if qerr != nil && errors.Is(err, ErrTimeout) {
		return v.fail("shutdown", fmt.Errorf("%w: QMP system_powerdown: %v; qemu still running %v later (qemu killed)", ErrTimeout, qerr, timeout))
	}
	return err
}

// stillRunning reports whether QEMU has not exited.
func (v *VM) stillRunning() bool {
	select {
	case <-v.done:
		return false
	default:
		return true
	}
}

// exitErr is nil for a QEMU that exited with status 0 (or that this VM
// killed), an *Error naming the status otherwise. Valid after done.
func (v *VM) exitErr(op string) error {
	if v.err == nil || v.killed.Load() {
		return nil
	}
	return v.fail(op, fmt.Errorf("%w (%s)", ErrExited, v.status()))
}

// status says how QEMU ended: "status 0", "status 1", "killed by signal
// killed". Valid after done.
func (v *VM) status() string {
	st := v.cmd.ProcessState
	switch {
	case st == nil:
		return fmt.Sprintf("not waited for: %v", v.err)
	case st.Exited():
		return fmt.Sprintf("status %d", st.ExitCode())
	}
	if ws, ok := st.Sys().(interface{ Signal() syscall.Signal }); ok && ws.Signal() > 0 {
		return "killed by signal " + ws.Signal().String()
	}
	return st.String()
}

// Kill kills QEMU (its whole process group) and waits for it to be gone.
// It is safe to call more than once and after QEMU exited.
func (v *VM) Kill() {
	v.kill()
	<-v.done
	os.Remove(v.Launch.QMPSocket)
}

func (v *VM) kill() {
	v.once.Do(func() {
		close(v.stop)
		select {
		case <-v.done:
		default:
			v.killed.Store(true)
			killGroup(v.cmd)
		}
	})
}

// Tail returns the last n lines of the serial console.
func (v *VM) Tail(n int) []string { return Tail(v.Launch.SerialLog, n) }

func (v *VM) fail(op string, err error) *Error {
	return &Error{Op: op, Err: err, Log: v.Launch.SerialLog, Tail: v.Tail(TailLines), Stderr: v.stderr.String()}
}

// Tail returns the last n lines of a file (without their newlines and
// without carriage returns); a missing file has none.
func Tail(path string, n int) []string {
	data, err := os.ReadFile(path)
	if err != nil || n <= 0 {
		return nil
	}
	data = bytes.ReplaceAll(data, []byte("\r"), nil)
	lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	if len(lines) == 1 && lines[0] == "" {
		return nil
	}
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return lines
}

// qmp runs one QMP command on the socket and checks it returned.
func qmp(socket, command string) error {
	c, err := net.DialTimeout("unix", socket, 5*time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	r := bufio.NewReader(c)
	var greeting struct {
		QMP json.RawMessage `json:"QMP"`
	}
	if err := readJSON(r, &greeting); err != nil || greeting.QMP == nil {
		return fmt.Errorf("no QMP greeting: %v", err)
	}
	for _, cmd := range []string{"qmp_capabilities", command} {
		if _, err := fmt.Fprintf(c, `{"execute":%q}`+"\n", cmd); err != nil {
			return err
		}
		for {
			var resp struct {
				Return json.RawMessage `json:"return"`
				Error  *struct {
					Class string `json:"class"`
					Desc  string `json:"desc"`
				} `json:"error"`
			}
			if err := readJSON(r, &resp); err != nil {
				return fmt.Errorf("%s: %w", cmd, err)
			}
			if resp.Error != nil {
				return fmt.Errorf("%s: %s: %s", cmd, resp.Error.Class, resp.Error.Desc)
			}
			if resp.Return != nil {
				break
			}
			// an asynchronous event: read on
		}
	}
	return nil
}

func readJSON(r *bufio.Reader, v any) error {
	line, err := r.ReadBytes('\n')
	if err != nil {
		return err
	}
	return json.Unmarshal(line, v)
}

// tailBuffer keeps the last max bytes written to it.
type tailBuffer struct {
	mu  sync.Mutex
	max int
	b   []byte
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.b = append(t.b, p...)
	if len(t.b) > t.max {
		t.b = append([]byte(nil), t.b[len(t.b)-t.max:]...)
	}
	return len(p), nil
}

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(t.b)
}
