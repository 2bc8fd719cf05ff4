package variant

// This file is the one table of the built-in dimensions' spellings (arch,
// platform, Hyper-V generation, firmware; OCI and Azure arch names). Every
// component normalises through it; nothing else names "gen1", "arm64" or
// "metal".

import (
	"fmt"
	"slices"
	"strings"
)

// Names of the built-in dimensions, as used in exclude/when rules, in
// Variant.Dimensions and in error messages.
const (
	DimArch             = "arch"
	DimPlatform         = "platform"
	DimHyperVGeneration = "hyperv_generation"
	DimFirmware         = "firmware"
)

// Canonical values the components act on.
const (
	ArchX86_64             = "x86_64"
	ArchAarch64            = "aarch64"
	PlatformVirtualization = "virtualization"
	PlatformBaremetal      = "baremetal"
	GenerationV1           = "V1"
	GenerationV2           = "V2"
	FirmwareBIOS           = "bios"
	FirmwareUEFI           = "uefi"
)

// Value is one accepted value of a built-in dimension.
type Value struct {
	Canonical string   // the value every variant carries, e.g. "x86_64", "V2"
	KeyPart   string   // spelling in variant keys, e.g. "gen2" for V2
	Aliases   []string // other accepted spellings (matched case-insensitively)
	OCI       string   // OCI platform spelling (arch only)
	Azure     string   // Azure spelling (arch only)
	GOARCH    string   // Go's runtime.GOARCH spelling (arch only)
	// Allows restricts the values other built-in dimensions may take in the
	// same variant; a single allowed firmware is also the derived firmware.
	Allows map[string][]string
}

// Dim describes one built-in dimension.
type Dim struct {
	Name        string   // dimension name
	VariantsKey string   // key in an image's [variants] table
	What        string   // noun for messages
	Defaults    []string // values used when the image does not declare the key
	Values      []Value
}

// Indexes into Dims.
const (
	IArch = iota
	IPlatform
	IGeneration
	IFirmware
	NumBuiltins
)

// Dims lists the built-in dimensions in expansion and key order. Treat it as
// read-only.
var Dims = [NumBuiltins]Dim{
	{
		Name: DimArch, VariantsKey: "architectures", What: "architecture",
		Defaults: []string{ArchX86_64},
		Values: []Value{
			{Canonical: ArchX86_64, KeyPart: "x86_64", Aliases: []string{"amd64", "x64", "x86-64"}, OCI: "amd64", Azure: "x64", GOARCH: "amd64"},
			{Canonical: ArchAarch64, KeyPart: "aarch64", Aliases: []string{"arm64"}, OCI: "arm64", Azure: "Arm64", GOARCH: "arm64",
				// Azure runs Arm64 VMs as generation 2 (UEFI) only.
				Allows: map[string][]string{DimFirmware: {FirmwareUEFI}, DimHyperVGeneration: {GenerationV2}}},
		},
	},
	{
		Name: DimPlatform, VariantsKey: "platforms", What: "platform",
		Defaults: []string{PlatformVirtualization},
		Values: []Value{
			{Canonical: PlatformVirtualization, KeyPart: "virtualization", Aliases: []string{"virtual", "virt", "vm"}},
			{Canonical: PlatformBaremetal, KeyPart: "baremetal", Aliases: []string{"bare-metal", "metal"}},
		},
	},
	{
		Name: DimHyperVGeneration, VariantsKey: "hyperv_generations", What: "Hyper-V generation",
		Values: []Value{
			{Canonical: GenerationV1, KeyPart: "gen1", Aliases: []string{"gen1", "1", "v1"},
				Allows: map[string][]string{DimFirmware: {FirmwareBIOS}}},
			{Canonical: GenerationV2, KeyPart: "gen2", Aliases: []string{"gen2", "2", "v2"},
				Allows: map[string][]string{DimFirmware: {FirmwareUEFI}}},
		},
	},
	{
		Name: DimFirmware, VariantsKey: "firmwares", What: "firmware",
		Values: []Value{
			{Canonical: FirmwareBIOS, KeyPart: "bios", Aliases: []string{"legacy"}},
			{Canonical: FirmwareUEFI, KeyPart: "uefi", Aliases: []string{"efi"}},
		},
	},
}

// firmwareSources lists, in priority order, the dimensions whose value can
// imply the firmware when it is not given.
var firmwareSources = []int{IGeneration, IArch}

// Lookup tables derived from Dims once.
var (
	// valueIndex maps a canonical value to its entry, per built-in dimension.
	valueIndex [NumBuiltins]map[string]*Value
	// allowsIdx[i][v][j] lists the values dimension j may take when
	// dimension i has canonical value v (nil: anything).
	allowsIdx [NumBuiltins]map[string]*[NumBuiltins][]string
)

func init() {
	for i := range Dims {
		valueIndex[i] = map[string]*Value{}
		allowsIdx[i] = map[string]*[NumBuiltins][]string{}
		for j := range Dims[i].Values {
			v := &Dims[i].Values[j]
			valueIndex[i][v.Canonical] = v
			if len(v.Allows) == 0 {
				continue
			}
			var a [NumBuiltins][]string
			for name, vals := range v.Allows {
				_, oi := DimByName(name)
				a[oi] = vals
			}
			allowsIdx[i][v.Canonical] = &a
		}
	}
}

// DimByName returns the built-in dimension called name and its index, or
// (nil, -1).
func DimByName(name string) (*Dim, int) {
	for i := range Dims {
		if Dims[i].Name == name {
			return &Dims[i], i
		}
	}
	return nil, -1
}

// DimByVariantsKey returns the built-in dimension declared by key in a
// [variants] table, or (nil, -1).
func DimByVariantsKey(key string) (*Dim, int) {
	for i := range Dims {
		if Dims[i].VariantsKey == key {
			return &Dims[i], i
		}
	}
	return nil, -1
}

