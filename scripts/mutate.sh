#!/usr/bin/env bash
# `make mutate`: mutation testing of the domain packages with gremlins
# v0.6.0 (installed into .tools/bin when missing), figures into TESTING.md.
#   scripts/mutate.sh              every internal/* package but the excluded
#                                  (testsvc, testutil, packerutil: see
#                                  scripts/mutate/main.go)
#   scripts/mutate.sh sparse vhd   only these
# MUTATE_WORKERS (default 2) sets gremlins --workers; use 1 on a shared
# machine. Not part of `make test`: each mutant runs the package's tests.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
export GOFLAGS=${GOFLAGS:--buildvcs=false}
bin=$root/.tools/bin
mkdir -p "$bin"
if ! [ -x "$bin/gremlins" ] || ! go version -m "$bin/gremlins" 2>/dev/null | grep -Eq "^\s+mod\s+github.com/go-gremlins/gremlins\s+v0\.6\.0"; then
  echo "mutate: installing gremlins v0.6.0 into $bin" >&2
  GOBIN=$bin go install github.com/go-gremlins/gremlins/cmd/gremlins@v0.6.0
fi
exec go run ./scripts/mutate -gremlins "$bin/gremlins" -workers "${MUTATE_WORKERS:-2}" "$@"
