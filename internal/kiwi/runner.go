package kiwi

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// DefaultBinary is the KIWI executable looked up in PATH.
const DefaultBinary = "kiwi-ng"

// DebianPackages are what a Debian machine needs for `kiwi-ng system build`
// of disk images: kiwi alone lacks the host tools (parted, kpartx, sgdisk,
// qemu-img, grub *-bin).
const DebianPackages = "kiwi kiwi-systemdeps-disk-images"

// DefaultTailLines is how many log lines a BuildError carries.
const DefaultTailLines = 40

// DefaultKillGrace is how long Run waits after SIGINT before SIGKILL.
const DefaultKillGrace = 20 * time.Second

// Errors callers may check with errors.Is.
var (
	ErrNotInstalled  = errors.New("kiwi-ng not found")
	ErrNotRoot       = errors.New("KIWI must run as root")
	ErrNoLoopDevice  = errors.New("no loop device support")
	ErrNoDescription = errors.New("KIWI description not found")
)

// Host facts, replaceable in tests.
var (
	geteuid         = os.Geteuid
	loopControlPath = "/dev/loop-control"
)

// BuildError is a failed kiwi-ng run.
type BuildError struct {
	// ExitCode is the exit status, or -1 when killed by a signal.
	ExitCode int
	// State is how the process ended ("exit status 1", "signal: killed").
	State string
	// KiwiError is KIWI's own last error line ("KiwiProfileNotFound: ..."),
	// if it printed one.
	KiwiError string
	// Tail holds the last lines of output.
	Tail []string
	// LogPath is the full log, if the Runner kept one.
	LogPath string
}

func (e *BuildError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "kiwi-ng failed (%s)", e.State)
	if e.KiwiError != "" {
		fmt.Fprintf(&b, ": %s", e.KiwiError)
	}
	if len(e.Tail) > 0 {
		fmt.Fprintf(&b, "\nlast %d lines of output:\n%s", len(e.Tail), strings.Join(e.Tail, "\n"))
	}
	if e.LogPath != "" {
		fmt.Fprintf(&b, "\nfull log: %s", e.LogPath)
	}
	return b.String()
}

// Runner executes kiwi-ng directly (no shell) in its own process group.
type Runner struct {
	// Binary is the KIWI executable, a path or a name looked up in PATH;
	// empty means DefaultBinary.
	Binary string
	// Env is added to the inherited environment as KEY=VALUE; later
	// entries win, so PATH=... replaces the inherited PATH (see PrependPath).
	Env []string
	// Dir is the working directory; empty means the current one.
	Dir string
	// Output, if set, receives each line of kiwi-ng's stdout and stderr (in
	// the order written, without line endings; carriage-return progress
	// bars are split into lines).
	Output func(line string)
	// LogPath, if set, receives a copy of every line. It is created or
	// truncated.
	LogPath string
	// TailLines is how many lines a BuildError keeps; 0 means
	// DefaultTailLines.
	TailLines int
	// KillGrace is how long to wait after SIGINT on cancellation before
	// SIGKILL; 0 means DefaultKillGrace. SIGINT first lets KIWI unmount
	// and detach what it set up.
	KillGrace time.Duration
	// WrapperDir, if set, is where Run writes the losetup wrapper when
	// LosetupWrapperNeeded says this machine needs it, and puts first in
	// kiwi-ng's PATH. Empty never wraps.
	WrapperDir string
}

// LookPath resolves the KIWI binary, with an error naming the Debian
// packages when it is missing.
func (r *Runner) LookPath() (string, error) {
	bin := r.Binary
	if bin == "" {
		bin = DefaultBinary
	}
	path, err := exec.LookPath(bin)
	if err != nil {
		return "", fmt.Errorf("%w: %q is not an executable in PATH (%v); on Debian install it with `apt-get install %s`",
			ErrNotInstalled, bin, err, DebianPackages)
	}
	return path, nil
}

// Preflight checks what a build needs before starting KIWI: the binary,
// root, loop devices, and a description directory with config.xml or a
// *.kiwi file (or the file named by opts.KiwiFile).
func (r *Runner) Preflight(opts Options) error {
	if _, err := r.LookPath(); err != nil {
		return err
	}
	if uid := geteuid(); uid != 0 {
		return fmt.Errorf("%w: running as uid %d; KIWI builds need root for chroot, mounts and loop devices", ErrNotRoot, uid)
	}
	if _, err := os.Stat(loopControlPath); err != nil {
		return fmt.Errorf("%w: %s: %v; KIWI needs loop devices for disk images (load the loop module or run with access to /dev/loop*)",
			ErrNoLoopDevice, loopControlPath, err)
	}
	return CheckDescription(opts.Description, opts.KiwiFile)
}

