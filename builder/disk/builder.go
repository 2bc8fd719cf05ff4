// Package disk is the Packer glue of the osimage-disk builder: it turns the
// HCL config into a KIWI build (internal/kiwi) or a copy of an existing
// disk, splits out kernel, initramfs and rootfs for the variants that need
// them (internal/bootfiles), and hands on one artifact with files by role
// (internal/artifact).
//
// The build is a list of multistep steps; each undoes in Cleanup what it
// half-did, so a failed or cancelled build leaves nothing behind:
//
//	StepPreflight      host and input checks, nothing written yet
//	StepOutputDir      output directory (deleted first under -force)
//	StepKiwiBuild      kiwi-ng system build      | StepSourceImage  sparse copy / qemu-img
//	                   (the QEMU boot and provisioning phase goes here:
//	                   it needs the disk and must run before boot files
//	                   and checksums are taken; it sets StateDiskChanged)
//	StepBootFiles      kernel, initramfs, rootfs (kis output or extracted)
//	StepChecksums      SHA-256 of every file
package disk

import (
	"context"
	"errors"
	"sort"
	"strconv"
	"time"

	"github.com/hashicorp/hcl/v2/hcldec"
	"github.com/hashicorp/packer-plugin-sdk/multistep"
	"github.com/hashicorp/packer-plugin-sdk/multistep/commonsteps"
	packersdk "github.com/hashicorp/packer-plugin-sdk/packer"

	"github.com/osimage/packer-plugin-osimage/internal/artifact"
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

// Steps returns the build's steps for a prepared config, in order.
func (b *Builder) Steps() []multistep.Step {
	steps := []multistep.Step{&StepPreflight{}, &StepOutputDir{}}
	if b.config.Kiwi != nil {
		steps = append(steps, &StepKiwiBuild{})
	} else {
		steps = append(steps, &StepSourceImage{})
	}
	// The QEMU boot/provisioning phase (boot the disk, run provisioners,
	// shut down) slots in here: after the disk exists, before the boot
	// files and the checksums are taken from it.
	return append(steps, &StepBootFiles{}, &StepChecksums{})
}

func (b *Builder) Run(ctx context.Context, ui packersdk.Ui, hook packersdk.Hook) (packersdk.Artifact, error) {
	c := &b.config
	state := new(multistep.BasicStateBag)
	state.Put(StateConfig, c)
	state.Put("ui", ui)
	state.Put("hook", hook)
	gd := map[string]interface{}{}
	for _, n := range generatedNames {
		gd[n] = ""
	}
	state.Put(StateGeneratedData, gd)
	for k, v := range c.generatedVariant() {
		putGenerated(state, k, v)
	}

	runner := commonsteps.NewRunner(b.Steps(), c.PackerConfig, ui)
	t0 := time.Now()
	runner.Run(ctx, state)
	total := time.Since(t0)
	getOutputs(state).stopBackground()

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

// generatedVariant is the generated data known from the config alone.
func (c *Config) generatedVariant() map[string]string {
	src := "source_image"
	if c.Kiwi != nil {
		src = "kiwi"
	}
	return map[string]string{
		"Key": c.key(), "Image": c.Image, "ImageName": c.ImageName, "Arch": c.Arch, "Platform": c.Platform,
		"HyperVGeneration": c.HyperVGeneration, "Firmware": c.Firmware, "DistroVersion": c.DistroVersion,
		"Source": src,
	}
}

// roleOrder is the order of files in the artifact.
var roleOrder = map[string]int{
	artifact.RoleDisk: 0, artifact.RoleVHD: 1, roleOther: 2, artifact.RoleKernel: 3, artifact.RoleInitrd: 4,
	artifact.RoleRootfs: 5, artifact.RoleCmdline: 6, artifact.RolePackages: 7, artifact.RoleLog: 8,
}

// artifact assembles the artifact from a finished build's state.
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
		Builder: BuilderID,
		Variant: artifact.Variant{
			Key: c.key(), Image: c.Image, ImageName: c.ImageName, Arch: c.Arch, Platform: c.Platform,
			HyperVGeneration: c.HyperVGeneration, Firmware: c.Firmware, DistroVersion: c.DistroVersion,
		},
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
		src = "kiwi:" + describeKiwi(c)
	}
	return &Artifact{Artifact: a, source: src}
}

func describeKiwi(c *Config) string {
	opts, _ := c.kiwiOptions("")
	return describe(opts)
}
