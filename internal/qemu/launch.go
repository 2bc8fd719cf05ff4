// Package qemu boots a disk in QEMU for the disk builder: the launch is data
// (Launch) turned into an argv by one pure function, the accelerator is
// chosen by booting a tiny guest rather than by opening /dev/kvm, and a
// running VM is watched through its serial log and stopped through QMP.
//
// Design choice: the serial console goes to a file that is polled, not to a
// pipe, so the log survives the build for the user and a stalled reader can
// never block the guest.
package qemu

import (
	"fmt"
	"runtime"
	"strconv"
	"strings"
)

// Guest architectures, spelled as the variant model spells them.
const (
	ArchX86_64  = "x86_64"
	ArchAarch64 = "aarch64"
)

// Accelerators.
const (
	AccelKVM  = "kvm"
	AccelTCG  = "tcg"
	AccelAuto = "auto"
)

// Firmware kinds.
const (
	FirmwareBIOS = "bios"
	FirmwareUEFI = "uefi"
)

// Launch describes one QEMU run. Zero fields take the defaults of Arch
// (see Args).
type Launch struct {
	Binary  string // default qemu-system-<Arch>
	Arch    string // x86_64 or aarch64
	Machine string // default q35 (x86_64), virt,gic-version=max (aarch64)
	CPU     string // default host (kvm), max (tcg)
	Memory  int    // MiB, default 1024
	CPUs    int    // default 2
	Accel   string // kvm or tcg (resolve auto with Prober.Choose first)

	Firmware Firmware // Kind "" or bios: SeaBIOS (x86_64 only)

	Disk       string // the disk, attached as virtio
	DiskFormat string // default raw
	// Snapshot keeps the disk unchanged: the guest's writes go to a
	// temporary overlay QEMU drops on exit (a boot check without
	// provisioning must not alter the image it checks).
	Snapshot bool

	SerialLog string // file the serial console is written to (required)
	QMPSocket string // unix socket for QMP (required)

	// SSHHostPort > 0 adds user-mode networking forwarding
	// 127.0.0.1:SSHHostPort to the guest's GuestPort (default 22).
	SSHHostPort int
	GuestPort   int

	Kernel string // direct kernel boot
	Initrd string
	Append string

	// Credentials are handed to the guest as systemd credentials through
	// SMBIOS type 11 strings (io.systemd.credential:NAME=VALUE), which
	// systemd 252 and later imports at boot; ssh.authorized_keys.root, for
	// one, becomes root's authorized_keys. Other guests can read them from
	// /sys/firmware/dmi/tables/DMI.
	Credentials []Credential

	Extra []string // appended as given, never through a shell
}

// Credential is one systemd credential (see Launch.Credentials).
type Credential struct {
	Name, Value string
}

// HostArch is this machine's architecture in the variant model's spelling.
func HostArch() string { return archOf(runtime.GOARCH) }

func archOf(goarch string) string {
	switch goarch {
	case "amd64":
		return ArchX86_64
	case "arm64":
		return ArchAarch64
	}
	return goarch
}

// BinaryFor is the QEMU system emulator for a guest architecture.
func BinaryFor(arch string) string { return "qemu-system-" + arch }

// DebianPackage names the Debian/Ubuntu package that installs the emulator.
func DebianPackage(arch string) string {
	if arch == ArchAarch64 {
		return "qemu-system-arm"
	}
	return "qemu-system-x86"
}

// DefaultMachine is the machine type for a guest architecture.
func DefaultMachine(arch string) string {
	if arch == ArchAarch64 {
		return "virt,gic-version=max"
	}
	return "q35"
}

// DefaultCPU is the CPU model for an accelerator: the host's own under KVM,
// every feature TCG emulates otherwise.
func DefaultCPU(accel string) string {
	if accel == AccelKVM {
		return "host"
	}
	return "max"
}

