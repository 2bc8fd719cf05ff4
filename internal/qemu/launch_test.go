package qemu

import (
	"reflect"
	"strings"
	"testing"
)

func base(arch, accel string) Launch {
	return Launch{Arch: arch, Accel: accel, Disk: "/out/disk.raw", SerialLog: "/out/serial.log", QMPSocket: "/tmp/q/qmp.sock"}
}

func common(bin, machine, accel, cpu, mem, smp string) []string {
	return []string{bin, "-name", "osimage", "-machine", machine, "-accel", accel, "-cpu", cpu, "-m", mem, "-smp", smp,
		"-nodefaults", "-no-user-config", "-display", "none",
		"-chardev", "file,id=serial0,path=/out/serial.log", "-serial", "chardev:serial0",
		"-chardev", "socket,id=qmp0,path=/tmp/q/qmp.sock,server=on,wait=off", "-mon", "chardev=qmp0,mode=control"}
}

func cat(parts ...[]string) []string {
	var out []string
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}

var disk = []string{"-drive", "if=virtio,format=raw,file=/out/disk.raw"}

func TestArgsBuildsTheCommandLineFromTheLaunch(t *testing.T) {
	tests := []struct {
		name string
		l    func() Launch
		want []string
	}{
		{"x86_64 bios under tcg takes the defaults",
			func() Launch { return base(ArchX86_64, AccelTCG) },
			cat(common("qemu-system-x86_64", "q35", "tcg,thread=multi", "max", "1024", "2"), disk)},
		{"x86_64 under kvm uses the host cpu",
			func() Launch { l := base(ArchX86_64, AccelKVM); l.Firmware.Kind = FirmwareBIOS; return l },
			cat(common("qemu-system-x86_64", "q35", "kvm", "host", "1024", "2"), disk)},
		{"aarch64 uefi pflash with qcow2 vars",
			func() Launch {
				l := base(ArchAarch64, AccelTCG)
				l.Firmware = Firmware{Kind: FirmwareUEFI, Code: "/fw/CODE.fd", CodeFormat: "raw", Vars: "/out/efivars.qcow2", VarsFormat: "qcow2"}
				return l
			},
			cat(common("qemu-system-aarch64", "virt,gic-version=max", "tcg,thread=multi", "max", "1024", "2"),
				[]string{"-drive", "if=pflash,unit=0,readonly=on,format=raw,file=/fw/CODE.fd",
					"-drive", "if=pflash,unit=1,format=qcow2,file=/out/efivars.qcow2"}, disk)},
		{"uefi without a vars file loads the code as -bios",
			func() Launch {
				l := base(ArchX86_64, AccelTCG)
				l.Firmware = Firmware{Kind: FirmwareUEFI, Code: "/usr/share/qemu/OVMF.fd"}
				return l
			},
			cat(common("qemu-system-x86_64", "q35", "tcg,thread=multi", "max", "1024", "2"),
				[]string{"-bios", "/usr/share/qemu/OVMF.fd"}, disk)},
		{"pflash formats default to raw",
			func() Launch {
				l := base(ArchX86_64, AccelTCG)
				l.Firmware = Firmware{Kind: FirmwareUEFI, Code: "/c", Vars: "/v"}
				return l
			},
			cat(common("qemu-system-x86_64", "q35", "tcg,thread=multi", "max", "1024", "2"),
				[]string{"-drive", "if=pflash,unit=0,readonly=on,format=raw,file=/c", "-drive", "if=pflash,unit=1,format=raw,file=/v"}, disk)},
		{"overrides win and extra args come last, verbatim",
			func() Launch {
				l := base(ArchX86_64, AccelKVM)
				l.Binary, l.Machine, l.CPU, l.Memory, l.CPUs = "/opt/qemu/bin/qemu-system-x86_64", "pc", "Skylake-Server", 4096, 8
				l.DiskFormat = "qcow2"
				l.Extra = []string{"-device", "virtio-rng-pci", "-append", "; rm -rf /"}
				return l
			},
			cat(common("/opt/qemu/bin/qemu-system-x86_64", "pc", "kvm", "Skylake-Server", "4096", "8"),
				[]string{"-drive", "if=virtio,format=qcow2,file=/out/disk.raw", "-device", "virtio-rng-pci", "-append", "; rm -rf /"})},
		{"user networking forwards the loopback port to ssh",
			func() Launch { l := base(ArchX86_64, AccelTCG); l.SSHHostPort = 2222; return l },
			cat(common("qemu-system-x86_64", "q35", "tcg,thread=multi", "max", "1024", "2"), disk,
				[]string{"-netdev", "user,id=net0,hostfwd=tcp:127.0.0.1:2222-:22", "-device", "virtio-net-pci,netdev=net0"})},
		{"the guest port can be another than 22",
			func() Launch { l := base(ArchX86_64, AccelTCG); l.SSHHostPort, l.GuestPort = 40000, 2022; return l },
			cat(common("qemu-system-x86_64", "q35", "tcg,thread=multi", "max", "1024", "2"), disk,
				[]string{"-netdev", "user,id=net0,hostfwd=tcp:127.0.0.1:40000-:2022", "-device", "virtio-net-pci,netdev=net0"})},
		{"direct kernel boot without a disk, aarch64 needs no firmware then",
			func() Launch {
				l := base(ArchAarch64, AccelTCG)
				l.Disk, l.Kernel, l.Initrd, l.Append = "", "/k/vmlinuz", "/k/initrd", "console=ttyAMA0 root=/dev/vda2"
				return l
			},
			cat(common("qemu-system-aarch64", "virt,gic-version=max", "tcg,thread=multi", "max", "1024", "2"),
				[]string{"-kernel", "/k/vmlinuz", "-initrd", "/k/initrd", "-append", "console=ttyAMA0 root=/dev/vda2"})},
		{"snapshot leaves the disk as it was",
			func() Launch { l := base(ArchX86_64, AccelTCG); l.Snapshot = true; return l },
			cat(common("qemu-system-x86_64", "q35", "tcg,thread=multi", "max", "1024", "2"), []string{"-drive", "if=virtio,format=raw,file=/out/disk.raw,snapshot=on"})},
		{"credentials go to the guest as SMBIOS type 11 strings, commas doubled, before the kernel",
			func() Launch {
				l := base(ArchX86_64, AccelTCG)
				l.Kernel = "/k"
				l.Credentials = []Credential{{"ssh.authorized_keys.root", "ssh-ed25519 AAAA k,ey"}, {"a", ""}}
				return l
			},
			cat(common("qemu-system-x86_64", "q35", "tcg,thread=multi", "max", "1024", "2"), disk,
				[]string{"-smbios", "type=11,value=io.systemd.credential:ssh.authorized_keys.root=ssh-ed25519 AAAA k,,ey",
					"-smbios", "type=11,value=io.systemd.credential:a=", "-kernel", "/k"})},
		{"a kernel alone",
			func() Launch { l := base(ArchX86_64, AccelTCG); l.Kernel = "/k"; return l },
			cat(common("qemu-system-x86_64", "q35", "tcg,thread=multi", "max", "1024", "2"), disk, []string{"-kernel", "/k"})},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.l().Args()
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("args\n got %q\nwant %q", got, tt.want)
			}
		})
	}
}

