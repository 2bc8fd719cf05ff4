package imagedef

import (
	"fmt"
	"slices"
	"strings"
)

// This file is the one place that knows the spellings of the built-in
// dimensions. The rest of the package works with canonical values only and
// never names "gen1", "aarch64" or "baremetal".

// Names of the built-in dimensions, as used in exclude/when rules, in
// Variant.Dimensions and in error messages.
const (
	DimArch             = "arch"
	DimPlatform         = "platform"
	DimHyperVGeneration = "hyperv_generation"
	DimFirmware         = "firmware"
)

// dimValue is one accepted value of a built-in dimension.
type dimValue struct {
	canonical string   // the value every variant carries, e.g. "x86_64", "V2"
	keyPart   string   // spelling in variant keys, e.g. "gen2" for V2
	aliases   []string // other accepted spellings (matched case-insensitively)
	oci       string   // OCI platform spelling (arch only)
	azure     string   // Azure spelling (arch only)
	// allows restricts the values other built-in dimensions may take in the
	// same variant; a single allowed firmware is also the derived firmware.
	allows map[string][]string
}

// builtinDim describes one built-in dimension.
type builtinDim struct {
	name        string   // dimension name
	variantsKey string   // key in an image's [variants] table
	what        string   // noun for messages
	defaults    []string // values used when the image does not declare the key
	values      []dimValue
}

// builtinDims lists the built-in dimensions in expansion and key order.
var builtinDims = []builtinDim{
	{
		name: DimArch, variantsKey: "architectures", what: "architecture",
		defaults: []string{"x86_64"},
		values: []dimValue{
			{canonical: "x86_64", keyPart: "x86_64", aliases: []string{"amd64", "x64", "x86-64"}, oci: "amd64", azure: "x64"},
			{canonical: "aarch64", keyPart: "aarch64", aliases: []string{"arm64"}, oci: "arm64", azure: "Arm64",
				// Azure runs Arm64 VMs as generation 2 (UEFI) only.
				allows: map[string][]string{DimFirmware: {"uefi"}, DimHyperVGeneration: {"V2"}}},
		},
	},
	{
		name: DimPlatform, variantsKey: "platforms", what: "platform",
		defaults: []string{"virtualization"},
		values: []dimValue{
			{canonical: "virtualization", keyPart: "virtualization", aliases: []string{"virtual", "virt", "vm"}},
			{canonical: "baremetal", keyPart: "baremetal", aliases: []string{"bare-metal", "metal"}},
		},
	},
	{
		name: DimHyperVGeneration, variantsKey: "hyperv_generations", what: "Hyper-V generation",
		values: []dimValue{
			{canonical: "V1", keyPart: "gen1", aliases: []string{"gen1", "1", "v1"},
				allows: map[string][]string{DimFirmware: {"bios"}}},
			{canonical: "V2", keyPart: "gen2", aliases: []string{"gen2", "2", "v2"},
				allows: map[string][]string{DimFirmware: {"uefi"}}},
		},
	},
	{
		name: DimFirmware, variantsKey: "firmwares", what: "firmware",
		values: []dimValue{
			{canonical: "bios", keyPart: "bios", aliases: []string{"legacy"}},
			{canonical: "uefi", keyPart: "uefi", aliases: []string{"efi"}},
		},
	},
}

// firmwareSources lists, in priority order, the dimensions whose value can
// imply the firmware when the image does not declare firmwares.
var firmwareSources = []string{DimHyperVGeneration, DimArch}

// Indexes into builtinDims, for the hot path.
const (
	bArch = iota
	bPlatform
	bGeneration
	bFirmware
	numBuiltins
)

// Lookup tables derived from builtinDims once.
var (
	// valueIndex maps a canonical value to its entry, per built-in dimension.
	valueIndex [numBuiltins]map[string]*dimValue
	// allowsIdx[i][v][j] lists the values dimension j may take when
	// dimension i has canonical value v (nil: anything).
	allowsIdx [numBuiltins]map[string]*[numBuiltins][]string
	// firmwareSourceIdx are the indexes of firmwareSources.
	firmwareSourceIdx []int
)

func init() {
	for i := range builtinDims {
		valueIndex[i] = map[string]*dimValue{}
		allowsIdx[i] = map[string]*[numBuiltins][]string{}
		for j := range builtinDims[i].values {
			v := &builtinDims[i].values[j]
			valueIndex[i][v.canonical] = v
			if len(v.allows) == 0 {
				continue
			}
			var a [numBuiltins][]string
			for name, vals := range v.allows {
				_, oi := builtinByName(name)
				a[oi] = vals
			}
			allowsIdx[i][v.canonical] = &a
		}
	}
	for _, name := range firmwareSources {
		_, i := builtinByName(name)
		firmwareSourceIdx = append(firmwareSourceIdx, i)
	}
}

// builtinByName returns the built-in dimension called name.
func builtinByName(name string) (*builtinDim, int) {
	for i := range builtinDims {
		if builtinDims[i].name == name {
			return &builtinDims[i], i
		}
	}
	return nil, -1
}

