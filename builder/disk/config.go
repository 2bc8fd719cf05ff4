//go:generate packer-sdc mapstructure-to-hcl2 -type Config,KiwiConfig,RepositoryConfig,QEMUConfig,BootCheckConfig
//go:generate packer-sdc struct-markdown

package disk

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"

	"github.com/hashicorp/packer-plugin-sdk/common"
	"github.com/hashicorp/packer-plugin-sdk/communicator"
	packersdk "github.com/hashicorp/packer-plugin-sdk/packer"
	"github.com/hashicorp/packer-plugin-sdk/template/config"
	"github.com/hashicorp/packer-plugin-sdk/template/interpolate"

	"github.com/osimage/packer-plugin-osimage/internal/kiwi"
	"github.com/osimage/packer-plugin-osimage/internal/release"
	"github.com/osimage/packer-plugin-osimage/internal/sbom"
	"github.com/osimage/packer-plugin-osimage/internal/variant"
)

// Boot file modes of `boot_files`.
const (
	BootFilesAuto   = "auto"
	BootFilesAlways = "always"
	BootFilesNever  = "never"
)

// SBOM modes of `sbom`.
const (
	SBOMAuto     = "auto"
	SBOMRequired = "required"
	SBOMNone     = "none"
)

// Config is the configuration of the osimage-disk builder. The disk comes
// from exactly one of a `kiwi {}` block (a KIWI build) or `source_image`
// (an existing raw or qcow2 disk). The variant (`variant`, or the fields
// `key`, `arch`, `platform`, ... which win over it) describes the disk in
// the artifact, decides whether kernel, initramfs and rootfs are split out,
// and travels with the artifact to the post-processors.
type Config struct {
	common.PackerConfig `mapstructure:",squash"`

	// The whole variant this disk is built for, as JSON: one element of the
	// osimage-matrix datasource's `variants` (`variant =
	// jsonencode(source.value)` in a `dynamic "source"` block). Every
	// variant field below defaults from it, `kiwi {}` takes the variant's
	// KIWI definition and profiles, and the artifact carries all of it
	// (publish targets, delivery tables, dimensions, release version) to
	// the post-processors. Fields set explicitly win. Defaults to none.
	Variant string `mapstructure:"variant"`

	// Build the disk with KIWI (`kiwi-ng system build`). Exclusive with
	// `source_image`. See the `kiwi` block below.
	Kiwi *KiwiConfig `mapstructure:"kiwi"`
	// Path of an existing disk to start from instead of a KIWI build: raw,
	// or qcow2/vmdk/vhdx/VHD (converted to raw with `qemu-img`). It is
	// copied sparsely into the output directory; the source is never
	// changed. Exclusive with the `kiwi` block.
	SourceImage string `mapstructure:"source_image"`
	// Checksum the source image must have, checked while it is copied:
	// `sha256:HEX`, `sha512:HEX`, a bare 64-digit hex SHA-256, or
	// `file:PATH` naming a checksum file in `sha256sum`/`sha512sum` or BSD
	// format (the line for the image's file name is used, or the only line).
	// Defaults to no check. A mismatch fails the build and removes the copy.
	SourceImageChecksum string `mapstructure:"source_image_checksum"`
	// qemu-img binary used to convert a non-raw `source_image`. Defaults to
	// `qemu-img` on PATH (Debian package `qemu-utils`).
	QemuImgPath string `mapstructure:"qemu_img_path"`

	// Variant key, as the osimage-matrix datasource returns it (e.g.
	// `vm-base-x86_64-virtualization`). Names the disk file `<key>.raw`.
	// Defaults to the build name (the source block's name).
	Key string `mapstructure:"key"`
	// The image of the matrix this disk belongs to (e.g. `vm-base`); metadata only.
	Image string `mapstructure:"image"`
	// Name the image is published under; metadata only.
	ImageName string `mapstructure:"image_name"`
	// Architecture of the disk: `x86_64` or `aarch64` (`amd64`, `x64` and
	// `arm64` are accepted and normalised). Defaults to this machine's
	// architecture. KIWI builds only for the host's architecture.
	Arch string `mapstructure:"arch"`
	// `virtualization` or `baremetal` (`virt`, `vm`, `metal`, `bare-metal`
	// are accepted too). Defaults to `virtualization`. Baremetal variants get
	// kernel, initramfs and rootfs files when `boot_files = "auto"`.
	Platform string `mapstructure:"platform"`
	// Hyper-V generation the disk is for: `V1` or `V2` (`gen1`, `gen2`, `1`
	// and `2` are accepted). Defaults to none. Metadata only: the KIWI
	// profile decides how the disk boots.
	HyperVGeneration string `mapstructure:"hyperv_generation"`
	// Firmware the disk boots with: `bios` or `uefi` (`legacy`, `efi` are
	// accepted). Defaults to what `hyperv_generation` implies (V1 bios, V2
	// uefi), else `uefi` for aarch64, else none. Metadata only.
	Firmware string `mapstructure:"firmware"`
	// Version of the distribution; metadata only.
	DistroVersion string `mapstructure:"distro_version"`

	// Whether to put the kernel, the initramfs and the root filesystem image
	// next to the disk: `auto` (when `platform` is `baremetal`), `always` or
	// `never`. They are taken from KIWI's kis output when the build made
	// one, otherwise extracted from the disk without mounting anything (GPT
	// or MBR, ext2/3/4 root, kernel from `/boot` or a boot partition).
	// Defaults to `auto`.
	BootFiles string `mapstructure:"boot_files"`
	// The image's software bill of materials, written next to the disk as
	// `<key>.spdx.json` (or `.cdx.json`), role `sbom`: every installed
	// package with its version, architecture, package URL and, where the
	// database has them, source package, license and supplier; created at
	// `SOURCE_DATE_EPOCH` when set, so the same image gives the same
	// document. The packages come from KIWI's package list when KIWI built
	// the disk and nothing changed it since, else from the image's own
	// package database read without mounting (ext2/3/4 root): dpkg's
	// status file, or rpm's database through the host's `rpm` (Debian
	// package `rpm`). `auto` writes one when it can and says which variant
	// has none and why when it cannot; `required` fails the build then;
	// `none` writes none. Defaults to `auto`.
	SBOM string `mapstructure:"sbom"`
	// Format of the SBOM: `spdx-json` (SPDX 2.3) or `cyclonedx-json`
	// (CycloneDX 1.5). Defaults to `spdx-json`.
	SBOMFormat string `mapstructure:"sbom_format"`
	// Directory for the disk and everything else this build writes.
	// Defaults to `output-<build name>`. It must not exist, unless `packer
	// build -force` is given: then it is deleted first (safely, even if a
	// killed KIWI left mounts inside it).
	OutputDirectory string `mapstructure:"output_directory"`

	// Boot the disk in QEMU after it is made, to run provisioners and/or
	// check that it boots. See the qemu block below.
	QEMU *QEMUConfig `mapstructure:"qemu"`
	// The communicator for provisioners while the disk runs in QEMU
	// (`ssh`; default `none`: the disk is not booted for provisioning). The
	// guest's port is forwarded from a free loopback port (2222-4444, taken
	// through Packer's port lock, so parallel builds never clash).
	// `ssh_username` is required. With `ssh_password` the guest must accept
	// that password. Otherwise the build creates a temporary key pair
	// (`temporary_key_pair_type`, default `rsa`), or takes
	// `ssh_private_key_file`, and hands the public key to the guest as the
	// systemd credential `ssh.authorized_keys.root` (SMBIOS type 11):
	// systemd 252 and later (Debian 12, Fedora, Azure Linux 3) writes it to
	// root's `authorized_keys` at boot, so `ssh_username = "root"` works
	// with no setup in the image; other guests can read it from
	// /sys/firmware/dmi/tables/DMI. Every `ssh_*` option of Packer's SSH
	// communicator applies (`ssh_timeout`, default 5m, and so on).
	Comm communicator.Config `mapstructure:",squash"`

	ctx interpolate.Context

	// Set by Prepare.
	kiwiFile string            // base name of the KIWI file when description named one
	diskName string            // file name of the disk in the output directory
	variant  variant.Variant   // the variant with the explicit fields applied
	kiwiOpts kiwi.Options      // the KIWI invocation, without its target directory
	state    *release.Recorder // the variant's release state; nil without one
}

