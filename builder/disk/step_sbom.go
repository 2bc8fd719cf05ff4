package disk

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/hashicorp/packer-plugin-sdk/multistep"
	packersdk "github.com/hashicorp/packer-plugin-sdk/packer"

	"github.com/osimage/packer-plugin-osimage/internal/artifact"
	"github.com/osimage/packer-plugin-osimage/internal/sbom"
	"github.com/osimage/packer-plugin-osimage/internal/sourcedate"
	"github.com/osimage/packer-plugin-osimage/version"
)

// stepSBOM writes the image's SBOM next to the disk (internal/sbom): from
// KIWI's package list when KIWI made the disk and no step changed it, else
// from the disk's own package database. In mode auto a disk it cannot read
// is a message, in mode required an error. Cleanup removes the file when
// the build fails.
type stepSBOM struct {
	outputDir, key, arch string
	mode, format         string
	// now is the creation time when SOURCE_DATE_EPOCH is not set (tests
	// fix it); zero means time.Now.
	now     func() time.Time
	written string
}

func (s *stepSBOM) Run(ctx context.Context, state multistep.StateBag) multistep.StepAction {
	ui := state.Get("ui").(packersdk.Ui)
	out := getOutputs(state)
	disk, ok := out.one(artifact.RoleDisk)
	if !ok {
		return halt(state, errors.New("sbom: no disk"))
	}
	opts := sbom.DiskOptions{Disk: disk.Path, Arch: s.arch}
	if list, ok := out.one(artifact.RolePackages); ok {
		if _, changed := state.GetOk(StateDiskChanged); !changed {
			opts.PackageList = list.Path
		}
	}
	created, err := s.created()
	if err != nil {
		return halt(state, err)
	}
	found, err := sbom.ReadDisk(ctx, opts)
	if err != nil {
		if s.mode == SBOMRequired || ctx.Err() != nil {
			return halt(state, fmt.Errorf("sbom (sbom = %q): variant %s: %w", s.mode, s.key, err))
		}
		ui.Sayf("No SBOM for variant %s: %v (set sbom = \"none\" to skip this, or \"required\" to make it an error)", s.key, err)
		return multistep.ActionContinue
	}
	doc := &sbom.Document{Name: s.key, OS: found.OS, Source: found.Source, Created: created,
		Tool: "packer-plugin-osimage-" + version.PluginVersion.String(), Packages: found.Packages}
	b, err := doc.Encode(s.format)
	if err != nil {
		return halt(state, fmt.Errorf("sbom: %w", err))
	}
	path := filepath.Join(s.outputDir, s.key+sbom.Ext(s.format))
	s.written = path
	if err := os.WriteFile(path, b, 0o644); err != nil {
		return halt(state, fmt.Errorf("sbom: %w", err))
	}
	out.add(artifact.File{Path: path, Role: artifact.RoleSBOM, Format: s.format})
	ui.Sayf("SBOM (%s): %s, %d packages from the %s", s.format, path, len(found.Packages), found.Source)
	return multistep.ActionContinue
}

// created is SOURCE_DATE_EPOCH when set (reproducible builds), else now.
func (s *stepSBOM) created() (time.Time, error) {
	now := time.Now()
	if s.now != nil {
		now = s.now()
	}
	t, err := sourcedate.Time(os.Getenv, now)
	if err != nil {
		return t, fmt.Errorf("sbom: %w", err)
	}
	return t, nil
}

func (s *stepSBOM) Cleanup(state multistep.StateBag) {
	if halted(state) && s.written != "" {
		os.Remove(s.written)
	}
}