// builtinByVariantsKey returns the built-in dimension declared by key in a
// [variants] table.
func builtinByVariantsKey(key string) (*builtinDim, int) {
	for i := range builtinDims {
		if builtinDims[i].variantsKey == key {
			return &builtinDims[i], i
		}
	}
	return nil, -1
}

// normalize returns the canonical spelling of s, or false.
func (d *builtinDim) normalize(s string) (string, bool) {
	if v := d.lookup(s); v != nil {
		return v.canonical, true
	}
	return "", false
}

// lookup finds the value spelled s (canonical or alias, any case).
func (d *builtinDim) lookup(s string) *dimValue {
	for i := range d.values {
		v := &d.values[i]
		if strings.EqualFold(s, v.canonical) {
			return v
		}
		for _, a := range v.aliases {
			if strings.EqualFold(s, a) {
				return v
			}
		}
	}
	return nil
}

// accepted describes the accepted spellings for error messages, e.g.
// `x86_64 (or amd64, x64, x86-64), aarch64 (or arm64)`.
func (d *builtinDim) accepted() string {
	parts := make([]string, 0, len(d.values))
	for _, v := range d.values {
		if len(v.aliases) == 0 {
			parts = append(parts, v.canonical)
			continue
		}
		parts = append(parts, v.canonical+" (or "+strings.Join(v.aliases, ", ")+")")
	}
	return strings.Join(parts, ", ")
}

// archSpellings returns the OCI and Azure spellings of a canonical arch.
func archSpellings(arch string) (oci, azure string) {
	if v := valueIndex[bArch][arch]; v != nil {
		return v.oci, v.azure
	}
	return "", ""
}

// deriveFirmware returns the firmware implied by the other built-in values
// (vals indexed like builtinDims), or "" when nothing implies one.
func deriveFirmware(vals *[numBuiltins]string) string {
	for _, i := range firmwareSourceIdx {
		if a := allowsIdx[i][vals[i]]; a != nil && len(a[bFirmware]) == 1 {
			return a[bFirmware][0]
		}
	}
	return ""
}

// checkCombination reports the first built-in value that does not allow
// another built-in value of the same variant, as (dimension, value, other
// dimension, other value, allowed values); ok is true when all fit. Other
// dimensions are checked in table order, so a declared generation is named
// before a firmware derived from it.
func checkCombination(vals *[numBuiltins]string) (dim, val, other, otherVal string, allowed []string, ok bool) {
	for i := range numBuiltins {
		a := allowsIdx[i][vals[i]]
		if a == nil {
			continue
		}
		for oi := range numBuiltins {
			if a[oi] == nil || vals[oi] == "" || slices.Contains(a[oi], vals[oi]) {
				continue
			}
			return builtinDims[i].name, vals[i], builtinDims[oi].name, vals[oi], a[oi], false
		}
	}
	return "", "", "", "", nil, true
}

// Builtins are the values of the built-in dimensions of one variant, as
// users spell them (for components configured one variant at a time, such
// as the osimage-disk builder).
type Builtins struct {
	Arch, Platform, HyperVGeneration, Firmware string
}

// Normalize returns b in canonical spellings, using this file's one table:
// an empty arch or platform takes the dimension's default, an empty
// firmware is derived (V1: bios; V2 and aarch64: uefi). It returns one error
// per unknown value, naming the accepted spellings, and one for a
// combination that cannot exist (aarch64 with V1, V2 with bios, ...).
func Normalize(b Builtins) (Builtins, []error) {
	vals := [numBuiltins]string{b.Arch, b.Platform, b.HyperVGeneration, b.Firmware}
	var errs []error
	for i := range builtinDims {
		d := &builtinDims[i]
		if strings.TrimSpace(vals[i]) == "" {
			vals[i] = ""
			if len(d.defaults) == 1 {
				vals[i] = d.defaults[0]
			}
			continue
		}
		c, ok := d.normalize(strings.TrimSpace(vals[i]))
		if !ok {
			errs = append(errs, fmt.Errorf("%s = %q: unknown %s; want %s", d.name, vals[i], d.what, d.accepted()))
			vals[i] = ""
			continue
		}
		vals[i] = c
	}
	if vals[bFirmware] == "" {
		vals[bFirmware] = deriveFirmware(&vals)
	}
	if len(errs) == 0 {
		if dim, val, other, otherVal, allowed, ok := checkCombination(&vals); !ok {
			errs = append(errs, fmt.Errorf("%s %s cannot have %s %s (allowed: %s)", dim, val, other, otherVal, strings.Join(allowed, ", ")))
		}
	}
	return Builtins{vals[bArch], vals[bPlatform], vals[bGeneration], vals[bFirmware]}, errs
}

// ArchSpellings returns the OCI (amd64, arm64) and Azure (x64, Arm64)
// spellings of an arch in any accepted spelling, or false.
func ArchSpellings(arch string) (oci, azure string, ok bool) {
	v := builtinDims[bArch].lookup(arch)
	if v == nil {
		return "", "", false
	}
	return v.oci, v.azure, true
}