// Args returns the complete argv (binary first) for l, or an error naming
// the field that is wrong. It does no I/O.
func (l Launch) Args() ([]string, error) {
	switch l.Arch {
	case ArchX86_64, ArchAarch64:
	default:
		return nil, fmt.Errorf("qemu: arch %q: expected %s or %s", l.Arch, ArchX86_64, ArchAarch64)
	}
	var accel string
	switch l.Accel {
	case AccelKVM:
		accel = "kvm"
	case AccelTCG:
		accel = "tcg,thread=multi"
	default:
		return nil, fmt.Errorf("qemu: accelerator %q: expected %s or %s (resolve %s first)", l.Accel, AccelKVM, AccelTCG, AccelAuto)
	}
	if l.Memory < 0 || l.CPUs < 0 {
		return nil, fmt.Errorf("qemu: memory %d MiB and cpus %d must not be negative", l.Memory, l.CPUs)
	}
	if l.SerialLog == "" || l.QMPSocket == "" {
		return nil, fmt.Errorf("qemu: a serial log file and a QMP socket are required")
	}
	if l.Disk == "" && l.Kernel == "" {
		return nil, fmt.Errorf("qemu: nothing to boot: set a disk or a kernel")
	}
	if (l.Initrd != "" || l.Append != "") && l.Kernel == "" {
		return nil, fmt.Errorf("qemu: initrd and append need a kernel (direct kernel boot)")
	}
	fw := l.Firmware
	switch fw.Kind {
	case "", FirmwareBIOS:
		if l.Arch == ArchAarch64 && l.Kernel == "" {
			return nil, fmt.Errorf("qemu: firmware %q: aarch64 has no BIOS; use uefi or a direct kernel boot", FirmwareBIOS)
		}
	case FirmwareUEFI:
		if fw.Code == "" {
			return nil, fmt.Errorf("qemu: firmware uefi: no code file (use FindFirmware or set one)")
		}
	default:
		return nil, fmt.Errorf("qemu: firmware %q: expected %s or %s", fw.Kind, FirmwareBIOS, FirmwareUEFI)
	}
	if l.SSHHostPort < 0 || l.SSHHostPort > 65535 || l.GuestPort < 0 || l.GuestPort > 65535 {
		return nil, fmt.Errorf("qemu: port %d or guest port %d out of range", l.SSHHostPort, l.GuestPort)
	}

	bin := or(l.Binary, BinaryFor(l.Arch))
	a := []string{bin,
		"-name", "osimage",
		"-machine", or(l.Machine, DefaultMachine(l.Arch)),
		"-accel", accel,
		"-cpu", or(l.CPU, DefaultCPU(l.Accel)),
		"-m", strconv.Itoa(orInt(l.Memory, 1024)),
		"-smp", strconv.Itoa(orInt(l.CPUs, 2)),
		"-nodefaults", "-no-user-config", "-display", "none",
		"-chardev", "file,id=serial0,path=" + escape(l.SerialLog),
		"-serial", "chardev:serial0",
		"-chardev", "socket,id=qmp0,path=" + escape(l.QMPSocket) + ",server=on,wait=off",
		"-mon", "chardev=qmp0,mode=control",
	}
	if fw.Kind == FirmwareUEFI {
		if fw.Vars == "" {
			a = append(a, "-bios", fw.Code)
		} else {
			a = append(a,
				"-drive", "if=pflash,unit=0,readonly=on,format="+or(fw.CodeFormat, "raw")+",file="+escape(fw.Code),
				"-drive", "if=pflash,unit=1,format="+or(fw.VarsFormat, "raw")+",file="+escape(fw.Vars))
		}
	}
	if l.Disk != "" {
		drive := "if=virtio,format=" + or(l.DiskFormat, "raw") + ",file=" + escape(l.Disk)
		if l.Snapshot {
			drive += ",snapshot=on"
		}
		a = append(a, "-drive", drive)
	}
	if l.SSHHostPort > 0 {
		a = append(a,
			"-netdev", fmt.Sprintf("user,id=net0,hostfwd=tcp:127.0.0.1:%d-:%d", l.SSHHostPort, orInt(l.GuestPort, 22)),
			"-device", "virtio-net-pci,netdev=net0")
	}
	for _, c := range l.Credentials {
		if c.Name == "" || strings.ContainsAny(c.Name, "=\n") || strings.Contains(c.Value, "\n") {
			return nil, fmt.Errorf("qemu: credential %q: expected a name without '=' and a one-line value", c.Name)
		}
		a = append(a, "-smbios", "type=11,value="+escape("io.systemd.credential:"+c.Name+"="+c.Value))
	}
	if l.Kernel != "" {
		a = append(a, "-kernel", l.Kernel)
		if l.Initrd != "" {
			a = append(a, "-initrd", l.Initrd)
		}
		if l.Append != "" {
			a = append(a, "-append", l.Append)
		}
	}
	return append(a, l.Extra...), nil
}

// escape doubles the commas of a value inside a QEMU option list, where a
// single comma would start the next option.
func escape(s string) string { return strings.ReplaceAll(s, ",", ",,") }

func or(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

func orInt(n, def int) int {
	if n == 0 {
		return def
	}
	return n
}
