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
# dependencies' warnings are theirs). A warning inside a macro expansion (`#expect`) names the
# expansion; the note after it says which of our lines the expansion came from.
our_warnings() {
    awk -v root="$PWD" '
        index($0, root "/Sources/") == 1 || index($0, root "/Samples/") == 1 || index($0, root "/Tests/") == 1 {
            if ($0 ~ /:[0-9]+:[0-9]+: warning:/) print
        }
        /^macro expansion .*: warning:/ { pending = $0; next }
        pending != "" && /note: expanded code originates here/ {
            if (index($0, root "/Sources/") || index($0, root "/Samples/") || index($0, root "/Tests/")) print pending " (" $0 ")"
            pending = ""
        }
    ' "$build_log" | sort -u
}
if our_warnings | grep .; then
    echo "test.sh: the compiler warned about our own code (above); fix it before testing" >&2
    exit 1
fi
swift test --skip-build "$@"
