#!/usr/bin/env bash
# `make demo`: the whole pipeline on local defaults, through the real packer.
# Today: a sparse raw disk (GPT, an ext4 root filesystem with a few files)
# goes through Packer's file builder into the osimage-vhd post-processor,
# and qemu-img checks the fixed VHD that comes out.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
export PATH=$root/.tools/bin:$PATH CHECKPOINT_DISABLE=1 GOFLAGS=${GOFLAGS:--buildvcs=false}
demo=$root/.demo
rm -rf "$demo"
mkdir -p "$demo/out" "$demo/tree/etc"
export PACKER_PLUGIN_PATH=$demo/plugins

echo "==> Building and installing the plugin into $PACKER_PLUGIN_PATH"
go build -ldflags="-X 'github.com/osimage/packer-plugin-osimage/version.VersionPrerelease=dev'" -o "$demo/packer-plugin-osimage" .
packer plugins install --path "$demo/packer-plugin-osimage" github.com/osimage/osimage >/dev/null

echo "==> Making a 1 GiB sparse raw disk: GPT with one ext4 partition"
disk=$demo/disk.raw
truncate -s 1G "$disk"
sgdisk -q -n 1:2048:0 -t 1:8300 -c 1:root "$disk"
echo "osimage demo" > "$demo/tree/etc/hostname"
head -c 64M /dev/urandom > "$demo/tree/payload.bin"
part=$demo/root.ext4
mkfs.ext4 -q -L root -d "$demo/tree" "$part" 1022M
dd if="$part" of="$disk" bs=1M seek=1 conv=notrunc,sparse status=none
rm -f "$part"
printf '    %s: %s bytes, %s allocated\n' "$disk" "$(stat -c %s "$disk")" "$(du -h "$disk" | cut -f1)"

echo "==> packer build example/vhd"
packer build -var "raw_disk=$disk" -var "output_dir=$demo/out" example/vhd

vhd=$demo/out/disk.vhd
echo
echo "==> The fixed VHD: $vhd"
qemu-img info -f vpc "$vhd"
echo
qemu-img compare -f vpc -F raw "$vhd" "$disk" | sed 's/^/    qemu-img compare: /'
