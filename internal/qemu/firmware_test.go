package qemu

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// fakeRoot makes the named files (absolute paths) under a new root; a name
// ending in .qcow2 gets qcow2's magic.
func fakeRoot(t *testing.T, files ...string) string {
	t.Helper()
	root := t.TempDir()
	for _, f := range files {
		p := filepath.Join(root, f)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		data := []byte("raw firmware " + f)
		if strings.HasSuffix(f, ".qcow2") {
			data = append([]byte("QFI\xfb"), data...)
		}
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

func TestFindFirmwarePicksTheDistributionsFiles(t *testing.T) {
	tests := []struct {
		name, arch             string
		files                  []string
		code, vars, codeFormat string
	}{
		{"Debian 12 prefers the 4M build", ArchX86_64,
			[]string{"/usr/share/OVMF/OVMF_CODE_4M.fd", "/usr/share/OVMF/OVMF_VARS_4M.fd", "/usr/share/OVMF/OVMF_CODE.fd", "/usr/share/OVMF/OVMF_VARS.fd", "/usr/share/OVMF/OVMF_CODE_4M.secboot.fd"},
			"/usr/share/OVMF/OVMF_CODE_4M.fd", "/usr/share/OVMF/OVMF_VARS_4M.fd", "raw"},
		{"Debian 11 has only the 2M build", ArchX86_64,
			[]string{"/usr/share/OVMF/OVMF_CODE.fd", "/usr/share/OVMF/OVMF_VARS.fd"},
			"/usr/share/OVMF/OVMF_CODE.fd", "/usr/share/OVMF/OVMF_VARS.fd", "raw"},
		{"Fedora 40 ships qcow2", ArchX86_64,
			[]string{"/usr/share/edk2/ovmf/OVMF_CODE_4M.qcow2", "/usr/share/edk2/ovmf/OVMF_VARS_4M.qcow2", "/usr/share/edk2/ovmf/OVMF_CODE.fd", "/usr/share/edk2/ovmf/OVMF_VARS.fd"},
			"/usr/share/edk2/ovmf/OVMF_CODE_4M.qcow2", "/usr/share/edk2/ovmf/OVMF_VARS_4M.qcow2", "qcow2"},
		{"a code file without its vars is passed over", ArchX86_64,
			[]string{"/usr/share/OVMF/OVMF_CODE_4M.fd", "/usr/share/qemu/edk2-x86_64-code.fd", "/usr/share/qemu/edk2-i386-vars.fd"},
			"/usr/share/qemu/edk2-x86_64-code.fd", "/usr/share/qemu/edk2-i386-vars.fd", "raw"},
		{"a combined OVMF.fd is the last resort", ArchX86_64,
			[]string{"/usr/share/qemu/OVMF.fd"},
			"/usr/share/qemu/OVMF.fd", "", "raw"},
		{"Debian aarch64 AAVMF", ArchAarch64,
			[]string{"/usr/share/AAVMF/AAVMF_CODE.fd", "/usr/share/AAVMF/AAVMF_VARS.fd", "/usr/share/qemu-efi-aarch64/QEMU_EFI.fd"},
			"/usr/share/AAVMF/AAVMF_CODE.fd", "/usr/share/AAVMF/AAVMF_VARS.fd", "raw"},
		{"Fedora aarch64 raw pflash", ArchAarch64,
			[]string{"/usr/share/edk2/aarch64/QEMU_EFI-pflash.raw", "/usr/share/edk2/aarch64/vars-template-pflash.raw"},
			"/usr/share/edk2/aarch64/QEMU_EFI-pflash.raw", "/usr/share/edk2/aarch64/vars-template-pflash.raw", "raw"},
		{"unpadded QEMU_EFI.fd alone", ArchAarch64,
			[]string{"/usr/share/qemu-efi-aarch64/QEMU_EFI.fd"},
			"/usr/share/qemu-efi-aarch64/QEMU_EFI.fd", "", "raw"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root := fakeRoot(t, tt.files...)
			fw, err := FindFirmware(root, tt.arch, FirmwareUEFI, "", "")
			if err != nil {
				t.Fatal(err)
			}
			want := Firmware{Kind: FirmwareUEFI, Code: filepath.Join(root, tt.code), CodeFormat: tt.codeFormat}
			if tt.vars != "" {
				want.Vars, want.VarsFormat = filepath.Join(root, tt.vars), tt.codeFormat
			}
			if fw != want {
				t.Fatalf("got %+v\nwant %+v", fw, want)
			}
		})
	}
}

func TestFindFirmwareNamesThePackageWhenNothingIsInstalled(t *testing.T) {
	for arch, pkg := range map[string]string{ArchX86_64: "ovmf", ArchAarch64: "qemu-efi-aarch64"} {
		root := fakeRoot(t)
		_, err := FindFirmware(root, arch, FirmwareUEFI, "", "")
		if !errors.Is(err, ErrNoFirmware) || !strings.Contains(err.Error(), "package "+pkg) ||
			!strings.Contains(err.Error(), filepath.Join(root, uefiCandidates[arch][0].code)) {
			t.Errorf("%s: want ErrNoFirmware naming %s and the paths looked at, got %v", arch, pkg, err)
		}
	}
}

func TestFindFirmwareTakesTheGivenPaths(t *testing.T) {
	root := fakeRoot(t, "/my/CODE.qcow2", "/my/VARS.fd", "/usr/share/OVMF/OVMF_CODE_4M.fd", "/usr/share/OVMF/OVMF_VARS_4M.fd")
	fw, err := FindFirmware("", ArchX86_64, FirmwareUEFI, filepath.Join(root, "my/CODE.qcow2"), filepath.Join(root, "my/VARS.fd"))
	if err != nil {
		t.Fatal(err)
	}
	if fw.Code != filepath.Join(root, "my/CODE.qcow2") || fw.CodeFormat != "qcow2" || fw.Vars != filepath.Join(root, "my/VARS.fd") || fw.VarsFormat != "raw" {
		t.Fatalf("got %+v", fw)
	}
	// Only the vars given: the code is still searched for.
	fw, err = FindFirmware(root, ArchX86_64, FirmwareUEFI, "", filepath.Join(root, "my/VARS.fd"))
	if err != nil {
		t.Fatal(err)
	}
	if fw.Code != filepath.Join(root, "usr/share/OVMF/OVMF_CODE_4M.fd") || fw.Vars != filepath.Join(root, "my/VARS.fd") {
		t.Fatalf("got %+v", fw)
	}
	if _, err := FindFirmware("", ArchX86_64, FirmwareUEFI, filepath.Join(root, "missing.fd"), ""); err == nil || !strings.Contains(err.Error(), "missing.fd") {
		t.Fatalf("a missing code file must be named, got %v", err)
	}
	if _, err := FindFirmware("", ArchX86_64, FirmwareUEFI, filepath.Join(root, "my/CODE.qcow2"), filepath.Join(root, "nope.fd")); err == nil || !strings.Contains(err.Error(), "vars") {
		t.Fatalf("a missing vars file must be named, got %v", err)
	}
}

func TestFindFirmwareBIOSAndBadInput(t *testing.T) {
	fw, err := FindFirmware("", ArchX86_64, FirmwareBIOS, "", "")
	if err != nil || fw != (Firmware{Kind: FirmwareBIOS}) {
		t.Fatalf("bios: %+v %v", fw, err)
	}
	if fw, err := FindFirmware("", ArchX86_64, "", "", ""); err != nil || fw.Kind != FirmwareBIOS {
		t.Fatalf("empty kind is bios: %+v %v", fw, err)
	}
	for _, tt := range []struct{ arch, kind, code, vars, want string }{
		{ArchAarch64, FirmwareBIOS, "", "", "no BIOS"},
		{ArchAarch64, "", "", "", "no BIOS"},
		{ArchX86_64, FirmwareBIOS, "/c", "", "uefi only"},
		{ArchX86_64, FirmwareBIOS, "", "/v", "uefi only"},
		{ArchX86_64, "efi", "", "", `firmware "efi"`},
		{"riscv64", FirmwareUEFI, "", "", `arch "riscv64"`},
	} {
		if _, err := FindFirmware("", tt.arch, tt.kind, tt.code, tt.vars); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%+v: want %q, got %v", tt, tt.want, err)
		}
	}
}

