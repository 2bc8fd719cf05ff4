#!/usr/bin/env bash
# Fetches the tiny test guests internal/qemu boots: Debian's own kernel and
# busybox-static for amd64 and arm64 (the tests pack an initramfs from them).
# Writes .tools/guests/<arch>/{vmlinuz,busybox} (and, for amd64, the evdev and
# ACPI button modules, so the guest sees QMP's power button, and ssh/: the
# files of a guest Packer can reach over SSH: the kernel's virtio and ext4
# modules in load order, Debian's dropbear with the libraries it needs and
# OpenSSH's scp); a second run takes no time.
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

# ssh_guest TMP DEST: TMP holds the unpacked kernel package; DEST gets
# lib/modules/NN-NAME.ko (virtio disk and network, ext4, each after the
# modules it depends on, as the depends= field of each module says), and
# dropbear, scp and their libraries from Debian's packages.
ssh_guest() {
  local tmp=$1 dest=$2 mods seen="" n=10
  rm -rf "$dest" && mkdir -p "$dest/lib/modules" "$dest/bin" "$dest/lib64"
  mods=$(ls -d "$tmp"/lib/modules/*/kernel)
  add_module() {
    case " $seen " in *" $1 "*) return ;; esac
    seen="$seen $1"
    local f dep
    f=$(find "$mods" -name "$1.ko" | head -1)
    [ -n "$f" ] || { say "module $1 not in the kernel package"; exit 1; }
    for dep in $(strings -a "$f" | sed -n 's/^depends=//p' | head -1 | tr ',' ' '); do add_module "$dep"; done
    cp "$f" "$dest/lib/modules/$n-$1.ko"
    n=$((n + 1))
  }
  for m in virtio_pci virtio_blk virtio_net crc32c_generic ext4; do add_module "$m"; done
  say "downloading dropbear-bin, openssh-client (scp) and their libraries"
  local debs=$tmp/ssh-debs root=$tmp/ssh-root
  mkdir -p "$debs" "$root"
  (cd "$debs" && apt-get download -q dropbear-bin:amd64 openssh-client:amd64 libc6:amd64 libcrypt1:amd64 \
    libtomcrypt1:amd64 libtommath1:amd64 libgmp10:amd64 zlib1g:amd64 >&2)
  for d in "$debs"/*.deb; do dpkg-deb -x "$d" "$root"; done
  cp "$root/usr/sbin/dropbear" "$root/usr/bin/scp" "$dest/bin/"
  # The libraries they need (readelf's NEEDED, followed), all in /lib,
  # where the loader looks without a cache.
  local todo="$dest/bin/dropbear $dest/bin/scp" f lib src
  while [ -n "$todo" ]; do
    set -- $todo
    f=$1
    shift
    todo="$*"
    for lib in $(readelf -d "$f" | sed -n 's/.*Shared library: \[\(.*\)\]/\1/p'); do
      [ "$lib" = ld-linux-x86-64.so.2 ] && continue
      [ -e "$dest/lib/$lib" ] && continue
      src=$(find "$root" -name "$lib" | head -1)
      [ -n "$src" ] || { say "$lib (needed by $(basename "$f")) is in none of the downloaded packages"; exit 1; }
      cp -L "$src" "$dest/lib/$lib"
      todo="$todo $dest/lib/$lib"
    done
  done
  cp -L "$(find "$root" -name 'ld-linux-x86-64.so.2' | head -1)" "$dest/lib64/ld-linux-x86-64.so.2"
  touch "$dest/.complete"
}

for arch in amd64 arm64; do
  out=$dest/$arch
  [ -s "$out/vmlinuz" ] && [ -s "$out/busybox" ] && { [ $arch != amd64 ] || [ -e "$out/ssh/.complete" ]; } && continue
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
    dpkg-deb --fsys-tarfile "$tmp"/linux-image-*.deb | tar -x -C "$tmp" --wildcards './lib/modules/*/kernel'
    cp "$tmp"/lib/modules/*/kernel/drivers/acpi/button.ko "$tmp"/lib/modules/*/kernel/drivers/input/evdev.ko "$out/"
    ssh_guest "$tmp" "$out/ssh"
  fi
  cp "$tmp"/boot/vmlinuz-* "$out/vmlinuz.tmp" && mv "$out/vmlinuz.tmp" "$out/vmlinuz"
  cp "$tmp/bin/busybox" "$out/busybox.tmp" && mv "$out/busybox.tmp" "$out/busybox"
  rm -rf "$tmp"
  trap - EXIT
done
