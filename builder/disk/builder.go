// Package disk is the Packer glue of the osimage-disk builder: it turns the
// HCL config into a KIWI build (internal/kiwi) or a copy of an existing
// disk, splits out kernel, initramfs and rootfs for the variants that need
// them (internal/bootfiles), and hands on one artifact with files by role
// and the whole variant (internal/artifact).
//
// The build is a list of multistep steps, each made with the settings it
// needs (Builder.Steps), so each can be run and tested alone; each undoes in
// Cleanup what it half-did, so a failed or cancelled build leaves nothing
// behind:
//
//	stepPreflight      host and input checks, nothing written yet
//	stepOutputDir      output directory (deleted first under -force)
//	stepKiwiBuild      kiwi-ng system build      | stepSourceImage  sparse copy / qemu-img
//	stepQEMU           qemu {}: accelerator, firmware, port, QEMU, boot_check
//	StepConnect, StepProvision, StepCleanupTempKeys   (with a communicator)
//	stepQEMUShutdown   power-off; sets StateDiskChanged when provisioned
//	stepBootFiles      kernel, initramfs, rootfs (kis output or extracted), when wanted
//	stepChecksums      SHA-256 of every file
package disk

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sort"
	"strconv"
	"time"

	"github.com/hashicorp/hcl/v2/hcldec"
	"github.com/hashicorp/packer-plugin-sdk/multistep"
	"github.com/hashicorp/packer-plugin-sdk/multistep/commonsteps"
	packersdk "github.com/hashicorp/packer-plugin-sdk/packer"

	"github.com/osimage/packer-plugin-osimage/internal/artifact"
	"github.com/osimage/packer-plugin-osimage/internal/release"
)

// Builder makes a raw disk (plus boot files) from a KIWI description or an
// existing image.
type Builder struct {
	config Config
}

var _ packersdk.Builder = (*Builder)(nil)

func (b *Builder) ConfigSpec() hcldec.ObjectSpec { return b.config.FlatMapstructure().HCL2Spec() }

func (b *Builder) Prepare(raws ...interface{}) ([]string, []string, error) {
	names, err := b.config.Prepare(raws...)
	if err != nil {
		return nil, nil, err
	}
	return names, nil, nil
}

// Steps returns the build's steps for a prepared config, in order, each
// made with the settings it needs.
func (b *Builder) Steps() []multistep.Step {
	c := &b.config
	disk := filepath.Join(c.OutputDirectory, c.diskName)
	pre := &stepPreflight{arch: c.Arch, bootFiles: c.wantBootFiles(), key: c.key(), state: c.state}
	steps := []multistep.Step{pre, &stepOutputDir{dir: c.OutputDirectory, force: c.PackerForce}}
	if c.Kiwi != nil {
		pre.kiwi, pre.kiwiBinary, pre.targetArch = &c.kiwiOpts, c.Kiwi.KiwiPath, c.Kiwi.TargetArch
		steps = append(steps, &stepKiwiBuild{
			opts: c.kiwiOpts, binary: c.Kiwi.KiwiPath, outputDir: c.OutputDirectory,
			key: c.key(), diskName: c.diskName, bootFiles: c.wantBootFiles(),
		})
	} else {
		pre.sourceImage, pre.sourceChecksum, pre.qemuImg = c.SourceImage, c.SourceImageChecksum, c.QemuImgPath
		steps = append(steps, &stepSourceImage{source: c.SourceImage, qemuImg: c.QemuImgPath, disk: disk})
	}
	// The qemu {} phase (boot the disk, boot_check, provisioners, power
	// off): after the disk exists, before the boot files and the checksums
	// are taken from it.
	if c.QEMU != nil {
		pre.qemu = &qemuPreflight{binary: c.QEMU.Binary, arch: c.Arch, firmware: c.Firmware, code: c.QEMU.FirmwareCode, vars: c.QEMU.FirmwareVars}
		steps = append(steps, c.qemuSteps(disk)...)
	}
	if c.wantBootFiles() {
		steps = append(steps, &stepBootFiles{
			outputDir: c.OutputDirectory, key: c.key(), arch: c.Arch,
			why: fmt.Sprintf("boot_files = %q, platform %s", c.BootFiles, c.Platform),
		})
	}
	if c.SBOM != SBOMNone {
		steps = append(steps, &stepSBOM{outputDir: c.OutputDirectory, key: c.key(), arch: c.Arch, mode: c.SBOM, format: c.SBOMFormat})
	}
	return append(steps, &stepChecksums{})
}

