//go:generate packer-sdc mapstructure-to-hcl2 -type Config
//go:generate packer-sdc struct-markdown

// Package releasemanifest is the osimage-release builder: the final step
// of a release, which makes the release manifest (JSON) and release notes
// (Markdown) from the release state and checks that every variant finished
// the stage.
package releasemanifest

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/hashicorp/packer-plugin-sdk/common"
	packersdk "github.com/hashicorp/packer-plugin-sdk/packer"
	"github.com/hashicorp/packer-plugin-sdk/template/config"

	"github.com/osimage/packer-plugin-osimage/internal/release"
	"github.com/osimage/packer-plugin-osimage/internal/variant"
)

// Config is the configuration of the osimage-release builder.
type Config struct {
	common.PackerConfig `mapstructure:",squash"`

	// The release state, as osimage-matrix's `state`: a directory or a blob
	// container URL.
	State string `mapstructure:"state" required:"true"`
	// The release version (the variants' `release_ver`, else their
	// `distro_version`).
	Release string `mapstructure:"release" required:"true"`
	// The variants that must be in the release, as JSON: the matrix's
	// `variants` (`jsonencode(data.osimage-matrix.NAME.variants)`), whose
	// targets say what each must have published. Defaults to every variant
	// the state holds for the release, checked against the targets their
	// documents know.
	Variants string `mapstructure:"variants"`
	// The stage every variant must have finished: `build`, `publish` or
	// `release`. A variant that has not is an error naming what it lacks
	// (the manifest and notes are written anyway). Defaults to `release`.
	Stage string `mapstructure:"stage"`
	// Path of the release manifest (JSON). Defaults to
	// `release-<release>.json`.
	Manifest string `mapstructure:"manifest"`
	// Path of the release notes (Markdown). Defaults to
	// `release-<release>.md`.
	Notes string `mapstructure:"notes"`

	expected []string
	targets  map[string][]string
	store    release.Store
}

// Prepare decodes and validates the configuration.
func (c *Config) Prepare(raws ...interface{}) error {
	if err := config.Decode(c, &config.DecodeOpts{PluginType: "osimage-release"}, raws...); err != nil {
		return err
	}
	var errs *packersdk.MultiError
	add := func(err error) { errs = packersdk.MultiErrorAppend(errs, err) }
	if c.State == "" {
		add(errors.New("state is required: the release state (a directory or a blob container URL), as osimage-matrix's state"))
	} else if s, err := release.Open(c.State); err != nil {
		add(err)
	} else {
		c.store = s
	}
	if c.Release == "" {
		add(errors.New("release is required: the release version (the variants' release_ver)"))
	}
	switch {
	case c.Stage == "":
		c.Stage = release.StepRelease
	case !slices.Contains(release.Steps, c.Stage):
		add(fmt.Errorf("stage = %q: want one of %s", c.Stage, strings.Join(release.Steps, ", ")))
	}
	if c.Variants != "" {
		vs, err := variant.ParseList("variants", c.Variants)
		if err != nil {
			add(err)
		}
		c.targets = map[string][]string{}
		for _, v := range vs {
			c.expected = append(c.expected, v.Key)
			names := []string{}
			for _, t := range v.Targets {
				names = append(names, t.Name)
			}
			c.targets[v.Key] = names
		}
	}
	if c.Manifest == "" {
		c.Manifest = "release-" + c.Release + ".json"
	}
	if c.Notes == "" {
		c.Notes = "release-" + c.Release + ".md"
	}
	if errs != nil && len(errs.Errors) > 0 {
		return errs
	}
	return nil
}
