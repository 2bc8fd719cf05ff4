package qemu

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Real QEMU boots under TCG: generous timeouts, never timing assertions.
const bootTimeout = 4 * time.Minute

var upRE = regexp.MustCompile(guestMarker + `(x86_64|aarch64)`)

func TestBootCheckTimeoutShowsTheSerialTailAndShutdownKillsAGuestThatIgnoresThePowerButton(t *testing.T) {
	needQEMU(t, ArchX86_64)
	g := testGuest(t, ArchX86_64)
	dir := shortDir(t)
	vm, err := Start(context.Background(), g.launch(dir, "ignore"))
	if err != nil {
		t.Fatal(err)
	}
	defer vm.Kill()
	if err := vm.WaitFor(context.Background(), upRE, bootTimeout); err != nil {
		t.Fatal(err)
	}
	err = vm.WaitFor(context.Background(), regexp.MustCompile("never printed"), time.Second)
	var e *Error
	if !errors.As(err, &e) || !errors.Is(err, ErrTimeout) || e.Op != "boot_check" {
		t.Fatalf("want a boot_check timeout *Error, got %v", err)
	}
	if len(e.Tail) != TailLines {
		t.Fatalf("tail has %d lines, want %d: %q", len(e.Tail), TailLines, e.Tail)
	}
	if !strings.HasPrefix(lastLine(e.Tail), guestMarker) || e.Tail[0] != "osimage-guest line 7" {
		t.Fatalf("tail should be the guest's last 40 lines (line 7 to the marker), got %q ... %q", e.Tail[0], lastLine(e.Tail))
	}
	msg := err.Error()
	for _, want := range []string{"boot_check", "timed out", "never printed", "osimage-guest line 45", filepath.Join(dir, "serial.log")} {
		if !strings.Contains(msg, want) {
			t.Errorf("error lacks %q:\n%s", want, msg)
		}
	}

	err = vm.Shutdown(context.Background(), 2*time.Second)
	if !errors.As(err, &e) || !errors.Is(err, ErrTimeout) || e.Op != "shutdown" {
		t.Fatalf("want a shutdown timeout, got %v", err)
	}
	select {
	case <-vm.Done():
	default:
		t.Fatal("qemu still running after Shutdown gave up")
	}
	if !gone(vm.Pid()) {
		t.Fatalf("qemu pid %d still exists", vm.Pid())
	}
	if _, err := os.Stat(vm.Launch.QMPSocket); !os.IsNotExist(err) {
		t.Fatalf("QMP socket left behind: %v", err)
	}
}

