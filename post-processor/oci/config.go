//go:generate packer-sdc mapstructure-to-hcl2 -type Config
//go:generate packer-sdc struct-markdown

package oci

import (
	"fmt"
	"strings"

	"github.com/hashicorp/packer-plugin-sdk/common"
	packersdk "github.com/hashicorp/packer-plugin-sdk/packer"
	"github.com/hashicorp/packer-plugin-sdk/template/config"
	"github.com/hashicorp/packer-plugin-sdk/template/interpolate"

	"github.com/osimage/packer-plugin-osimage/internal/packerutil"

	"github.com/osimage/packer-plugin-osimage/internal/ociimage"
)

// Config is the configuration of the osimage-oci post-processor.
type Config struct {
	common.PackerConfig      `mapstructure:",squash"`
	packerutil.VariantConfig `mapstructure:",squash"`
	packerutil.SigningConfig `mapstructure:",squash"`

	// Registry repository to push to, `host[:port]/path` (for example
	// `ghcr.io/example/os/debian`). Defaults to the variant's target with
	// `interface_type = "oci-registry"`: its `resource_urn` (the registry
	// host) and `image_name` (the repository). Plain HTTP is used only for
	// loopback registries or with `insecure`.
	Repository string `mapstructure:"repository"`
	// Write an OCI image layout into this directory instead of pushing to a
	// registry (created when missing; existing tags of other builds are
	// kept). Excludes `repository`. Defaults to none.
	LayoutDir string `mapstructure:"layout_dir"`
	// Name of the variant's `oci-registry` target to use when it has more
	// than one. Defaults to the only one.
	TargetName string `mapstructure:"target"`
	// Version of the image: the `org.opencontainers.image.version`
	// annotation and `{{ .Version }}` in tags. Defaults to the variant's
	// `release_ver`, else its `distro_version`.
	Version string `mapstructure:"version"`
	// Image name for annotations and `{{ .ImageName }}`. Defaults to the
	// target's `image_name`, else the variant's `image_name`, else its `image`.
	ImageName string `mapstructure:"image_name"`
	// Source revision for the `org.opencontainers.image.revision`
	// annotation (for example a git commit). Defaults to none.
	SourceRevision string `mapstructure:"source_revision"`
	// Template of the tag of each boot mode's index, one entry per
	// architecture. Go template over `.Version`, `.Variant` (IronCore's name
	// of the boot mode: `kvm` or `metal`), `.Platform` (our name of it:
	// `virtualization` or `baremetal`), `.Arch` (`amd64`, `arm64`), `.Image`,
	// `.ImageName` and `.Key`. Defaults to `{{ .Version }}-{{ .Variant }}`:
	// `13.1-kvm` and `13.1-metal`, what IronCore's os-images publishes and
	// ironcore-image v0.5.0 pulls.
	Tag string `mapstructure:"tag"`
	// More index tags, templates as `tag` (for example
	// `latest-{{ .Platform }}`). Defaults to none.
	ExtraTags []string `mapstructure:"extra_tags"`
	// Also tag each manifest as `<tag>-<arch>` (`13.1-kvm-amd64`), as
	// ironcore-image's `--push-sub-manifests` does. These tags are each
	// build's own record: an index entry a stale registry read left out is
	// added back from them by the next merge. Defaults to `true`.
	ArchTags *bool `mapstructure:"arch_tags"`
	// Template (as `tag`) of one more index holding every architecture x boot
	// mode entry, as IronCore issue 101 proposes; IronCore's os-images names
	// it `{{ .Version }}`. Entries are ordered by `combined_first`, then amd64
	// before arm64. Defaults to none (no combined index).
	CombinedTag string `mapstructure:"combined_tag"`
	// The boot mode whose entries come first in the combined index:
	// `baremetal` or `virtualization`. Consumers that ignore
	// `platform.variant` take the first entry of their architecture;
	// boot-operator can only PXE-boot a baremetal manifest, so it comes
	// first. Defaults to `baremetal`.
	CombinedFirst string `mapstructure:"combined_first"`
	// What this build does with the indexes: `merge` (push the manifest and
	// its arch tags, then merge its entries into every index tag), `none`
	// (push the manifest and its arch tags only) or `only` (push nothing;
	// write every index tag of the version from the arch tags the builds
	// wrote: the final step after `none` builds, for repositories with
	// immutable tags, or across machines). Defaults to `merge`.
	IndexMode string `mapstructure:"index_mode"`
	// Put the boot mode into `platform.variant` of the combined index's
	// entries, so `linux/arm64/baremetal` selects one. containerd and docker
	// then no longer match `linux/<arch>` in that index. The boot mode is
	// always in the annotations. Defaults to `false`.
	PlatformVariant bool `mapstructure:"platform_variant"`
	// Layer compression: `none`, `gzip` or `zstd` (parallel, all cores; the
	// media types get `+gzip` / `+zstd`). ironcore-image reads only `none`.
	// Defaults to `none`.
	Compression string `mapstructure:"compression"`
	// Directory for the compressed copies of layers. Defaults to the system
	// temporary directory.
	WorkDir string `mapstructure:"work_dir"`
	// Kernel command line for the config blob (`commandLine`) when the
	// artifact has no `cmdline` file. Defaults to none.
	KernelCmdline string `mapstructure:"kernel_cmdline"`
	// Allow plain HTTP to a registry that is not on loopback. Defaults to
	// `false`.
	Insecure bool `mapstructure:"insecure"`
	// Registry user name. Defaults to the credentials in the Docker and
	// Podman config files (`~/.docker/config.json`, `$DOCKER_CONFIG`,
	// `$REGISTRY_AUTH_FILE`, `containers/auth.json`, credential helpers).
	Username string `mapstructure:"username"`
	// Registry password or token, with `username`. Never printed.
	Password string `mapstructure:"password"`
	// Blobs uploaded at once. Defaults to 4.
	Jobs int `mapstructure:"jobs"`
	// Send layers larger than this many MiB in chunks of this size (PATCH
	// with Content-Range), resuming a failed chunk from what the registry
	// received instead of sending the whole layer again; no request then
	// runs longer than one chunk takes (GHCR cuts requests at 10 minutes).
	// Defaults to 0: each layer in one request (sent with sendfile over
	// plain HTTP); a layer over 2 GiB is then sent whole at most twice, a
	// smaller one retried whole up to 5 times.
	UploadChunkMiB int `mapstructure:"upload_chunk_mib"`
	// Attach the artifact's SBOM (role `sbom`, which osimage-disk writes) to
	// each pushed manifest as an OCI 1.1 referrer: an artifact manifest
	// whose `subject` is the manifest, `artifactType`
	// `application/spdx+json` (or CycloneDX's), read with the referrers API
	// (`oras discover`) or, on registries without it, from the fallback tag
	// `sha256-<digest>`; never as a layer (ironcore-image refuses unknown
	// layer types). Registries only. Defaults to `true`.
	SBOM *bool `mapstructure:"sbom"`
	// Replace what a tag holds when it is not an index, is corrupt, or holds
	// an entry for the same platform that this post-processor did not write.
	// Entries of other builds are always kept (a replaced index gets them
	// back from their arch tags). `packer build -force` sets it too.
	// Defaults to `false`.
	Force bool `mapstructure:"force"`

	ctx interpolate.Context
}