// CheckDescription checks that dir is a directory holding kiwiFile, or
// config.xml, or a *.kiwi file (KIWI's own lookup order).
func CheckDescription(dir, kiwiFile string) error {
	if dir == "" {
		return fmt.Errorf("%w: description directory is empty", ErrNoDescription)
	}
	st, err := os.Stat(dir)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrNoDescription, err)
	}
	if !st.IsDir() {
		return fmt.Errorf("%w: %s is not a directory", ErrNoDescription, dir)
	}
	if kiwiFile != "" {
		p := kiwiFile
		if !filepath.IsAbs(p) {
			p = filepath.Join(dir, kiwiFile)
		}
		if _, err := os.Stat(p); err != nil {
			return fmt.Errorf("%w: kiwi file: %v", ErrNoDescription, err)
		}
		return nil
	}
	if _, err := os.Stat(filepath.Join(dir, "config.xml")); err == nil {
		return nil
	}
	matches, _ := filepath.Glob(filepath.Join(dir, "*.kiwi"))
	if len(matches) > 0 {
		return nil
	}
	return fmt.Errorf("%w: %s has neither config.xml nor a *.kiwi file", ErrNoDescription, dir)
}

// Build checks the host, runs kiwi-ng with opts and parses its result.
func (r *Runner) Build(ctx context.Context, opts Options) (*Result, error) {
	args, err := opts.Args()
	if err != nil {
		return nil, err
	}
	if err := r.Preflight(opts); err != nil {
		return nil, err
	}
	if err := r.Run(ctx, args); err != nil {
		return nil, err
	}
	return ParseResult(opts.TargetDir)
}

// Run executes kiwi-ng with args and waits for it and every process it
// started. A non-zero exit returns a *BuildError. When ctx ends, the whole
// process group gets SIGINT, then SIGKILL after KillGrace, and Run returns
// an error wrapping ctx.Err().
func (r *Runner) Run(ctx context.Context, args []string) error {
	bin, err := r.LookPath()
	if err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("kiwi-ng not started: %w", err)
	}
	say := func(string) {}
	if r.Output != nil {
		say = r.Output
	}
	unlock, err := lockSharedCache(ctx, SharedCacheDir(args), say)
	if err != nil {
		return err
	}
	defer unlock()
	var logFile *os.File
	if r.LogPath != "" {
		if logFile, err = os.Create(r.LogPath); err != nil {
			return fmt.Errorf("create KIWI log: %w", err)
		}
		defer logFile.Close()
	}
	env, notice, err := r.environ()
	if err != nil {
		return err
	}
	if notice != "" {
		if logFile != nil {
			fmt.Fprintln(logFile, notice)
		}
		if r.Output != nil {
			r.Output(notice)
		}
	}
	pr, pw, err := os.Pipe()
	if err != nil {
		return err
	}
	cmd := exec.Command(bin, args...)
	cmd.Dir = r.Dir
	cmd.Env = env
	cmd.Stdin = nil
	// One pipe for both streams keeps their lines in the order written. It
	// is an *os.File, so exec starts no copying goroutine and Wait does not
	// wait for grandchildren that still hold it open.
	cmd.Stdout, cmd.Stderr = pw, pw
	setProcessGroup(cmd)
	if err := cmd.Start(); err != nil {
		pr.Close()
		pw.Close()
		return fmt.Errorf("start %s: %w", bin, err)
	}
	pw.Close()
	pgid := cmd.Process.Pid

	tail := newTail(r.tailLines())
	var logErr error
	var kiwiErr string // KIWI's last error line, wherever it was
	readDone := make(chan struct{})
	go func() {
		defer close(readDone)
		scanLines(pr, func(line string) {
			tail.add(line)
			if m := kiwiErrorLine.FindStringSubmatch(line); m != nil {
				kiwiErr = strings.TrimSpace(m[1])
			}
			// Unbuffered: the log is complete up to the last line even if
			// this process dies, and can be followed while KIWI runs.
			if logFile != nil && logErr == nil {
				if _, err := logFile.WriteString(line + "\n"); err != nil {
					logErr = err
				}
			}
			if r.Output != nil {
				r.Output(line)
			}
		})
		pr.Close()
	}()

	waitDone := make(chan error, 1)
	go func() { waitDone <- cmd.Wait() }()

	var waitErr error
	cancelled := false
	select {
	case waitErr = <-waitDone:
	case <-ctx.Done():
		cancelled = true
		_ = signalGroup(pgid, syscall.SIGINT)
		t := time.NewTimer(r.killGrace())
		select {
		case waitErr = <-waitDone:
			t.Stop()
		case <-t.C:
			_ = signalGroup(pgid, syscall.SIGKILL)
			waitErr = <-waitDone
		}
	}
	// Whatever kiwi-ng left in its group (a child that ignored SIGINT, a
	// background helper) goes too, so nothing outlives the build. The
	// reader then sees EOF once the last holder of the pipe is gone.
	killGroup(pgid)
	<-readDone

	if cancelled {
		return fmt.Errorf("kiwi-ng stopped (%s): %w", stateOf(waitErr), ctx.Err())
	}
	if waitErr != nil {
		lines := tail.lines()
		be := &BuildError{ExitCode: -1, State: stateOf(waitErr), KiwiError: kiwiErr, Tail: lines, LogPath: r.LogPath}
		var ee *exec.ExitError
		if errors.As(waitErr, &ee) {
			be.ExitCode = ee.ExitCode()
		}
		return be
	}
	if logErr != nil {
		return fmt.Errorf("write KIWI log %s: %w", r.LogPath, logErr)
	}
	return nil
}

