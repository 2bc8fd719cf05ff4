//go:generate packer-sdc mapstructure-to-hcl2 -type Config,DatasourceOutput,VariantOutput,TargetOutput
//go:generate packer-sdc struct-markdown

package matrix

import (
	"fmt"
	"slices"
	"strings"

	packersdk "github.com/hashicorp/packer-plugin-sdk/packer"
	"github.com/hashicorp/packer-plugin-sdk/template/config"

	"github.com/osimage/packer-plugin-osimage/internal/release"
)

// Config is the configuration of the osimage-matrix datasource.
type Config struct {
	// Path of the root TOML file: an azldev.toml, a registry such as
	// images.toml with `includes`, or a single image or distro file. Its
	// directory is the root of the tree; includes may not leave it. A
	// relative path is taken from the directory packer runs in; write
	// `"${path.root}/images/images.toml"` to be independent of it.
	ConfigPath string `mapstructure:"config" required:"true"`
	// Distro to build for: images that name another distro are dropped,
	// images that name none use it. Defaults to the project's
	// `default-distro`, or the tree's only distro.
	Distro string `mapstructure:"distro"`
	// Version of that distro (a key of `versions`), which decides the
	// release version and the publish targets (`outputs.image-stores`).
	// Defaults to `default-distro.version`, else the distro's
	// `default-version`, else its only version.
	Version string `mapstructure:"version"`
	// Keep a variant only if every entry matches its image name, its key or
	// one of its dimension values (like Alpine's `--only`); built-in values
	// match in any accepted spelling (`arm64` matches `aarch64`). Defaults to
	// all variants.
	Only []string `mapstructure:"only"`
	// Drop a variant if any entry matches (like Alpine's `--skip`), with the
	// same matching as `only`. Defaults to none.
	Skip []string `mapstructure:"skip"`
	// How warnings are treated. Warnings are an output (`warnings`), not
	// printed: Packer shows a data source's messages only in its log
	// (`PACKER_LOG=1`). Unset (the default): a publish label that no target
	// of the tree carries (a typo, when the tree has targets) is an error,
	// the rest are warnings. `true`: every warning is an error (a publish
	// label that matches no target of the chosen version, a target without
	// an image for a variant's arch, an image store that names no target, an
	// image naming an undefined distro, a `skip` entry that matches
	// nothing); the examples set it. `false`: all of them are warnings.
	Strict config.Trilean `mapstructure:"strict"`
	// Where the release state lives: a directory (created when missing) or
	// a blob container URL (`https://ACCOUNT.blob.core.windows.net/CONTAINER/PREFIX`,
	// next to the VHDs; credentials from `AZURE_STORAGE_CONNECTION_STRING`,
	// `AZURE_STORAGE_SAS_TOKEN` or Azure's default credential chain). One
	// document per variant and revision records what each step made; the
	// data source reads it to say which steps are `pending` per variant, and
	// the components record into it (the variant carries the store). Defaults
	// to none: every step of the stage is pending.
	State string `mapstructure:"state"`
	// The last step this run goes to: `build` (disks only), `publish` (also
	// every publish target, as a pre-release: gallery versions excluded from
	// latest, OCI version tags without the moving `extra_tags`) or `release`
	// (also promotion: versions into latest, moving tags written). Defaults
	// to `release`.
	Stage string `mapstructure:"stage"`
	// The revision to work on (Alpine's `r<N>`, part of the `release_name`):
	// the current one in the state, or the next one to rebuild and publish a
	// variant anew under new names and versions. A published revision is
	// never rebuilt. Defaults to the highest revision in the state (0 when
	// there is none).
	Revision *int `mapstructure:"revision"`
}

// Prepare decodes and validates the configuration.
func (c *Config) Prepare(raws ...interface{}) error {
	if err := config.Decode(c, nil, raws...); err != nil {
		return err
	}
	var errs *packersdk.MultiError
	if c.ConfigPath == "" {
		errs = packersdk.MultiErrorAppend(errs, fmt.Errorf("config is required: the path of the root TOML file (azldev.toml, images.toml, ...)"))
	}
	for i, s := range c.Only {
		if s == "" {
			errs = packersdk.MultiErrorAppend(errs, fmt.Errorf("only[%d] is empty", i))
		}
	}
	for i, s := range c.Skip {
		if s == "" {
			errs = packersdk.MultiErrorAppend(errs, fmt.Errorf("skip[%d] is empty", i))
		}
	}
	switch c.Stage = strings.TrimSpace(c.Stage); {
	case c.Stage == "":
		c.Stage = release.StepRelease
	case !slices.Contains(release.Steps, c.Stage):
		errs = packersdk.MultiErrorAppend(errs, fmt.Errorf("stage = %q: want one of %s", c.Stage, strings.Join(release.Steps, ", ")))
	}
	if c.Revision != nil && *c.Revision < 0 {
		errs = packersdk.MultiErrorAppend(errs, fmt.Errorf("revision = %d: want 0 or more", *c.Revision))
	}
	if c.Revision != nil && c.State == "" && *c.Revision != 0 {
		errs = packersdk.MultiErrorAppend(errs, fmt.Errorf("revision = %d needs state: revisions are counted in the release state", *c.Revision))
	}
	if errs != nil && len(errs.Errors) > 0 {
		return errs
	}
	return nil
}

