package disk

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hashicorp/packer-plugin-sdk/multistep"

	"github.com/osimage/packer-plugin-osimage/internal/artifact"
)

// stepState is a state bag with a test UI, for running one step alone.
func stepState() (*multistep.BasicStateBag, *testUI) {
	ui := &testUI{}
	state := new(multistep.BasicStateBag)
	state.Put("ui", ui)
	return state, ui
}

func TestChecksumStepHashesOnlyFilesWithoutAKnownChecksum(t *testing.T) {
	dir := t.TempDir()
	known, changed := filepath.Join(dir, "known"), filepath.Join(dir, "changed")
	os.WriteFile(known, []byte("one"), 0o644)
	os.WriteFile(changed, []byte("two!"), 0o644)
	state, _ := stepState()
	out := getOutputs(state)
	// A recorded checksum is trusted (the step that wrote the file
	// computed it); "stale" proves the file is not read again.
	out.add(artifact.File{Path: known, Role: artifact.RoleDisk, SHA256: "stale", Size: 3})
	out.add(artifact.File{Path: changed, Role: artifact.RoleRootfs, SHA256: sha256Bytes([]byte("old")), Size: 3})
	out.changed(changed)
	if got := (&stepChecksums{}).Run(context.Background(), state); got != multistep.ActionContinue {
		t.Fatalf("step halted: %v", state.Get("error"))
	}
	if f, _ := out.one(artifact.RoleDisk); f.SHA256 != "stale" {
		t.Errorf("known checksum recomputed: %+v", f)
	}
	if f, _ := out.one(artifact.RoleRootfs); f.SHA256 != sha256Bytes([]byte("two!")) || f.Size != 4 {
		t.Errorf("changed file: %+v, want the checksum and size of its new content", f)
	}
	if gd := state.Get(StateGeneratedData).(map[string]interface{}); gd["DiskSHA256"] != "stale" {
		t.Errorf("DiskSHA256 = %v", gd["DiskSHA256"])
	}
}

func TestChecksumStepHaltsWithTheErrorShownWhenAFileIsGone(t *testing.T) {
	state, ui := stepState()
	missing := filepath.Join(t.TempDir(), "gone.raw")
	getOutputs(state).add(artifact.File{Path: missing, Role: artifact.RoleDisk})
	if got := (&stepChecksums{}).Run(context.Background(), state); got != multistep.ActionHalt {
		t.Fatal("step went on without its file")
	}
	err, _ := state.Get("error").(error)
	if err == nil || !strings.Contains(err.Error(), missing) || len(ui.errors) != 1 || ui.errors[0] != err.Error() {
		t.Errorf("error %v, shown %q", err, ui.errors)
	}
}

func TestOutputDirStepRefusesAnExistingDirectoryWithoutForce(t *testing.T) {
	dir := t.TempDir()
	keep := filepath.Join(dir, "keep")
	os.WriteFile(keep, []byte("x"), 0o644)
	state, ui := stepState()
	s := &stepOutputDir{dir: dir}
	if s.Run(context.Background(), state) != multistep.ActionHalt {
		t.Fatal("existing output directory accepted without -force")
	}
	if len(ui.errors) != 1 || !strings.Contains(ui.errors[0], "already exists") || !strings.Contains(ui.errors[0], "-force") {
		t.Errorf("shown errors %q", ui.errors)
	}
	state.Put(multistep.StateHalted, true)
	s.Cleanup(state)
	if !exists(keep) {
		t.Error("cleanup deleted a directory the step did not create")
	}
}

func TestOutputDirStepReplacesUnderForceAndCleanupRemovesItOnFailure(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "a", "out")
	os.MkdirAll(dir, 0o755)
	os.WriteFile(filepath.Join(dir, "old"), []byte("x"), 0o644)
	state, _ := stepState()
	s := &stepOutputDir{dir: dir, force: true}
	if s.Run(context.Background(), state) != multistep.ActionContinue {
		t.Fatalf("halted: %v", state.Get("error"))
	}
	if exists(filepath.Join(dir, "old")) || !exists(dir) {
		t.Error("-force did not give a fresh, empty directory")
	}
	s.Cleanup(state) // the build succeeded: keep it
	if !exists(dir) {
		t.Fatal("cleanup after success removed the output")
	}
	state.Put(multistep.StateHalted, true)
	s.Cleanup(state)
	if exists(dir) {
		t.Error("cleanup after a failure left the output directory")
	}
}

func TestPreflightStepNamesTheFormatProblemOfTheSourceImage(t *testing.T) {
	empty := filepath.Join(t.TempDir(), "none.raw")
	state, ui := stepState()
	s := &stepPreflight{sourceImage: empty, qemuImg: "qemu-img", key: "k"}
	if s.Run(context.Background(), state) != multistep.ActionHalt {
		t.Fatal("missing source image accepted")
	}
	if len(ui.errors) != 1 || !strings.Contains(ui.errors[0], "source_image") || !strings.Contains(ui.errors[0], empty) {
		t.Errorf("shown errors %q", ui.errors)
	}
}

func TestSourceImageStepCopiesVerifiesAndCleansUpAfterAFailure(t *testing.T) {
	src := someFile(t)
	os.WriteFile(src, []byte("a raw disk"), 0o644)
	sum, err := parseChecksum(sha256File(t, src))
	if err != nil {
		t.Fatal(err)
	}
	disk := filepath.Join(t.TempDir(), "k.raw")
	state, ui := stepState()
	state.Put(StateSourceFormat, "raw")
	state.Put(StateSourceChecksum, sum)
	s := &stepSourceImage{source: src, qemuImg: "qemu-img", disk: disk}
	if s.Run(context.Background(), state) != multistep.ActionContinue {
		t.Fatalf("halted: %v", state.Get("error"))
	}
	f, ok := getOutputs(state).one(artifact.RoleDisk)
	if !ok || f.Path != disk || f.SHA256 != sum.Hex || sha256File(t, disk) != sum.Hex {
		t.Errorf("disk %+v; the copy's checksum is the verified source checksum", f)
	}
	if !strings.Contains(ui.output(), "verified") || !ui.progress {
		t.Errorf("no verification message or progress:\n%s", ui.output())
	}
	s.Cleanup(state)
	if !exists(disk) {
		t.Fatal("cleanup after success removed the disk")
	}
	state.Put(multistep.StateCancelled, true)
	s.Cleanup(state)
	if exists(disk) {
		t.Error("cleanup after a cancelled build left the disk")
	}
}
