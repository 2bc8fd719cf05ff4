package oci

import (
	"cmp"
	"fmt"
	"path/filepath"
	"strings"

	"github.com/osimage/packer-plugin-osimage/internal/artifact"
	"github.com/osimage/packer-plugin-osimage/internal/ociimage"
	"github.com/osimage/packer-plugin-osimage/internal/variant"
)

// job is what one PostProcess call publishes.
type job struct {
	entry   ociimage.Entry
	options ociimage.Options
	dest    ociimage.Destination
}

// job resolves the variant (the `variant` attribute, else the artifact's),
// the destination (layout_dir, repository, else the variant's oci-registry
// target) and the options. It does no I/O.
func (c *Config) job(a *artifact.Artifact) (*job, error) {
	v := c.VariantOf(a)
	if v.Arch == "" || v.Platform == "" {
		return nil, fmt.Errorf("the artifact from %q carries no variant (arch %q, platform %q): set variant = jsonencode(<one element of data.osimage-matrix.NAME.variants>)", a.Builder, v.Arch, v.Platform)
	}
	arch, err := ociimage.OCIArch(v.Arch)
	if err != nil {
		return nil, fmt.Errorf("variant %s: %w", v.Key, err)
	}
	j := &job{}
	var target *variant.Target
	switch {
	case c.LayoutDir != "":
		dir, err := filepath.Abs(c.LayoutDir)
		if err != nil {
			return nil, err
		}
		j.dest.Layout = dir
	case c.Repository != "":
		j.dest.Repository = c.Repository
	default:
		target, err = c.pickTarget(&v)
		if err != nil {
			return nil, err
		}
		j.dest.Repository = strings.TrimSuffix(target.ResourceURN, "/") + "/" + strings.TrimPrefix(target.ImageName, "/")
	}
	j.dest.Insecure = c.Insecure
	j.dest.Username, j.dest.Password = c.Username, c.Password
	j.dest.Jobs = c.Jobs
	j.dest.ChunkSize = int64(c.UploadChunkMiB) << 20

	version := cmp.Or(c.Version, v.ReleaseVer, v.DistroVersion)
	imageName := c.ImageName
	if imageName == "" && target != nil {
		imageName = filepath.Base(target.ImageName)
	}
	imageName = cmp.Or(imageName, v.ImageName, v.Image)
	j.options = ociimage.Options{
		ImageName:       imageName,
		Version:         version,
		SourceRevision:  c.SourceRevision,
		Image:           v.Image,
		Key:             v.Key,
		Tag:             c.Tag,
		ExtraTags:       c.ExtraTags,
		ArchTags:        c.archTags(),
		CombinedTag:     c.CombinedTag,
		PlatformVariant: c.PlatformVariant,
		CombinedFirst:   c.CombinedFirst,
		IndexMode:       c.IndexMode,
		Compression:     c.Compression,
		WorkDir:         c.WorkDir,
		Force:           c.Force,
	}
	j.entry = ociimage.Entry{Arch: arch, BootMode: v.Platform, Files: a.Outputs, KernelCmdline: c.KernelCmdline, Key: v.Key}
	return j, nil
}

// pickTarget returns the variant's oci-registry target: the one named by
// `target`, or the only one.
func (c *Config) pickTarget(v *variant.Variant) (*variant.Target, error) {
	t, err := v.PickTarget(variant.InterfaceOCIRegistry, c.TargetName)
	switch {
	case err != nil:
		return nil, err
	case t == nil:
		return nil, fmt.Errorf("no destination: set repository or layout_dir, or give variant %s a target with interface_type = %q", v.Key, variant.InterfaceOCIRegistry)
	}
	return t, c.checkTarget(t)
}

func (c *Config) checkTarget(t *variant.Target) error {
	if t.ResourceURN == "" || t.ResourceURN == "*" || t.ImageName == "" || t.ImageName == "*" {
		return fmt.Errorf("target %s: resource_urn %q (the registry host) and image_name %q (the repository) must both be set; or set repository", t.Name, t.ResourceURN, t.ImageName)
	}
	return nil
}
