#!/usr/bin/env bash
# `make bench`: builds the bench driver and its small child program, runs
# every suite (or the ones named: scripts/bench.sh vhd matrix) and updates
# BENCHMARKS.md. Scratch files (several GiB, sparse) go to .bench/.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
export GOFLAGS=${GOFLAGS:--buildvcs=false}
go build -o .bench/osimage-bench ./bench
go build -o .bench/osimage-bench-child ./bench/child
exec .bench/osimage-bench -n "${BENCH_RUNS:-5}" -out BENCHMARKS.md "$@"
