# Alpine's cloud image build (alpine-cloud-images: `build` and
# alpine.pkr.hcl) with this plugin: the dimensions in configs/ (version x
# arch x firmware x bootstrap x machine, with exclusions), Alpine's names with
# r<revision>, and its steps as the stages of a release whose state lives in
# `state`:
#
#   ./build configs                 -> packer validate --evaluate-datasources example/alpine-style
#   ./build state                   -> the matrix's `pending` per variant (printed by osimage-state)
#   ./build local                   -> -var stage=build
#   ./build upload / publish        -> -var stage=publish   (a pre-release)
#   ./build release                 -> -var stage=release   (promotion)
#   ./build --revise                -> -var revision=N+1
#   ./build --only 3.20 x86_64      -> -var version=3.20 -var 'only=["x86_64"]'
#
# A second run of the same stage does nothing and says so per variant.
# The disks come from `disks` (disk-<arch>.raw); a real pipeline builds them
# with KIWI or Packer's qemu builder.
packer {
  required_plugins {
    osimage = {
      source  = "github.com/osimage/osimage"
      version = ">= 0.1.0"
    }
  }
}

variable "state" {
  type        = string
  default     = "state"
  description = "The release state: a directory, or a blob container URL."
}
variable "stage" {
  type    = string
  default = "publish"
}
variable "revision" {
  type        = number
  default     = null
  description = "Alpine's --revise: the next revision; null is the current one."
}
variable "version" {
  type    = string
  default = "3.20"
}
variable "only" {
  type    = list(string)
  default = []
}
variable "skip" {
  type    = list(string)
  default = []
}
variable "disks" {
  type = string
}
variable "output_dir" {
  type    = string
  default = "output"
}

# Publish targets, given as variables (the TOML says "*").
variable "registry" {
  type        = string
  description = "Registry host and namespace, e.g. ghcr.io/acme."
}
variable "gallery" {
  type = object({ subscription = string, resource_group = string, name = string, location = string })
}
variable "storage_connection_string" {
  type      = string
  sensitive = true
}
variable "regions" {
  type    = list(string)
  default = ["eastus"]
}
variable "resource_manager_endpoint" {
  type        = string
  default     = ""
  description = "Empty for Azure; a local stand-in's URL in tests."
}
variable "use_azure_cli_auth" {
  type    = bool
  default = false
}

data "osimage-matrix" "alpine" {
  config   = "${path.root}/configs/images.toml"
  version  = var.version
  only     = var.only
  skip     = var.skip
  state    = var.state
  stage    = var.stage
  revision = var.revision
  strict   = true
}

locals {
  variants = { for v in data.osimage-matrix.alpine.variants : v.key => v }
  # The names a variant's build has, whichever source makes it.
  names   = { for k, v in local.variants : k => ["osimage-disk.${k}", "osimage-state.${k}"] }
  gallery = flatten([for k, v in local.variants : local.names[k] if contains([for t in v.targets : t.interface_type], "azure-compute-gallery")])
  oci     = flatten([for k, v in local.variants : local.names[k] if contains([for t in v.targets : t.interface_type], "oci-registry")])
}

source "osimage-disk" "alpine" {}
source "osimage-state" "alpine" {}

build {
  dynamic "source" {
    for_each = { for k, v in local.variants : k => v if contains(v.pending, "build") }
    labels   = ["osimage-disk.alpine"]
    content {
      name             = source.key
      variant          = jsonencode(source.value)
      source_image     = "${var.disks}/disk-${source.value.arch}.raw"
      output_directory = "${var.output_dir}/${source.key}"
    }
  }
  dynamic "source" {
    for_each = { for k, v in local.variants : k => v if !contains(v.pending, "build") }
    labels   = ["osimage-state.alpine"]
    content {
      name             = source.key
      variant          = jsonencode(source.value)
      output_directory = "${var.output_dir}/${source.key}"
    }
  }

  post-processor "osimage-gallery" {
    only                      = local.gallery
    storage_connection_string = var.storage_connection_string
    container                 = "alpine-${var.version}"
    create_container          = true
    resource_manager_endpoint = var.resource_manager_endpoint
    use_azure_cli_auth        = var.use_azure_cli_auth
    shared_image_gallery_destination {
      subscription   = var.gallery.subscription
      resource_group = var.gallery.resource_group
      gallery_name   = var.gallery.name
      location       = var.gallery.location
      dynamic "target_region" {
        for_each = var.regions
        content {
          name     = target_region.value
          replicas = 1
        }
      }
    }
  }

  post-processor "osimage-oci" {
    only       = local.oci
    repository = "${var.registry}/alpine/cloud"
  }
}
