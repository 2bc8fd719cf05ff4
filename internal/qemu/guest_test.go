package qemu

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/osimage/packer-plugin-osimage/internal/testutil"
)

// The test guests: Debian's own kernel and a busybox initramfs the tests
// pack themselves. scripts/qemu-guests.sh fetches kernel and busybox.

// guestInit is the initramfs's /init. It prints 45 numbered lines, then the
// marker, then acts on osimage.mode= from the kernel command line:
// powerdown (handle the ACPI power button by powering off), ignore (never
// power off) or exit (power off at once).
const guestInit = `#!/bin/busybox sh
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

// guestMarker is what the guest prints once its init runs.
const guestMarker = `OSIMAGE-GUEST-UP arch=`

type guest struct {
	arch    string
	kernel  string
	initrd  string
	console string
}

// testGuest returns the kernel and a freshly packed initramfs for arch, or
// skips (fails under OSIMAGE_REQUIRE_TOOLS=1) saying how to fetch them.
func testGuest(t testing.TB, arch string) guest {
	t.Helper()
	deb := map[string]string{ArchX86_64: "amd64", ArchAarch64: "arm64"}[arch]
	dir := filepath.Join(moduleRoot(t), ".tools", "guests", deb)
	kernel, bb := filepath.Join(dir, "vmlinuz"), filepath.Join(dir, "busybox")
	if !isFile(kernel) || !isFile(bb) {
		msg := fmt.Sprintf("test guest for %s missing in %s: run ./scripts/qemu-guests.sh (make tools runs it)", arch, dir)
		if os.Getenv(testutil.RequireEnv) == "1" {
			t.Fatal(msg + " (" + testutil.RequireEnv + "=1 forbids skipping)")
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
	w.file("init", 0o755, []byte(guestInit))
	if arch == ArchX86_64 { // the ACPI power button reaches acpid through these
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
	if arch == ArchAarch64 {
		console = "ttyAMA0"
	}
	return guest{arch: arch, kernel: kernel, initrd: initrd, console: console}
}

// launch is a direct kernel boot of the guest under TCG with its files in
// dir.
func (g guest) launch(dir, mode string) Launch {
	return Launch{
		Arch: g.arch, Accel: AccelTCG, Memory: 512, CPUs: 2,
		Kernel: g.kernel, Initrd: g.initrd,
		Append:    "console=" + g.console + " quiet panic=-1 rdinit=/init osimage.mode=" + mode,
		SerialLog: filepath.Join(dir, "serial.log"), QMPSocket: filepath.Join(dir, "qmp.sock"),
		Extra: []string{"-no-reboot"},
	}
}

func needQEMU(t testing.TB, arch string) {
	t.Helper()
	testutil.NeedTool(t, BinaryFor(arch), DebianPackage(arch))
}

func moduleRoot(t testing.TB) string {
	t.Helper()
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..")
}

// shortDir is a temporary directory with a short path: unix socket paths
// are limited to 107 bytes and t.TempDir's can be longer.
func shortDir(t testing.TB) string {
	t.Helper()
	d, err := os.MkdirTemp("", "oq")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(d) })
	return d
}

func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
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

func lastLine(lines []string) string {
	if len(lines) == 0 {
		return ""
	}
	return strings.TrimSpace(lines[len(lines)-1])
}

// needFirmware finds the host's UEFI firmware for arch, or skips (fails
// under OSIMAGE_REQUIRE_TOOLS=1) naming the package.
func needFirmware(t testing.TB, arch string) Firmware {
	t.Helper()
	fw, err := FindFirmware("", arch, FirmwareUEFI, "", "")
	if err != nil {
		if os.Getenv(testutil.RequireEnv) == "1" {
			t.Fatal(err.Error() + " (" + testutil.RequireEnv + "=1 forbids skipping)")
		}
		t.Skip(err)
	}
	return fw
}

func dialTCP(port int) (net.Conn, error) {
	return net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port))
}
