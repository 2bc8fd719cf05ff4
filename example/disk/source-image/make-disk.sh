#!/usr/bin/env bash
# Makes a small GPT disk whose root partition holds an ext4 filesystem with a
# (fake) kernel and initramfs in /boot and an /etc/os-release: enough for the
# osimage-disk builder to split out boot files. Needs sgdisk (gdisk) and
# mkfs.ext4 (e2fsprogs); no root, no loop device.
set -euo pipefail
disk=${1:?usage: $0 DISK.raw}
tree=$(mktemp -d)
trap 'rm -rf "$tree" "$disk.root"' EXIT
mkdir -p "$tree/boot" "$tree/etc"
head -c 300K /dev/urandom >"$tree/boot/vmlinuz-6.1.0-99-amd64"
head -c 700K /dev/urandom >"$tree/boot/initrd.img-6.1.0-99-amd64"
ln -s boot/vmlinuz-6.1.0-99-amd64 "$tree/vmlinuz"
printf 'PRETTY_NAME="osimage example disk"\nID=osimageexample\n' >"$tree/etc/os-release"
truncate -s 64M "$disk"
# BIOS boot partition, then the root partition with the x86-64 root type.
sgdisk -n 1:2048:4095 -t 1:EF02 -n 2:4096:129023 -t 2:4F68BCE3-E8CD-4DB1-96E7-FBCAF984B709 -c 2:root "$disk" >/dev/null
truncate -s $(((129024 - 4096) * 512)) "$disk.root"
mkfs.ext4 -q -L ROOT -d "$tree" "$disk.root"
dd if="$disk.root" of="$disk" bs=1M seek=$((4096 * 512)) oflag=seek_bytes conv=notrunc,sparse status=none
echo "$disk"