// KiwiConfig is the `kiwi` block: how to run `kiwi-ng system build`.
// Arguments are passed to kiwi-ng directly, never through a shell.
type KiwiConfig struct {
	// The KIWI description: a directory holding `config.xml` or a `*.kiwi`
	// file, or the path of the KIWI file itself (what the osimage-matrix
	// datasource returns as `definition_path`; then `--description` is its
	// directory and `--kiwi-file` its name). Defaults to the variant's
	// `definition_path` when `variant` names a KIWI definition; required
	// otherwise.
	Description string `mapstructure:"description"`
	// Description file to use inside the description directory
	// (`--kiwi-file`), when it holds several. Defaults to KIWI's choice
	// (`config.xml`, else the `*.kiwi` file).
	KiwiFile string `mapstructure:"kiwi_file"`
	// Profiles to build (`--profile`, repeated). Defaults to the variant's
	// `profiles`, else none. An unknown profile fails with KIWI's own
	// message.
	Profiles []string `mapstructure:"profiles"`
	// Build type (`--type`) when the description has several, e.g. `oem`.
	// Defaults to the description's primary type.
	Type string `mapstructure:"type"`
	// KIWI's `--target-arch`. Defaults to none. KIWI only renames its outputs
	// with it and does not cross-build; setting it also allows `arch` to
	// differ from the host's (for hosts with binfmt emulation set up).
	TargetArch string `mapstructure:"target_arch"`
	// The kiwi-ng executable, a path or a name looked up in PATH. Defaults to
	// `kiwi-ng` (Debian packages `kiwi kiwi-systemdeps-disk-images`).
	KiwiPath string `mapstructure:"kiwi_path"`
	// Repositories added to the description's (`--add-repo`), in order.
	Repositories []RepositoryConfig `mapstructure:"repository"`
	// Replaces the description's first repository (`--set-repo`); only the
	// fields given change. Useful to point a description at a local mirror.
	SetRepository *RepositoryConfig `mapstructure:"set_repository"`
	// Extra packages installed on top of the description's (`--add-package`).
	Packages []string `mapstructure:"packages"`
	// Drop every repository of the description (`--ignore-repos`); then give
	// them with `repository` blocks. Defaults to `false`.
	IgnoreRepos bool `mapstructure:"ignore_repos"`
	// A KIWI runtime configuration file (`--config`), for example one that
	// disables a runtime check. Defaults to none.
	RuntimeConfig string `mapstructure:"runtime_config"`
	// Extra global options, placed before `system build` (e.g.
	// `["--debug"]`). Defaults to none.
	ExtraGlobalArgs []string `mapstructure:"extra_global_args"`
	// Extra `system build` options, placed last (e.g.
	// `["--clear-cache"]`). Defaults to none.
	ExtraBuildArgs []string `mapstructure:"extra_build_args"`
	// KIWI's `--loglevel` (10 debug, 20 info, ...). Defaults to KIWI's own.
	LogLevel int `mapstructure:"log_level"`
}

