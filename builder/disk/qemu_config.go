//go:generate packer-sdc struct-markdown

package disk

import (
	"errors"
	"fmt"
	"os"
	"regexp"
	"strings"
	"time"

	"github.com/osimage/packer-plugin-osimage/internal/qemu"
)

// QEMUConfig is the `qemu {}` block: boot the disk in QEMU after it is made,
// to run Packer's provisioners over the communicator and/or to check that
// it boots (`boot_check`). Without the block the disk is never booted.
type QEMUConfig struct {
	// The QEMU system emulator. Default `qemu-system-x86_64` or
	// `qemu-system-aarch64` from `arch`.
	Binary string `mapstructure:"binary"`
	// Machine type. Default `q35` (x86_64), `virt,gic-version=max` (aarch64).
	Machine string `mapstructure:"machine"`
	// CPU model. Default `host` under KVM, `max` under TCG.
	CPUModel string `mapstructure:"cpu_model"`
	// Memory in MiB. Default 1024.
	Memory int `mapstructure:"memory"`
	// Virtual CPUs. Default 2.
	CPUs int `mapstructure:"cpus"`
	// `kvm`, `tcg` or `auto` (default). `auto` takes KVM only when the guest
	// arch is this host's and a tiny test guest actually booted under KVM
	// (once per Packer run); otherwise TCG, multi-threaded. The UI says which
	// and why.
	Accelerator string `mapstructure:"accelerator"`
	// UEFI code file (read-only pflash, raw or qcow2, detected). Default: the
	// first installed of the paths Debian, Ubuntu, Fedora, Arch and QEMU
	// itself install (OVMF_CODE_4M.fd, OVMF_CODE.fd, AAVMF_CODE.fd, ...).
	// Only with `firmware = "uefi"`.
	FirmwareCode string `mapstructure:"firmware_code"`
	// UEFI vars template; each build boots with its own writable copy.
	// Default: the one that goes with the code file.
	FirmwareVars string `mapstructure:"firmware_vars"`
	// More QEMU arguments, appended as given (a list, never through a shell).
	ExtraArgs []string `mapstructure:"extra_args"`
	// Direct kernel boot: a kernel file to boot instead of the disk's boot
	// loader.
	Kernel string `mapstructure:"kernel"`
	// Initramfs for `kernel`.
	Initrd string `mapstructure:"initrd"`
	// Kernel command line for `kernel`.
	Append string `mapstructure:"append"`
	// Command run over the communicator to power the guest off after
	// provisioning. Default: ACPI power-off through QEMU's QMP socket.
	ShutdownCommand string `mapstructure:"shutdown_command"`
	// How long QEMU may take to exit after the shutdown request before it is
	// killed. Default `5m`.
	ShutdownTimeout time.Duration `mapstructure:"shutdown_timeout"`
	// Watch the serial console (written to serial.log in the output
	// directory) for a pattern: the smoke test that the image boots. With
	// `communicator = "none"` the VM is then powered off and the disk is left
	// unchanged (QEMU's snapshot mode); with `ssh` it is checked before
	// connecting.
	BootCheck *BootCheckConfig `mapstructure:"boot_check"`

	bootRE *regexp.Regexp
}

// BootCheckConfig is the `boot_check {}` block inside `qemu {}`.
type BootCheckConfig struct {
	// Regular expression (Go syntax) the serial console must show, for
	// example `login:`.
	Expect string `mapstructure:"expect" required:"true"`
	// How long the boot may take. Default `5m`; give TCG boots more.
	Timeout time.Duration `mapstructure:"timeout"`
}

// prepare checks the block against the build's arch and firmware.
func (q *QEMUConfig) prepare(arch, firmware, commType string) []error {
	var errs []error
	switch q.Accelerator = strings.ToLower(strings.TrimSpace(q.Accelerator)); q.Accelerator {
	case "":
		q.Accelerator = qemu.AccelAuto
	case qemu.AccelAuto, qemu.AccelKVM, qemu.AccelTCG:
	default:
		errs = append(errs, fmt.Errorf("qemu.accelerator = %q: want \"auto\", \"kvm\" or \"tcg\"", q.Accelerator))
	}
	if q.Memory < 0 || q.CPUs < 0 {
		errs = append(errs, fmt.Errorf("qemu.memory = %d, qemu.cpus = %d: must not be negative", q.Memory, q.CPUs))
	}
	if firmware != "uefi" && (q.FirmwareCode != "" || q.FirmwareVars != "") {
		errs = append(errs, fmt.Errorf("qemu.firmware_code and firmware_vars need firmware = \"uefi\" (firmware is %q)", firmware))
	}
	if arch == qemu.ArchAarch64 && firmware != "uefi" && q.Kernel == "" {
		errs = append(errs, errors.New(`qemu: an aarch64 guest has no BIOS: set firmware = "uefi" or qemu.kernel`))
	}
	for _, f := range []struct{ name, path string }{
		{"qemu.firmware_code", q.FirmwareCode}, {"qemu.firmware_vars", q.FirmwareVars},
		{"qemu.kernel", q.Kernel}, {"qemu.initrd", q.Initrd},
	} {
		if f.path == "" {
			continue
		}
		if st, err := os.Stat(f.path); err != nil || !st.Mode().IsRegular() {
			errs = append(errs, fmt.Errorf("%s = %q: not a readable file", f.name, f.path))
		}
	}
	if (q.Initrd != "" || q.Append != "") && q.Kernel == "" {
		errs = append(errs, errors.New("qemu.initrd and qemu.append need qemu.kernel"))
	}
	if q.ShutdownTimeout == 0 {
		q.ShutdownTimeout = 5 * time.Minute
	}
	if q.ShutdownCommand != "" && commType == "none" {
		errs = append(errs, errors.New(`qemu.shutdown_command needs a communicator (communicator = "none" cannot run it)`))
	}
	if b := q.BootCheck; b != nil {
		re, err := regexp.Compile(b.Expect)
		switch {
		case b.Expect == "":
			errs = append(errs, errors.New("qemu.boot_check.expect is required: a regular expression the serial console must show"))
		case err != nil:
			errs = append(errs, fmt.Errorf("qemu.boot_check.expect = %q: %w", b.Expect, err))
		}
		q.bootRE = re
		if b.Timeout == 0 {
			b.Timeout = 5 * time.Minute
		}
		if b.Timeout < 0 {
			errs = append(errs, fmt.Errorf("qemu.boot_check.timeout = %v: must be positive", b.Timeout))
		}
	}
	if q.BootCheck == nil && commType == "none" {
		errs = append(errs, errors.New(`qemu: nothing to do: add boot_check { expect = "..." } or a communicator (communicator = "ssh") to run provisioners`))
	}
	return errs
}
