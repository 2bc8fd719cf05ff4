package qemu

// Design choice: firmware is found from a table of the exact paths the
// distributions' packages install, newest layout first, not by globbing, so
// a secure-boot or Microsoft-keys variant is never picked by accident.

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
)

// Firmware is what the guest boots with. Kind bios is SeaBIOS (QEMU's
// default on x86_64). Kind uefi has a code file (read-only) and a vars file
// (the build's own writable copy, see CopyVars); with no vars file the code
// is loaded with -bios.
type Firmware struct {
	Kind       string
	Code       string
	CodeFormat string // raw or qcow2
	Vars       string
	VarsFormat string
}

// firmwarePair is one distribution's code and vars template.
type firmwarePair struct{ code, vars, from string }

// uefiCandidates lists where packages install UEFI firmware, in the order
// tried. Paths are absolute; FindFirmware may look under another root.
var uefiCandidates = map[string][]firmwarePair{
	ArchX86_64: {
		{"/usr/share/OVMF/OVMF_CODE_4M.fd", "/usr/share/OVMF/OVMF_VARS_4M.fd", "Debian 12+, Ubuntu 22.04+ (ovmf)"},
		{"/usr/share/OVMF/OVMF_CODE.fd", "/usr/share/OVMF/OVMF_VARS.fd", "Debian 11, Ubuntu 20.04 (ovmf)"},
		{"/usr/share/edk2/ovmf/OVMF_CODE_4M.qcow2", "/usr/share/edk2/ovmf/OVMF_VARS_4M.qcow2", "Fedora 40+ (edk2-ovmf)"},
		{"/usr/share/edk2/ovmf/OVMF_CODE.fd", "/usr/share/edk2/ovmf/OVMF_VARS.fd", "Fedora, RHEL (edk2-ovmf)"},
		{"/usr/share/edk2/x64/OVMF_CODE.4m.fd", "/usr/share/edk2/x64/OVMF_VARS.4m.fd", "Arch Linux (edk2-ovmf)"},
		{"/usr/share/qemu/edk2-x86_64-code.fd", "/usr/share/qemu/edk2-i386-vars.fd", "QEMU's own install"},
		{"/usr/share/qemu/OVMF.fd", "", "Debian (ovmf), code and vars in one file"},
	},
	ArchAarch64: {
		{"/usr/share/AAVMF/AAVMF_CODE.fd", "/usr/share/AAVMF/AAVMF_VARS.fd", "Debian, Ubuntu (qemu-efi-aarch64)"},
		{"/usr/share/edk2/aarch64/QEMU_EFI-silent-pflash.qcow2", "/usr/share/edk2/aarch64/vars-template-pflash.qcow2", "Fedora 40+ (edk2-aarch64)"},
		{"/usr/share/edk2/aarch64/QEMU_EFI-pflash.raw", "/usr/share/edk2/aarch64/vars-template-pflash.raw", "Fedora, RHEL (edk2-aarch64)"},
		{"/usr/share/edk2/aarch64/QEMU_CODE.fd", "/usr/share/edk2/aarch64/QEMU_VARS.fd", "Arch Linux (edk2-aarch64)"},
		{"/usr/share/qemu/edk2-aarch64-code.fd", "/usr/share/qemu/edk2-arm-vars.fd", "QEMU's own install"},
		{"/usr/share/qemu-efi-aarch64/QEMU_EFI.fd", "", "Debian (qemu-efi-aarch64), unpadded"},
	},
}

// FirmwarePackage names the Debian/Ubuntu package with the UEFI firmware.
func FirmwarePackage(arch string) string {
	if arch == ArchAarch64 {
		return "qemu-efi-aarch64"
	}
	return "ovmf"
}

// ErrNoFirmware is returned (wrapped) when no UEFI firmware is found.
var ErrNoFirmware = errors.New("no UEFI firmware found")

