#!/usr/bin/env bash
# `make bench`: builds the bench driver and its small child program, runs
# every suite (or the ones named: scripts/bench.sh vhd matrix) and updates
# BENCHMARKS.md. Scratch files (several GiB, sparse) go to .bench/.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
export GOFLAGS=${GOFLAGS:--buildvcs=false}
# The upload suite compares with Debian's azure-cli (about 3 minutes to
# install, 729 MB): installed here, only for the benchmark, never by make test.
if { [ $# -eq 0 ] || printf '%s\n' "$@" | grep -qx upload; } && ! command -v az >/dev/null; then
  echo "bench: installing azure-cli for the upload suite" >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y azure-cli >/dev/null
fi
go build -o .bench/osimage-bench ./bench
go build -o .bench/osimage-bench-child ./bench/child
exec .bench/osimage-bench -n "${BENCH_RUNS:-5}" -out BENCHMARKS.md "$@"
