package disk

import (
	"context"
	"fmt"
	"os/exec"

	"github.com/hashicorp/packer-plugin-sdk/multistep"

	"github.com/osimage/packer-plugin-osimage/internal/bootfiles"
	"github.com/osimage/packer-plugin-osimage/internal/diskfmt"
	"github.com/osimage/packer-plugin-osimage/internal/kiwi"
	"github.com/osimage/packer-plugin-osimage/internal/qemuimg"
	"github.com/osimage/packer-plugin-osimage/internal/release"
)

// kiwiPreflight checks the host for a KIWI build; tests replace it to run
// the fake kiwi-ng without root.
var kiwiPreflight = func(r *kiwi.Runner, opts kiwi.Options) error { return r.Preflight(opts) }

// stepPreflight checks what the build needs from the host before anything
// is written or deleted: the tools, root and loop devices for KIWI, the
// architecture, the source image's format and checksum file, and debugfs
// when boot files will be extracted. (That the output directory may be
// created is stepOutputDir's check, which runs next, before anything is
// written.)
type stepPreflight struct {
	kiwi       *kiwi.Options // nil: no KIWI build
	kiwiBinary string
	targetArch string // kiwi.target_arch
	arch       string

	sourceImage    string // "" when KIWI builds the disk
	sourceChecksum string
	qemuImg        string

	qemu *qemuPreflight // nil: no qemu {} phase

	bootFiles bool   // kernel, initramfs and rootfs will be extracted
	key       string // for messages

	// state is the variant's release state; nil without one. A revision
	// published anywhere is never rebuilt.
	state *release.Recorder
}

func (s *stepPreflight) Run(ctx context.Context, state multistep.StateBag) multistep.StepAction {
	if s.state != nil {
		if err := s.state.CheckBuild(ctx); err != nil {
			return halt(state, err)
		}
	}
	if s.qemu != nil {
		if err := s.qemu.check(); err != nil {
			return halt(state, err)
		}
	}
	if s.kiwi != nil {
		r := &kiwi.Runner{Binary: s.kiwiBinary}
		if err := kiwiPreflight(r, *s.kiwi); err != nil {
			return halt(state, fmt.Errorf("cannot run KIWI: %w", err))
		}
		if host := hostArch(); s.arch != host && s.targetArch == "" {
			return halt(state, fmt.Errorf("arch is %s but this machine is %s: KIWI does not cross-build (its --target-arch only renames outputs); build this variant on a %s machine, or set kiwi.target_arch if the host can run %s binaries (binfmt)",
				s.arch, host, s.arch, s.arch))
		}
	}

	if s.sourceImage != "" {
		format, err := diskfmt.Detect(s.sourceImage)
		if err != nil {
			return halt(state, fmt.Errorf("source_image: %w", err))
		}
		if format != diskfmt.Raw {
			if _, err := qemuimg.Look(s.qemuImg); err != nil {
				return halt(state, fmt.Errorf("source_image %s is %s: %w", s.sourceImage, format, err))
			}
		}
		state.Put(StateSourceFormat, format)
		if s.sourceChecksum != "" {
			sum, err := parseChecksum(s.sourceChecksum)
			if err == nil {
				sum, err = sum.resolve(s.sourceImage)
			}
			if err != nil {
				return halt(state, err)
			}
			state.Put(StateSourceChecksum, sum)
		}
	}

	if s.bootFiles {
		if _, err := exec.LookPath(bootfiles.DefaultDebugfs); err != nil {
			return halt(state, fmt.Errorf("boot files for %s need debugfs to read the disk's filesystem without mounting it; on Debian install it with `apt-get install e2fsprogs` (%v)", s.key, err))
		}
	}
	return multistep.ActionContinue
}

func (s *stepPreflight) Cleanup(multistep.StateBag) {}
