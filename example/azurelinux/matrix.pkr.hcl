# One build per variant of the Azure Linux-shaped tree in this directory,
# driven by the osimage-matrix datasource and one `dynamic "source"` block.
#
#   packer build -var output_dir=plan example/azurelinux
#
# Each build writes its variant (arch, platform, Hyper-V generation, KIWI
# definition and profiles, publish targets) to plan/<key>.json with Packer's
# file builder. A real pipeline puts `source "osimage-disk"` in its place
# and passes the same values to it.
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
      content = jsonencode({
        key               = v.value.key
        arch              = v.value.arch
        oci_arch          = v.value.oci_arch
        azure_arch        = v.value.azure_arch
        platform          = v.value.platform
        hyperv_generation = v.value.hyperv_generation
        firmware          = v.value.firmware
        definition        = basename(v.value.definition_path)
        profiles          = v.value.profiles
        targets           = [for t in v.value.targets : "${t.name}:${t.image_name}"]
        unresolved        = v.value.unresolved
      })
    }
  }
}
