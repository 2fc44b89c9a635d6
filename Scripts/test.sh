#!/usr/bin/env bash
# Installs what is missing, builds everything, and runs the whole test suite.
set -euo pipefail
cd "$(dirname "$0")/.."

Scripts/bootstrap.sh
# Build once with the tests, then run without rebuilding (switching modes would rebuild).
build_log=$(mktemp)
trap 'rm -f "$build_log"' EXIT
swift build --build-tests 2>&1 | tee "$build_log"
# Zero warnings in our own code (a fresh clone compiles every file, so CI sees them all;
# dependencies' warnings are theirs).
if grep -E "^$PWD/(Sources|Samples|Tests)/[^:]+:[0-9]+:[0-9]+: warning:" "$build_log" | sort -u | grep .; then
    echo "test.sh: the compiler warned about our own code (above); fix it before testing" >&2
    exit 1
fi
swift test --skip-build "$@"
