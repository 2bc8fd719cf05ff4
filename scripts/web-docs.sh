#!/usr/bin/env bash
# Compiles the rendered docs (.docs, from `packer-sdc renderdocs`) into
# .web-docs, the layout the Packer integrations site reads:
#   .docs/README.md                  -> .web-docs/README.md
#   .docs/<kind>s/<name>.mdx         -> .web-docs/components/<kind>/<name>/README.md
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
src=$root/.docs
dst=$root/.web-docs
[ -d "$src" ] || { echo "web-docs: $src missing; run packer-sdc renderdocs first" >&2; exit 1; }
rm -rf "$dst/components"
cp "$src/README.md" "$dst/README.md"
for kind in builders:builder datasources:data-source post-processors:post-processor provisioners:provisioner; do
  dir=${kind%%:*}; comp=${kind##*:}
  [ -d "$src/$dir" ] || continue
  for f in "$src/$dir"/*.mdx; do
    name=$(basename "$f" .mdx)
    mkdir -p "$dst/components/$comp/$name"
    # Drop the front matter: the integrations site takes titles from metadata.hcl.
    awk 'NR==1 && /^---$/ {fm=1; next} fm && /^---$/ {fm=0; next} !fm' "$f" > "$dst/components/$comp/$name/README.md"
  done
done
rm -rf "$src"
