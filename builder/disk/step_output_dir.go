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

// stepOutputDir creates the output directory. An existing one is an error
// unless -force, which deletes it first (removeOutputDirectory: a KIWI
// killed in an earlier run may have left mounts inside it).
//
// Cleanup removes the directory when the build fails or is cancelled: the
// build created it, so nothing half-done stays behind.
type stepOutputDir struct {
	dir   string
	force bool

	created bool
}

func (s *stepOutputDir) Run(ctx context.Context, state multistep.StateBag) multistep.StepAction {
	ui := state.Get("ui").(packersdk.Ui)
	if _, err := os.Stat(s.dir); err == nil {
		if !s.force {
			return halt(state, fmt.Errorf("output directory %s already exists: remove it, choose another output_directory, or run packer build -force to replace it", s.dir))
		}
		ui.Sayf("Deleting the existing output directory %s (-force)", s.dir)
		if err := removeOutputDirectory(s.dir); err != nil {
			return halt(state, fmt.Errorf("delete existing output directory: %w", err))
		}
	}
	if err := os.MkdirAll(filepath.Dir(s.dir), 0o755); err != nil {
		return halt(state, fmt.Errorf("output directory: %w", err))
	}
	if err := os.Mkdir(s.dir, 0o755); err != nil {
		return halt(state, fmt.Errorf("create output directory: %w", err))
	}
	s.created = true
	putGenerated(state, "OutputDir", s.dir)
	return multistep.ActionContinue
}

func (s *stepOutputDir) Cleanup(state multistep.StateBag) {
	if !s.created || !halted(state) {
		return
	}
	ui := state.Get("ui").(packersdk.Ui)
	ui.Sayf("Deleting output directory %s", s.dir)
	if err := removeOutputDirectory(s.dir); err != nil {
		ui.Errorf("Could not delete output directory: %v", err)
	}
}

// removeOutputDirectory deletes an output directory and everything in it,
// first unmounting and detaching what a killed KIWI left mounted from it.
func removeOutputDirectory(dir string) error { return kiwi.UnmountAndRemove(dir) }
