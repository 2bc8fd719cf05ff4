#!/bin/sh
# Rebuilds x86_64.bin from x86_64.S (GNU binutils). aarch64.bin is written by
# the Go test TestAarch64PayloadMatchesItsListing from the listing in accel.go.
set -eu
cd "$(dirname "$0")"
as --64 -o /tmp/osimage-x86_64.o x86_64.S
ld -m elf_x86_64 -Ttext=0x7c00 --oformat binary -o x86_64.bin /tmp/osimage-x86_64.o
rm -f /tmp/osimage-x86_64.o