// environ is kiwi-ng's environment: the inherited one, then Env, then
// the wrapper dir first in PATH when the losetup wrapper is needed. The
// notice says what was decided about the wrapper.
func (r *Runner) environ() ([]string, string, error) {
	env := append(os.Environ(), r.Env...)
	if r.WrapperDir == "" {
		return env, "", nil
	}
	need, reason, err := LosetupWrapperNeeded()
	if err != nil {
		return nil, "", err
	}
	if !need {
		return env, "osimage: no losetup wrapper: " + reason, nil
	}
	path, err := WriteLosetupWrapper(r.WrapperDir)
	if err != nil {
		return nil, "", err
	}
	cur := ""
	for _, kv := range env { // the last PATH wins, as in exec
		if v, ok := strings.CutPrefix(kv, "PATH="); ok {
			cur = v
		}
	}
	p := "PATH=" + r.WrapperDir
	if cur != "" {
		p += string(os.PathListSeparator) + cur
	}
	return append(env, p), "osimage: using " + path + " (adds -P): " + reason, nil
}

// statStateGroup reads the state and process group from /proc/PID/stat:
// "PID (COMM) STATE PPID PGRP ...", where COMM may hold spaces and parens.
func statStateGroup(stat string) (byte, int, bool) {
	i := strings.LastIndexByte(stat, ')')
	if i < 0 {
		return 0, 0, false
	}
	f := strings.Fields(stat[i+1:])
	if len(f) < 3 || len(f[0]) != 1 {
		return 0, 0, false
	}
	g, err := strconv.Atoi(f[2])
	if err != nil {
		return 0, 0, false
	}
	return f[0][0], g, true
}

func stateOf(err error) string {
	if err == nil {
		return "exit status 0"
	}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ProcessState.String()
	}
	return err.Error()
}

func (r *Runner) tailLines() int {
	if r.TailLines > 0 {
		return r.TailLines
	}
	return DefaultTailLines
}

func (r *Runner) killGrace() time.Duration {
	if r.KillGrace > 0 {
		return r.KillGrace
	}
	return DefaultKillGrace
}

// PrependPath returns a PATH=... entry for Runner.Env with dir first and the
// current PATH after it.
func PrependPath(dir string) string {
	if cur := os.Getenv("PATH"); cur != "" {
		return "PATH=" + dir + string(os.PathListSeparator) + cur
	}
	return "PATH=" + dir
}

// maxLine caps one line; longer ones are cut, the rest dropped.
const maxLine = 64 << 10

// scanLines calls fn for each non-empty line of r, splitting at '\n' and at
// '\r' (KIWI draws progress bars with carriage returns).
func scanLines(r io.Reader, fn func(string)) {
	br := bufio.NewReaderSize(r, 64<<10)
	var line []byte
	flush := func() {
		if len(line) > 0 {
			fn(string(line))
			line = line[:0]
		}
	}
	for {
		c, err := br.ReadByte()
		if err != nil {
			flush()
			return
		}
		switch c {
		case '\n', '\r':
			flush()
		default:
			if len(line) < maxLine {
				line = append(line, c)
			}
		}
	}
}

// tail keeps the last n lines.
type tail struct {
	mu  sync.Mutex
	buf []string
	n   int
}

func newTail(n int) *tail { return &tail{n: n} }

func (t *tail) add(s string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf = append(t.buf, s)
	if len(t.buf) > 2*t.n {
		t.buf = append(t.buf[:0], t.buf[len(t.buf)-t.n:]...)
	}
}

func (t *tail) lines() []string {
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(t.buf) > t.n {
		return append([]string(nil), t.buf[len(t.buf)-t.n:]...)
	}
	return append([]string(nil), t.buf...)
}

// kiwiErrorLine matches KIWI's error log lines:
// "[ ERROR   ]: 01:01:41 | KiwiProfileNotFound: profile nosuch not found ...".
// Not anchored: KIWI writes an error right after a progress bar that has no
// line end ("...] 100%[ ERROR   ]: ...").
var kiwiErrorLine = regexp.MustCompile(`\[ ERROR\s*\]: [0-9:]+ \| (.+)$`)
