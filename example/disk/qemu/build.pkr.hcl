# Customises an existing disk inside QEMU with Packer's provisioners, then
# splits out kernel, initramfs and root filesystem from the provisioned
# disk. The disk must run sshd and systemd 252 or later (Debian 12, Fedora
# 37, Azure Linux 3): Packer makes a temporary key pair and the guest gets
# its public key as root's authorized key through the systemd credential
# ssh.authorized_keys.root (SMBIOS), so nothing has to be baked in:
#
#   packer build -var source_image=bookworm.raw example/disk/qemu
#
# The acceptance tests run this example on a tiny guest (Debian's kernel,
# busybox and dropbear, booted directly, with the disk's root filesystem
# mounted on /mnt): see test/qemu_acc_test.go.
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

variable "output_directory" {
  type    = string
  default = "output-example-qemu"
}

variable "firmware" {
  type        = string
  default     = "bios"
  description = "bios (SeaBIOS) or uefi (OVMF)."
}

variable "root" {
  type        = string
  default     = ""
  description = "Where the guest has the disk's root filesystem: empty for a disk that boots normally."
}

variable "shutdown_command" {
  type        = string
  default     = ""
  description = "Command that powers the guest off; empty sends ACPI power-off through QMP."
}

# Direct kernel boot, for guests whose disk has no boot loader (the tests').
variable "kernel" {
  type    = string
  default = ""
}
variable "initrd" {
  type    = string
  default = ""
}
variable "append" {
  type    = string
  default = ""
}

source "osimage-disk" "custom" {
  source_image     = var.source_image
  output_directory = var.output_directory
  key              = "custom-x86_64-baremetal"
  arch             = "x86_64"
  platform         = "baremetal" # boot_files = "auto" extracts them
  firmware         = var.firmware

  communicator = "ssh"
  ssh_username = "root" # no password: a temporary key pair
  ssh_timeout  = "10m"

  qemu {
    memory           = 1024
    kernel           = var.kernel
    initrd           = var.initrd
    append           = var.append
    shutdown_command = var.shutdown_command
    shutdown_timeout = "3m"
  }
}

build {
  sources = ["source.osimage-disk.custom"]

  provisioner "shell" {
    inline = [
      "echo \"provisioned by $PACKER_BUILD_NAME over ssh\" > ${var.root}/etc/provisioned",
      "echo guest-says-$(uname -m)",
    ]
  }
}