// RepositoryConfig is a `repository` or `set_repository` block, in the
// fields KIWI's `--add-repo`/`--set-repo` understand.
type RepositoryConfig struct {
	// Repository URI (`http://`, `https://`, `dir://`, `obs://`, ...).
	Source string `mapstructure:"source" required:"true"`
	// KIWI repository type: `apt-deb`, `rpm-md`, `rpm-dir`, ... Defaults to
	// KIWI's (`rpm-md`), or for `set_repository` the description's.
	Type string `mapstructure:"type"`
	// Repository alias. Defaults to one KIWI derives.
	Alias string `mapstructure:"alias"`
	// Package manager priority. Defaults to unset.
	Priority int `mapstructure:"priority"`
	// Keep the repository configured inside the image. Defaults to `false`.
	ImageInclude bool `mapstructure:"image_include"`
	// Check package signatures. Defaults to KIWI's default.
	PackageGPGCheck config.Trilean `mapstructure:"package_gpgcheck"`
	// Check repository metadata signatures. Defaults to KIWI's default.
	RepoGPGCheck config.Trilean `mapstructure:"repo_gpgcheck"`
	// Signing key URIs (`file:///...`) trusted for this repository.
	SigningKeys []string `mapstructure:"signing_keys"`
	// Debian components, e.g. `["main", "contrib"]`.
	Components []string `mapstructure:"components"`
	// Debian suite, e.g. `bookworm`.
	Distribution string `mapstructure:"distribution"`
}

