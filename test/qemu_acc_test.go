package test

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/osimage/packer-plugin-osimage/builder/disk/disktest"
	"github.com/osimage/packer-plugin-osimage/internal/qemu"
	"github.com/osimage/packer-plugin-osimage/internal/qemu/qemutest"
	"github.com/osimage/packer-plugin-osimage/internal/testutil"
	"github.com/osimage/packer-plugin-osimage/test/acc"
)

// Two variants booted side by side (Packer runs a template's builds in
// parallel): one with SeaBIOS, one with UEFI. The guest is Debian's kernel
// with a busybox initramfs (direct kernel boot) on a disk made by the test.
const qemuBootCheckTemplate = acc.RequiredPlugins + `
variable "src"    { type = string }
variable "out"    { type = string }
variable "kernel" { type = string }
variable "initrd" { type = string }
variable "append" { type = string }
variable "expect" { type = string }
variable "wait"   { type = string }

source "osimage-disk" "check" {
  source_image = var.src
  arch         = "x86_64"
  boot_files   = "never"
  communicator = "none"
  qemu {
    accelerator = "auto"
    memory      = 512
    kernel      = var.kernel
    initrd      = var.initrd
    append      = var.append
    shutdown_timeout = "1m"
    boot_check {
      expect  = var.expect
      timeout = var.wait
    }
  }
}

build {
  source "source.osimage-disk.check" {
    name             = "bios"
    key              = "check-bios"
    firmware         = "bios"
    output_directory = "${var.out}/bios"
  }
  source "source.osimage-disk.check" {
    name             = "uefi"
    key              = "check-uefi"
    firmware         = "uefi"
    output_directory = "${var.out}/uefi"
  }
}
`

func TestPackerBootChecksTwoVariantsSideBySideWithoutChangingTheDisk(t *testing.T) {
	t.Parallel()
	env := acc.Setup(t)
	testutil.NeedTool(t, "qemu-system-x86_64", "qemu-system-x86")
	g := qemutest.New(t, "x86_64")
	dir := t.TempDir()
	d := disktest.Make(t, dir, "src.raw", disktest.Options{})
	out := filepath.Join(dir, "out")
	acc.WriteTemplate(t, dir, "qemu.pkr.hcl", qemuBootCheckTemplate)
	vars := []string{"-var", "src=" + d.Path, "-var", "out=" + out, "-var", "kernel=" + g.Kernel, "-var", "initrd=" + g.Initrd,
		"-var", "append=" + g.Append("powerdown"), "-var", "expect=" + qemutest.Marker + "x86_64", "-var", "wait=8m"}
	srcSum := fileSHA256(t, d.Path)
	// The plugin's temporary QEMU directories go to a TMPDIR of this test's
	// own, so the check below does not see those of tests running beside it.
	// A short path: packer and the plugin put their Unix sockets there too
	// (at most 107 bytes).
	tmp, err := os.MkdirTemp("", "osq")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(tmp) })

	r := env.MustRun(t, dir, []string{"TMPDIR=" + tmp}, append([]string{"build"}, append(vars, ".")...)...)
	o := r.Output()
	for _, want := range []string{"QEMU accelerator: ", "boot_check passed", "QEMU exited", "bios firmware", "uefi firmware"} {
		if !strings.Contains(o, want) {
			t.Errorf("output lacks %q", want)
		}
	}
	if _, err := os.Stat("/dev/kvm"); err != nil && !strings.Contains(o, "QEMU accelerator: TCG: KVM is not usable here") {
		t.Errorf("without /dev/kvm auto must say it takes TCG and why:\n%s", o)
	}
	for _, v := range []string{"bios", "uefi"} {
		log, err := os.ReadFile(filepath.Join(out, v, "serial.log"))
		if err != nil || !strings.Contains(string(log), qemutest.Marker+"x86_64") {
			t.Errorf("%s: serial.log lacks the marker: %v\n%s", v, err, log)
		}
		if !strings.Contains(o, filepath.Join(out, v, "serial.log")) {
			t.Errorf("%s: the artifact does not list serial.log", v)
		}
		if got := fileSHA256(t, filepath.Join(out, v, "check-"+v+".raw")); got != srcSum {
			t.Errorf("%s: boot_check changed the disk (it runs on a snapshot)", v)
		}
	}
	if ents, _ := filepath.Glob(filepath.Join(tmp, "osimage-qemu-*")); len(ents) != 0 {
		t.Errorf("temporary QEMU directories left behind: %v", ents)
	}
}

