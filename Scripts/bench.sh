#!/usr/bin/env bash
# Builds the benchmarks in release mode and runs them. Pass suite options through, e.g.
#   Scripts/bench.sh --json        Scripts/bench.sh --scale 0.2
# The PostgreSQL rows (network and growth with --backend postgres) run against
# SYNCLINE_BENCH_POSTGRES_URL, or a disposable cluster started here (Scripts/postgres.sh) and
# deleted on exit.
set -euo pipefail
cd "$(dirname "$0")/.."

Scripts/bootstrap.sh
swift build -c release --product syncline-bench
for suite in store pipeline network growth; do
    .build/release/syncline-bench "$suite" "$@"
done
postgres_port=
if [ -z "${SYNCLINE_BENCH_POSTGRES_URL:-}" ]; then
    SYNCLINE_BENCH_POSTGRES_URL=$(Scripts/postgres.sh start | tail -1)
    postgres_port=$(echo "$SYNCLINE_BENCH_POSTGRES_URL" | sed -E 's|.*:([0-9]+)/.*|\1|')
    trap 'Scripts/postgres.sh stop "$postgres_port"' EXIT
fi
export SYNCLINE_BENCH_POSTGRES_URL
for suite in network growth; do
    .build/release/syncline-bench "$suite" --backend postgres "$@"
done
# W1 has a fixed size: it takes only --json of the options above.
w1_options=()
for option in "$@"; do
    if [ "$option" = "--json" ]; then w1_options+=(--json); fi
done
.build/release/syncline-bench w1 "${w1_options[@]}"
