package disk

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/hashicorp/packer-plugin-sdk/multistep"
	packersdk "github.com/hashicorp/packer-plugin-sdk/packer"

	"github.com/osimage/packer-plugin-osimage/internal/artifact"
	"github.com/osimage/packer-plugin-osimage/internal/bootfiles"
)

// stepBootFiles puts the kernel, the initramfs and the root filesystem
// image next to the disk when the variant needs them (boot_files). KIWI's
// kis files, if stepKiwiBuild found any, are used as they are, unless a
// step before this one changed the disk (StateDiskChanged, the QEMU
// phase); otherwise they are extracted from the disk without mounting
// anything (internal/bootfiles). Cleanup removes them when the build fails
// or is cancelled.
type stepBootFiles struct {
	outputDir string
	key       string // files are named <key>.kernel, .initrd, .rootfs
	arch      string
	why       string // why the variant wants boot files, for messages

	written []string
}

func (s *stepBootFiles) Run(ctx context.Context, state multistep.StateBag) multistep.StepAction {
	ui := state.Get("ui").(packersdk.Ui)
	out := getOutputs(state)
	fail := func(err error) multistep.StepAction { return halt(state, err) }

	_, changed := state.GetOk(StateDiskChanged)
	_, haveKernel := out.one(artifact.RoleKernel)
	if haveKernel && !changed {
		ui.Say("Kernel, initramfs and rootfs come from KIWI's kis output")
		return s.publish(state, out)
	}
	if haveKernel { // stale: made before the disk was changed
		kept := out.Files[:0]
		for _, f := range out.Files {
			switch f.Role {
			case artifact.RoleKernel, artifact.RoleInitrd, artifact.RoleRootfs:
				os.Remove(f.Path)
			default:
				kept = append(kept, f)
			}
		}
		out.Files = kept
	}

	disk, ok := out.one(artifact.RoleDisk)
	if !ok {
		return fail(fmt.Errorf("no disk to take boot files from"))
	}
	base := filepath.Join(s.outputDir, s.key)
	opts := bootfiles.Options{
		Disk:   disk.Path,
		Arch:   s.arch,
		Kernel: base + ".kernel",
		Initrd: base + ".initrd",
		Rootfs: base + ".rootfs",
	}
	s.written = []string{opts.Kernel, opts.Initrd, opts.Rootfs}
	ui.Sayf("Extracting kernel, initramfs and rootfs from %s", disk.Path)
	res, err := bootfiles.Extract(ctx, opts)
	if err != nil {
		return fail(fmt.Errorf("boot files (%s): %w", s.why, err))
	}
	ui.Sayf("Root filesystem: %s (%s)", res.Root.Partition, res.Root.Reason)
	for _, f := range []struct {
		role string
		file bootfiles.File
		fmt  string
	}{
		{artifact.RoleKernel, res.Kernel, ""},
		{artifact.RoleInitrd, res.Initrd, ""},
		{artifact.RoleRootfs, res.Rootfs, res.Root.Filesystem.Type},
	} {
		ui.Sayf("%s: %s (from %s)", f.role, f.file.Path, f.file.Source)
		out.add(artifact.File{Path: f.file.Path, Role: f.role, Format: f.fmt, SHA256: f.file.SHA256})
	}
	return s.publish(state, out)
}

func (s *stepBootFiles) publish(state multistep.StateBag, out *outputs) multistep.StepAction {
	for role, name := range map[string]string{artifact.RoleKernel: "KernelPath", artifact.RoleInitrd: "InitrdPath", artifact.RoleRootfs: "RootfsPath", artifact.RoleCmdline: "CmdlinePath"} {
		if f, ok := out.one(role); ok {
			putGenerated(state, name, f.Path)
		}
	}
	return multistep.ActionContinue
}

func (s *stepBootFiles) Cleanup(state multistep.StateBag) {
	if !halted(state) {
		return
	}
	for _, p := range s.written {
		os.Remove(p)
	}
}
