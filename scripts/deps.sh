#!/usr/bin/env bash
# Installs the Debian packages the tests and the demo use, when missing.
# Needs root (or sudo); prints what to install otherwise.
set -euo pipefail
pkgs=(qemu-utils qemu-system-x86 qemu-system-arm ovmf qemu-efi-aarch64 busybox-static
      gdisk fdisk e2fsprogs mtools dosfstools xfsprogs btrfs-progs
      kiwi kiwi-systemdeps-disk-images hyperfine nodejs npm skopeo binutils shellcheck rpm)
# The QEMU tests' tiny guests (Debian kernels and busybox for amd64 and
# arm64, into .tools/guests) come from apt too.
guests() { "$(dirname "$0")/qemu-guests.sh"; }
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
# nodejs from another repository may bundle npm.
if printf '%s\n' "${missing[@]}" | grep -qx npm && command -v npm >/dev/null; then
  missing=("${missing[@]/npm}")
fi
missing=($(printf '%s\n' "${missing[@]}" | grep -v '^$' || true))
[ ${#missing[@]} -eq 0 ] && { guests; exit 0; }
if ! command -v apt-get >/dev/null; then
  echo "deps: please install: ${missing[*]}" >&2
  exit 1
fi
sudo=""
[ "$(id -u)" -eq 0 ] || sudo=sudo
echo "deps: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -q >&2
$sudo apt-get install -y -q --no-install-recommends "${missing[@]}" >&2
guests
