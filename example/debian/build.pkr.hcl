# The whole pipeline on one machine: image definitions in TOML, expanded by
# the osimage-matrix data source, each variant built by osimage-disk with
# KIWI (kernel, initramfs and rootfs split out), then converted to a fixed
# VHD for Azure. `make demo` runs it:
#
#   sudo packer build -var debian_mirror=http://deb.debian.org/debian example/debian
#
# Needs root, loop devices and Debian's KIWI (apt-get install kiwi
# kiwi-systemdeps-disk-images). A KIWI build takes about 2.5 minutes here;
# variants for another architecture need a builder of that architecture,
# hence `only` defaults to this machine's.
#
# Validate with `packer validate --evaluate-datasources DIR`: without the
# flag the data source does not run, the matrix is unknown and Packer cannot
# expand `for_each` ("value must be known").
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

variable "output_dir" {
  type    = string
  default = "output"
}

data "osimage-matrix" "debian" {
  config = "${path.root}/images.toml"
  only   = var.only
  strict = true # warnings are errors: a data source cannot print them
}

source "osimage-disk" "variant" {}

build {
  dynamic "source" {
    for_each = { for v in data.osimage-matrix.debian.variants : v.key => v }
    iterator = v
    labels   = ["osimage-disk.variant"]
    content {
      name = v.key
      # Everything the matrix knows about this variant: arch, platform,
      # generation, KIWI definition and profiles, publish targets, delivery.
      # The artifact carries it to the post-processors.
      variant          = jsonencode(v.value)
      boot_files       = "always"
      output_directory = "${var.output_dir}/${v.key}"
      kiwi {
        # description and profiles come from the variant
        set_repository {
          source = var.debian_mirror
        }
      }
    }
  }

  post-processors {
    post-processor "osimage-vhd" {
      checksums = ["sha256"]
    }
    post-processor "manifest" {
      output = "${var.output_dir}/manifest.json"
    }
  }
}
