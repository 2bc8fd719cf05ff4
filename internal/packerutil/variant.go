//go:generate packer-sdc struct-markdown

package packerutil

import (
	"github.com/osimage/packer-plugin-osimage/internal/artifact"
	"github.com/osimage/packer-plugin-osimage/internal/variant"
)

// VariantConfig is the `variant` attribute every post-processor accepts
// (embedded with `mapstructure:",squash"`), for artifacts whose builder
// carries no variant (Packer's file or qemu builders, ...).
type VariantConfig struct {
	// The variant the incoming artifact belongs to, as JSON: one element of
	// the osimage-matrix datasource's `variants`, e.g. `variant =
	// jsonencode(local.variants[source.name])`. It replaces the variant the
	// artifact carries. Defaults to the artifact's own variant (osimage-disk
	// artifacts carry theirs); artifacts of other builders have none.
	Variant string `mapstructure:"variant"`

	parsed *variant.Variant
}

// PrepareVariant parses the attribute (call it from Configure, so a bad
// value is an error at validate time).
func (c *VariantConfig) PrepareVariant() error {
	if c.Variant == "" {
		return nil
	}
	v, err := variant.Parse("variant", c.Variant)
	if err != nil {
		return err
	}
	c.parsed = v
	return nil
}

// VariantOf returns the variant a belongs to: the configured one, else the
// one a carries.
func (c *VariantConfig) VariantOf(a *artifact.Artifact) variant.Variant {
	if c.parsed != nil {
		return c.parsed.Clone()
	}
	return a.Variant
}

// ApplyVariant gives a the configured variant, if there is one.
func (c *VariantConfig) ApplyVariant(a *artifact.Artifact) { a.Variant = c.VariantOf(a) }
