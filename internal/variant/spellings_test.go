package variant

import (
	"strings"
	"testing"
)

func TestNormalizeAcceptsEverySpellingAndDerivesFirmware(t *testing.T) {
	for _, tc := range []struct {
		in, want Builtins
	}{
		{Builtins{}, Builtins{"x86_64", "virtualization", "", ""}},
		{Builtins{"amd64", "metal", "2", ""}, Builtins{"x86_64", "baremetal", "V2", "uefi"}},
		{Builtins{" X64 ", "bare-metal", "gen1", ""}, Builtins{"x86_64", "baremetal", "V1", "bios"}},
		{Builtins{"x86-64", "vm", "v2", "EFI"}, Builtins{"x86_64", "virtualization", "V2", "uefi"}},
		{Builtins{"arm64", "virt", "", ""}, Builtins{"aarch64", "virtualization", "", "uefi"}},
		{Builtins{"aarch64", "virtual", "V2", ""}, Builtins{"aarch64", "virtualization", "V2", "uefi"}},
		{Builtins{"x86_64", "", "", "legacy"}, Builtins{"x86_64", "virtualization", "", "bios"}},
	} {
		got, errs := Normalize(tc.in)
		if len(errs) != 0 || got != tc.want {
			t.Errorf("Normalize(%+v) = %+v %v, want %+v", tc.in, got, errs, tc.want)
		}
	}
}

func TestNormalizeNamesUnknownValuesAndImpossibleCombinations(t *testing.T) {
	for _, tc := range []struct {
		in   Builtins
		want []string
	}{
		{Builtins{Arch: "sparc"}, []string{`arch = "sparc": unknown architecture; want x86_64 (or amd64, x64, x86-64), aarch64 (or arm64)`}},
		{Builtins{Platform: "cloud"}, []string{`platform = "cloud"`, "baremetal (or bare-metal, metal)"}},
		{Builtins{HyperVGeneration: "3"}, []string{`hyperv_generation = "3"`, "V1 (or gen1, 1, v1)"}},
		{Builtins{Firmware: "coreboot"}, []string{`firmware = "coreboot"`, "uefi (or efi)"}},
		{Builtins{Arch: "arm64", HyperVGeneration: "V1"}, []string{"arch aarch64 cannot have hyperv_generation V1 (allowed: V2)"}},
		{Builtins{HyperVGeneration: "V2", Firmware: "bios"}, []string{"hyperv_generation V2 cannot have firmware bios (allowed: uefi)"}},
		{Builtins{Arch: "aarch64", Firmware: "bios"}, []string{"arch aarch64 cannot have firmware bios (allowed: uefi)"}},
	} {
		_, errs := Normalize(tc.in)
		if len(errs) != 1 {
			t.Errorf("Normalize(%+v): %d errors %v, want 1", tc.in, len(errs), errs)
			continue
		}
		for _, w := range tc.want {
			if !strings.Contains(errs[0].Error(), w) {
				t.Errorf("Normalize(%+v): %v lacks %q", tc.in, errs[0], w)
			}
		}
	}
	if _, errs := Normalize(Builtins{Arch: "mips", Platform: "x"}); len(errs) != 2 {
		t.Errorf("two unknown values give %d errors", len(errs))
	}
	if _, errs := Normalize(Builtins{Arch: "mips", HyperVGeneration: "V1", Firmware: "uefi"}); len(errs) != 1 {
		t.Errorf("combinations are checked only when every value is known: %v", errs)
	}
}

func TestArchSpellingsForTheClouds(t *testing.T) {
	for _, tc := range []struct{ in, canon, oci, azure string }{
		{"x86_64", "x86_64", "amd64", "x64"}, {"AMD64", "x86_64", "amd64", "x64"}, {"x64", "x86_64", "amd64", "x64"},
		{"aarch64", "aarch64", "arm64", "Arm64"}, {" arm64", "aarch64", "arm64", "Arm64"},
	} {
		c, err := NormalizeArch(tc.in)
		if err != nil || c != tc.canon || OCIArch(tc.in) != tc.oci || AzureArch(tc.in) != tc.azure {
			t.Errorf("%q: %s %v %s %s", tc.in, c, err, OCIArch(tc.in), AzureArch(tc.in))
		}
	}
	if _, err := NormalizeArch("ppc64le"); err == nil || !strings.Contains(err.Error(), `"ppc64le"`) {
		t.Errorf("NormalizeArch(ppc64le) err = %v", err)
	}
	if OCIArch("ppc64le") != "" || AzureArch("ppc64le") != "" {
		t.Error("unknown arch has cloud spellings")
	}
	if ArchFromGOARCH("arm64") != "aarch64" || ArchFromGOARCH("amd64") != "x86_64" || ArchFromGOARCH("riscv64") != "riscv64" {
		t.Error("ArchFromGOARCH")
	}
}

func TestTheTableIsConsistent(t *testing.T) {
	for i, d := range Dims {
		if got, j := DimByName(d.Name); got != &Dims[i] || j != i {
			t.Errorf("DimByName(%s) = %d", d.Name, j)
		}
		if got, j := DimByVariantsKey(d.VariantsKey); got != &Dims[i] || j != i {
			t.Errorf("DimByVariantsKey(%s) = %d", d.VariantsKey, j)
		}
		for _, v := range d.Values {
			if Canonical(i, v.Canonical) == nil || Canonical(i, v.Canonical).KeyPart != v.KeyPart {
				t.Errorf("Canonical(%d, %s)", i, v.Canonical)
			}
			for _, a := range v.Aliases {
				if c, ok := d.Normalize(strings.ToUpper(a)); !ok || c != v.Canonical {
					t.Errorf("%s alias %s -> %s %v", d.Name, a, c, ok)
				}
			}
		}
	}
	if d, i := DimByName("cloud"); d != nil || i != -1 {
		t.Error("DimByName of a user dimension")
	}
	if d, i := DimByVariantsKey("clouds"); d != nil || i != -1 {
		t.Error("DimByVariantsKey of a user key")
	}
	if Canonical(IArch, "arm64") != nil {
		t.Error("Canonical takes canonical values only")
	}
}

func TestDeriveFirmwarePrefersTheGenerationOverTheArch(t *testing.T) {
	vals := [NumBuiltins]string{"aarch64", "virtualization", "", ""}
	if DeriveFirmware(&vals) != "uefi" {
		t.Error("aarch64 implies uefi")
	}
	vals = [NumBuiltins]string{"x86_64", "virtualization", "V1", ""}
	if DeriveFirmware(&vals) != "bios" {
		t.Error("V1 implies bios")
	}
	vals = [NumBuiltins]string{"x86_64", "virtualization", "", ""}
	if DeriveFirmware(&vals) != "" {
		t.Error("x86_64 alone implies nothing")
	}
	c := CheckCombination(&[NumBuiltins]string{"aarch64", "virtualization", "V1", "bios"})
	if c == nil || c.Dim != "arch" || c.Other != "firmware" && c.Other != "hyperv_generation" {
		t.Errorf("conflict %+v", c)
	}
	if c.Other != "hyperv_generation" {
		t.Errorf("the generation is named before the firmware: %+v", c)
	}
}
