// Design: Load does the I/O and checks, Expand is a pure function of the Tree; the package knows nothing of Packer.

// Package imagedef reads the image definitions a distribution keeps in TOML
// (Azure Linux's tree as azldev reads it, plus the delivery and variants keys
// proposed in Azure Linux PR 16184) and expands them into the list of
// variants to build, with the expressive power of Alpine's cloud image
// dimensions (EXCLUDE and WHEN). It knows nothing about Packer: the
// osimage-matrix datasource is a thin mapping of [Load], [Expand] and
// [MatrixJSON]. Load does the I/O; Expand computes and can be called many
// times on one [Tree]. Expand works out the images in parallel; its results,
// warnings and errors do not depend on timing.
//
// # Files
//
// Load starts at a root file: an azldev.toml, a registry such as images.toml,
// or a single image or distro file. Its directory is the tree root.
// `includes = ["distro/distro.toml", "**/*.image.toml"]` adds files relative
// to the including file; globs support `*`, `?`, `[...]` and `**`. A glob
// that matches nothing is a warning; a missing literal include, a cycle or a
// path that leaves the tree root (also through a symbolic link) is an error.
// Globs do not descend into symbolic links to directories; paths inside a
// file reached through a link are relative to the link. A file's own
// settings come before those of the files it includes, includes are taken
// in order (glob matches in lexical order), and a file included twice is
// read once. The files a glob matches are read and decoded in parallel;
// results and errors do not depend on timing.
//
// These top-level keys are read; all others (project settings apart from
// default-distro, components, component-groups, tools, package-groups,
// test-suites, default-*-config, $schema, resources.rpm-repos, ...) are
// accepted and ignored, so a real Azure Linux tree loads unchanged:
//
//	[images.NAME]          description, distro, definition, capabilities,
//	                       publish, delivery, variants (tests is ignored)
//	[distros.NAME]         description, default-version, versions.'X' with
//	                       release-ver and outputs.image-stores; same-name
//	                       distro tables merge across files, later files win
//	[[resources.TARGET]]   a publish target (array of tables)
//	[project]              default-distro = { name = "...", version = "..." }
//	[variants]             exclude and when rules for every image
//
// Image names must be unique across files. definition.path is resolved
// against the file that declares it and must name an existing file.
//
// # Dimensions
//
// An image's [images.NAME.variants] table lists the values of each dimension.
// Four dimensions are built in; their values are normalised (any case) by the
// one table in internal/variant:
//
//	key in variants      dimension          values (also accepted)      default
//	architectures        arch               x86_64 (amd64, x64),        x86_64
//	                                        aarch64 (arm64)
//	platforms            platform           virtualization (vm),        virtualization
//	                                        baremetal (metal)
//	hyperv_generations   hyperv_generation  V1 (gen1, 1), V2 (gen2, 2)  none
//	firmwares            firmware           bios (legacy), uefi (efi)   derived
//
// When firmwares is not given, the firmware is derived: V1 gives bios, V2
// gives uefi, and aarch64 gives uefi. aarch64 allows only V2 and uefi, V1 only
// bios, V2 only uefi; a combination that breaks this is an error unless an
// exclude rule drops it. Every other key of the variants table is a user
// dimension of that name, with an array of strings as values (for example
// bootstrap = ["tiny", "cloudinit"]); "image", "exclude" and "when" are
// reserved.
//
// # Rules
//
// Exclude rules drop combinations, like Alpine's EXCLUDE. Each rule maps
// dimension names to a value or a list of values; it drops a combination
// when every named dimension has one of the listed values (AND across keys,
// OR within a list). Built-in values may use any accepted spelling.
//
// When rules merge settings into matching combinations, like Alpine's WHEN.
// match has the same form as an exclude rule; set is merged into the image
// table (description, definition, capabilities, publish, delivery): tables
// are merged key by key, arrays are appended to arrays, any other value
// replaces the old one. unset lists dotted keys to remove first (Alpine's
// `x = null`). Rules apply in order: the top-level [variants] rules of all
// files (in load order), then the image's own rules. Conditions see every dimension value of the
// combination, including a derived firmware; top-level rules may also match
// image = "NAME" and never apply to images that lack a named dimension.
//
//	[images.vm-base.variants]
//	architectures = ["x86_64", "aarch64"]
//	hyperv_generations = ["gen1", "gen2"]
//	flavor = ["standard", "cvm"]                 # a user dimension
//
//	[[images.vm-base.variants.exclude]]          # Arm64 VMs are generation 2 only
//	arch = "aarch64"
//	hyperv_generation = "gen1"
//
//	[[images.vm-base.variants.exclude]]
//	flavor = "cvm"
//	hyperv_generation = ["gen1"]
//
//	[[images.vm-base.variants.when]]
//	match = { hyperv_generation = "gen1" }
//	set.definition.profile = "vm-base-gen1"
//	set.delivery.shared_gallery.capability.security_type = "Standard"
//
//	[[images.vm-base.variants.when]]
//	match = { arch = "aarch64", flavor = ["standard", "cvm"] }
//	set = { publish = { labels = ["arm64-preview"] } }   # appended to the labels
//	unset = ["delivery.marketplace"]
//
//	[[variants.exclude]]                         # top level: every image
//	platform = "baremetal"
//	image = ["container-base"]
//
// # Expansion order and keys
//
// Images are expanded in name order. Within an image the dimensions are, in
// this order: arch, platform, hyperv_generation (if declared), firmware (if
// declared), then the user dimensions in the order they are written; values
// keep their written order and the last dimension varies fastest (nested
// loops). Exclude rules, when rules, then Options.Only and Options.Skip are
// applied to each combination.
//
// A variant's key is the image name, arch and platform, then gen1/gen2 if the
// image declares hyperv_generations, the firmware if it declares firmwares,
// and the user dimension values, joined by "-"; characters other than ASCII
// letters, digits, ".", "_" and "-" become "_". For example
// vm-base-x86_64-virtualization-gen2 or
// alpine-aarch64-virtualization-uefi-3.20-cloudinit-azure. Keys must be
// unique; they serve as Packer source names (packer build -only='*.KEY').
//
// # Publishing
//
// The variants of an image built for distro D version X go to every publish
// target named in X's outputs.image-stores (every target of the tree when X
// has no outputs) whose publish-labels share a label with the image's
// publish.labels. A target lists its image name per arch, optionally per
// Hyper-V generation (the first entry that fits wins):
//
//	[[resources.azl4-acg]]
//	publish-labels = ["base-vm"]
//	interface-type = "azure-compute-gallery"
//	backend = "azure-compute-gallery"
//	resource-urn = "/subscriptions/.../galleries/azlGallery"
//	images = [
//	    { name = "AzureLinux4-x64-gen1", arch = "x86_64", hyperv-generation = "gen1" },
//	    { name = "AzureLinux4-x64", arch = "x86_64" },
//	    { name = "AzureLinux4-arm64", arch = "aarch64" },
//	]
//
// A label that matches no target is a warning (an error with Options.Strict).
//
// # Unresolved values
//
// The string "*" marks a value a later publish step fills in. It is never
// used as a literal: the key is kept (as null in Variant.Delivery), and the
// variant lists its path in Variant.Unresolved, for example
// delivery.shared_gallery.image_version, targets.azl4-acg.resource_urn or
// release_ver.
//
// # Errors
//
// Every error is a *ConfigError naming the file, line, column and key, what
// was found and what was expected; its Kind (ErrSyntax, ErrType,
// ErrUnknownValue, ErrIncludeCycle, ...) works with errors.Is. Every file,
// ignored keys included, must be valid TOML as go-toml decodes it (no key or
// table defined twice).
package imagedef
