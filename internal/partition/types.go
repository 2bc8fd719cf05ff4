package partition

import (
	"strings"

	"github.com/osimage/packer-plugin-osimage/internal/variant"
)

// Kind is the role a partition type stands for.
type Kind int

// Kinds of partitions.
const (
	KindOther     Kind = iota
	KindLinuxRoot      // a Discoverable Partitions root type (any arch)
	KindLinuxFS        // generic Linux data: GPT 0FC63DAF..., MBR 0x83
	KindLinuxUsr       // DPS /usr (not a root)
	KindXBOOTLDR       // separate /boot (GPT extended boot loader)
	KindESP            // EFI system partition
	KindBIOSBoot       // GRUB's BIOS boot partition
	KindSwap
	KindLVM
	KindRAID
	KindExtended // MBR extended container
	KindMicrosoftData
)

var kindNames = map[Kind]string{
	KindOther: "other", KindLinuxRoot: "linux-root", KindLinuxFS: "linux-filesystem", KindLinuxUsr: "linux-usr",
	KindXBOOTLDR: "xbootldr", KindESP: "esp", KindBIOSBoot: "bios-boot", KindSwap: "swap", KindLVM: "lvm",
	KindRAID: "raid", KindExtended: "extended", KindMicrosoftData: "microsoft-data",
}

func (k Kind) String() string { return kindNames[k] }

// GPT partition type GUIDs (upper case, as Partition.TypeGUID holds them).
// Root types follow the UAPI Discoverable Partitions Specification.
const (
	TypeESP          = "C12A7328-F81F-11D2-BA4B-00A0C93EC93B"
	TypeBIOSBoot     = "21686148-6449-6E6F-744E-656564454649"
	TypeLinuxFS      = "0FC63DAF-8483-4772-8E79-3D69D8477DE4"
	TypeRootX86_64   = "4F68BCE3-E8CD-4DB1-96E7-FBCAF984B709"
	TypeRootAArch64  = "B921B045-1DF0-41C3-AF44-4C6F280D3FAE"
	TypeRootX86      = "44479540-F297-41B2-9AF7-D131D5F0458A"
	TypeRootARM      = "69DAD710-2CE4-4E3C-B16C-21A1D49ABED3"
	TypeRootRISCV64  = "72EC70A6-CF74-40E6-BD49-4BDA08E8F224"
	TypeRootPPC64LE  = "C31C45E6-3F39-412E-80FB-4809C4980599"
	TypeRootS390X    = "5EEAD9A9-FE09-4A1E-A1D7-520D00531306"
	TypeRootLoong64  = "77055800-792C-4F94-B39A-98C91B762BB6"
	TypeXBOOTLDR     = "BC13C2FF-59E6-4262-A352-B275FD6F7172"
	TypeSwap         = "0657FD6D-A4AB-43C4-84E5-0933C84B4F4F"
	TypeLVM          = "E6D6D379-F507-44C2-A23C-238F2A3DF928"
	TypeRAID         = "A19D880F-05FC-4D3B-A006-743F0F84911E"
	TypeHome         = "933AC7E1-2EB4-4F13-B844-0E14E2AEF915"
	TypeSrv          = "3B8F8425-20E0-4F3B-907F-1A25A76F98E8"
	TypeMicrosoftBDP = "EBD0A0A2-B9E5-4433-87C0-68B6B72699C7"
	TypeUsrX86_64    = "8484680C-9521-48C6-9C11-B0720656F69E"
	TypeUsrAArch64   = "B0E01050-EE5F-4390-949A-9101B17104E9"
)

type typeInfo struct {
	name string
	kind Kind
	arch string // for root types: the normalised arch
}

