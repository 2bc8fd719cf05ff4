# Uploads a raw disk as a fixed VHD page blob and publishes it into an Azure
# Compute Gallery as a gen1 and a gen2 image version (AlmaLinux's way).
#
#   packer build -var raw_disk=disk.raw -var storage_account=acct \
#     -var gallery_id=/subscriptions/.../galleries/g example/gallery
#
# dry_run defaults to true here: the gallery is read and every request is
# printed, nothing is changed. Credentials come from the environment, a
# workload identity, a managed identity or `az login`.
packer {
  required_plugins {
    osimage = {
      source  = "github.com/osimage/osimage"
      version = ">= 0.1.0"
    }
  }
}

variable "raw_disk" {
  type        = string
  description = "Path of the raw disk to publish."
}

variable "storage_account" {
  type = string
}

variable "gallery_id" {
  type        = string
  description = "Resource id of the gallery."
}

variable "dry_run" {
  type    = bool
  default = true
}

source "file" "disk" {
  source = var.raw_disk
  target = "output/disk.raw"
}

build {
  sources = ["source.file.disk"]

  post-processor "osimage-gallery" {
    # A variant as the osimage-matrix datasource gives it; the gallery and
    # definition come from its azure-compute-gallery target.
    variant = jsonencode({
      key         = "almalinux-9-x86_64"
      image       = "almalinux"
      distro      = "almalinux"
      release_ver = "9.6"
      arch        = "x86_64"
      targets = [{
        name           = "acg"
        interface_type = "azure-compute-gallery"
        backend        = "azure-compute-gallery"
        resource_urn   = var.gallery_id
        image_name     = "almalinux-9-gen2"
      }]
    })
    storage_account    = var.storage_account
    container          = "9-default"
    create_container   = true
    hyperv_generations = ["V1", "V2"]
    dry_run            = var.dry_run

    shared_image_gallery_destination {
      gen1_image_name = "almalinux-9-gen1"
      target_region { name = "eastus" }
      target_region { name = "westus2" }
    }
  }
}
