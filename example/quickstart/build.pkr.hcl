# Quickstart: your own image definitions (images/), a disk you made
# yourself, every variant built and published in one `packer build`:
#
#   ./example/quickstart/make-disks.sh disks
#   packer build -parallel-builds=4 \
#     -var disks=$PWD/disks \
#     -var registry=127.0.0.1:5000 \
#     -var "storage_connection_string=$AZURE_STORAGE_CONNECTION_STRING" \
#     example/quickstart
#
# What it does, per variant of images/ (edge x {x86_64, aarch64} x
# {virtualization, baremetal}):
#   - osimage-disk copies the disk of its arch (source_image) into
#     output/<key>/ and,
#     for baremetal, splits out kernel, initramfs and root filesystem;
#   - x86_64 virtualization only (post-processor `only`): osimage-vhd makes a
#     fixed VHD and osimage-gallery uploads it as a page blob (no gallery is
#     named, so it stops after the upload);
#   - every variant: osimage-oci pushes its manifest into the registry's
#     per-platform indexes.
#
# Validate with `packer validate --evaluate-datasources example/quickstart`:
# without the flag the data source does not run, the matrix is unknown and
# Packer cannot expand `for_each` ("value must be known").
packer {
  required_plugins {
    osimage = {
      source  = "github.com/osimage/osimage"
      version = ">= 0.1.0"
    }
  }
}

variable "disks" {
  type        = string
  description = "Directory of the raw disks the variants start from, disk-<arch>.raw (make-disks.sh makes them)."
}

variable "registry" {
  type        = string
  description = "Registry host[:port] to push to; loopback registries are reached over plain HTTP."
}

variable "storage_connection_string" {
  type        = string
  sensitive   = true
  description = "Storage account connection string (Azurite's works: its BlobEndpoint is enough)."
}

variable "container" {
  type    = string
  default = "quickstart"
}

variable "output_dir" {
  type    = string
  default = "output"
}

data "osimage-matrix" "edge" {
  config = "${path.root}/images/images.toml"
  # Warnings (a publish label no target carries, a target without an image
  # for an arch, ...) are errors: a data source cannot print them.
  strict = true
}

locals {
  variants = { for v in data.osimage-matrix.edge.variants : v.key => v }
}

source "osimage-disk" "edge" {}

build {
  dynamic "source" {
    for_each = local.variants
    iterator = v
    labels   = ["osimage-disk.edge"]
    content {
      name             = v.key
      variant          = jsonencode(v.value)
      source_image     = "${var.disks}/disk-${v.value.arch}.raw"
      output_directory = "${var.output_dir}/${v.key}"
    }
  }

  # Dynamic sources are named osimage-disk.<variant key>: `only` and
  # `except` of a post-processor select variants by that name.
  post-processors {
    post-processor "osimage-vhd" {
      only = ["osimage-disk.edge-x86_64-virtualization"]
    }
    post-processor "osimage-gallery" {
      only                      = ["osimage-disk.edge-x86_64-virtualization"]
      storage_connection_string = var.storage_connection_string
      container                 = var.container
      create_container          = true
    }
  }

  post-processor "osimage-oci" {
    # The variant's oci-registry target names the repository
    # (quickstart/edge); its host is left to the template ("*").
    repository = "${var.registry}/${local.variants[source.name].targets[0].image_name}"
  }
}
