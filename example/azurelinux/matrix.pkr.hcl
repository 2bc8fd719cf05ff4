# One build per variant of the Azure Linux-shaped tree in this directory,
# driven by the osimage-matrix datasource and one `dynamic "source"` block.
#
#   packer build -var output_dir=plan example/azurelinux
#
# Each build writes its variant (arch, platform, Hyper-V generation, KIWI
# definition and profiles, publish targets, delivery) to plan/<key>.json
# with Packer's file builder: exactly the JSON a real pipeline hands to
# osimage-disk, which takes the variant whole (Azure Linux's KIWI
# descriptions need an Azure Linux build host, so this example stops at
# the plan):
#
#   source "osimage-disk" "variant" {}
#   build {
#     dynamic "source" {
#       for_each = local.variants
#       labels   = ["osimage-disk.variant"]
#       content {
#         name    = source.key
#         variant = jsonencode(source.value)
#         kiwi {}   # description and profiles come from the variant
#       }
#     }
#     post-processor "osimage-vhd" {}
#   }
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

variable "output_dir" {
  type    = string
  default = "plan"
}

variable "only" {
  type        = list(string)
  default     = []
  description = "Keep variants matching all of these (image names, keys or dimension values)."
}

data "osimage-matrix" "azl" {
  config = "${path.root}/azldev.toml"
  only   = var.only
  strict = true # warnings are errors: a data source cannot print them
}

locals {
  variants = { for v in data.osimage-matrix.azl.variants : v.key => v }
}

# The base source: each dynamic block below adds its own settings to it.
source "file" "variant" {}

build {
  dynamic "source" {
    for_each = local.variants
    iterator = v
    labels   = ["file.variant"]
    content {
      name   = v.key
      target = "${var.output_dir}/${v.key}.json"
      content = jsonencode(v.value)
    }
  }
}