func (b *Builder) Run(ctx context.Context, ui packersdk.Ui, hook packersdk.Hook) (packersdk.Artifact, error) {
	c := &b.config
	state := new(multistep.BasicStateBag)
	state.Put("ui", ui)
	state.Put("hook", hook)
	state.Put(StateGeneratedData, c.generated())

	runner := commonsteps.NewRunner(b.Steps(), c.PackerConfig, ui)
	t0 := time.Now()
	runner.Run(ctx, state)
	total := time.Since(t0)

	if err, ok := state.GetOk("error"); ok {
		return nil, err.(error)
	}
	if _, ok := state.GetOk(multistep.StateCancelled); ok {
		return nil, errors.New("build was cancelled")
	}
	if _, ok := state.GetOk(multistep.StateHalted); ok {
		return nil, errors.New("build was halted")
	}
	a := c.artifact(state)
	if c.state != nil {
		c.recordBuilt(ctx, ui, a.Artifact)
	}
	if d, ok := state.GetOk(StateKiwiDuration); ok {
		own := total - d.(time.Duration)
		ui.Sayf("Build took %v: kiwi-ng %v, the builder's own steps %v (%.1f%%)",
			total.Round(time.Millisecond), d.(time.Duration).Round(time.Millisecond), own.Round(time.Millisecond),
			100*own.Seconds()/d.(time.Duration).Seconds())
		a.Extra["kiwi_seconds"] = strconv.FormatFloat(d.(time.Duration).Seconds(), 'f', 3, 64)
		a.Extra["builder_seconds"] = strconv.FormatFloat(own.Seconds(), 'f', 3, 64)
	}
	return a, nil
}

// generated is the generated data known from the config alone: every
// name Prepare declared, the variant's fields filled in.
func (c *Config) generated() map[string]interface{} {
	gd := map[string]interface{}{}
	for _, n := range generatedNames() {
		gd[n] = ""
	}
	for _, f := range c.variant.Fields() {
		gd[f.Name] = f.Value
	}
	gd["Source"] = "source_image"
	if c.Kiwi != nil {
		gd["Source"] = "kiwi"
	}
	return gd
}

// roleOrder is the order of files in the artifact.
var roleOrder = map[string]int{
	artifact.RoleDisk: 0, artifact.RoleVHD: 1, roleOther: 2, artifact.RoleKernel: 3, artifact.RoleInitrd: 4,
	artifact.RoleRootfs: 5, artifact.RoleCmdline: 6, artifact.RolePackages: 7, artifact.RoleLog: 8,
}

// artifact assembles the artifact from a finished build's state.
// recordBuilt records the build in the variant's release state. A failure
// there does not fail the build (its files are good): the next run finds
// no record and builds again.
func (c *Config) recordBuilt(ctx context.Context, ui packersdk.Ui, a *artifact.Artifact) {
	var files []release.File
	for _, f := range a.Outputs {
		if f.Role == artifact.RoleLog {
			continue
		}
		files = append(files, release.File{Role: f.Role, Name: filepath.Base(f.Path), Size: f.Size, SHA256: f.SHA256})
	}
	if _, err := c.state.Built(ctx, files, time.Now()); err != nil {
		ui.Errorf("Warning: the build is done, but recording it in the release state failed (the next run builds it again): %v", err)
		return
	}
	ui.Sayf("Recorded the build of %s in the release state (%s)", c.variant.ReleaseName, c.state)
}

func (c *Config) artifact(state multistep.StateBag) *Artifact {
	out := getOutputs(state)
	files := append([]artifact.File(nil), out.Files...)
	sort.SliceStable(files, func(i, j int) bool { return roleOrder[files[i].Role] < roleOrder[files[j].Role] })

	generated := map[string]string{}
	if gd, ok := state.GetOk(StateGeneratedData); ok {
		for k, v := range gd.(map[string]interface{}) {
			if s, ok := v.(string); ok {
				generated[k] = s
			}
		}
	}
	a := &artifact.Artifact{
		Builder:   BuilderID,
		Variant:   c.variant.Clone(),
		Outputs:   files,
		Generated: generated,
		Extra: map[string]string{
			"output_directory": c.OutputDirectory,
			"source":           generated["Source"],
		},
		// StepOutputDir always creates the directory (an existing one is
		// an error, or deleted under -force), so all of it is this build's.
		Owned: []string{c.OutputDirectory},
	}
	if d, ok := out.one(artifact.RoleDisk); ok {
		a.ID = d.Path
		a.Extra["disk_path"] = d.Path
		a.Extra["disk_sha256"] = d.SHA256
	}
	src := c.SourceImage
	if c.Kiwi != nil {
		src = "kiwi:" + describe(c.kiwiOpts)
	}
	return &Artifact{Artifact: a, source: src}
}
