# osimage-oci without a registry: two variants (amd64, arm64) of a small
# "disk" from Packer's file builder, published as an OCI image layout in
# output/oci: the index 1.0-kvm over both architectures, and the per-arch
# tags 1.0-kvm-amd64 and -arm64 (IronCore's names). Read it with
# `crane`/`skopeo` (oci:output/oci:1.0-kvm) or go-containerregistry's
# layout package. To push to a registry instead, replace layout_dir with
# repository = "HOST/REPO" (or give the variants an oci-registry target).
#
#   packer build -parallel-builds=2 example/oci
packer {
  required_plugins {
    osimage = {
      source  = "github.com/osimage/osimage"
      version = ">= 0.1.0"
    }
  }
}

variable "output_directory" {
  type    = string
  default = "output"
}

locals {
  # The shape of data.osimage-matrix.NAME.variants elements, written out.
  variants = {
    for arch in ["x86_64", "aarch64"] : "demo-${arch}" => {
      key            = "demo-${arch}"
      image          = "demo"
      arch           = arch
      platform       = "virtualization"
      distro_version = "1.0"
    }
  }
}

source "file" "disk" {
  content = "a raw disk image"
}

build {
  dynamic "source" {
    for_each = local.variants
    labels   = ["file.disk"]
    content {
      name   = source.key
      target = "${var.output_directory}/${source.key}.raw"
    }
  }

  post-processor "osimage-oci" {
    layout_dir = "${var.output_directory}/oci"
    variant    = jsonencode(local.variants[source.name])
  }
}
