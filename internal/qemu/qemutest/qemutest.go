// Package qemutest makes the tiny guests the QEMU tests boot: Debian's own
// kernel (fetched by scripts/qemu-guests.sh) with a busybox initramfs packed
// here, whose /init prints 45 numbered lines and then Marker+arch on the
// serial console. It imports nothing from the plugin, so both internal/qemu
// and the acceptance tests use it.
package qemutest

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"testing"
)

// RequireEnv is testutil.RequireEnv (not imported, to keep this package a
// leaf).
const RequireEnv = "OSIMAGE_REQUIRE_TOOLS"

// Marker is what the guest prints once its init runs, followed by its
// architecture (x86_64 or aarch64).
const Marker = "OSIMAGE-GUEST-UP arch="

// Init is the initramfs's /init. After the marker it acts on osimage.mode=
// from the kernel command line: powerdown (default: acpid powers off on the
// ACPI power button), ignore (never powers off) or exit (powers off at once).
const Init = `#!/bin/busybox sh
/bin/busybox mkdir -p /proc /sys /dev /etc/acpi/PWRF
/bin/busybox mount -t proc proc /proc
/bin/busybox mount -t sysfs sys /sys
/bin/busybox mount -t devtmpfs dev /dev
mode=powerdown
case "$(/bin/busybox cat /proc/cmdline)" in
*osimage.mode=exit*) mode=exit ;;
*osimage.mode=ignore*) mode=ignore ;;
esac
if [ $mode = powerdown ]; then
  for m in /lib/evdev.ko /lib/button.ko; do [ -f $m ] && /bin/busybox insmod $m; done
  printf '#!/bin/busybox sh\n/bin/busybox poweroff -f\n' > /etc/acpi/PWRF/00000080
  /bin/busybox chmod +x /etc/acpi/PWRF/00000080
  /bin/busybox acpid -c /etc/acpi -l /dev/null
fi
i=1
while [ $i -le 45 ]; do echo "osimage-guest line $i"; i=$((i+1)); done
echo "OSIMAGE-GUEST-UP arch=$(/bin/busybox uname -m)"
[ $mode = exit ] && /bin/busybox poweroff -f
while :; do /bin/busybox sleep 3600; done
`

// Guest is a kernel and an initramfs for one architecture.
type Guest struct {
	Arch    string // x86_64 or aarch64
	Kernel  string
	Initrd  string
	Console string // ttyS0 or ttyAMA0
}

// Append is the kernel command line for the guest in mode.
func (g Guest) Append(mode string) string {
	return "console=" + g.Console + " quiet panic=-1 rdinit=/init osimage.mode=" + mode
}

// New returns the guest for arch with a freshly packed initramfs in a test
// temporary directory, or skips (fails under OSIMAGE_REQUIRE_TOOLS=1) saying
// how to fetch the files.
//
// OSIMAGE_QEMU_FAST=1 skips the tests that boot these guests (a minute or
// more each under TCG), for mutation testing only; it is refused together
// with OSIMAGE_REQUIRE_TOOLS=1.
func New(t testing.TB, arch string) Guest {
	t.Helper()
	if os.Getenv("OSIMAGE_QEMU_FAST") == "1" {
		if os.Getenv(RequireEnv) == "1" {
			t.Fatal("OSIMAGE_QEMU_FAST=1 skips guest boots; " + RequireEnv + "=1 forbids skipping")
		}
		t.Skip("OSIMAGE_QEMU_FAST=1: guest boots skipped")
	}
	deb := map[string]string{"x86_64": "amd64", "aarch64": "arm64"}[arch]
	dir := filepath.Join(ModuleRoot(), ".tools", "guests", deb)
	kernel, bb := filepath.Join(dir, "vmlinuz"), filepath.Join(dir, "busybox")
	_, kerr := os.Stat(kernel)
	_, berr := os.Stat(bb)
	if deb == "" || kerr != nil || berr != nil {
		msg := fmt.Sprintf("test guest for %s missing in %s: run ./scripts/qemu-guests.sh (make tools runs it)", arch, dir)
		if os.Getenv(RequireEnv) == "1" {
			t.Fatal(msg + " (" + RequireEnv + "=1 forbids skipping)")
		}
		t.Skip(msg)
	}
	busybox, err := os.ReadFile(bb)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	w := cpioWriter{w: &buf}
	w.dir("bin")
	w.file("bin/busybox", 0o755, busybox)
	w.file("bin/sh", 0o755, busybox)
	w.file("init", 0o755, []byte(Init))
	if arch == "x86_64" { // the ACPI power button reaches acpid through these
		w.dir("lib")
		for _, m := range []string{"evdev.ko", "button.ko"} {
			data, err := os.ReadFile(filepath.Join(dir, m))
			if err != nil {
				t.Fatalf("%v: run ./scripts/qemu-guests.sh", err)
			}
			w.file("lib/"+m, 0o644, data)
		}
	}
	w.trailer()
	initrd := filepath.Join(t.TempDir(), "initrd.cpio")
	if err := os.WriteFile(initrd, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	console := "ttyS0"
	if arch == "aarch64" {
		console = "ttyAMA0"
	}
	return Guest{Arch: arch, Kernel: kernel, Initrd: initrd, Console: console}
}

// ModuleRoot is the repository's root directory.
func ModuleRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..", "..")
}

// cpioWriter writes the newc format the kernel unpacks as initramfs.
type cpioWriter struct {
	w   *bytes.Buffer
	ino int
}

func (c *cpioWriter) entry(name string, mode int, data []byte) {
	c.ino++
	fmt.Fprintf(c.w, "070701%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X",
		c.ino, mode, 0, 0, 1, 0, len(data), 0, 0, 0, 0, len(name)+1, 0)
	c.w.WriteString(name + "\x00")
	c.pad()
	c.w.Write(data)
	c.pad()
}

func (c *cpioWriter) pad() {
	for c.w.Len()%4 != 0 {
		c.w.WriteByte(0)
	}
}

func (c *cpioWriter) dir(name string)                         { c.entry(name, 0o040755, nil) }
func (c *cpioWriter) file(name string, perm int, data []byte) { c.entry(name, 0o100000|perm, data) }
func (c *cpioWriter) trailer()                                { c.entry("TRAILER!!!", 0, nil) }
