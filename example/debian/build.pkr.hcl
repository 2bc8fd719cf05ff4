# The whole pipeline of a release on one machine (`make demo` runs it):
# image definitions in TOML expanded by osimage-matrix; each variant's disk
# built by osimage-disk with KIWI (kernel, initramfs and rootfs split out)
# or taken from `disks`; VM variants converted to a fixed VHD, uploaded and
# published into a Compute Gallery as gen1 and gen2 versions; every variant
# pushed as ironcore-image OCI indexes; the release state recording each
# step, so a second run does only what is left; the release manifest and
# notes at the end.
#
#   sudo packer build -var state=state -var stage=publish -var registry=127.0.0.1:5000 \
#     -var 'gallery={subscription="...", resource_group="...", name="...", location="westeurope"}' \
#     -var storage_account=... example/debian
#   sudo packer build ... -var stage=release example/debian      # promotion
#
# KIWI needs root, loop devices and Debian's KIWI (apt-get install kiwi
# kiwi-systemdeps-disk-images); a build takes about 3 minutes here. Variants
# for another architecture need a builder of that architecture, hence
# `only` defaults to this machine's. With `disks`, no KIWI: each variant
# starts from DISKS/disk-<arch>.raw.
#
# Validate with `packer validate --evaluate-datasources`: without the flag
# the data source does not run and Packer cannot expand `for_each`.
packer {
  required_plugins {
    osimage = {
      source  = "github.com/osimage/osimage"
      version = ">= 0.1.0"
    }
  }
}

variable "only" {
  type        = list(string)
  default     = ["x86_64"]
  description = "Build the variants matching all of these (image names, keys, dimension values)."
}

variable "debian_mirror" {
  type        = string
  default     = "http://deb.debian.org/debian"
  description = "Debian archive the image's packages come from."
}

variable "disks" {
  type        = string
  default     = ""
  description = "Directory of disk-<arch>.raw to start from instead of KIWI builds; empty: KIWI."
}

variable "output_dir" {
  type    = string
  default = "output"
}

variable "state" {
  type        = string
  default     = "state"
  description = "The release state: a directory, or a blob container URL."
}

variable "stage" {
  type    = string
  default = "release"
}

variable "registry" {
  type        = string
  default     = ""
  description = "Registry host[:port] for the OCI indexes; empty: no push."
}

variable "gallery" {
  type        = object({ subscription = string, resource_group = string, name = string, location = string })
  default     = null
  description = "The Compute Gallery; null: no upload or publish."
}

variable "storage_account" {
  type    = string
  default = ""
}

variable "storage_connection_string" {
  type      = string
  default   = ""
  sensitive = true
}

variable "resource_manager_endpoint" {
  type        = string
  default     = ""
  description = "Empty for Azure; a stand-in's URL for the demo."
}

variable "use_azure_cli_auth" {
  type    = bool
  default = false
}

data "osimage-matrix" "debian" {
  config = "${path.root}/images.toml"
  only   = var.only
  state  = var.state
  stage  = var.stage
  strict = true # warnings are errors: a data source cannot print them
}

locals {
  variants = { for v in data.osimage-matrix.debian.variants : v.key => v }
  # Build names of a variant, whichever source makes it.
  names = { for k, v in local.variants : k => ["osimage-disk.${k}", "osimage-state.${k}"] }
  # `only = []` would mean every build: "none" names no build.
  vms = var.gallery == null ? ["none"] : flatten([for k, v in local.variants : local.names[k] if v.platform == "virtualization"])
  oci = var.registry == "" ? ["none"] : flatten([for k, v in local.variants : local.names[k]])
}

source "osimage-disk" "variant" {}
source "osimage-state" "variant" {}

source "osimage-release" "manifest" {
  state    = var.state
  release  = "12"
  variants = jsonencode(data.osimage-matrix.debian.variants)
  stage    = var.stage
  manifest = "${var.output_dir}/release-12.json"
  notes    = "${var.output_dir}/release-12.md"
}

build {
  # Variants that need a disk...
  dynamic "source" {
    for_each = { for k, v in local.variants : k => v if contains(v.pending, "build") }
    iterator = v
    labels   = ["osimage-disk.variant"]
    content {
      name = v.key
      # Everything the matrix knows about this variant: arch, platform,
      # generation, KIWI definition and profiles, publish targets, delivery,
      # release state. The artifact carries it to the post-processors.
      variant          = jsonencode(v.value)
      boot_files       = "always"
      output_directory = "${var.output_dir}/${v.key}"
      source_image     = var.disks == "" ? null : "${var.disks}/disk-${v.value.arch}.raw"
      dynamic "kiwi" {
        for_each = var.disks == "" ? [1] : []
        content {
          # description and profiles come from the variant
          set_repository {
            source = var.debian_mirror
          }
        }
      }
    }
  }
  # ...and those built earlier, from the release state.
  dynamic "source" {
    for_each = { for k, v in local.variants : k => v if !contains(v.pending, "build") }
    iterator = v
    labels   = ["osimage-state.variant"]
    content {
      name             = v.key
      variant          = jsonencode(v.value)
      output_directory = "${var.output_dir}/${v.key}"
    }
  }

  post-processors {
    post-processor "osimage-vhd" {
      only      = local.vms
      checksums = ["md5", "sha256"]
    }
    post-processor "osimage-gallery" {
      only                      = local.vms
      storage_account           = var.storage_account
      storage_connection_string = var.storage_connection_string
      container                 = "debian-12"
      create_container          = true
      resource_manager_endpoint = var.resource_manager_endpoint
      use_azure_cli_auth        = var.use_azure_cli_auth
      hyperv_generations        = ["V1", "V2"]
      shared_image_gallery_destination {
        subscription    = var.gallery == null ? "" : var.gallery.subscription
        resource_group  = var.gallery == null ? "" : var.gallery.resource_group
        gallery_name    = var.gallery == null ? "" : var.gallery.name
        location        = var.gallery == null ? "" : var.gallery.location
        gen1_image_name = "debian-12-x64-gen1"
      }
    }
  }

  post-processor "osimage-oci" {
    only       = local.oci
    repository = "${var.registry}/debian/12"
    # Moving tags: written when the release is promoted, not before.
    extra_tags = ["latest-{{ .Variant }}"]
  }
}

build {
  name    = "release"
  sources = ["source.osimage-release.manifest"]
}
