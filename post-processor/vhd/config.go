//go:generate packer-sdc mapstructure-to-hcl2 -type Config
//go:generate packer-sdc struct-markdown

package vhd

import (
	"fmt"
	"strings"

	"github.com/hashicorp/packer-plugin-sdk/common"
	packersdk "github.com/hashicorp/packer-plugin-sdk/packer"
	"github.com/hashicorp/packer-plugin-sdk/template/config"
	"github.com/hashicorp/packer-plugin-sdk/template/interpolate"

	"github.com/osimage/packer-plugin-osimage/internal/packerutil"
)

// Config is the configuration of the osimage-vhd post-processor.
type Config struct {
	common.PackerConfig      `mapstructure:",squash"`
	packerutil.VariantConfig `mapstructure:",squash"`
	packerutil.SigningConfig `mapstructure:",squash"`

	// Path of the VHD to write. Defaults to the input disk's path with its
	// extension replaced by `.vhd` (`disk.raw` becomes `disk.vhd`). Accepts
	// Packer template variables, rendered when the post-processor runs:
	// `{{ .BuildName }}`, `{{ .BuilderType }}`, `{{ .InputDir }}`
	// (directory of the input disk) and every string field of the variant
	// by its Go name: `{{ .Key }}`, `{{ .Image }}`, `{{ .Arch }}`,
	// `{{ .Platform }}`, `{{ .HyperVGeneration }}`, `{{ .ReleaseVer }}`, ... The directory must
	// exist. Ignored with `in_place`.
	Output string `mapstructure:"output"`
	// Convert the raw disk into a VHD where it lies, by padding it to a whole
	// MiB and appending the footer: no copy, O(1) in the disk's size. The
	// raw disk then becomes the VHD (it is still readable as a raw disk with
	// trailing bytes). Defaults to `false` (write a separate VHD).
	InPlace bool `mapstructure:"in_place"`
	// Replace an existing output file. Defaults to `false`: an existing file
	// is an error and is never overwritten. `packer build -force` sets it too.
	Force bool `mapstructure:"force"`
	// Checksums of the output to compute and expose in the artifact, any of
	// `md5` and `sha256`. In copy mode they are computed in the same pass as
	// the copy; with `in_place` they need one read of the disk's data.
	// Defaults to none.
	Checksums []string `mapstructure:"checksums"`
	// qemu-img binary used to convert qcow2, vmdk, vhdx and dynamic VHD
	// input to raw first. Defaults to `qemu-img` on PATH. Raw input never
	// needs it.
	QemuImgPath string `mapstructure:"qemu_img_path"`

	ctx interpolate.Context
}

// Prepare decodes and validates the configuration.
func (c *Config) Prepare(raws ...interface{}) error {
	err := config.Decode(c, &config.DecodeOpts{
		PluginType:         "osimage-vhd",
		Interpolate:        true,
		InterpolateContext: &c.ctx,
		InterpolateFilter:  &interpolate.RenderFilter{Exclude: []string{"output"}},
	}, raws...)
	if err != nil {
		return err
	}
	var errs *packersdk.MultiError
	if err := c.PrepareVariant(); err != nil {
		errs = packersdk.MultiErrorAppend(errs, err)
	}
	if err := c.PrepareSigning(); err != nil {
		errs = packersdk.MultiErrorAppend(errs, err)
	}
	for i, s := range c.Checksums {
		s = strings.ToLower(strings.TrimSpace(s))
		if s != "md5" && s != "sha256" {
			errs = packersdk.MultiErrorAppend(errs, fmt.Errorf("checksums[%d] = %q: want \"md5\" or \"sha256\"", i, c.Checksums[i]))
		}
		c.Checksums[i] = s
	}
	if c.InPlace && c.Output != "" {
		errs = packersdk.MultiErrorAppend(errs, fmt.Errorf("output and in_place = true exclude each other: in place, the VHD is the input disk itself"))
	}
	if c.QemuImgPath == "" {
		c.QemuImgPath = "qemu-img"
	}
	if c.PackerForce {
		c.Force = true
	}
	if errs != nil && len(errs.Errors) > 0 {
		return errs
	}
	return nil
}

func (c *Config) wants(sum string) bool {
	for _, s := range c.Checksums {
		if s == sum {
			return true
		}
	}
	return false
}