func TestBootCheckTimesOutOnADiskThatCannotBoot(t *testing.T) {
	needQEMU(t, ArchX86_64)
	dir := shortDir(t)
	disk := filepath.Join(dir, "empty.raw")
	if err := os.WriteFile(disk, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(disk, 1<<20); err != nil {
		t.Fatal(err)
	}
	vm, err := Start(context.Background(), Launch{Arch: ArchX86_64, Accel: AccelTCG, Memory: 128, Disk: disk,
		SerialLog: filepath.Join(dir, "serial.log"), QMPSocket: filepath.Join(dir, "qmp.sock")})
	if err != nil {
		t.Fatal(err)
	}
	defer vm.Kill()
	err = vm.WaitFor(context.Background(), regexp.MustCompile("login:"), 5*time.Second)
	if !errors.Is(err, ErrTimeout) || !strings.Contains(err.Error(), "serial console") {
		t.Fatalf("want a timeout naming the serial console, got %v", err)
	}
}

func TestBootCheckFailsWhenQEMUExitsFirstAndShowsWhatQEMUSaid(t *testing.T) {
	needQEMU(t, ArchX86_64)
	dir := shortDir(t)
	l := Launch{Arch: ArchX86_64, Accel: AccelTCG, Disk: filepath.Join(dir, "missing.raw"),
		SerialLog: filepath.Join(dir, "serial.log"), QMPSocket: filepath.Join(dir, "qmp.sock")}
	vm, err := Start(context.Background(), l)
	if err != nil {
		t.Fatal(err)
	}
	defer vm.Kill()
	err = vm.WaitFor(context.Background(), upRE, bootTimeout)
	if !errors.Is(err, ErrExited) || !strings.Contains(err.Error(), "missing.raw") {
		t.Fatalf("want ErrExited with qemu's complaint about missing.raw, got %v", err)
	}
	if !strings.Contains(err.Error(), "QEMU exited (status 1) before the serial console matched") || strings.Contains(err.Error(), "<nil>") {
		t.Fatalf("the early exit must name QEMU's exit status: %v", err)
	}
	// Shutting down a QEMU that failed is not a clean power-off.
	if err := vm.Shutdown(context.Background(), time.Second); !errors.Is(err, ErrExited) || !strings.Contains(err.Error(), "status 1") {
		t.Fatalf("Shutdown of a QEMU that exited with status 1: want ErrExited naming it, got %v", err)
	}
}

func TestStartNamesTheDebianPackageOfAMissingEmulator(t *testing.T) {
	dir := shortDir(t)
	_, err := Start(context.Background(), Launch{Binary: "qemu-system-nonexistent", Arch: ArchAarch64, Accel: AccelTCG,
		Kernel: "k", SerialLog: filepath.Join(dir, "s"), QMPSocket: filepath.Join(dir, "q")})
	if err == nil || !strings.Contains(err.Error(), "qemu-system-arm") || !strings.Contains(err.Error(), "qemu-system-nonexistent") {
		t.Fatalf("want the missing binary and its package named, got %v", err)
	}
	if _, err := Start(context.Background(), Launch{Arch: "mips"}); err == nil {
		t.Fatal("an invalid launch must not start")
	}
}

func TestUEFIBootWithOVMFReachesThePattern(t *testing.T) {
	needQEMU(t, ArchX86_64)
	g := testGuest(t, ArchX86_64)
	fw := needFirmware(t, ArchX86_64)
	dir := shortDir(t)
	fw, err := fw.CopyVars(dir)
	if err != nil {
		t.Fatal(err)
	}
	l := g.launch(dir, "exit")
	l.Firmware = fw
	vm, err := Start(context.Background(), l)
	if err != nil {
		t.Fatal(err)
	}
	defer vm.Kill()
	<-vm.Done() // the guest powers off right after printing its marker
	if err := vm.WaitFor(context.Background(), upRE, time.Second); err != nil {
		t.Fatalf("the pattern is in the log of a guest that has exited: %v", err)
	}
	err = vm.WaitFor(context.Background(), regexp.MustCompile("never printed"), bootTimeout)
	if !errors.Is(err, ErrExited) || !strings.Contains(err.Error(), "QEMU exited (status 0) before") {
		t.Fatalf("want ErrExited naming status 0, got %v", err)
	}
	if err := vm.Shutdown(context.Background(), time.Second); err != nil {
		t.Fatalf("shutting down an exited VM is a no-op, got %v", err)
	}
}

// A guest that prints the boot check's pattern and powers off at once
// (smoke-test images do this): QEMU is exiting, or gone, when the QMP
// power-off request comes. Every time, that is a clean power-off.
func TestAGuestThatPowersOffRightAfterTheBootCheckShutsDownCleanlyEveryTime(t *testing.T) {
	for _, arch := range []string{ArchX86_64, ArchAarch64} {
		t.Run(arch, func(t *testing.T) {
			needQEMU(t, arch)
			g := testGuest(t, arch)
			re := regexp.MustCompile(guestMarker + arch)
			for i := range 4 {
				dir := shortDir(t)
				vm, err := Start(context.Background(), g.launch(dir, "exit"))
				if err != nil {
					t.Fatal(err)
				}
				if err := vm.WaitFor(context.Background(), re, bootTimeout); err != nil {
					vm.Kill()
					t.Fatalf("boot %d: %v", i, err)
				}
				if err := vm.Shutdown(context.Background(), time.Minute); err != nil {
					vm.Kill()
					t.Fatalf("boot %d: a guest that powered itself off is a clean power-off, got %v", i, err)
				}
				if st := vm.cmd.ProcessState; !st.Exited() || st.ExitCode() != 0 {
					t.Fatalf("boot %d: qemu should have exited by itself with 0: %v", i, st)
				}
				// Complete: the marker, then the kernel's last word.
				if tail := vm.Tail(3); !slices.ContainsFunc(tail, re.MatchString) || !strings.HasSuffix(lastLine(tail), "reboot: Power down") {
					t.Fatalf("boot %d: serial.log must hold the marker and end with the power-off, ends with %q", i, tail)
				}
			}
		})
	}
}

// The race forced: QEMU has exited (and been reaped) after the match, but
// the VM learns it only later; the QMP request then finds no QEMU. Before,
// that was "the guest did not power off" and QEMU "killed".
func TestShutdownIsCleanWhenQEMUExitsBetweenTheMatchAndTheQMPRequest(t *testing.T) {
	needQEMU(t, ArchX86_64)
	g := testGuest(t, ArchX86_64)
	release := make(chan struct{})
	var once sync.Once
	free := func() { once.Do(func() { close(release) }) }
	reaped = func() { <-release }
	defer func() { reaped = nil }()
	vm, err := Start(context.Background(), g.launch(shortDir(t), "exit"))
	reaped = nil
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		free()
		vm.Kill()
	}()
	if err := vm.WaitFor(context.Background(), upRE, bootTimeout); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(time.Minute)
	for !gone(vm.Pid()) {
		if time.Now().After(deadline) {
			t.Fatal("the guest did not power off within a minute")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := vm.Powerdown(); err == nil {
		t.Fatal("QMP answered although QEMU is gone: the race is not forced")
	}
	select {
	case <-vm.Done():
		t.Fatal("Done is closed: the race is not forced")
	default:
	}
	go func() {
		time.Sleep(200 * time.Millisecond)
		free()
	}()
	if err := vm.Shutdown(context.Background(), time.Minute); err != nil {
		t.Fatalf("QEMU exited with 0 before the power-off request: a clean power-off, got %v", err)
	}
}

func TestAarch64GuestBootsUnderTCGWithAAVMF(t *testing.T) {
	needQEMU(t, ArchAarch64)
	g := testGuest(t, ArchAarch64)
	fw := needFirmware(t, ArchAarch64)
	dir := shortDir(t)
	fw, err := fw.CopyVars(dir)
	if err != nil {
		t.Fatal(err)
	}
	l := g.launch(dir, "exit")
	l.Firmware = fw
	bootAndExpect(t, l, "aarch64")
}

func bootAndExpect(t *testing.T, l Launch, arch string) {
	t.Helper()
	vm, err := Start(context.Background(), l)
	if err != nil {
		t.Fatal(err)
	}
	defer vm.Kill()
	if err := vm.WaitFor(context.Background(), regexp.MustCompile(guestMarker+arch), bootTimeout); err != nil {
		t.Fatal(err)
	}
}

func TestTwoUEFIVMsRunSideBySideWithTheirOwnPortsAndVarsAndPowerOffCleanly(t *testing.T) {
	needQEMU(t, ArchX86_64)
	g := testGuest(t, ArchX86_64)
	fw := needFirmware(t, ArchX86_64)
	var wg sync.WaitGroup
	errs := make([]error, 2)
	for i := range errs {
		dir := shortDir(t)
		own, err := fw.CopyVars(dir)
		if err != nil {
			t.Fatal(err)
		}
		l := g.launch(dir, "powerdown")
		l.Firmware = own
		l.SSHHostPort = freePort(t)
		wg.Add(1)
		go func() {
			defer wg.Done()
			vm, err := Start(context.Background(), l)
			if err != nil {
				errs[i] = err
				return
			}
			defer vm.Kill()
			if err := vm.WaitFor(context.Background(), upRE, bootTimeout); err != nil {
				errs[i] = err
				return
			}
			// QEMU listens on the forwarded port while the guest runs.
			c, err := dialTCP(l.SSHHostPort)
			if err != nil {
				errs[i] = err
				return
			}
			c.Close()
			// The guest handles the ACPI power button: QEMU exits by itself.
			if err := vm.Shutdown(context.Background(), time.Minute); err != nil {
				errs[i] = err
				return
			}
			if st := vm.cmd.ProcessState; !st.Exited() || st.ExitCode() != 0 {
				errs[i] = fmt.Errorf("qemu should have exited by itself with 0: %v", st)
			}
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("vm %d: %v", i, err)
		}
	}
}

// emptyDiskLaunch boots a disk of zeros: SeaBIOS finds nothing to boot,
// prints nothing on the serial console and QEMU runs on.
func emptyDiskLaunch(t *testing.T) Launch {
	dir := shortDir(t)
	disk := filepath.Join(dir, "empty.raw")
	if err := os.WriteFile(disk, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(disk, 1<<20); err != nil {
		t.Fatal(err)
	}
	return Launch{Arch: ArchX86_64, Accel: AccelTCG, Memory: 128, Disk: disk,
		SerialLog: filepath.Join(dir, "serial.log"), QMPSocket: filepath.Join(dir, "qmp.sock")}
}

func TestCancellingTheContextKillsQEMU(t *testing.T) {
	needQEMU(t, ArchX86_64)
	ctx, cancel := context.WithCancel(context.Background())
	vm, err := Start(ctx, emptyDiskLaunch(t))
	if err != nil {
		t.Fatal(err)
	}
	errc := make(chan error, 1)
	go func() { errc <- vm.WaitFor(ctx, upRE, bootTimeout) }()
	time.Sleep(500 * time.Millisecond)
	cancel()
	if err := <-errc; !errors.Is(err, context.Canceled) {
		t.Fatalf("WaitFor on a cancelled build: want context.Canceled, got %v", err)
	}
	select {
	case <-vm.Done():
	case <-time.After(time.Minute):
		t.Fatal("qemu still running a minute after the cancel")
	}
	if !gone(vm.Pid()) {
		t.Fatalf("qemu pid %d survived the cancel", vm.Pid())
	}
	if ws, ok := vm.cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || ws.Signal() != syscall.SIGKILL {
		t.Fatalf("qemu should have been killed, state %v", vm.cmd.ProcessState)
	}
	vm.Kill() // again: a no-op
	if err := vm.Wait(context.Background(), time.Second); err != nil {
		t.Fatalf("Wait on an exited VM: %v", err)
	}
}

func TestPowerdownReachesQEMUThroughQMPAndWaitHonoursItsContext(t *testing.T) {
	needQEMU(t, ArchX86_64)
	vm, err := Start(context.Background(), emptyDiskLaunch(t))
	if err != nil {
		t.Fatal(err)
	}
	defer vm.Kill()
	// QEMU may take a moment to create its QMP socket.
	deadline := time.Now().Add(time.Minute)
	for vm.Powerdown() != nil {
		if time.Now().After(deadline) {
			t.Fatalf("QMP never answered: %v", vm.Powerdown())
		}
		time.Sleep(100 * time.Millisecond)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := vm.Wait(ctx, time.Minute); !errors.Is(err, context.Canceled) {
		t.Fatalf("Wait with a cancelled context: %v", err)
	}
	// No OS handles the power button: Shutdown gives up and kills.
	err = vm.Shutdown(context.Background(), time.Second)
	if !errors.Is(err, ErrTimeout) || strings.Contains(err.Error(), "QMP") {
		t.Fatalf("want a timeout after a QMP request that worked, got %v", err)
	}
	if !gone(vm.Pid()) {
		t.Fatal("qemu survived Shutdown")
	}
	if err := vm.Powerdown(); err == nil {
		t.Fatal("QMP on a VM that is gone must fail")
	}
}

func TestShutdownKillsWhenQMPIsUnreachable(t *testing.T) {
	needQEMU(t, ArchX86_64)
	l := emptyDiskLaunch(t)
	vm, err := Start(context.Background(), l)
	if err != nil {
		t.Fatal(err)
	}
	defer vm.Kill()
	vm.Launch.QMPSocket = filepath.Join(filepath.Dir(l.QMPSocket), "elsewhere.sock")
	// Unreachable QMP is not a failure by itself (the guest may be
	// powering off by itself): QEMU staying up past the timeout is.
	err = vm.Shutdown(context.Background(), 3*time.Second)
	var e *Error
	if !errors.As(err, &e) || !errors.Is(err, ErrTimeout) || !strings.Contains(err.Error(), "QMP system_powerdown") ||
		!strings.Contains(err.Error(), "still running 3s later (qemu killed)") {
		t.Fatalf("want the QMP failure named, the timeout and QEMU killed, got %v", err)
	}
	if !gone(vm.Pid()) {
		t.Fatal("qemu survived")
	}
}

func TestTailKeepsTheLastLinesWithoutCarriageReturns(t *testing.T) {
	p := filepath.Join(t.TempDir(), "log")
	os.WriteFile(p, []byte("a\r\nb\r\nc\n\n"), 0o644)
	if got := Tail(p, 2); len(got) != 2 || got[0] != "b" || got[1] != "c" {
		t.Fatalf("%q", got)
	}
	if got := Tail(p, 10); len(got) != 3 || got[0] != "a" {
		t.Fatalf("%q", got)
	}
	if Tail(p, 0) != nil || Tail(filepath.Join(t.TempDir(), "none"), 3) != nil {
		t.Fatal("no lines wanted or no file: nil")
	}
	os.WriteFile(p, nil, 0o644)
	if Tail(p, 3) != nil {
		t.Fatal("empty file: no lines")
	}
}

func TestErrorSaysWhatQEMUPrintedAndWhenTheConsoleWasEmpty(t *testing.T) {
	e := &Error{Op: "boot_check", Err: ErrTimeout, Log: "/o/serial.log", Stderr: "qemu: bad thing\n"}
	if s := e.Error(); !strings.Contains(s, "boot_check: timed out") || !strings.Contains(s, "qemu: qemu: bad thing") || !strings.Contains(s, "/o/serial.log) is empty") {
		t.Fatal(s)
	}
	e = &Error{Op: "shutdown", Err: ErrExited, Log: "/l", Tail: []string{"x", "y"}}
	if s := e.Error(); !strings.Contains(s, "last 2 lines of the serial console (/l):\nx\ny") || strings.Contains(s, "qemu:") {
		t.Fatal(s)
	}
	if !errors.Is(e, ErrExited) {
		t.Fatal("Unwrap")
	}
}

func TestTailBufferKeepsTheEnd(t *testing.T) {
	b := &tailBuffer{max: 4}
	b.Write([]byte("abc"))
	b.Write([]byte("defg"))
	if b.String() != "defg" {
		t.Fatal(b.String())
	}
	b.Write([]byte("h"))
	if b.String() != "efgh" {
		t.Fatal(b.String())
	}
}

func gone(pid int) bool {
	return errors.Is(syscall.Kill(pid, 0), syscall.ESRCH)
}