// Prepare decodes and validates the configuration.
func (c *Config) Prepare(raws ...interface{}) error {
	err := config.Decode(c, &config.DecodeOpts{
		PluginType:         "osimage-oci",
		Interpolate:        true,
		InterpolateContext: &c.ctx,
		InterpolateFilter:  &interpolate.RenderFilter{Exclude: []string{"tag", "extra_tags", "combined_tag", "variant"}},
	}, raws...)
	if err != nil {
		return err
	}
	var errs *packersdk.MultiError
	add := func(err error) { errs = packersdk.MultiErrorAppend(errs, err) }
	if err := c.PrepareSigning(); err != nil {
		add(err)
	}
	if err := c.PrepareVariant(); err != nil {
		add(err)
	}
	if c.Repository != "" && c.LayoutDir != "" {
		add(fmt.Errorf("repository and layout_dir exclude each other: push to a registry or write a layout directory"))
	}
	c.Compression = strings.ToLower(strings.TrimSpace(c.Compression))
	if c.Compression == "" {
		c.Compression = ociimage.CompressionNone
	}
	switch c.Compression {
	case ociimage.CompressionNone, ociimage.CompressionGzip, ociimage.CompressionZstd:
	default:
		add(fmt.Errorf("compression = %q: want \"none\", \"gzip\" or \"zstd\"", c.Compression))
	}
	if c.Password != "" && c.Username == "" {
		add(fmt.Errorf("password is set without username"))
	}
	if c.UploadChunkMiB < 0 {
		add(fmt.Errorf("upload_chunk_mib = %d: want a positive number of MiB, or 0 for one request per layer", c.UploadChunkMiB))
	}
	if c.Jobs < 0 {
		add(fmt.Errorf("jobs = %d: want a positive number (default 4)", c.Jobs))
	}
	// Check the templates now, with sample data, so a typo fails validate.
	sample := ociimage.TagData{Version: "1.0", Variant: "kvm", Platform: ociimage.Virtualization, Arch: "amd64", Image: "image", ImageName: "image", Key: "key"}
	if c.Tag != "" {
		if _, err := ociimage.RenderTag("tag", c.Tag, sample); err != nil {
			add(err)
		}
	}
	for i, t := range c.ExtraTags {
		if _, err := ociimage.RenderTag(fmt.Sprintf("extra_tags[%d]", i), t, sample); err != nil {
			add(err)
		}
	}
	if c.CombinedTag != "" {
		if _, err := ociimage.RenderTag("combined_tag", c.CombinedTag, sample); err != nil {
			add(err)
		}
	}
	switch c.IndexMode {
	case "", ociimage.IndexMerge, ociimage.IndexNone, ociimage.IndexOnly:
	default:
		add(fmt.Errorf("index_mode = %q: want %q, %q or %q", c.IndexMode, ociimage.IndexMerge, ociimage.IndexNone, ociimage.IndexOnly))
	}
	if c.IndexMode == ociimage.IndexOnly && !c.archTags() {
		add(fmt.Errorf("index_mode = %q builds the indexes from the arch tags: arch_tags must be true", ociimage.IndexOnly))
	}
	switch c.CombinedFirst {
	case "", ociimage.Baremetal, ociimage.Virtualization:
	default:
		add(fmt.Errorf("combined_first = %q: want %q or %q", c.CombinedFirst, ociimage.Baremetal, ociimage.Virtualization))
	}
	if c.PlatformVariant && c.CombinedTag == "" {
		add(fmt.Errorf("platform_variant applies to the combined index: set combined_tag too"))
	}
	if c.PackerForce {
		c.Force = true
	}
	if errs != nil && len(errs.Errors) > 0 {
		return errs
	}
	return nil
}

func (c *Config) archTags() bool { return c.ArchTags == nil || *c.ArchTags }
