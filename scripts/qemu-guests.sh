#!/usr/bin/env bash
# Fetches the tiny test guests internal/qemu boots: Debian's own kernel and
# busybox-static for amd64 and arm64 (the tests pack an initramfs from them).
# Writes .tools/guests/<arch>/{vmlinuz,busybox} (and, for amd64, the evdev and
# ACPI button modules, so the guest sees QMP's power button); a second run
# takes no time.
# Needs apt (arm64 packages need `dpkg --add-architecture arm64`, done here
# when running as root).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
dest=$root/.tools/guests
say() { printf 'qemu-guests: %s\n' "$*" >&2; }
sudo=""
[ "$(id -u)" -eq 0 ] || sudo=sudo

if ! dpkg --print-foreign-architectures | grep -qx arm64 && [ "$(dpkg --print-architecture)" != arm64 ]; then
  say "adding the arm64 architecture to apt (for linux-image-arm64 and busybox-static:arm64)"
  $sudo dpkg --add-architecture arm64
  $sudo apt-get update -q >&2
fi

for arch in amd64 arm64; do
  out=$dest/$arch
  [ -s "$out/vmlinuz" ] && [ -s "$out/busybox" ] && { [ $arch != amd64 ] || [ -s "$out/button.ko" ]; } && continue
  mkdir -p "$out"
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  kpkg=$(apt-cache depends "linux-image-$arch:$arch" 2>/dev/null | sed -n 's/^ *Depends: \(linux-image-[0-9][^:]*\).*/\1/p' | head -1)
  [ -n "$kpkg" ] || { say "cannot resolve linux-image-$arch:$arch (apt-get update?)"; exit 1; }
  say "downloading $kpkg:$arch and busybox-static:$arch"
  (cd "$tmp" && apt-get download -q "$kpkg:$arch" "busybox-static:$arch" >&2)
  dpkg-deb --fsys-tarfile "$tmp"/linux-image-*.deb | tar -x -C "$tmp" --wildcards './boot/vmlinuz-*'
  dpkg-deb --fsys-tarfile "$tmp"/busybox-static_*.deb | tar -x -C "$tmp" ./bin/busybox
  if [ $arch = amd64 ]; then
    dpkg-deb --fsys-tarfile "$tmp"/linux-image-*.deb | tar -x -C "$tmp" --wildcards \
      './lib/modules/*/kernel/drivers/acpi/button.ko' './lib/modules/*/kernel/drivers/input/evdev.ko'
    cp "$tmp"/lib/modules/*/kernel/drivers/acpi/button.ko "$tmp"/lib/modules/*/kernel/drivers/input/evdev.ko "$out/"
  fi
  cp "$tmp"/boot/vmlinuz-* "$out/vmlinuz.tmp" && mv "$out/vmlinuz.tmp" "$out/vmlinuz"
  cp "$tmp/bin/busybox" "$out/busybox.tmp" && mv "$out/busybox.tmp" "$out/busybox"
  rm -rf "$tmp"
  trap - EXIT
done