func TestPackerBootCheckTimeoutFailsWithTheSerialTail(t *testing.T) {
	t.Parallel()
	env := acc.Setup(t)
	testutil.NeedTool(t, "qemu-system-x86_64", "qemu-system-x86")
	g := qemutest.New(t, "x86_64")
	dir := t.TempDir()
	d := disktest.Make(t, dir, "src.raw", disktest.Options{})
	out := filepath.Join(dir, "out")
	acc.WriteTemplate(t, dir, "qemu.pkr.hcl", qemuBootCheckTemplate)
	vars := []string{"-var", "src=" + d.Path, "-var", "out=" + out, "-var", "kernel=" + g.Kernel, "-var", "initrd=" + g.Initrd,
		"-var", "append=" + g.Append("ignore"), "-var", "expect=login:", "-var", "wait=90s"}
	r := env.Run(t, dir, nil, append([]string{"build", "-only=*.bios"}, append(vars, ".")...)...)
	o := r.Output()
	if r.Err == nil {
		t.Fatalf("a boot_check that never matches must fail the build:\n%s", o)
	}
	for _, want := range []string{"boot_check: timed out after 1m30s", `"login:"`, "last 40 lines of the serial console", "osimage-guest line 45"} {
		if !strings.Contains(o, want) {
			t.Errorf("output lacks %q:\n%s", want, o)
		}
	}
	if _, err := os.Stat(filepath.Join(out, "bios")); !os.IsNotExist(err) {
		t.Errorf("a failed build leaves its output directory: %v", err)
	}
}

const qemuSSHTemplate = acc.RequiredPlugins + `
variable "src"    { type = string }
variable "out"    { type = string }
variable "kernel" { type = string }
variable "initrd" { type = string }
variable "append" { type = string }
variable "inline" { type = list(string) }
variable "ssh_timeout" {
  type    = string
  default = "5m"
}

source "osimage-disk" "prov" {
  source_image     = var.src
  key              = "prov"
  arch             = "x86_64"
  firmware         = "bios"
  boot_files       = "never"
  output_directory = var.out
  communicator     = "ssh"
  ssh_username     = "root"
  ssh_timeout      = var.ssh_timeout
  qemu {
    accelerator = "tcg"
    memory      = 512
    kernel      = var.kernel
    initrd      = var.initrd
    append      = var.append
  }
}

build {
  sources = ["source.osimage-disk.prov"]
  provisioner "shell" {
    inline = var.inline
  }
}
`

// The guest has no sshd: the SDK's StepConnect times out, the build fails,
// QEMU is killed and the port lock is released.
func TestPackerSSHThatNeverAnswersFailsAndLeavesNothingRunning(t *testing.T) {
	t.Parallel()
	env := acc.Setup(t)
	testutil.NeedTool(t, "qemu-system-x86_64", "qemu-system-x86")
	g := qemutest.New(t, "x86_64")
	dir := t.TempDir()
	d := disktest.Make(t, dir, "src.raw", disktest.Options{})
	out := filepath.Join(dir, "out")
	acc.WriteTemplate(t, dir, "ssh.pkr.hcl", qemuSSHTemplate)
	r := env.Run(t, dir, nil, "build", "-var", "src="+d.Path, "-var", "out="+out, "-var", "kernel="+g.Kernel,
		"-var", "initrd="+g.Initrd, "-var", "append="+g.Append("ignore"), "-var", `inline=["echo never runs"]`, "-var", "ssh_timeout=90s", ".")
	o := r.Output()
	if r.Err == nil {
		t.Fatalf("SSH cannot answer, yet the build passed:\n%s", o)
	}
	if port := failedBuildLeftNothing(t, out, o); port < 2222 || port > 4444 {
		t.Errorf("port %d is outside Packer's range 2222-4444", port)
	}
	if !strings.Contains(o, "Timeout waiting for SSH") || !strings.Contains(o, "last 40 lines of the serial console") || !strings.Contains(o, qemutest.Marker+"x86_64") {
		t.Errorf("want the SDK's SSH timeout and the serial tail:\n%s", o)
	}
	if strings.Contains(o, "never runs") {
		t.Error("the provisioner ran")
	}
}

// failedBuildLeftNothing checks what a failed qemu build must leave: no
// QEMU, the forwarded port (read from the output o) free to lock again, no
// output directory. It returns the port.
func failedBuildLeftNothing(t *testing.T, out, o string) int {
	t.Helper()
	if b, _ := exec.Command("pgrep", "-f", "serial0,path="+out).Output(); len(b) != 0 {
		t.Errorf("QEMU still running: pids %s", b)
	}
	m := regexp.MustCompile(`Guest port 22 is forwarded from 127\.0\.0\.1:(\d+)`).FindStringSubmatch(o)
	if m == nil {
		t.Fatalf("the forwarded port is not shown:\n%s", o)
	}
	if c, err := net.Listen("tcp", "127.0.0.1:"+m[1]); err != nil {
		t.Errorf("port %s still taken: %v", m[1], err)
	} else {
		c.Close()
	}
	if _, err := os.Stat(out); !os.IsNotExist(err) {
		t.Errorf("a failed build leaves its output directory: %v", err)
	}
	port, _ := strconv.Atoi(m[1])
	return port
}

