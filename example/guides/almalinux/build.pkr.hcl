# AlmaLinux's tools/azure_uploader.sh as a Packer template: the same flags
# as variables (see docs/guides/almalinux-azure-uploader.md).
#
#   azure_uploader.sh -d 9.6 -t default -i AlmaLinux-9-Azure-9.6.raw      (dry run)
#   packer build -var version=9.6 -var type=default -var image=AlmaLinux-9-Azure-9.6.raw \
#     -var storage_account=almalinux -var gallery_id=/subscriptions/.../galleries/almalinux_ci example/guides/almalinux
#
#   azure_uploader.sh ... -f                                              (for real)
#   packer build ... -var dry_run=false example/guides/almalinux
#
#   azure_uploader.sh ... -g almalinux                                    (public gallery)
#   packer build ... -var gallery_id=/subscriptions/.../galleries/almalinux example/guides/almalinux
packer {
  required_plugins {
    osimage = {
      source  = "github.com/osimage/osimage"
      version = ">= 0.1.0"
    }
  }
}

variable "version" {
  type        = string
  description = "-d: the release, 9.6, 10.0, ... (the version's name and the definitions' major)."
}

variable "type" {
  type        = string
  default     = "default"
  description = "-t: default (x86_64, gen1 + gen2), arm64 or arm64-64k (aarch64, gen2)."
  validation {
    condition     = contains(["default", "arm64", "arm64-64k"], var.type)
    error_message = "The type is default, arm64 or arm64-64k, as azure_uploader.sh's -t."
  }
}

variable "image" {
  type        = string
  description = "-i: the RAW image (converted to a fixed VHD on the fly: padded to a MiB, footer appended)."
}

variable "storage_account" {
  type    = string
  default = "almalinux"
}

variable "gallery_id" {
  type        = string
  description = "-g: the gallery's resource id (almalinux_ci by default in the script, almalinux for the public one)."
}

variable "regions" {
  type    = list(string)
  default = ["eastus", "germanywestcentral", "westus2", "southeastasia", "southcentralus"]
}

variable "dry_run" {
  type        = bool
  default     = true
  description = "The script's default; -f is dry_run = false."
}

locals {
  major  = split(".", var.version)[0]
  arm    = var.type != "default"
  suffix = var.type == "arm64-64k" ? "-arm64-64k" : (local.arm ? "-arm64" : "-gen2")
  # The script's container names: 8-default, 9-arm64, ..., almalinux-10.
  container = contains(["8", "9"], local.major) ? "${local.major}-${var.type}" : "almalinux-${local.major}"
}

source "file" "raw" {
  source = var.image
  target = "output/${basename(var.image)}"
}

build {
  sources = ["source.file.raw"]

  post-processor "osimage-gallery" {
    variant = jsonencode({
      key         = "almalinux-${var.version}-${var.type}"
      image       = "almalinux"
      distro      = "almalinux"
      release_ver = var.version
      arch        = local.arm ? "aarch64" : "x86_64"
      targets = [{
        name           = "gallery"
        interface_type = "azure-compute-gallery"
        backend        = "azure-compute-gallery"
        resource_urn   = var.gallery_id
        image_name     = "almalinux-${local.major}${local.suffix}"
      }]
    })
    storage_account  = var.storage_account
    container        = local.container
    create_container = false # the script expects the container to exist
    # x86_64: one blob, a gen1 and a gen2 version; arm64: gen2 only.
    hyperv_generations = local.arm ? ["V2"] : ["V1", "V2"]
    dry_run            = var.dry_run

    shared_image_gallery_destination {
      gen1_image_name = local.arm ? "" : "almalinux-${local.major}-gen1"
      dynamic "target_region" {
        for_each = var.regions
        content {
          name     = target_region.value
          replicas = 1
        }
      }
    }
  }
}
