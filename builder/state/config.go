//go:generate packer-sdc mapstructure-to-hcl2 -type Config
//go:generate packer-sdc struct-markdown

// Package state is the osimage-state builder: it yields the artifact a
// variant's earlier build recorded in the release state, so that a variant
// that needs no new disk reaches the post-processors without a rebuild.
package state

import (
	"errors"
	"fmt"

	"github.com/hashicorp/packer-plugin-sdk/common"
	packersdk "github.com/hashicorp/packer-plugin-sdk/packer"
	"github.com/hashicorp/packer-plugin-sdk/template/config"

	"github.com/osimage/packer-plugin-osimage/internal/release"
	"github.com/osimage/packer-plugin-osimage/internal/variant"
)

// Config is the configuration of the osimage-state builder.
type Config struct {
	common.PackerConfig `mapstructure:",squash"`

	// The variant, as osimage-matrix gives it with `state` set:
	// `variant = jsonencode(source.value)`. Its `state`, `revision` and
	// `pending` say where the record is and what is left to do.
	Variant string `mapstructure:"variant" required:"true"`
	// Where the recorded build's files are looked for (the build's
	// `output_directory`). A file is used when its size and sha256 match
	// the record; post-processors whose step is pending need them (a VHD
	// upload, an OCI push), those whose work is done do not. Defaults to
	// `output-<build name>`, osimage-disk's default.
	OutputDirectory string `mapstructure:"output_directory"`
	// Check the sha256 of the files found against the record (a read of
	// every file) when a publish is pending, the only step that reads them.
	// Defaults to `true`; `false` checks sizes only.
	Verify *bool `mapstructure:"verify"`

	variant  *variant.Variant
	recorder *release.Recorder
}

// Prepare decodes and validates the configuration.
func (c *Config) Prepare(raws ...interface{}) error {
	if err := config.Decode(c, &config.DecodeOpts{PluginType: "osimage-state"}, raws...); err != nil {
		return err
	}
	var errs *packersdk.MultiError
	add := func(err error) { errs = packersdk.MultiErrorAppend(errs, err) }
	if c.Variant == "" {
		add(errors.New("variant is required: the variant of osimage-matrix with state set (variant = jsonencode(source.value))"))
	} else if v, err := variant.Parse("variant", c.Variant); err != nil {
		add(err)
	} else if v.State == "" {
		add(fmt.Errorf("variant %s carries no release state: set state in osimage-matrix (osimage-state yields what the state recorded)", v.Key))
	} else {
		c.variant = v
		if c.recorder, err = release.RecorderFor(v); err != nil {
			add(fmt.Errorf("variant %s: %w", v.Key, err))
		}
	}
	if c.OutputDirectory == "" {
		c.OutputDirectory = "output-" + c.PackerBuildName
	}
	if c.Verify == nil {
		t := true
		c.Verify = &t
	}
	if errs != nil && len(errs.Errors) > 0 {
		return errs
	}
	return nil
}