func TestCopyVarsGivesEachBuildItsOwnWritableCopy(t *testing.T) {
	root := fakeRoot(t, "/VARS.qcow2", "/VARS.fd")
	for _, name := range []string{"VARS.qcow2", "VARS.fd"} {
		tmpl := filepath.Join(root, name)
		format, err := DetectFormat(tmpl)
		if err != nil {
			t.Fatal(err)
		}
		fw := Firmware{Kind: FirmwareUEFI, Code: "/c", Vars: tmpl, VarsFormat: format}
		a, err := fw.CopyVars(t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		b, err := fw.CopyVars(t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		if a.Vars == b.Vars || a.Vars == tmpl {
			t.Fatalf("copies must be distinct from each other and the template: %s %s", a.Vars, b.Vars)
		}
		if wantExt := filepath.Ext(name); filepath.Ext(a.Vars) != wantExt {
			t.Fatalf("copy %s should keep the %s extension", a.Vars, wantExt)
		}
		orig, _ := os.ReadFile(tmpl)
		got, _ := os.ReadFile(a.Vars)
		if !bytes.Equal(orig, got) || a.Code != "/c" || a.VarsFormat != format {
			t.Fatalf("copy differs: %+v", a)
		}
		if err := os.WriteFile(a.Vars, []byte("written by the guest"), 0o644); err != nil {
			t.Fatal(err)
		}
		if now, _ := os.ReadFile(tmpl); !bytes.Equal(now, orig) {
			t.Fatal("writing the copy changed the template")
		}
		if ents, _ := os.ReadDir(filepath.Dir(a.Vars)); len(ents) != 1 {
			t.Fatalf("copy left other files: %v", ents)
		}
	}
	bios := Firmware{Kind: FirmwareBIOS}
	if got, err := bios.CopyVars(t.TempDir()); err != nil || got != bios {
		t.Fatalf("bios has no vars: %+v %v", got, err)
	}
	combined := Firmware{Kind: FirmwareUEFI, Code: "/OVMF.fd"}
	if got, err := combined.CopyVars(t.TempDir()); err != nil || got != combined {
		t.Fatalf("no vars file, nothing to copy: %+v %v", got, err)
	}
	missing := Firmware{Kind: FirmwareUEFI, Code: "/c", Vars: filepath.Join(root, "gone.fd")}
	if _, err := missing.CopyVars(t.TempDir()); err == nil || !strings.Contains(err.Error(), "gone.fd") {
		t.Fatalf("want the missing template named, got %v", err)
	}
	if _, err := fakeVars(t).CopyVars(filepath.Join(root, "no", "dir")); err == nil {
		t.Fatal("copy into a missing directory must fail")
	}
}

func fakeVars(t *testing.T) Firmware {
	root := fakeRoot(t, "/V.fd")
	return Firmware{Kind: FirmwareUEFI, Code: "/c", Vars: filepath.Join(root, "V.fd")}
}

func TestDetectFormatReadsTheHeader(t *testing.T) {
	dir := t.TempDir()
	for name, tt := range map[string]struct {
		data, want string
	}{
		"q":     {"QFI\xfb\x00\x00\x00\x03rest", "qcow2"},
		"r":     {"\x00\x00\x00\x00rest", "raw"},
		"short": {"QF", "raw"},
	} {
		p := filepath.Join(dir, name)
		os.WriteFile(p, []byte(tt.data), 0o644)
		if got, err := DetectFormat(p); err != nil || got != tt.want {
			t.Errorf("%s: got %q %v, want %q", name, got, err, tt.want)
		}
	}
	if _, err := DetectFormat(filepath.Join(dir, "missing")); err == nil {
		t.Error("missing file must fail")
	}
	os.WriteFile(filepath.Join(dir, "empty"), nil, 0o644)
	if _, err := DetectFormat(filepath.Join(dir, "empty")); err == nil || !strings.Contains(err.Error(), "empty") {
		t.Errorf("an empty firmware file is refused, got %v", err)
	}
}

func TestFindFirmwareOnThisHost(t *testing.T) {
	fw := needFirmware(t, ArchX86_64)
	if fw.Code == "" || fw.Vars == "" || fw.CodeFormat == "" {
		t.Fatalf("Debian's ovmf has code and vars: %+v", fw)
	}
}
