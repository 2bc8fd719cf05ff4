#!/bin/bash
# KIWI runs this inside the image root after the packages are installed.
set -euo pipefail

# debootstrap copies the build host's /etc/hostname into the image; an
# image must not carry the name of the machine that built it.
echo localhost >/etc/hostname
