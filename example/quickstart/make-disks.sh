#!/usr/bin/env bash
# Makes the quickstart's two disks, DIR/disk-x86_64.raw and
# DIR/disk-aarch64.raw: small GPT disks whose root partition (typed for its
# architecture, as systemd's Discoverable Partitions Specification says)
# holds an ext4 filesystem with a (fake) kernel and initramfs in /boot and an
# /etc/os-release: enough for osimage-disk to split out boot files. Needs
# sgdisk (gdisk) and mkfs.ext4 (e2fsprogs); no root, no loop device.
# DISK_MIB (default 64) sets the disks' size and FILL_MIB (default 0) adds
# that much incompressible data to the root filesystem (`make bench` makes
# disks the size of a real image this way).
set -euo pipefail
dir=${1:?usage: [DISK_MIB=64] [FILL_MIB=0] $0 DIR}
size=${DISK_MIB:-64} fill=${FILL_MIB:-0}
# The root partition ends 1 MiB before the end (the backup GPT's room).
end=$((size * 2048 - 2049))
mkdir -p "$dir"
tree=$(mktemp -d)
trap 'rm -rf "$tree"' EXIT
declare -A roottype=([x86_64]=4F68BCE3-E8CD-4DB1-96E7-FBCAF984B709 [aarch64]=B921B045-1DF0-41C3-AF44-4C6F280D3FAE)
for arch in x86_64 aarch64; do
  disk=$dir/disk-$arch.raw
  rm -rf "$tree"/* && mkdir -p "$tree/boot" "$tree/etc"
  head -c 300K /dev/urandom >"$tree/boot/vmlinuz-6.1.0-99"
  head -c 700K /dev/urandom >"$tree/boot/initrd.img-6.1.0-99"
  printf 'PRETTY_NAME="quickstart edge (%s)"\nID=edge\n' "$arch" >"$tree/etc/os-release"
  [ "$fill" -eq 0 ] || { mkdir -p "$tree/usr/share" && head -c "${fill}M" /dev/urandom >"$tree/usr/share/filler"; }
  rm -f "$disk" && truncate -s "${size}M" "$disk"
  # An EFI system partition's place (1 MiB), then the root partition.
  sgdisk -n 1:2048:4095 -t 1:EF00 -n "2:4096:$end" -t "2:${roottype[$arch]}" -c 2:root "$disk" >/dev/null
  truncate -s $(((end + 1 - 4096) * 512)) "$disk.root"
  mkfs.ext4 -q -L ROOT -d "$tree" "$disk.root"
  dd if="$disk.root" of="$disk" bs=1M seek=$((4096 * 512)) oflag=seek_bytes conv=notrunc,sparse status=none
  rm -f "$disk.root"
  echo "$disk"
done
