# A release fanned out over CI runners (see .github/workflows/release.yml):
# the same template builds one variant per job, on a runner of the
# variant's architecture, and records what it did in the release state
# (a blob container, shared by every runner), so any job can be retried:
#
#   packer build -only='*.KEY' -var state=URL -var stage=publish -var ... example/ci
#
# The plan job prints the matrix (`matrix_json`) with
# `packer build -only='file.plan' ...`; the last job writes the release
# manifest and checks every variant with `-only='osimage-release.final'`.
#
# Validate with `packer validate --evaluate-datasources`: without the flag
# the data source does not run and Packer cannot expand `for_each`.
packer {
  required_plugins {
    osimage = {
      source  = "github.com/osimage/osimage"
      version = ">= 0.1.0"
    }
  }
}

variable "state" {
  type        = string
  description = "The release state: a blob container URL shared by the runners (or a directory on one machine)."
}

variable "stage" {
  type        = string
  default     = "publish"
  description = "build, publish (a pre-release) or release (promotion)."
}

variable "disks" {
  type        = string
  description = "Directory of the disks the variants start from, disk-<arch>.raw (a KIWI build in a real pipeline)."
}

variable "registry" {
  type        = string
  description = "Registry host (and namespace) the OCI indexes go to, e.g. ghcr.io/acme."
}

variable "output_dir" {
  type    = string
  default = "output"
}

variable "plan" {
  type        = string
  default     = "matrix.json"
  description = "Where file.plan writes the CI job matrix."
}

data "osimage-matrix" "edge" {
  config = "${path.root}/../quickstart/images/images.toml"
  state  = var.state
  stage  = var.stage
  strict = true
}

locals {
  variants = { for v in data.osimage-matrix.edge.variants : v.key => v }
}

source "file" "plan" {
  content = data.osimage-matrix.edge.matrix_json
  target  = var.plan
}

source "osimage-disk" "edge" {}
source "osimage-state" "edge" {}

source "osimage-release" "final" {
  state    = var.state
  release  = "1.0"
  variants = jsonencode(data.osimage-matrix.edge.variants)
  stage    = var.stage
  manifest = "${var.output_dir}/release-1.0.json"
  notes    = "${var.output_dir}/release-1.0.md"
}

build {
  name    = "plan"
  sources = ["source.file.plan"]
}

build {
  name = "release"
  # Variants that need a disk...
  dynamic "source" {
    for_each = { for k, v in local.variants : k => v if contains(v.pending, "build") }
    labels   = ["osimage-disk.edge"]
    content {
      name             = source.key
      variant          = jsonencode(source.value)
      source_image     = "${var.disks}/disk-${source.value.arch}.raw"
      output_directory = "${var.output_dir}/${source.key}"
    }
  }
  # ...and the others, from the state, without a rebuild.
  dynamic "source" {
    for_each = { for k, v in local.variants : k => v if !contains(v.pending, "build") }
    labels   = ["osimage-state.edge"]
    content {
      name             = source.key
      variant          = jsonencode(source.value)
      output_directory = "${var.output_dir}/${source.key}"
    }
  }

  post-processor "osimage-oci" {
    repository = "${var.registry}/${local.variants[source.name].targets[0].image_name}"
  }
}

build {
  name    = "final"
  sources = ["source.osimage-release.final"]
}