// Normalize returns the canonical spelling of s, or false.
func (d *Dim) Normalize(s string) (string, bool) {
	if v := d.Lookup(s); v != nil {
		return v.Canonical, true
	}
	return "", false
}

// Lookup finds the value spelled s (canonical or alias, any case), or nil.
func (d *Dim) Lookup(s string) *Value {
	for i := range d.Values {
		v := &d.Values[i]
		if strings.EqualFold(s, v.Canonical) {
			return v
		}
		for _, a := range v.Aliases {
			if strings.EqualFold(s, a) {
				return v
			}
		}
	}
	return nil
}

// Accepted describes the accepted spellings for error messages, e.g.
// `x86_64 (or amd64, x64, x86-64), aarch64 (or arm64)`.
func (d *Dim) Accepted() string {
	parts := make([]string, 0, len(d.Values))
	for _, v := range d.Values {
		if len(v.Aliases) == 0 {
			parts = append(parts, v.Canonical)
			continue
		}
		parts = append(parts, v.Canonical+" (or "+strings.Join(v.Aliases, ", ")+")")
	}
	return strings.Join(parts, ", ")
}

// Canonical returns the table entry of a canonical value of dimension i, or
// nil.
func Canonical(i int, canonical string) *Value { return valueIndex[i][canonical] }

// DeriveFirmware returns the firmware implied by the other built-in values
// (vals indexed like Dims), or "" when nothing implies one.
func DeriveFirmware(vals *[NumBuiltins]string) string {
	for _, i := range firmwareSources {
		if a := allowsIdx[i][vals[i]]; a != nil && len(a[IFirmware]) == 1 {
			return a[IFirmware][0]
		}
	}
	return ""
}

// Conflict is a built-in value that does not allow another built-in value
// of the same variant.
type Conflict struct {
	Dim, Value, Other, OtherValue string
	Allowed                       []string
}

func (c *Conflict) Error() string {
	return fmt.Sprintf("%s %s cannot have %s %s (allowed: %s)", c.Dim, c.Value, c.Other, c.OtherValue, strings.Join(c.Allowed, ", "))
}

// CheckCombination reports the first built-in value that does not allow
// another built-in value of the same variant, or nil. Other dimensions are
// checked in table order, so a declared generation is named before a
// firmware derived from it.
func CheckCombination(vals *[NumBuiltins]string) *Conflict {
	for i := range NumBuiltins {
		a := allowsIdx[i][vals[i]]
		if a == nil {
			continue
		}
		for oi := range NumBuiltins {
			if a[oi] == nil || vals[oi] == "" || slices.Contains(a[oi], vals[oi]) {
				continue
			}
			return &Conflict{Dims[i].Name, vals[i], Dims[oi].Name, vals[oi], a[oi]}
		}
	}
	return nil
}

// Builtins are the values of the built-in dimensions of one variant.
type Builtins struct {
	Arch, Platform, HyperVGeneration, Firmware string
}

// Normalize returns b in canonical spellings: an empty arch or platform
// takes the dimension's default, an empty firmware is derived (V1: bios; V2
// and aarch64: uefi). It returns one error per unknown value, naming the
// accepted spellings, and one for a combination that cannot exist (aarch64
// with V1, V2 with bios, ...).
func Normalize(b Builtins) (Builtins, []error) {
	vals := [NumBuiltins]string{b.Arch, b.Platform, b.HyperVGeneration, b.Firmware}
	var errs []error
	for i := range Dims {
		d := &Dims[i]
		if strings.TrimSpace(vals[i]) == "" {
			vals[i] = ""
			if len(d.Defaults) == 1 {
				vals[i] = d.Defaults[0]
			}
			continue
		}
		c, ok := d.Normalize(strings.TrimSpace(vals[i]))
		if !ok {
			errs = append(errs, fmt.Errorf("%s = %q: unknown %s; want %s", d.Name, vals[i], d.What, d.Accepted()))
			vals[i] = ""
			continue
		}
		vals[i] = c
	}
	if vals[IFirmware] == "" {
		vals[IFirmware] = DeriveFirmware(&vals)
	}
	if len(errs) == 0 {
		if c := CheckCombination(&vals); c != nil {
			errs = append(errs, c)
		}
	}
	return Builtins{vals[IArch], vals[IPlatform], vals[IGeneration], vals[IFirmware]}, errs
}

// NormalizeArch returns the canonical arch (x86_64, aarch64) of any accepted
// spelling, or an error naming the accepted ones.
func NormalizeArch(s string) (string, error) {
	d := &Dims[IArch]
	if c, ok := d.Normalize(strings.TrimSpace(s)); ok {
		return c, nil
	}
	return "", fmt.Errorf("unknown architecture %q; want %s", s, d.Accepted())
}

// OCIArch returns the OCI spelling (amd64, arm64) of an arch in any accepted
// spelling, or "" when it is unknown.
func OCIArch(arch string) string {
	if v := Dims[IArch].Lookup(strings.TrimSpace(arch)); v != nil {
		return v.OCI
	}
	return ""
}

// AzureArch returns the Azure spelling (x64, Arm64) of an arch in any
// accepted spelling, or "" when it is unknown.
func AzureArch(arch string) string {
	if v := Dims[IArch].Lookup(strings.TrimSpace(arch)); v != nil {
		return v.Azure
	}
	return ""
}

// ArchFromGOARCH returns the canonical arch of a Go GOARCH value (amd64,
// arm64), or the value itself when the table has none.
func ArchFromGOARCH(goarch string) string {
	for _, v := range Dims[IArch].Values {
		if v.GOARCH == goarch {
			return v.Canonical
		}
	}
	return goarch
}
