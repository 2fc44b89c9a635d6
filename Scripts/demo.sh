#!/usr/bin/env bash
# The main job, as far as it exists today: a release build and a tour of the two stores
# (writes, reads, the outbox, a restart). The multi-device simulator replaces it when it lands.
set -euo pipefail
cd "$(dirname "$0")/.."

Scripts/bootstrap.sh
swift build -c release --product syncline-store-tour
.build/release/syncline-store-tour "$@"
