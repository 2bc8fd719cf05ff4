#!/usr/bin/env bash
# Builds the pinned tools into .tools/bin: packer (reused from PATH when it is
# >= 1.10), packer-sdc, the distribution registry, and the OCI clients of
# tools/oci (ironcore-image, ironcore-resolve, crane, oras), cosign from
# tools/sign, actionlint; installs Azurite
# with npm into .tools/azurite. Every step is skipped when its output is current,
# so a second run takes seconds.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
bin=$root/.tools/bin
mkdir -p "$bin"
export GOFLAGS=${GOFLAGS:--buildvcs=false}
say() { printf 'tools: %s\n' "$*" >&2; }

# fresh TARGET DEP...: true when TARGET exists and is newer than every DEP.
fresh() {
  local t=$1; shift
  [ -e "$t" ] || return 1
  for d in "$@"; do [ "$t" -nt "$d" ] || return 1; done
}

packer_ok() { # packer >= 1.10 at $1?
  local v
  v=$("$1" version 2>/dev/null | sed -n 's/^Packer v\([0-9]*\)\.\([0-9]*\).*/\1 \2/p' | head -1)
  [ -n "$v" ] || return 1
  set -- $v
  [ "$1" -gt 1 ] || { [ "$1" -eq 1 ] && [ "$2" -ge 10 ]; }
}

want=${1:-all}

if [ "$want" = all ] || [ "$want" = packer ]; then
  if fresh "$bin/packer" "$root/tools/go.sum" && packer_ok "$bin/packer"; then
    :
  elif p=$(PATH=$(printf '%s' "$PATH" | tr ':' '\n' | grep -vx "$bin" | paste -sd:) command -v packer) && packer_ok "$p"; then
    say "reusing $p ($("$p" version | head -1))"
    ln -sf "$p" "$bin/packer"
  else
    say "building packer 1.12.0 from tools/go.mod (about 3 minutes the first time)"
    rm -f "$bin/packer"
    (cd "$root/tools" && go build -o "$bin/packer" github.com/hashicorp/packer)
  fi
fi

if [ "$want" = all ] || [ "$want" = packer-sdc ]; then
  if ! fresh "$bin/packer-sdc" "$root/tools/go.sum"; then
    say "building packer-sdc from tools/go.mod"
    (cd "$root/tools" && go build -o "$bin/packer-sdc" github.com/hashicorp/packer-plugin-sdk/cmd/packer-sdc)
  fi
fi

if [ "$want" = all ] || [ "$want" = registry ]; then
  if ! [ -x "$bin/registry" ]; then
    say "installing the distribution v3.1.2 registry"
    GOBIN=$bin go install github.com/distribution/distribution/v3/cmd/registry@v3.1.2
  fi
fi

if [ "$want" = all ] || [ "$want" = oci ]; then
  # Their own module, so their dependencies never move Packer's.
  for p in github.com/ironcore-dev/ironcore-image/cmd/ironcore-image ./ironcore-resolve \
           github.com/google/go-containerregistry/cmd/crane oras.land/oras/cmd/oras; do
    out=$bin/$(basename "$p")
    if ! fresh "$out" "$root/tools/oci/go.sum" "$root/tools/oci/ironcore-resolve/main.go"; then
      say "building $(basename "$p") from tools/oci/go.mod"
      (cd "$root/tools/oci" && go build -o "$out" "$p")
    fi
  done
fi

if [ "$want" = all ] || [ "$want" = cosign ]; then
  # The signature tests verify with the real cosign (tools/sign, pinned).
  if ! fresh "$bin/cosign" "$root/tools/sign/go.sum"; then
    say "building cosign from tools/sign/go.mod (a few minutes the first time)"
    (cd "$root/tools/sign" && go build -o "$bin/cosign" github.com/sigstore/cosign/v2/cmd/cosign)
  fi
fi

if [ "$want" = all ] || [ "$want" = actionlint ]; then
  # Checks the GitHub Actions workflows (make check); with shellcheck on
  # PATH (Debian's shellcheck, from make deps) it checks their scripts too.
  if ! [ -x "$bin/actionlint" ] || ! go version -m "$bin/actionlint" 2>/dev/null | grep -Eq "^\s+mod\s+github.com/rhysd/actionlint\s+v1\.7\.12"; then
    say "installing actionlint v1.7.12"
    GOBIN=$bin go install github.com/rhysd/actionlint/cmd/actionlint@v1.7.12
  fi
fi

if [ "$want" = all ] || [ "$want" = azurite ]; then
  if ! [ -x "$root/.tools/azurite/node_modules/.bin/azurite-blob" ]; then
    say "installing Azurite 3.35.0 with npm (the newest that supports node 20)"
    mkdir -p "$root/.tools/azurite"
    npm install --silent --no-audit --no-fund --prefix "$root/.tools/azurite" azurite@3.35.0 >&2
  fi
fi
