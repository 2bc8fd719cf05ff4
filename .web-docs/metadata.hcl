# For full specification on the configuration of this file visit:
# https://github.com/hashicorp/integration-template#metadata-configuration
integration {
  name        = "OS Image"
  description = "Builds operating-system images from one description into raw disks, Azure fixed VHDs, Compute Gallery versions and OCI image indexes."
  identifier  = "packer/osimage/osimage"
  component {
    type = "data-source"
    name = "Matrix"
    slug = "matrix"
  }
  component {
    type = "builder"
    name = "Disk"
    slug = "disk"
  }
  component {
    type = "builder"
    name = "State"
    slug = "state"
  }
  component {
    type = "builder"
    name = "Release"
    slug = "release"
  }
  component {
    type = "post-processor"
    name = "VHD"
    slug = "vhd"
  }
  component {
    type = "post-processor"
    name = "OCI"
    slug = "oci"
  }
  component {
    type = "post-processor"
    name = "Gallery"
    slug = "gallery"
  }
}
