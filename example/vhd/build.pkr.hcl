# Converts a raw disk into a fixed VHD that Azure accepts.
#
#   packer build -var raw_disk=disk.raw -var output_dir=out example/vhd
#
# Packer's file builder hands the raw disk to the post-processor; any builder
# whose artifact holds a raw disk (this plugin's osimage-disk, the qemu
# builder with format = "raw") works the same way.
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
  description = "Path of the raw disk to convert."
}

variable "output_dir" {
  type        = string
  default     = "output"
  description = "Existing directory for the copied raw disk and the VHD."
}

source "file" "disk" {
  source = var.raw_disk
  target = "${var.output_dir}/disk.raw"
}

build {
  sources = ["source.file.disk"]

  post-processors {
    post-processor "osimage-vhd" {
      output    = "${var.output_dir}/{{ .BuildName }}.vhd"
      checksums = ["sha256"]
    }
    post-processor "manifest" {
      output = "${var.output_dir}/manifest.json"
    }
  }
}
