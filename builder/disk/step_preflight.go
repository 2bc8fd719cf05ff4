package disk

import (
	"context"
	"fmt"
	"os"
	"os/exec"

	"github.com/hashicorp/packer-plugin-sdk/multistep"
	packersdk "github.com/hashicorp/packer-plugin-sdk/packer"

	"github.com/osimage/packer-plugin-osimage/internal/bootfiles"
	"github.com/osimage/packer-plugin-osimage/internal/diskfmt"
	"github.com/osimage/packer-plugin-osimage/internal/kiwi"
	"github.com/osimage/packer-plugin-osimage/internal/qemuimg"
)

// State keys StepPreflight fills for StepSourceImage.
const (
	// StateSourceFormat is the source image's format (diskfmt names).
	StateSourceFormat = "osimage.source_format"
	// StateSourceChecksum is the resolved checksum (a checksum value), if
	// one was given.
	StateSourceChecksum = "osimage.source_checksum"
)

// kiwiPreflight checks the host for a KIWI build; tests replace it to run
// the fake kiwi-ng without root.
var kiwiPreflight = func(r *kiwi.Runner, opts kiwi.Options) error { return r.Preflight(opts) }

// StepPreflight checks everything the build needs before anything is
// written or deleted (an existing output directory is deleted under
// -force only after these checks pass): the tools, root and loop devices
// for KIWI, the architecture, the source image's format and checksum
// file, and debugfs when boot files will be extracted.
type StepPreflight struct{}

func (s *StepPreflight) Run(ctx context.Context, state multistep.StateBag) multistep.StepAction {
	c := state.Get(StateConfig).(*Config)
	ui := state.Get("ui").(packersdk.Ui)
	fail := func(err error) multistep.StepAction { return halt(state, ui, err) }

	if _, err := os.Stat(c.OutputDirectory); err == nil && !c.PackerForce {
		return fail(fmt.Errorf("output directory %s already exists: remove it, choose another output_directory, or run packer build -force to replace it", c.OutputDirectory))
	}

	if c.Kiwi != nil {
		opts, err := c.kiwiOptions("")
		if err != nil {
			return fail(err)
		}
		r := &kiwi.Runner{Binary: c.Kiwi.KiwiPath}
		if err := kiwiPreflight(r, opts); err != nil {
			return fail(fmt.Errorf("cannot run KIWI: %w", err))
		}
		if host := hostArch(); c.Arch != host && c.Kiwi.TargetArch == "" {
			return fail(fmt.Errorf("arch is %s but this machine is %s: KIWI does not cross-build (its --target-arch only renames outputs); build this variant on a %s machine, or set kiwi.target_arch if the host can run %s binaries (binfmt)",
				c.Arch, host, c.Arch, c.Arch))
		}
	}

	if c.SourceImage != "" {
		format, err := diskfmt.Detect(c.SourceImage)
		if err != nil {
			return fail(fmt.Errorf("source_image: %w", err))
		}
		if format != diskfmt.Raw {
			if _, err := qemuimg.Look(c.QemuImgPath); err != nil {
				return fail(fmt.Errorf("source_image %s is %s: %w", c.SourceImage, format, err))
			}
		}
		state.Put(StateSourceFormat, format)
		if c.SourceImageChecksum != "" {
			sum, err := parseChecksum(c.SourceImageChecksum)
			if err == nil {
				sum, err = sum.resolve(c.SourceImage)
			}
			if err != nil {
				return fail(err)
			}
			state.Put(StateSourceChecksum, sum)
		}
	}

	if c.wantBootFiles() {
		if _, err := exec.LookPath(bootfiles.DefaultDebugfs); err != nil {
			return fail(fmt.Errorf("boot files for %s need debugfs to read the disk's filesystem without mounting it; on Debian install it with `apt-get install e2fsprogs` (%v)", c.key(), err))
		}
	}
	return multistep.ActionContinue
}

func (s *StepPreflight) Cleanup(multistep.StateBag) {}

// kiwiOptions turns the kiwi block into the KIWI invocation.
func (c *Config) kiwiOptions(targetDir string) (kiwi.Options, error) {
	k := c.Kiwi
	opts := kiwi.Options{
		Description: k.Description,
		TargetDir:   targetDir,
		Profiles:    k.Profiles,
		Type:        k.Type,
		TargetArch:  k.TargetArch,
		KiwiFile:    c.kiwiFile,
		LogLevel:    k.LogLevel,
		Config:      k.RuntimeConfig,
		GlobalArgs:  k.ExtraGlobalArgs,
		AddPackages: k.Packages,
		IgnoreRepos: k.IgnoreRepos,
		BuildArgs:   k.ExtraBuildArgs,
	}
	if opts.TargetDir == "" {
		opts.TargetDir = "." // only checked for non-emptiness here
	}
	for _, r := range k.Repositories {
		opts.AddRepos = append(opts.AddRepos, r.repo())
	}
	if k.SetRepository != nil {
		r := k.SetRepository.repo()
		opts.SetRepo = &r
	}
	if _, err := opts.Args(); err != nil {
		return opts, err
	}
	return opts, nil
}
