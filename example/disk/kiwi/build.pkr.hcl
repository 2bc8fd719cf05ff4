# Builds a small Debian bookworm raw disk with KIWI (about 2.5 minutes on two
# cores), then converts it into a fixed VHD. Needs root, loop devices and
# Debian's KIWI (apt-get install kiwi kiwi-systemdeps-disk-images):
#
#   sudo packer build example/disk/kiwi
#   sudo packer build -var debian_mirror=http://my.mirror/debian example/disk/kiwi
#
# The description is the one the plugin's tests build
# (internal/kiwi/testdata/bookworm): BIOS boot, grub2, ext4, one partition.
packer {
  required_plugins {
    osimage = {
      source  = "github.com/osimage/osimage"
      version = ">= 0.1.0"
    }
  }
}

variable "description" {
  type        = string
  default     = ""
  description = "KIWI description directory or .kiwi/config.xml file; defaults to the plugin's test description."
}

variable "debian_mirror" {
  type        = string
  default     = "http://deb.debian.org/debian"
  description = "Debian archive the image's packages come from (replaces the description's repository)."
}

locals {
  description = var.description != "" ? var.description : "${path.root}/../../../internal/kiwi/testdata/bookworm/config.xml"
}

source "osimage-disk" "bookworm" {
  key               = "bookworm-x86_64-virtualization"
  arch              = "x86_64"
  hyperv_generation = "V1" # BIOS; metadata for the publishing steps

  kiwi {
    description = local.description
    set_repository {
      source = var.debian_mirror
    }
  }
}

build {
  sources = ["source.osimage-disk.bookworm"]

  post-processor "osimage-vhd" {
    checksums = ["sha256"]
  }
}
