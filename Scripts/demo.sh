#!/usr/bin/env bash
# The main job: a release build, then syncline-sim with its defaults: an embedded server (SQLite,
# temporary directory) on loopback and 6 devices (SQLite and LevelDB stores, REST and WebSocket)
# editing a shared to-do list under faults, offline periods, crashes and one server restart; it
# ends by verifying convergence field by field and prints a summary. Options pass through, e.g.
#   Scripts/demo.sh --seed 7 --report sim.html        Scripts/demo.sh --json
set -euo pipefail
cd "$(dirname "$0")/.."

Scripts/bootstrap.sh
swift build -c release --product syncline-sim
.build/release/syncline-sim "$@"