// The whole path a user takes to customise an image, through
// example/disk/qemu: Packer creates a
// temporary key pair, the guest gets its public key as the systemd
// credential ssh.authorized_keys.root (SMBIOS), Packer's shell provisioner
// runs over real SSH (dropbear in the guest, scp for the script), writes a
// file into the disk's root filesystem, the guest is shut down with
// shutdown_command, and the boot files are extracted again from the
// provisioned disk: the file is in the output disk and in the rootfs.
func TestPackerProvisionsTheDiskOverSSHWithATemporaryKey(t *testing.T) {
	t.Parallel()
	env := acc.Setup(t)
	testutil.NeedTool(t, "qemu-system-x86_64", "qemu-system-x86")
	debugfs := testutil.NeedTool(t, "debugfs", "e2fsprogs")
	g := qemutest.NewSSH(t)
	dir := t.TempDir()
	d := disktest.Make(t, dir, "src.raw", disktest.Options{})
	srcSum := fileSHA256(t, d.Path)
	out := filepath.Join(dir, "out")
	r := env.MustRun(t, dir, nil, "build", "-var", "source_image="+d.Path, "-var", "output_directory="+out, "-var", "kernel="+g.Kernel,
		"-var", "initrd="+g.Initrd, "-var", "append="+g.Append("ssh"), "-var", "root=/mnt",
		"-var", "shutdown_command=sync; umount /mnt; poweroff -f", filepath.Join(env.Root, "example", "disk", "qemu"))
	o := r.Output()
	for _, want := range []string{"Creating temporary RSA SSH key", "ssh.authorized_keys.root", "Connected to SSH!",
		"guest-says-x86_64", `Shutting the guest down with "sync; umount /mnt; poweroff -f"`, "QEMU exited",
		"Extracting kernel, initramfs and rootfs"} {
		if !strings.Contains(o, want) {
			t.Errorf("output lacks %q:\n%s", want, o)
		}
	}
	if strings.Contains(o, "BEGIN RSA PRIVATE KEY") || strings.Contains(o, "BEGIN OPENSSH PRIVATE KEY") {
		t.Error("the temporary private key is printed")
	}
	want := "provisioned by custom over ssh\n"
	// The root filesystem inside the output disk, and the extracted rootfs.
	part := filepath.Join(dir, "root.part")
	testutil.Run(t, "dd", "if="+filepath.Join(out, "custom-x86_64-baremetal.raw"), "of="+part, "bs=1M", "iflag=skip_bytes,count_bytes",
		"skip="+strconv.FormatInt(d.RootStart, 10), "count="+strconv.FormatInt(d.RootSize, 10), "status=none")
	for _, fs := range []string{part, filepath.Join(out, "custom-x86_64-baremetal.rootfs")} {
		got, err := exec.Command(debugfs, "-R", "cat /etc/provisioned", fs).Output()
		if err != nil || string(got) != want {
			t.Errorf("%s: /etc/provisioned is %q (%v), want %q: the provisioner's write did not reach the image", filepath.Base(fs), got, err, want)
		}
	}
	if fileSHA256(t, d.Path) != srcSum {
		t.Error("the source image changed: the build must boot its own copy")
	}
	if b, _ := exec.Command("pgrep", "-f", "serial0,path="+out).Output(); len(b) != 0 {
		t.Errorf("QEMU still running: pids %s", b)
	}
}

// A provisioner that fails, and Ctrl-C while one runs: the build fails,
// QEMU is gone, the forwarded port is free again and the output directory
// is removed (nothing half-provisioned is left looking like a result).
func TestPackerStopsTheVMWhenAProvisionerFailsOrTheUserPressesCtrlC(t *testing.T) {
	t.Parallel()
	env := acc.Setup(t)
	testutil.NeedTool(t, "qemu-system-x86_64", "qemu-system-x86")
	g := qemutest.NewSSH(t)
	dir := t.TempDir()
	d := disktest.Make(t, dir, "src.raw", disktest.Options{})
	acc.WriteTemplate(t, dir, "prov.pkr.hcl", qemuSSHTemplate)
	args := func(out, inline string) []string {
		return []string{"build", "-var", "src=" + d.Path, "-var", "out=" + out, "-var", "kernel=" + g.Kernel,
			"-var", "initrd=" + g.Initrd, "-var", "append=" + g.Append("ssh"), "-var", "inline=" + inline, "."}
	}
	t.Run("provisioner fails", func(t *testing.T) {
		out := filepath.Join(dir, "fail")
		r := env.Run(t, dir, nil, args(out, `["echo before-the-failure", "exit 7"]`)...)
		o := r.Output()
		if r.Err == nil || !strings.Contains(o, "before-the-failure") || !strings.Contains(o, "exit status: 7") {
			t.Fatalf("want the provisioner's failure (exit status 7) to fail the build (err %v):\n%s", r.Err, o)
		}
		failedBuildLeftNothing(t, out, o)
	})

	t.Run("Ctrl-C while a provisioner runs", func(t *testing.T) {
		out := filepath.Join(dir, "cancel")
		p := env.Start(t, dir, nil, args(out, `["echo provisioning-started", "sleep 600"]`)...)
		p.WaitUntil(t, "the provisioner ran", 5*time.Minute, func() bool { return strings.Contains(p.Output(), "provisioning-started") })
		p.Interrupt(t, 2*time.Minute)
		failedBuildLeftNothing(t, out, p.Output())
	})
}