// DatasourceOutput is what the datasource returns.
type DatasourceOutput struct {
	// The variants to build, in a stable order: images by name, then the
	// cross product of their dimensions with the last dimension varying
	// fastest. Never empty: zero variants is an error.
	Variants []VariantOutput `mapstructure:"variants" cty:"variants"`
	// The number of variants.
	Count int `mapstructure:"count" cty:"count"`
	// The variant keys, in order (handy for `packer build -only`).
	Keys []string `mapstructure:"keys" cty:"keys"`
	// The variants as a CI job matrix, `{"include":[...]}` with the fields
	// of `variants`: one runner per variant runs
	// `packer build -only='*.KEY' .`.
	MatrixJSON string `mapstructure:"matrix_json" cty:"matrix_json"`
	// Warnings found while loading and expanding (for example an include
	// glob that matched nothing), each naming its file and line.
	Warnings []string `mapstructure:"warnings" cty:"warnings"`
}

// VariantOutput is one build of the matrix.
type VariantOutput struct {
	// Unique, readable name usable as a Packer source name: image, arch,
	// platform, then `gen1`/`gen2`, firmware and user dimension values when
	// the image declares them, joined with `-` (`vm-base-x86_64-virtualization-gen2`).
	Key string `mapstructure:"key" cty:"key"`
	// Image name (the NAME of `[images.NAME]`).
	Image string `mapstructure:"image" cty:"image"`
	// Image description, after `when` overrides.
	Description string `mapstructure:"description" cty:"description"`
	// Distro name.
	Distro string `mapstructure:"distro" cty:"distro"`
	// Distro version key.
	DistroVersion string `mapstructure:"distro_version" cty:"distro_version"`
	// The version's `release-ver`.
	ReleaseVer string `mapstructure:"release_ver" cty:"release_ver"`
	// Architecture as KIWI and `uname -m` name it: `x86_64` or `aarch64`.
	Arch string `mapstructure:"arch" cty:"arch"`
	// Architecture as OCI names it: `amd64` or `arm64`.
	OCIArch string `mapstructure:"oci_arch" cty:"oci_arch"`
	// Architecture as Azure names it: `x64` or `Arm64`.
	AzureArch string `mapstructure:"azure_arch" cty:"azure_arch"`
	// `virtualization` or `baremetal`.
	Platform string `mapstructure:"platform" cty:"platform"`
	// Hyper-V generation `V1` or `V2`; empty when the image declares none.
	HyperVGeneration string `mapstructure:"hyperv_generation" cty:"hyperv_generation"`
	// `bios` or `uefi`; derived from the generation and arch when not a
	// dimension (V1: bios; V2 and aarch64: uefi); may be empty.
	Firmware string `mapstructure:"firmware" cty:"firmware"`
	// Definition type (`kiwi`).
	DefinitionType string `mapstructure:"definition_type" cty:"definition_type"`
	// Absolute path of the definition file (the `.kiwi` file), resolved
	// against the TOML file that declared it.
	DefinitionPath string `mapstructure:"definition_path" cty:"definition_path"`
	// KIWI profiles to build (from `definition.profile`, after `when`
	// overrides); may be empty.
	Profiles []string `mapstructure:"profiles" cty:"profiles"`
	// Every dimension's value, by dimension name (`arch`, `platform`,
	// `hyperv_generation`, `firmware` and user dimensions).
	Dimensions map[string]string `mapstructure:"dimensions" cty:"dimensions"`
	// The image's capabilities (`machine-bootable`, `container`, ...) as
	// `"true"`/`"false"`.
	Capabilities map[string]string `mapstructure:"capabilities" cty:"capabilities"`
	// The image's `publish.labels`.
	PublishLabels []string `mapstructure:"publish_labels" cty:"publish_labels"`
	// The image's `publish.channels`.
	PublishChannels []string `mapstructure:"publish_channels" cty:"publish_channels"`
	// The publish targets of the distro version whose labels the image
	// carries, each with the target's image name for this variant.
	Targets []TargetOutput `mapstructure:"targets" cty:"targets"`
	// Settings given as `"*"`, to be filled in by a publish step, as dotted
	// paths (`delivery.shared_gallery.image_version`).
	Unresolved []string `mapstructure:"unresolved" cty:"unresolved"`
	// The `delivery.*` tables after `when` overrides, as JSON (read with
	// `jsondecode()`); `"*"` values are `null`.
	Delivery string `mapstructure:"delivery" cty:"delivery"`
	// The release state's location (`state`), carried to the components
	// so they record what they make; empty without `state`.
	State string `mapstructure:"state" cty:"state"`
	// The revision this run works on.
	Revision int `mapstructure:"revision" cty:"revision"`
	// Alpine's image name: image, release version, the rest of the key and
	// `r<revision>` (`edge-1.0-x86_64-virtualization-r0`).
	ReleaseName string `mapstructure:"release_name" cty:"release_name"`
	// The stage asked (`stage`).
	Stage string `mapstructure:"stage" cty:"stage"`
	// The steps of the stage not done yet for this variant, in order
	// (`build`, `publish`, `release`): build with osimage-disk only the
	// variants whose list holds `build`, and give the others to the
	// post-processors through `osimage-state`. Without `state`, every step
	// of the stage; `publish` and `release` only for variants with publish
	// targets.
	Pending []string `mapstructure:"pending" cty:"pending"`
}

// TargetOutput is a publish target of a variant.
type TargetOutput struct {
	// Target name (`[[resources.NAME]]`).
	Name string `mapstructure:"name" cty:"name"`
	// `interface-type`, e.g. `azure-compute-gallery` or `oci-registry`.
	InterfaceType string `mapstructure:"interface_type" cty:"interface_type"`
	// `backend`.
	Backend string `mapstructure:"backend" cty:"backend"`
	// `resource-urn`: a gallery resource id, a registry host, ...
	ResourceURN string `mapstructure:"resource_urn" cty:"resource_urn"`
	// The target's image name for this variant's arch (and generation).
	ImageName string `mapstructure:"image_name" cty:"image_name"`
}
