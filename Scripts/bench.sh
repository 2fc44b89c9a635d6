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
# W1 has a fixed size: it takes only --json of the options above.
w1_options=()
for option in "$@"; do
    if [ "$option" = "--json" ]; then w1_options+=(--json); fi
done
.build/release/syncline-bench w1 "${w1_options[@]}"