// Smoke-test guests that print the pattern and power off at once, x86_64
// and aarch64 side by side (issue 22: QEMU exiting under the QMP power-off
// request failed the aarch64 build in two runs of four).
const qemuPowerOffAtOnceTemplate = acc.RequiredPlugins + `
variable "src"  { type = string }
variable "out"  { type = string }
variable "x86"  { type = map(string) }
variable "arm"  { type = map(string) }

source "osimage-disk" "smoke" {
  source_image = var.src
  boot_files   = "never"
  communicator = "none"
}

build {
  source "source.osimage-disk.smoke" {
    name             = "x86"
    key              = "smoke-x86"
    arch             = "x86_64"
    firmware         = "bios"
    output_directory = "${var.out}/x86"
    qemu {
      accelerator = "tcg"
      kernel      = var.x86.kernel
      initrd      = var.x86.initrd
      append      = var.x86.append
      boot_check {
        expect  = var.x86.expect
        timeout = "8m"
      }
    }
  }
  source "source.osimage-disk.smoke" {
    name             = "arm"
    key              = "smoke-arm"
    arch             = "aarch64"
    firmware         = "uefi"
    output_directory = "${var.out}/arm"
    qemu {
      accelerator = "tcg"
      kernel      = var.arm.kernel
      initrd      = var.arm.initrd
      append      = var.arm.append
      boot_check {
        expect  = var.arm.expect
        timeout = "8m"
      }
    }
  }
}
`

func TestPackerGuestsThatPowerOffRightAfterTheBootCheckSucceedEveryTime(t *testing.T) {
	t.Parallel()
	env := acc.Setup(t)
	testutil.NeedTool(t, "qemu-system-x86_64", "qemu-system-x86")
	testutil.NeedTool(t, "qemu-system-aarch64", "qemu-system-arm")
	guests := map[string]qemutest.Guest{"x86": qemutest.New(t, "x86_64"), "arm": qemutest.New(t, "aarch64")}
	dir := t.TempDir()
	d := disktest.Make(t, dir, "src.raw", disktest.Options{})
	srcSum := fileSHA256(t, d.Path)
	acc.WriteTemplate(t, dir, "smoke.pkr.hcl", qemuPowerOffAtOnceTemplate)
	vars := []string{"-var", "src=" + d.Path}
	for name, g := range guests {
		vars = append(vars, "-var", fmt.Sprintf(`%s={kernel=%q, initrd=%q, append=%q, expect=%q}`,
			name, g.Kernel, g.Initrd, g.Append("exit"), qemutest.Marker+g.Arch))
	}
	for run := range 3 {
		out := filepath.Join(dir, fmt.Sprintf("run%d", run))
		r := env.MustRun(t, dir, nil, append([]string{"build", "-parallel-builds=2", "-var", "out=" + out}, append(vars, ".")...)...)
		o := r.Output()
		if strings.Contains(o, "did not power off") || strings.Count(o, "QEMU exited") != 2 {
			t.Errorf("run %d: both guests power off cleanly:\n%s", run, o)
		}
		for name, g := range guests {
			tail := qemu.Tail(filepath.Join(out, name, "serial.log"), 3)
			if !slices.Contains(tail, qemutest.Marker+g.Arch) || len(tail) == 0 || !strings.HasSuffix(tail[len(tail)-1], "reboot: Power down") {
				t.Errorf("run %d, %s: serial.log must be complete, the marker then the power-off; it ends with %q", run, name, tail)
			}
			if got := fileSHA256(t, filepath.Join(out, name, "smoke-"+name+".raw")); got != srcSum {
				t.Errorf("run %d, %s: the disk changed (boot_check runs on a snapshot)", run, name)
			}
		}
	}
}
