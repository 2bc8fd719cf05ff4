package disk

// Steps talk to each other only through the state bag keys below (and the
// SDK's "ui", "hook", "error" and "generated_data"); everything else a step
// needs it gets as fields when Builder.Steps makes it.

import (
	"github.com/hashicorp/packer-plugin-sdk/multistep"
	packersdk "github.com/hashicorp/packer-plugin-sdk/packer"

	"github.com/osimage/packer-plugin-osimage/internal/artifact"
	"github.com/osimage/packer-plugin-osimage/internal/variant"
)

// State bag keys.
const (
	// StateOutputs is the *outputs: every file this build has written so
	// far, by role. Steps add to it; the artifact is made from it.
	StateOutputs = "osimage.outputs"
	// StateSourceFormat is the source image's format (diskfmt names), from
	// stepPreflight for stepSourceImage.
	StateSourceFormat = "osimage.source_format"
	// StateSourceChecksum is the resolved `source_image_checksum` (a
	// checksum), from stepPreflight for stepSourceImage.
	StateSourceChecksum = "osimage.source_checksum"
	// StateKiwiResult is the *kiwi.Result of a KIWI build, with paths as
	// KIWI wrote them (inside the target directory, now removed); for
	// logging and for steps that want to know what KIWI made.
	StateKiwiResult = "osimage.kiwi_result"
	// StateDiskChanged is set (to true) by a step that changed the disk
	// after it was made: the QEMU boot/provisioning phase. KIWI's kis
	// files then describe the unprovisioned image, so stepBootFiles
	// extracts kernel, initramfs and rootfs from the disk instead. Such a
	// step also calls outputs.changed for the disk, so its checksum is
	// taken again.
	StateDiskChanged = "osimage.disk_changed"
	// StateKiwiDuration is how long kiwi-ng itself ran (a time.Duration),
	// so the builder can report the time it adds on top.
	StateKiwiDuration = "osimage.kiwi_duration"
	// StateGeneratedData is the SDK's key for data provisioners and
	// post-processors see as build.<Name>.
	StateGeneratedData = "generated_data"
)

// builderGenerated are the generated data names of the build itself; the
// variant's string fields (Key, Arch, Platform, ...) come before them.
// KernelPath, InitrdPath, RootfsPath, CmdlinePath and DiskSHA256 are only
// set after the boot files and checksums steps, so provisioners (which run
// before them) see them empty.
var builderGenerated = []string{
	"Source", "OutputDir", "DiskPath", "DiskSHA256", "KernelPath", "InitrdPath", "RootfsPath", "CmdlinePath",
}

// generatedNames are the names Prepare declares (values are strings, empty
// when not applicable).
func generatedNames() []string { return append(variant.FieldNames(), builderGenerated...) }

// outputs is what the build wrote, by role, with checksums where known.
type outputs struct {
	Files []artifact.File
}

func getOutputs(state multistep.StateBag) *outputs {
	if o, ok := state.GetOk(StateOutputs); ok {
		return o.(*outputs)
	}
	o := &outputs{}
	state.Put(StateOutputs, o)
	return o
}

// add records a file (replacing an entry with the same path).
func (o *outputs) add(f artifact.File) {
	for i := range o.Files {
		if o.Files[i].Path == f.Path {
			o.Files[i] = f
			return
		}
	}
	o.Files = append(o.Files, f)
}

// one returns the first file with the role.
func (o *outputs) one(role string) (artifact.File, bool) {
	for _, f := range o.Files {
		if f.Role == role {
			return f, true
		}
	}
	return artifact.File{}, false
}

// changed forgets the checksum and size of a file a step rewrote, so
// stepChecksums computes them again.
func (o *outputs) changed(path string) {
	for i := range o.Files {
		if o.Files[i].Path == path {
			o.Files[i].SHA256, o.Files[i].Size = "", 0
		}
	}
}

// putGenerated sets one generated data value.
func putGenerated(state multistep.StateBag, key, value string) {
	m, ok := state.GetOk(StateGeneratedData)
	if !ok {
		m = map[string]interface{}{}
	}
	gd := m.(map[string]interface{})
	gd[key] = value
	state.Put(StateGeneratedData, gd)
}

// halt is the one way a step stops the build: it records err as the
// build's error, shows it, and halts.
func halt(state multistep.StateBag, err error) multistep.StepAction {
	state.Put("error", err)
	state.Get("ui").(packersdk.Ui).Error(err.Error())
	return multistep.ActionHalt
}

// halted says whether the build failed or was cancelled (for Cleanup).
func halted(state multistep.StateBag) bool {
	_, cancelled := state.GetOk(multistep.StateCancelled)
	_, h := state.GetOk(multistep.StateHalted)
	return cancelled || h
}