// FindFirmware resolves the firmware for kind (bios or uefi) and arch.
// code and vars override the search (either may be given alone: the other
// is still searched for when code is empty). root is prepended to the
// searched paths ("" for the real file system). Formats are detected from
// the files' headers.
func FindFirmware(root, arch, kind, code, vars string) (Firmware, error) {
	switch kind {
	case "", FirmwareBIOS:
		if arch == ArchAarch64 {
			return Firmware{}, fmt.Errorf("firmware %q: aarch64 guests have no BIOS; use uefi", FirmwareBIOS)
		}
		if code != "" || vars != "" {
			return Firmware{}, fmt.Errorf("firmware %q: firmware code and vars files are for uefi only", FirmwareBIOS)
		}
		return Firmware{Kind: FirmwareBIOS}, nil
	case FirmwareUEFI:
	default:
		return Firmware{}, fmt.Errorf("firmware %q: expected %s or %s", kind, FirmwareBIOS, FirmwareUEFI)
	}
	cands, ok := uefiCandidates[arch]
	if !ok {
		return Firmware{}, fmt.Errorf("firmware: arch %q: expected %s or %s", arch, ArchX86_64, ArchAarch64)
	}
	fw := Firmware{Kind: FirmwareUEFI, Code: code, Vars: vars}
	if code == "" {
		var tried []string
		for _, c := range cands {
			p := filepath.Join(root, c.code)
			if !isFile(p) {
				tried = append(tried, p)
				continue
			}
			fw.Code = p
			if vars == "" && c.vars != "" {
				v := filepath.Join(root, c.vars)
				if !isFile(v) {
					tried = append(tried, v)
					fw.Code = ""
					continue
				}
				fw.Vars = v
			}
			break
		}
		if fw.Code == "" {
			return Firmware{}, fmt.Errorf("%w for %s (install the Debian/Ubuntu package %s, or set the firmware code and vars paths); looked for %s",
				ErrNoFirmware, arch, FirmwarePackage(arch), strings.Join(tried, ", "))
		}
	}
	var err error
	if fw.CodeFormat, err = DetectFormat(fw.Code); err != nil {
		return Firmware{}, fmt.Errorf("firmware code: %w", err)
	}
	if fw.Vars != "" {
		if fw.VarsFormat, err = DetectFormat(fw.Vars); err != nil {
			return Firmware{}, fmt.Errorf("firmware vars: %w", err)
		}
	}
	return fw, nil
}

var qcow2Magic = []byte("QFI\xfb")

// DetectFormat says whether a pflash file is qcow2 or raw.
func DetectFormat(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	head := make([]byte, len(qcow2Magic))
	n, err := io.ReadFull(f, head)
	if n == 0 {
		return "", fmt.Errorf("%s is empty or unreadable: %v", path, err)
	}
	if bytes.Equal(head, qcow2Magic) {
		return "qcow2", nil
	}
	return "raw", nil
}

// CopyVars gives this build its own writable copy of the vars file in dir
// (efivars.fd or efivars.qcow2) and returns the firmware pointing at it, so
// parallel builds never share a vars store and the template stays as it
// was. Without a vars file it returns fw unchanged.
func (fw Firmware) CopyVars(dir string) (Firmware, error) {
	if fw.Kind != FirmwareUEFI || fw.Vars == "" {
		return fw, nil
	}
	ext := ".fd"
	if fw.VarsFormat == "qcow2" {
		ext = ".qcow2"
	}
	dst := filepath.Join(dir, "efivars"+ext)
	if err := copyFile(fw.Vars, dst); err != nil {
		return Firmware{}, fmt.Errorf("copy of UEFI vars %s: %w", fw.Vars, err)
	}
	fw.Vars = dst
	return fw, nil
}

func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	tmp := dst + ".tmp"
	out, err := os.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	_, err = io.Copy(out, in)
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, dst)
	}
	if err != nil {
		os.Remove(tmp)
	}
	return err
}

func isFile(p string) bool {
	st, err := os.Stat(p)
	return err == nil && st.Mode().IsRegular()
}
