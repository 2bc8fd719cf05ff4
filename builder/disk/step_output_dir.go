package disk

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/hashicorp/packer-plugin-sdk/multistep"
	packersdk "github.com/hashicorp/packer-plugin-sdk/packer"

	"github.com/osimage/packer-plugin-osimage/internal/kiwi"
)

// StepOutputDir creates the output directory. An existing one is an error
// unless -force, which deletes it first. It is deleted with
// kiwi.RemoveTarget rather than os.RemoveAll: a KIWI killed in an earlier
// run may have left bind mounts of the host's /dev inside it.
//
// Cleanup removes the directory when the build fails or is cancelled: the
// build created it, so nothing half-done stays behind.
type StepOutputDir struct {
	created bool
}

func (s *StepOutputDir) Run(ctx context.Context, state multistep.StateBag) multistep.StepAction {
	c := state.Get(StateConfig).(*Config)
	ui := state.Get("ui").(packersdk.Ui)
	dir := c.OutputDirectory
	if _, err := os.Stat(dir); err == nil {
		if !c.PackerForce {
			err := fmt.Errorf("output directory %s already exists: remove it, choose another output_directory, or run packer build -force to replace it", dir)
			state.Put("error", err)
			ui.Error(err.Error())
			return multistep.ActionHalt
		}
		ui.Sayf("Deleting the existing output directory %s (-force)", dir)
		if err := kiwi.RemoveTarget(dir); err != nil {
			err = fmt.Errorf("delete existing output directory: %w", err)
			state.Put("error", err)
			ui.Error(err.Error())
			return multistep.ActionHalt
		}
	}
	if err := os.MkdirAll(filepath.Dir(dir), 0o755); err != nil {
		state.Put("error", fmt.Errorf("output directory: %w", err))
		return multistep.ActionHalt
	}
	if err := os.Mkdir(dir, 0o755); err != nil {
		state.Put("error", fmt.Errorf("create output directory: %w", err))
		return multistep.ActionHalt
	}
	s.created = true
	putGenerated(state, "OutputDir", dir)
	return multistep.ActionContinue
}

func (s *StepOutputDir) Cleanup(state multistep.StateBag) {
	if !s.created || !halted(state) {
		return
	}
	c := state.Get(StateConfig).(*Config)
	ui := state.Get("ui").(packersdk.Ui)
	ui.Sayf("Deleting output directory %s", c.OutputDirectory)
	if err := kiwi.RemoveTarget(c.OutputDirectory); err != nil {
		ui.Errorf("Could not delete output directory: %v", err)
	}
}
