#!/usr/bin/env bash
# Installs what is missing, builds everything, and runs the whole test suite.
set -euo pipefail
cd "$(dirname "$0")/.."

Scripts/bootstrap.sh
# Build once with the tests, then run without rebuilding (switching modes would rebuild).
swift build --build-tests
swift test --skip-build "$@"
