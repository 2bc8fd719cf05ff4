// Package qemutest makes the tiny guests the QEMU tests boot: Debian's own
// kernel (fetched by scripts/qemu-guests.sh) with a busybox initramfs packed
// here, whose /init prints 45 numbered lines and then Marker+arch on the
// serial console. It imports nothing from the plugin, so both internal/qemu
// and the acceptance tests use it.
package qemutest

import (
	"bytes"
	"errors"
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

// SSHInit is the initramfs's /init of the SSH guest (NewSSH): it mounts the
// root filesystem of its disk (partition 2 of the first virtio disk) on
// /mnt, brings up QEMU's user network, authorizes the key handed over as
// the systemd credential ssh.authorized_keys.root (SMBIOS type 11) for root,
// starts dropbear on port 22 and prints Marker+arch. The ACPI power button
// unmounts /mnt and powers off.
const SSHInit = `#!/bin/busybox sh
/bin/busybox --install -s /bin
export PATH=/bin
mkdir -p /proc /sys /dev /tmp /mnt /root/.ssh /etc/dropbear /etc/acpi/PWRF
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
mkdir -p /dev/pts && mount -t devpts devpts /dev/pts
for m in /lib/modules/*.ko /lib/evdev.ko /lib/button.ko; do insmod $m || echo "osimage-guest: insmod $m failed"; done
printf '#!/bin/sh\nsync\numount /mnt\npoweroff -f\n' > /etc/acpi/PWRF/00000080
chmod +x /etc/acpi/PWRF/00000080
acpid -c /etc/acpi -l /dev/null
i=0
while [ -e /sys/block/vda ] && [ ! -b /dev/vda2 ] && [ $i -lt 20 ]; do sleep 1; i=$((i+1)); done
[ -b /dev/vda2 ] && mount -t ext4 /dev/vda2 /mnt && echo "osimage-guest: /dev/vda2 mounted on /mnt"
ip link set lo up
ip link set eth0 up && ip addr add 10.0.2.15/24 dev eth0 && ip route add default via 10.0.2.2
echo 'root:x:0:0:root:/root:/bin/sh' > /etc/passwd
echo 'root:x:0:' > /etc/group
strings /sys/firmware/dmi/tables/DMI | sed -n 's/^io.systemd.credential:ssh.authorized_keys.root=//p' > /root/.ssh/authorized_keys
chmod 700 /root /root/.ssh
chmod 600 /root/.ssh/authorized_keys
echo "osimage-guest: $(wc -l < /root/.ssh/authorized_keys) authorized key(s) from SMBIOS"
dropbear -R -E -F -s -p 22 &
echo "OSIMAGE-GUEST-UP arch=$(uname -m)"
while :; do sleep 3600; done
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
	initrd, err := Pack(t.TempDir(), arch, Init, false)
	if err != nil {
		t.Fatal(err)
	}
	console := "ttyS0"
	if arch == "aarch64" {
		console = "ttyAMA0"
	}
	return Guest{Arch: arch, Kernel: kernel, Initrd: initrd, Console: console}
}

// NewSSH returns an x86_64 guest that Packer reaches over SSH (see
// SSHInit): New's busybox initramfs plus the files scripts/qemu-guests.sh
// put in .tools/guests/amd64/ssh (the kernel's virtio and ext4 modules,
// dropbear, scp and their libraries). Boot it with Append("ssh") and a
// disk made by disktest.Make.
func NewSSH(t testing.TB) Guest {
	t.Helper()
	g := New(t, "x86_64")
	initrd, err := Pack(t.TempDir(), "x86_64", SSHInit, true)
	if errors.Is(err, errNoSSHGuest) {
		if os.Getenv(RequireEnv) == "1" {
			t.Fatal(err.Error() + " (" + RequireEnv + "=1 forbids skipping)")
		}
		t.Skip(err)
	}
	if err != nil {
		t.Fatal(err)
	}
	g.Initrd = initrd
	return g
}

var errNoSSHGuest = errors.New("SSH test guest missing: run ./scripts/qemu-guests.sh (make tools runs it)")

// Pack writes an initramfs for arch into dir and returns its path: busybox
// (also as /bin/sh), init as /init, on x86_64 the ACPI button modules acpid
// needs in /lib and, with ssh, the SSH guest's files (see NewSSH). The
// kernel to boot it with is .tools/guests/<deb arch>/vmlinuz.
func Pack(dir, arch, init string, ssh bool) (string, error) {
	deb := map[string]string{"x86_64": "amd64", "aarch64": "arm64"}[arch]
	guests := filepath.Join(ModuleRoot(), ".tools", "guests", deb)
	sshDir := filepath.Join(guests, "ssh")
	if _, err := os.Stat(filepath.Join(sshDir, ".complete")); ssh && (arch != "x86_64" || err != nil) {
		return "", fmt.Errorf("%w (%s)", errNoSSHGuest, sshDir)
	}
	var buf bytes.Buffer
	w := cpioWriter{w: &buf}
	w.dir("bin")
	w.dir("lib")
	w.file("init", 0o755, []byte(init))
	files := [][2]string{{"busybox", "bin/busybox"}, {"busybox", "bin/sh"}}
	if arch == "x86_64" { // the ACPI power button reaches acpid through these
		files = append(files, [2]string{"evdev.ko", "lib/evdev.ko"}, [2]string{"button.ko", "lib/button.ko"})
	}
	for _, f := range files {
		data, err := os.ReadFile(filepath.Join(guests, f[0]))
		if err != nil {
			return "", fmt.Errorf("%w: run ./scripts/qemu-guests.sh", err)
		}
		w.file(f[1], 0o755, data)
	}
	if ssh {
		err := filepath.WalkDir(sshDir, func(p string, d os.DirEntry, err error) error {
			if err != nil || p == sshDir || d.Name() == ".complete" {
				return err
			}
			rel, _ := filepath.Rel(sshDir, p)
			if d.IsDir() {
				if rel != "bin" && rel != "lib" {
					w.dir(rel)
				}
				return nil
			}
			data, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			w.file(rel, 0o755, data)
			return nil
		})
		if err != nil {
			return "", err
		}
	}
	w.trailer()
	initrd := filepath.Join(dir, "initrd.cpio")
	return initrd, os.WriteFile(initrd, buf.Bytes(), 0o644)
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
