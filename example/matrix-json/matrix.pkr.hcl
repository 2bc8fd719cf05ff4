# Prints the variant matrix as a CI job matrix, for fanning out one runner per
# variant (each running `packer build -only='*.KEY' .`):
#
#   packer build -var config=$PWD/example/azurelinux/azldev.toml -var output=matrix.json example/matrix-json >/dev/null && cat matrix.json
#
# In GitHub Actions, a plan job sets `matrix=$(cat matrix.json)` as an output
# and the build job uses `strategy.matrix: ${{ fromJSON(needs.plan.outputs.matrix) }}`.
#
# Validate with `packer validate --evaluate-datasources DIR`: without the
# flag the data source does not run, so the image definitions are not checked
# (templates with `dynamic` sources over the matrix fail: "value must be known").
packer {
  required_plugins {
    osimage = {
      source  = "github.com/osimage/osimage"
      version = ">= 0.1.0"
    }
  }
}

variable "config" {
  type        = string
  description = "Root TOML file of the image definitions (absolute, or relative to where packer runs)."
}

variable "output" {
  type    = string
  default = "matrix.json"
}

variable "only" {
  type    = list(string)
  default = []
}

variable "skip" {
  type    = list(string)
  default = []
}

variable "strict" {
  type        = bool
  default     = true
  description = "Warnings are errors (a data source cannot print them); false lets every warning pass."
}

data "osimage-matrix" "m" {
  config = var.config
  only   = var.only
  skip   = var.skip
  strict = var.strict
}

source "file" "matrix" {
  content = data.osimage-matrix.m.matrix_json
  target  = var.output
}

build {
  sources = ["source.file.matrix"]
}