var gptTypes = map[string]typeInfo{
	TypeESP:          {"EFI system", KindESP, ""},
	TypeBIOSBoot:     {"BIOS boot", KindBIOSBoot, ""},
	TypeLinuxFS:      {"Linux filesystem", KindLinuxFS, ""},
	TypeRootX86_64:   {"Linux root (x86-64)", KindLinuxRoot, "x86_64"},
	TypeRootAArch64:  {"Linux root (AArch64)", KindLinuxRoot, "aarch64"},
	TypeRootX86:      {"Linux root (x86)", KindLinuxRoot, "i686"},
	TypeRootARM:      {"Linux root (ARM)", KindLinuxRoot, "armv7"},
	TypeRootRISCV64:  {"Linux root (RISC-V 64)", KindLinuxRoot, "riscv64"},
	TypeRootPPC64LE:  {"Linux root (PowerPC 64 LE)", KindLinuxRoot, "ppc64le"},
	TypeRootS390X:    {"Linux root (s390x)", KindLinuxRoot, "s390x"},
	TypeRootLoong64:  {"Linux root (LoongArch 64)", KindLinuxRoot, "loongarch64"},
	TypeXBOOTLDR:     {"Linux extended boot (XBOOTLDR)", KindXBOOTLDR, ""},
	TypeSwap:         {"Linux swap", KindSwap, ""},
	TypeLVM:          {"Linux LVM", KindLVM, ""},
	TypeRAID:         {"Linux RAID", KindRAID, ""},
	TypeHome:         {"Linux /home", KindOther, ""},
	TypeSrv:          {"Linux /srv", KindOther, ""},
	TypeMicrosoftBDP: {"Microsoft basic data", KindMicrosoftData, ""},
	TypeUsrX86_64:    {"Linux /usr (x86-64)", KindLinuxUsr, "x86_64"},
	TypeUsrAArch64:   {"Linux /usr (AArch64)", KindLinuxUsr, "aarch64"},
}

var mbrTypes = map[byte]typeInfo{
	0x01: {"FAT12", KindOther, ""},
	0x05: {"Extended", KindExtended, ""},
	0x06: {"FAT16", KindOther, ""},
	0x07: {"NTFS/exFAT", KindMicrosoftData, ""},
	0x0b: {"FAT32", KindOther, ""},
	0x0c: {"FAT32 (LBA)", KindOther, ""},
	0x0e: {"FAT16 (LBA)", KindOther, ""},
	0x0f: {"Extended (LBA)", KindExtended, ""},
	0x82: {"Linux swap", KindSwap, ""},
	0x83: {"Linux", KindLinuxFS, ""},
	0x85: {"Linux extended", KindExtended, ""},
	0x8e: {"Linux LVM", KindLVM, ""},
	0xea: {"Linux extended boot", KindXBOOTLDR, ""},
	0xee: {"GPT protective", KindOther, ""},
	0xef: {"EFI system", KindESP, ""},
	0xfd: {"Linux RAID autodetect", KindRAID, ""},
}

// NormaliseArch maps the spellings of an architecture to the uname -m form
// used by the root types: the variants' arches through internal/variant's
// table (amd64/x64 -> x86_64, arm64 -> aarch64), and the other
// architectures the Discoverable Partitions types know. Unknown names come
// back lower-cased.
func NormaliseArch(arch string) string {
	if c, err := variant.NormalizeArch(arch); err == nil {
		return c
	}
	a := strings.ToLower(strings.TrimSpace(arch))
	switch a {
	case "i386", "i486", "i586", "x86", "386":
		return "i686"
	case "arm", "armhf", "armv7l":
		return "armv7"
	case "loong64":
		return "loongarch64"
	}
	return a
}

// RootTypeFor returns the GPT root partition type GUID of an architecture,
// or "" when the specification has none for it.
func RootTypeFor(arch string) string {
	a := NormaliseArch(arch)
	for g, t := range gptTypes {
		if t.kind == KindLinuxRoot && t.arch == a {
			return g
		}
	}
	return ""
}

// RootArch returns the architecture a root partition type is for ("" when
// the partition is not a GPT root type).
func (p Partition) RootArch() string {
	if t, ok := gptTypes[p.TypeGUID]; ok && t.kind == KindLinuxRoot {
		return t.arch
	}
	return ""
}
