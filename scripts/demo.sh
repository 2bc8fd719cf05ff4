#!/usr/bin/env bash
# `make demo`: a whole release through the real packer binary, on local
# defaults (example/debian):
#
#   TOML image definitions -> osimage-matrix (variants, release state)
#     -> osimage-disk (KIWI builds a Debian 12 raw disk for x86_64, a VM and
#        a bare-metal variant; kernel, initramfs and rootfs split out)
#     -> osimage-vhd -> osimage-gallery (page blob into Azurite, gen1 and gen2
#        versions against a local stand-in for Azure Resource Manager)
#     -> osimage-oci (ironcore-image indexes into a local registry)
#   stage publish (a pre-release), then stage release (promotion), then
#   osimage-release (manifest and notes) and a summary table.
#
# Everything stays in .demo/ (state, disks, Azurite's and the registry's
# data, the stand-in's gallery), so a second `make demo` finds every step
# done and skips it. `make clean` starts over. KIWI needs root and loop
# devices; without them the disks are made here (example/quickstart's
# script) and the rest runs the same.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
export PATH=$root/.tools/bin:$PATH CHECKPOINT_DISABLE=1 GOFLAGS=${GOFLAGS:--buildvcs=false}
demo=$root/.demo
mkdir -p "$demo/out" "$demo/bin" "$demo/registry" "$demo/azurite"
export PACKER_PLUGIN_PATH=$demo/plugins
start=$(date +%s)
say() { printf '\n==> %s\n' "$*"; }

say "Building and installing the plugin into $PACKER_PLUGIN_PATH"
go build -ldflags="-X 'github.com/osimage/packer-plugin-osimage/version.VersionPrerelease=dev'" -o "$demo/packer-plugin-osimage" .
packer plugins install --path "$demo/packer-plugin-osimage" github.com/osimage/osimage >/dev/null
go build -o "$demo/armstandin" ./scripts/armstandin
go build -o "$demo/demosummary" ./scripts/demosummary

# Services on loopback, stopped when the demo ends (also on failure).
pids=()
stop() {
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
}
trap stop EXIT
freeport() {
  local p
  for p in $(shuf -i 20000-45000 -n 50); do
    (echo >"/dev/tcp/127.0.0.1/$p") 2>/dev/null || { echo "$p"; return; }
  done
  echo "no free port" >&2; return 1
}
waitfor() { # WHAT SECONDS COMMAND...
  local what=$1 n=$2; shift 2
  for _ in $(seq "$((n * 10))"); do "$@" >/dev/null 2>&1 && return 0; sleep 0.1; done
  echo "demo: $what did not start" >&2; return 1
}

say "Starting the services (loopback, data in $demo)"
regport=$(freeport)
cat >"$demo/registry.yml" <<YML
version: 0.1
log: {level: error, accesslog: {disabled: true}}
storage: {filesystem: {rootdirectory: $demo/registry}, delete: {enabled: true}}
http: {addr: 127.0.0.1:$regport}
YML
OTEL_TRACES_EXPORTER=none OTEL_SDK_DISABLED=true registry serve "$demo/registry.yml" >"$demo/registry.log" 2>&1 &
pids+=($!)
waitfor "the registry" 30 bash -c "echo >/dev/tcp/127.0.0.1/$regport"
echo "    registry (distribution v3): 127.0.0.1:$regport"

azport=$(freeport)
"$root/.tools/azurite/node_modules/.bin/azurite-blob" --blobHost 127.0.0.1 --blobPort "$azport" --location "$demo/azurite" \
  --skipApiVersionCheck --disableTelemetry --loose >"$demo/azurite.log" 2>&1 &
pids+=($!)
blob=http://127.0.0.1:$azport/devstoreaccount1
waitfor "Azurite" 60 bash -c "echo >/dev/tcp/127.0.0.1/$azport"
key='Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=='
storage="DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey=$key;BlobEndpoint=$blob;"
echo "    Azurite (blob storage): $blob"

