#!/usr/bin/env bash
# Installs what is missing, builds everything, and runs the whole test suite.
set -euo pipefail
cd "$(dirname "$0")/.."

Scripts/bootstrap.sh
# Build once with the tests, then run without rebuilding (switching modes would rebuild).
build_log=$(mktemp)
postgres_port=
restartable_port=
cleanup() {
    rm -f "$build_log"
    if [ -n "$postgres_port" ]; then Scripts/postgres.sh stop "$postgres_port"; fi
    if [ -n "$restartable_port" ]; then Scripts/postgres.sh stop "$restartable_port"; fi
}
trap cleanup EXIT
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
# The PostgreSQL backend's tests run against SYNCLINE_TEST_POSTGRES_URL; without one, a disposable
# cluster is started here and deleted on exit. If none can be started those tests fail (with the
# reason), they are never skipped.
if [ -z "${SYNCLINE_TEST_POSTGRES_URL:-}" ]; then
    if url=$(Scripts/postgres.sh start | tail -1); then
        postgres_port=$(echo "$url" | sed -E 's|.*:([0-9]+)/.*|\1|')
        export SYNCLINE_TEST_POSTGRES_URL="$url"
        echo "test.sh: disposable PostgreSQL at $url"
    else
        echo "test.sh: could not start a disposable PostgreSQL; the PostgreSQL tests will fail" >&2
    fi
fi
# The PostgreSQL restart test restarts a cluster of its own (the other tests keep theirs meanwhile):
# SYNCLINE_TEST_POSTGRES_RESTARTABLE_URL and SYNCLINE_TEST_POSTGRES_RESTART (the command restarting it).
if [ -z "${SYNCLINE_TEST_POSTGRES_RESTARTABLE_URL:-}" ]; then
    if url=$(Scripts/postgres.sh start | tail -1); then
        restartable_port=$(echo "$url" | sed -E 's|.*:([0-9]+)/.*|\1|')
        export SYNCLINE_TEST_POSTGRES_RESTARTABLE_URL="$url"
        export SYNCLINE_TEST_POSTGRES_RESTART="$PWD/Scripts/postgres.sh restart $restartable_port"
        echo "test.sh: disposable PostgreSQL to restart at $url"
    else
        echo "test.sh: could not start a second disposable PostgreSQL; the PostgreSQL restart test will fail" >&2
    fi
fi
# The tests that run server processes and kill them, or restart PostgreSQL, run on their own after
# the rest: in parallel with it, their load (a dozen node processes) made the timing-sensitive
# tests fail, and a node started on port 0 could take the port another test restarts a server on.
isolated="PostgresNodeKillTests|PostgresRestartTests"
if [ $# -gt 0 ]; then
    swift test --skip-build "$@"
else
    status=0
    swift test --skip-build --skip "$isolated" || status=$?
    swift test --skip-build --filter "$isolated" || status=$?
    exit "$status"
fi
