# Starts from an existing disk: copies it sparsely into the output directory
# and, as a bare-metal variant, splits out its kernel, initramfs and root
# filesystem. Make a small test disk first, then build:
#
#   ./example/disk/source-image/make-disk.sh disk.raw
#   packer build -var source_image=disk.raw example/disk/source-image
#
# A qcow2 (or vmdk, vhdx, VHD) source works the same way; it is converted to
# raw with qemu-img.
packer {
  required_plugins {
    osimage = {
      source  = "github.com/osimage/osimage"
      version = ">= 0.1.0"
    }
  }
}

variable "source_image" {
  type        = string
  description = "Path of the raw or qcow2 disk to start from."
}

variable "source_image_checksum" {
  type        = string
  default     = ""
  description = "sha256:HEX or file:SHA256SUMS; empty skips the check."
}

variable "output_directory" {
  type    = string
  default = "output-example-disk"
}

source "osimage-disk" "metal" {
  source_image          = var.source_image
  source_image_checksum = var.source_image_checksum
  output_directory      = var.output_directory

  # The variant, as the osimage-matrix datasource would pass it.
  key      = "example-x86_64-baremetal"
  arch     = "x86_64"
  platform = "baremetal" # boot_files = "auto" then adds kernel, initrd, rootfs
}

build {
  sources = ["source.osimage-disk.metal"]

  post-processor "manifest" {
    output     = "${var.output_directory}/manifest.json"
    strip_path = false
    custom_data = {
      disk   = "${build.DiskPath}"
      kernel = "${build.KernelPath}"
      sha256 = "${build.DiskSHA256}"
    }
  }
}
