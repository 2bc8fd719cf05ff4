#!/usr/bin/env bash
# `make demo`: the main job end to end on local defaults, through the real
# packer binary:
#
#   example/debian: TOML image definitions -> osimage-matrix (variants)
#     -> osimage-disk (KIWI builds a Debian 12 raw disk; kernel, initramfs
#        and rootfs split out) -> osimage-vhd (fixed VHD for Azure)
#
# KIWI needs root and loop devices. Without them the demo says so and runs
# the part that needs neither: a raw disk made here goes through Packer's
# file builder into osimage-vhd (example/vhd).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
export PATH=$root/.tools/bin:$PATH CHECKPOINT_DISABLE=1 GOFLAGS=${GOFLAGS:--buildvcs=false}
demo=$root/.demo
rm -rf "$demo"
mkdir -p "$demo/out"
export PACKER_PLUGIN_PATH=$demo/plugins

echo "==> Building and installing the plugin into $PACKER_PLUGIN_PATH"
go build -ldflags="-X 'github.com/osimage/packer-plugin-osimage/version.VersionPrerelease=dev'" -o "$demo/packer-plugin-osimage" .
packer plugins install --path "$demo/packer-plugin-osimage" github.com/osimage/osimage >/dev/null

show_vhd() { # VHD RAW
  echo
  echo "==> The fixed VHD: $1"
  qemu-img info -f vpc "$1"
  qemu-img compare -f vpc -F raw "$1" "$2" | sed 's/^/    qemu-img compare with the raw disk: /'
}

why=""
[ "$(id -u)" -eq 0 ] || why="not running as root"
[ -n "$why" ] || [ -e /dev/loop-control ] || why="no loop devices (/dev/loop-control)"
[ -n "$why" ] || command -v kiwi-ng >/dev/null || why="kiwi-ng not installed (apt-get install kiwi kiwi-systemdeps-disk-images)"

if [ -z "$why" ]; then
  # The image's packages come from the Debian archive this machine uses.
  mirror=$(awk '/^URIs:/ {print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)
  [ -n "$mirror" ] || mirror=$(awk '$1 == "deb" && $3 ~ /^bookworm/ {print $2; exit}' /etc/apt/sources.list 2>/dev/null || true)
  mirror=${mirror:-http://deb.debian.org/debian}
  echo "==> The variant matrix of example/debian"
  packer build -var "config=$root/example/debian/images.toml" -var "output=$demo/matrix.json" example/matrix-json >/dev/null
  sed 's/},{/},\n  {/g' "$demo/matrix.json" | grep -o '"key":"[^"]*"' | sed 's/^/    /'
  echo "==> packer build example/debian (KIWI, about 2.5 minutes; packages from $mirror)"
  packer build -parallel-builds=1 -var "debian_mirror=$mirror" -var "output_dir=$demo/out" example/debian
  key=debian-vm-x86_64-virtualization-gen1
  echo
  echo "==> Files of $key"
  ls -lsh "$demo/out/$key"
  show_vhd "$demo/out/$key/$key.vhd" "$demo/out/$key/$key.raw"
  exit 0
fi

echo "==> KIWI cannot run here ($why): converting a disk made here instead"
mkdir -p "$demo/tree/etc"
disk=$demo/disk.raw
truncate -s 1G "$disk"
sgdisk -q -n 1:2048:0 -t 1:8300 -c 1:root "$disk"
echo "osimage demo" > "$demo/tree/etc/hostname"
head -c 64M /dev/urandom > "$demo/tree/payload.bin"
mkfs.ext4 -q -L root -d "$demo/tree" "$demo/root.ext4" 1022M
dd if="$demo/root.ext4" of="$disk" bs=1M seek=1 conv=notrunc,sparse status=none
rm -f "$demo/root.ext4"
printf '    %s: %s bytes, %s allocated\n' "$disk" "$(stat -c %s "$disk")" "$(du -h "$disk" | cut -f1)"
echo "==> packer build example/vhd"
packer build -var "raw_disk=$disk" -var "output_dir=$demo/out" example/vhd
show_vhd "$demo/out/disk.vhd" "$disk"
