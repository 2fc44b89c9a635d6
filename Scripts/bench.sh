#!/usr/bin/env bash
# Builds the benchmarks in release mode and runs them. Pass suite options through, e.g.
#   Scripts/bench.sh --json        Scripts/bench.sh --scale 0.2
set -euo pipefail
cd "$(dirname "$0")/.."

Scripts/bootstrap.sh
swift build -c release --product syncline-bench
for suite in store pipeline network growth; do
    .build/release/syncline-bench "$suite" "$@"
done