func TestArgsEscapesCommasInPaths(t *testing.T) {
	l := base(ArchX86_64, AccelTCG)
	l.Disk, l.SerialLog, l.QMPSocket = "/a,b/disk.raw", "/a,b/serial.log", "/a,b/q.sock"
	l.Firmware = Firmware{Kind: FirmwareUEFI, Code: "/f,w/CODE.fd", Vars: "/a,b/VARS.fd"}
	got, err := l.Args()
	if err != nil {
		t.Fatal(err)
	}
	s := strings.Join(got, " ")
	for _, want := range []string{"file,id=serial0,path=/a,,b/serial.log", "socket,id=qmp0,path=/a,,b/q.sock,server=on",
		"file=/f,,w/CODE.fd", "file=/a,,b/VARS.fd", "if=virtio,format=raw,file=/a,,b/disk.raw"} {
		if !strings.Contains(s, want) {
			t.Errorf("args lack %q: %s", want, s)
		}
	}
}

func TestArgsRejectsBadLaunchesNamingTheField(t *testing.T) {
	tests := []struct {
		name, want string
		edit       func(*Launch)
	}{
		{"unknown arch", `arch "arm64"`, func(l *Launch) { l.Arch = "arm64" }},
		{"empty arch", `arch ""`, func(l *Launch) { l.Arch = "" }},
		{"auto accelerator not resolved", `accelerator "auto"`, func(l *Launch) { l.Accel = AccelAuto }},
		{"empty accelerator", `accelerator ""`, func(l *Launch) { l.Accel = "" }},
		{"negative memory", "memory -1", func(l *Launch) { l.Memory = -1 }},
		{"negative cpus", "cpus -2", func(l *Launch) { l.CPUs = -2 }},
		{"no serial log", "serial log", func(l *Launch) { l.SerialLog = "" }},
		{"no qmp socket", "QMP socket", func(l *Launch) { l.QMPSocket = "" }},
		{"nothing to boot", "nothing to boot", func(l *Launch) { l.Disk = "" }},
		{"initrd without kernel", "need a kernel", func(l *Launch) { l.Initrd = "/i" }},
		{"append without kernel", "need a kernel", func(l *Launch) { l.Append = "quiet" }},
		{"aarch64 bios disk boot", "aarch64 has no BIOS", func(l *Launch) { l.Arch = ArchAarch64 }},
		{"aarch64 explicit bios", "aarch64 has no BIOS", func(l *Launch) { l.Arch = ArchAarch64; l.Firmware.Kind = FirmwareBIOS }},
		{"uefi without code", "no code file", func(l *Launch) { l.Firmware.Kind = FirmwareUEFI }},
		{"unknown firmware", `firmware "efi"`, func(l *Launch) { l.Firmware.Kind = "efi" }},
		{"port too large", "port 65536", func(l *Launch) { l.SSHHostPort = 65536 }},
		{"negative port", "port -1", func(l *Launch) { l.SSHHostPort = -1 }},
		{"guest port too large", "guest port 70000", func(l *Launch) { l.GuestPort = 70000 }},
		{"negative guest port", "guest port -3", func(l *Launch) { l.GuestPort = -3 }},
		{"credential without a name", `credential ""`, func(l *Launch) { l.Credentials = []Credential{{"", "v"}} }},
		{"credential name with =", `credential "a=b"`, func(l *Launch) { l.Credentials = []Credential{{"a=b", "v"}} }},
		{"credential name with a newline", "credential", func(l *Launch) { l.Credentials = []Credential{{"a\nb", "v"}} }},
		{"credential value on two lines", `credential "k"`, func(l *Launch) { l.Credentials = []Credential{{"k", "a\nb"}} }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := base(ArchX86_64, AccelTCG)
			tt.edit(&l)
			_, err := l.Args()
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("want an error containing %q, got %v", tt.want, err)
			}
		})
	}
}

