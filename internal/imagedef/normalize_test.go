package imagedef

import (
	"strings"
	"testing"
)

func TestNormalizeUsesTheOneTable(t *testing.T) {
	for _, tc := range []struct {
		in, want Builtins
		err      string
	}{
		{Builtins{Arch: "amd64"}, Builtins{"x86_64", "virtualization", "", ""}, ""},
		{Builtins{Arch: "ARM64", HyperVGeneration: "gen2"}, Builtins{"aarch64", "virtualization", "V2", "uefi"}, ""},
		{Builtins{Arch: "x64", Platform: "metal", HyperVGeneration: "1"}, Builtins{"x86_64", "baremetal", "V1", "bios"}, ""},
		{Builtins{Arch: "aarch64"}, Builtins{"aarch64", "virtualization", "", "uefi"}, ""},
		{Builtins{Arch: "arm64", HyperVGeneration: "V1"}, Builtins{}, "arch aarch64 cannot have hyperv_generation V1"},
		{Builtins{HyperVGeneration: "V2", Firmware: "legacy"}, Builtins{}, "hyperv_generation V2 cannot have firmware bios"},
		{Builtins{Arch: "riscv64"}, Builtins{}, `arch = "riscv64": unknown architecture; want x86_64 (or amd64, x64, x86-64), aarch64 (or arm64)`},
	} {
		got, errs := Normalize(tc.in)
		if tc.err != "" {
			if len(errs) != 1 || !strings.Contains(errs[0].Error(), tc.err) {
				t.Errorf("Normalize(%+v) errors %v, want %q", tc.in, errs, tc.err)
			}
			continue
		}
		if len(errs) != 0 || got != tc.want {
			t.Errorf("Normalize(%+v) = %+v, %v; want %+v", tc.in, got, errs, tc.want)
		}
	}
	if oci, az, ok := ArchSpellings("aarch64"); !ok || oci != "arm64" || az != "Arm64" {
		t.Errorf("ArchSpellings(aarch64) = %s %s %v", oci, az, ok)
	}
}
