package disk

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hashicorp/packer-plugin-sdk/multistep"

	"github.com/osimage/packer-plugin-osimage/builder/disk/disktest"
	"github.com/osimage/packer-plugin-osimage/internal/artifact"
	"github.com/osimage/packer-plugin-osimage/internal/sbom"
)

const oneDebPackage = "Package: bash\nStatus: install ok installed\nArchitecture: amd64\nVersion: 5.2.15-2+b7\n\n"

func sbomState(t *testing.T, files map[string]string) (*multistep.BasicStateBag, *testUI, string) {
	t.Helper()
	dir := t.TempDir()
	d := disktest.Make(t, dir, "v.raw", disktest.Options{Files: files})
	state, ui := stepState()
	getOutputs(state).add(artifact.File{Path: d.Path, Role: artifact.RoleDisk})
	return state, ui, dir
}

func TestSBOMStepWritesTheDisksPackagesAtSourceDateEpoch(t *testing.T) {
	t.Setenv("SOURCE_DATE_EPOCH", "1764460800")
	state, ui, dir := sbomState(t, map[string]string{"var/lib/dpkg/status": oneDebPackage})
	s := &stepSBOM{outputDir: dir, key: "v", arch: "x86_64", mode: SBOMAuto, format: sbom.FormatSPDX}
	if a := s.Run(context.Background(), state); a != multistep.ActionContinue {
		t.Fatalf("halted: %v", state.Get("error"))
	}
	f, ok := getOutputs(state).one(artifact.RoleSBOM)
	if !ok || f.Path != filepath.Join(dir, "v.spdx.json") || f.Format != sbom.FormatSPDX {
		t.Fatalf("sbom output %+v", f)
	}
	b, _ := os.ReadFile(f.Path)
	for _, want := range []string{`"created": "2025-11-30T00:00:00Z"`, `pkg:deb/osimagetest/bash@5.2.15-2%2Bb7?arch=amd64`, `"name": "v"`} {
		if !strings.Contains(string(b), want) {
			t.Errorf("SBOM lacks %s:\n%s", want, b)
		}
	}
	if !strings.Contains(ui.output(), "1 packages from the dpkg status file") {
		t.Errorf("ui: %s", ui.output())
	}
	t.Setenv("SOURCE_DATE_EPOCH", "yesterday")
	if a := s.Run(context.Background(), state); a != multistep.ActionHalt || !strings.Contains(state.Get("error").(error).Error(), `SOURCE_DATE_EPOCH="yesterday"`) {
		t.Fatalf("a bad SOURCE_DATE_EPOCH: %v", state.Get("error"))
	}
}

// KIWI's list describes the disk KIWI made; once the qemu phase changed
// the disk, the disk's own database does.
func TestSBOMStepTakesKiwisListUnlessTheDiskChanged(t *testing.T) {
	state, _, dir := sbomState(t, map[string]string{"var/lib/dpkg/status": oneDebPackage})
	list := filepath.Join(dir, "v.packages")
	os.WriteFile(list, []byte("apt|None|2.6.1|None|amd64|None|None\n"), 0o644)
	getOutputs(state).add(artifact.File{Path: list, Role: artifact.RolePackages})
	s := &stepSBOM{outputDir: dir, key: "v", mode: SBOMRequired, format: sbom.FormatCycloneDX}
	for _, tc := range []struct {
		changed bool
		want    string
	}{{false, "pkg:deb/osimagetest/apt@2.6.1"}, {true, "pkg:deb/osimagetest/bash@5.2.15"}} {
		if tc.changed {
			state.Put(StateDiskChanged, true)
		}
		if a := s.Run(context.Background(), state); a != multistep.ActionContinue {
			t.Fatalf("halted: %v", state.Get("error"))
		}
		b, _ := os.ReadFile(filepath.Join(dir, "v.cdx.json"))
		if !strings.Contains(string(b), tc.want) {
			t.Errorf("disk changed %v: want %s in\n%s", tc.changed, tc.want, b)
		}
	}
}

func TestSBOMStepWithoutADatabaseSaysWhichVariantInAutoAndFailsWhenRequired(t *testing.T) {
	state, ui, dir := sbomState(t, nil)
	s := &stepSBOM{outputDir: dir, key: "edge-x86_64", mode: SBOMAuto, format: sbom.FormatSPDX}
	if a := s.Run(context.Background(), state); a != multistep.ActionContinue {
		t.Fatalf("auto must go on: %v", state.Get("error"))
	}
	if !strings.Contains(ui.output(), "No SBOM for variant edge-x86_64") || !strings.Contains(ui.output(), "no package database") {
		t.Errorf("ui: %s", ui.output())
	}
	if _, ok := getOutputs(state).one(artifact.RoleSBOM); ok {
		t.Error("an SBOM output without a document")
	}
	s.mode = SBOMRequired
	if a := s.Run(context.Background(), state); a != multistep.ActionHalt || !strings.Contains(state.Get("error").(error).Error(), "variant edge-x86_64") {
		t.Fatalf("required: %v", state.Get("error"))
	}
}

func TestSBOMOptionsAreValidatedAndNoneLeavesTheStepOut(t *testing.T) {
	src := filepath.Join(t.TempDir(), "s.raw")
	os.WriteFile(src, make([]byte, 1<<20), 0o644)
	_, err := prepare(t, map[string]interface{}{"source_image": src, "sbom": "sometimes", "sbom_format": "spdx-tag"})
	wantErr(t, err, `sbom = "sometimes"`, `sbom_format = "spdx-tag": want one of spdx-json, cyclonedx-json`)
	for _, mode := range []string{"", "none"} {
		var b Builder
		if _, _, err := b.Prepare(map[string]interface{}{"source_image": src, "sbom": mode, "output_directory": filepath.Join(t.TempDir(), "o")}); err != nil {
			t.Fatal(err)
		}
		has := false
		for _, st := range b.Steps() {
			_, is := st.(*stepSBOM)
			has = has || is
		}
		if has != (mode == "") {
			t.Errorf("sbom = %q: SBOM step present %v", mode, has)
		}
	}
}