func TestArgsAcceptsTheEdgesOfTheRanges(t *testing.T) {
	l := base(ArchX86_64, AccelTCG)
	l.SSHHostPort, l.GuestPort = 65535, 65535
	if _, err := l.Args(); err != nil {
		t.Fatal(err)
	}
	l = base(ArchAarch64, AccelTCG)
	l.Disk, l.Kernel = "", "/k"
	l.Firmware.Kind = FirmwareBIOS
	if _, err := l.Args(); err != nil {
		t.Fatalf("aarch64 direct kernel boot needs no firmware: %v", err)
	}
}

func TestDefaultsPerArchitecture(t *testing.T) {
	if got := BinaryFor(ArchAarch64); got != "qemu-system-aarch64" {
		t.Error(got)
	}
	if DebianPackage(ArchAarch64) != "qemu-system-arm" || DebianPackage(ArchX86_64) != "qemu-system-x86" {
		t.Error("Debian packages")
	}
	if DefaultMachine(ArchX86_64) != "q35" || !strings.HasPrefix(DefaultMachine(ArchAarch64), "virt") {
		t.Error("machines")
	}
	if DefaultCPU(AccelKVM) != "host" || DefaultCPU(AccelTCG) != "max" {
		t.Error("cpus")
	}
	if archOf("amd64") != ArchX86_64 || archOf("arm64") != ArchAarch64 || archOf("riscv64") != "riscv64" {
		t.Error("archOf")
	}
	if h := HostArch(); h != ArchX86_64 && h != ArchAarch64 {
		t.Logf("host arch %s has no KVM guest here", h)
	}
}