sub=00000000-0000-0000-0000-000000000001
rg=demo-images
account_id=/subscriptions/$sub/resourceGroups/$rg/providers/Microsoft.Storage/storageAccounts/devstoreaccount1
rm -f "$demo/arm.url"
"$demo/armstandin" -state "$demo/arm.json" -url-file "$demo/arm.url" -cert "$demo/arm.pem" \
  -storage-account "$account_id" -location westeurope -azurite "$storage" 2>"$demo/arm.log" &
pids+=($!)
waitfor "the Resource Manager stand-in" 30 test -s "$demo/arm.url"
arm=$(cat "$demo/arm.url")
echo "    Azure Resource Manager: $arm -- a LOCAL STAND-IN (the tests' armfake): Azure has no emulator for it"
# The stand-in's token: an `az` that hands one out, as the Azure CLI does.
cat >"$demo/bin/az" <<'AZ'
#!/bin/sh
echo '{"accessToken":"demo-token","expiresOn":"2099-12-31 00:00:00.000000","expires_on":4102358400,"subscription":"00000000-0000-0000-0000-000000000001","tenant":"demo","tokenType":"Bearer"}'
AZ
chmod +x "$demo/bin/az"

why=""
[ "$(id -u)" -eq 0 ] || why="not running as root"
[ -n "$why" ] || [ -e /dev/loop-control ] || why="no loop devices (/dev/loop-control)"
[ -n "$why" ] || command -v kiwi-ng >/dev/null || why="kiwi-ng not installed (apt-get install kiwi kiwi-systemdeps-disk-images)"
disks=()
if [ -n "$why" ]; then
  say "KIWI cannot run here ($why): the disks are made here instead"
  [ -e "$demo/disks/disk-x86_64.raw" ] || example/quickstart/make-disks.sh "$demo/disks" >/dev/null
  disks=(-var "disks=$demo/disks")
fi
mirror=$(awk '/^URIs:/ {print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)
[ -n "$mirror" ] || mirror=$(awk '$1 == "deb" && $3 ~ /^bookworm/ {print $2; exit}' /etc/apt/sources.list 2>/dev/null || true)
mirror=${mirror:-http://deb.debian.org/debian}

vars=(-var "state=$demo/state" -var "output_dir=$demo/out" -var "debian_mirror=$mirror" "${disks[@]}"
  -var "registry=127.0.0.1:$regport" -var "storage_connection_string=$storage" -var "storage_account=devstoreaccount1"
  -var "gallery={subscription=\"$sub\", resource_group=\"$rg\", name=\"demo\", location=\"westeurope\"}"
  -var "resource_manager_endpoint=$arm" -var use_azure_cli_auth=true)
run() { PATH=$demo/bin:$PATH SSL_CERT_FILE=$demo/arm.pem packer build -parallel-builds=1 "$@" example/debian; }

say "The matrix of example/debian, with what the release state says is pending"
packer build -var "config=$root/example/debian/images.toml" -var "output=$demo/matrix.json" -var strict=true example/matrix-json >/dev/null
sed 's/},{/},\n  {/g' "$demo/matrix.json" | grep -o '"key":"[^"]*"' | sed 's/^/    /'

echo "    (the demo's KIWI description boots with BIOS only: its gen2 version shows the gen1 + gen2 fan-out from one blob"
echo "     against the stand-in; a gen2 image needs an EFI description, which KIWI cannot make here without vfat in the kernel)"
t0=$(date +%s)
say "Stage publish: build what is not built, upload, publish as a pre-release (gallery versions excluded from latest, OCI version tags)"
run -only='osimage-*' -var stage=publish "${vars[@]}"
t1=$(date +%s)
say "Stage release: promote (versions into latest, moving tags), without rebuilding or uploading"
run -only='osimage-*' -var stage=release "${vars[@]}"
t2=$(date +%s)
say "osimage-release: the release manifest and notes, and a check that every variant is released"
run -only='release.*' -var stage=release "${vars[@]}"

say "Release 12 (${demo}/out/release-12.json, release-12.md); steps done before this run say skipped"
"$demo/demosummary" -manifest "$demo/out/release-12.json" -since "$start"
echo
echo "    publish stage $((t1 - t0)) s, release stage $((t2 - t1)) s; everything after the matrix: $((t2 - t0)) s"
echo "    Run make demo again: every step is skipped. make clean starts over."