func (r RepositoryConfig) repo() kiwi.Repo {
	return kiwi.Repo{
		Source: r.Source, Type: r.Type, Alias: r.Alias, Priority: r.Priority,
		ImageInclude:    r.ImageInclude,
		PackageGPGCheck: r.PackageGPGCheck.ToBoolPointer(),
		SigningKeys:     r.SigningKeys,
		Components:      r.Components,
		Distribution:    r.Distribution,
		RepoGPGCheck:    r.RepoGPGCheck.ToBoolPointer(),
	}
}

// Prepare decodes, defaults and validates the configuration. Only what the
// template says is checked here (and that named files exist); the host
// (root, loop devices, kiwi-ng installed) is checked when the build starts.
func (c *Config) Prepare(raws ...interface{}) ([]string, error) {
	err := config.Decode(c, &config.DecodeOpts{
		PluginType:         "osimage-disk",
		Interpolate:        true,
		InterpolateContext: &c.ctx,
	}, raws...)
	if err != nil {
		return nil, err
	}
	var errs *packersdk.MultiError
	add := func(err error) { errs = packersdk.MultiErrorAppend(errs, err) }

	if c.Variant != "" {
		v, err := variant.Parse("variant", c.Variant)
		if err != nil {
			add(err)
		} else {
			c.variant = *v
			c.defaultsFromVariant()
		}
	}

	switch {
	case c.Kiwi != nil && c.SourceImage != "":
		add(errors.New("kiwi and source_image exclude each other: the disk comes from exactly one of them"))
	case c.Kiwi == nil && c.SourceImage == "":
		add(errors.New(`no disk source: add a kiwi { description = "..." } block, or set source_image to an existing disk`))
	}
	if c.Kiwi != nil {
		for _, err := range c.Kiwi.prepare(c) {
			add(err)
		}
	}
	if c.SourceImage != "" {
		for _, err := range c.prepareSourceImage() {
			add(err)
		}
	} else if c.SourceImageChecksum != "" {
		add(errors.New("source_image_checksum is set but source_image is not"))
	}
	if c.QemuImgPath == "" {
		c.QemuImgPath = "qemu-img"
	}

	for _, err := range c.prepareVariant() {
		add(err)
	}
	if c.Comm.Type == "" {
		c.Comm.Type = "none"
	}
	for _, err := range c.Comm.Prepare(&c.ctx) {
		add(err)
	}
	switch {
	case c.QEMU != nil:
		for _, err := range c.QEMU.prepare(c.Arch, c.Firmware, c.Comm.Type) {
			add(err)
		}
	case c.Comm.Type != "none":
		add(fmt.Errorf("communicator = %q needs a qemu {} block: the disk is only booted there", c.Comm.Type))
	}
	switch c.BootFiles = strings.ToLower(strings.TrimSpace(c.BootFiles)); c.BootFiles {
	case "":
		c.BootFiles = BootFilesAuto
	case BootFilesAuto, BootFilesAlways, BootFilesNever:
	default:
		add(fmt.Errorf("boot_files = %q: want \"auto\", \"always\" or \"never\"", c.BootFiles))
	}

	switch c.SBOM = strings.ToLower(strings.TrimSpace(c.SBOM)); c.SBOM {
	case "":
		c.SBOM = SBOMAuto
	case SBOMAuto, SBOMRequired, SBOMNone:
	default:
		add(fmt.Errorf(`sbom = %q: want "auto", "required" or "none"`, c.SBOM))
	}
	switch c.SBOMFormat = strings.ToLower(strings.TrimSpace(c.SBOMFormat)); {
	case c.SBOMFormat == "":
		c.SBOMFormat = sbom.FormatSPDX
	case !slices.Contains(sbom.Formats, c.SBOMFormat):
		add(fmt.Errorf("sbom_format = %q: want one of %s", c.SBOMFormat, strings.Join(sbom.Formats, ", ")))
	}

	if st, err := release.RecorderFor(&c.variant); err != nil {
		add(fmt.Errorf("variant %s: %w", c.variant.Key, err))
	} else {
		c.state = st
	}

	name := c.Key
	if name == "" {
		name = c.PackerBuildName
	}
	if name == "" {
		name = "disk"
	}
	if strings.ContainsAny(name, `/\`) || name == "." || name == ".." {
		add(fmt.Errorf("key %q cannot name a file: it holds a path separator", name))
	}
	c.diskName = name + ".raw"
	if c.OutputDirectory == "" {
		c.OutputDirectory = "output-" + c.PackerBuildName
		if c.PackerBuildName == "" {
			c.OutputDirectory = "output-" + name
		}
	}
	if abs, err := filepath.Abs(c.OutputDirectory); err == nil {
		c.OutputDirectory = abs
	}

	if c.Kiwi != nil && (errs == nil || len(errs.Errors) == 0) {
		opts, err := c.kiwiOptions("")
		if err != nil {
			add(fmt.Errorf("kiwi: %w", err))
		}
		c.kiwiOpts = opts
		c.kiwiOpts.TargetDir = ""
	}
	c.variant.Key = c.key()
	c.variant.Image, c.variant.ImageName, c.variant.DistroVersion = c.Image, c.ImageName, c.DistroVersion
	c.variant.Arch, c.variant.Platform, c.variant.HyperVGeneration, c.variant.Firmware = c.Arch, c.Platform, c.HyperVGeneration, c.Firmware
	c.variant.OCIArch, c.variant.AzureArch = variant.OCIArch(c.Arch), variant.AzureArch(c.Arch)

	if errs != nil && len(errs.Errors) > 0 {
		return nil, errs
	}
	return generatedNames(), nil
}

// defaultsFromVariant fills the fields the template left empty from the
// parsed variant: explicit fields win.
func (c *Config) defaultsFromVariant() {
	v := &c.variant
	for _, f := range []struct {
		field *string
		value string
	}{
		{&c.Key, v.Key}, {&c.Image, v.Image}, {&c.ImageName, v.ImageName}, {&c.Arch, v.Arch},
		{&c.Platform, v.Platform}, {&c.HyperVGeneration, v.HyperVGeneration}, {&c.Firmware, v.Firmware},
		{&c.DistroVersion, v.DistroVersion},
	} {
		if *f.field == "" {
			*f.field = f.value
		}
	}
	if c.Kiwi == nil {
		return
	}
	if c.Kiwi.Description == "" && (v.DefinitionType == "" || v.DefinitionType == "kiwi") {
		c.Kiwi.Description = v.DefinitionPath
	}
	if len(c.Kiwi.Profiles) == 0 {
		c.Kiwi.Profiles = v.Profiles
	}
}

func (k *KiwiConfig) prepare(c *Config) []error {
	var errs []error
	if k.Description == "" {
		msg := "kiwi.description is required (or a variant whose definition_type is kiwi): a KIWI description directory or its .kiwi/config.xml file"
		if c.variant.Key != "" {
			msg += fmt.Sprintf("; variant %s has no definition (its image has no `definition` in the TOML): give kiwi.description, or drop kiwi {} and set source_image", c.variant.Key)
		}
		errs = append(errs, errors.New(msg))
	} else {
		desc, err := filepath.Abs(k.Description)
		if err != nil {
			return append(errs, fmt.Errorf("kiwi.description %q: %w", k.Description, err))
		}
		st, err := os.Stat(desc)
		switch {
		case err != nil:
			errs = append(errs, fmt.Errorf("kiwi.description: %w", err))
		case st.Mode().IsRegular():
			// The KIWI file itself, as the matrix datasource returns it.
			base := filepath.Base(desc)
			if k.KiwiFile != "" && k.KiwiFile != base {
				errs = append(errs, fmt.Errorf("kiwi.description names the file %s but kiwi.kiwi_file is %q: give the directory, or drop kiwi_file", desc, k.KiwiFile))
			}
			k.Description = filepath.Dir(desc)
			if base != "config.xml" {
				c.kiwiFile = base
			}
		default:
			k.Description = desc
			c.kiwiFile = k.KiwiFile
		}
		if err == nil {
			if cerr := kiwi.CheckDescription(k.Description, c.kiwiFile); cerr != nil {
				errs = append(errs, fmt.Errorf("kiwi.description: %w", cerr))
			}
		}
	}
	if k.KiwiPath == "" {
		k.KiwiPath = kiwi.DefaultBinary
	}
	if k.LogLevel < 0 {
		errs = append(errs, fmt.Errorf("kiwi.log_level = %d: must not be negative", k.LogLevel))
	}
	if k.RuntimeConfig != "" {
		if abs, err := filepath.Abs(k.RuntimeConfig); err == nil {
			k.RuntimeConfig = abs
		}
		if _, err := os.Stat(k.RuntimeConfig); err != nil {
			errs = append(errs, fmt.Errorf("kiwi.runtime_config: %w", err))
		}
	}
	for i, p := range k.Profiles {
		if p == "" || strings.ContainsAny(p, " \t\n,") {
			errs = append(errs, fmt.Errorf("kiwi.profiles[%d] = %q: a profile name is non-empty and holds no space or ','", i, p))
		}
	}
	for i, p := range k.Packages {
		if p == "" || strings.ContainsAny(p, " \t\n") {
			errs = append(errs, fmt.Errorf("kiwi.packages[%d] = %q: a package name is non-empty and holds no space", i, p))
		}
	}
	for i, r := range k.Repositories {
		if err := r.repo().Validate(); err != nil {
			errs = append(errs, fmt.Errorf("kiwi.repository[%d]: %w", i, err))
		}
	}
	if k.SetRepository != nil {
		if err := k.SetRepository.repo().Validate(); err != nil {
			errs = append(errs, fmt.Errorf("kiwi.set_repository: %w", err))
		}
	}
	return errs
}

func (c *Config) prepareSourceImage() []error {
	var errs []error
	abs, err := filepath.Abs(c.SourceImage)
	if err != nil {
		return []error{fmt.Errorf("source_image %q: %w", c.SourceImage, err)}
	}
	c.SourceImage = abs
	st, err := os.Stat(abs)
	switch {
	case err != nil:
		errs = append(errs, fmt.Errorf("source_image: %w", err))
	case !st.Mode().IsRegular():
		errs = append(errs, fmt.Errorf("source_image %s is not a regular file", abs))
	case st.Size() == 0:
		errs = append(errs, fmt.Errorf("source_image %s is empty", abs))
	}
	if c.SourceImageChecksum != "" {
		if _, err := parseChecksum(c.SourceImageChecksum); err != nil {
			errs = append(errs, fmt.Errorf("source_image_checksum: %w", err))
		}
	}
	return errs
}

// prepareVariant normalises the variant fields with the one table of
// spellings (internal/variant), so the matrix and the builder spell and
// derive them alike. The arch defaults to this machine's.
func (c *Config) prepareVariant() []error {
	if c.Arch == "" {
		c.Arch = hostArch()
	}
	b, errs := variant.Normalize(variant.Builtins{Arch: c.Arch, Platform: c.Platform, HyperVGeneration: c.HyperVGeneration, Firmware: c.Firmware})
	c.Arch, c.Platform, c.HyperVGeneration, c.Firmware = b.Arch, b.Platform, b.HyperVGeneration, b.Firmware
	return errs
}

// wantBootFiles says whether kernel, initramfs and rootfs belong in the
// artifact.
func (c *Config) wantBootFiles() bool {
	switch c.BootFiles {
	case BootFilesAlways:
		return true
	case BootFilesNever:
		return false
	}
	return c.Platform == variant.PlatformBaremetal
}

// key is the variant key, or the build name when none is given.
func (c *Config) key() string { return strings.TrimSuffix(c.diskName, ".raw") }

// hostArch is this machine's architecture in uname -m spelling.
func hostArch() string { return variant.ArchFromGOARCH(runtime.GOARCH) }

// kiwiOptions turns the kiwi block into the KIWI invocation; the KIWI step
// sets the target directory.
func (c *Config) kiwiOptions(targetDir string) (kiwi.Options, error) {
	k := c.Kiwi
	opts := kiwi.Options{
		Description: k.Description,
		TargetDir:   targetDir,
		Profiles:    k.Profiles,
		Type:        k.Type,
		TargetArch:  k.TargetArch,
		KiwiFile:    c.kiwiFile,
		LogLevel:    k.LogLevel,
		Config:      k.RuntimeConfig,
		GlobalArgs:  k.ExtraGlobalArgs,
		AddPackages: k.Packages,
		IgnoreRepos: k.IgnoreRepos,
		BuildArgs:   k.ExtraBuildArgs,
	}
	if opts.TargetDir == "" {
		opts.TargetDir = "." // only checked for non-emptiness here
	}
	for _, r := range k.Repositories {
		opts.AddRepos = append(opts.AddRepos, r.repo())
	}
	if k.SetRepository != nil {
		r := k.SetRepository.repo()
		opts.SetRepo = &r
	}
	if _, err := opts.Args(); err != nil {
		return opts, err
	}
	return opts, nil
}
