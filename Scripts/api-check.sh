#!/usr/bin/env bash
# Fuzzes the HTTP API against docs/openapi.json with schemathesis (every check): starts a release
# syncline-server on a free loopback port with a throwaway data directory, runs schemathesis,
# stops the server and exits with schemathesis' status (0: no failures).
#
#   Scripts/api-check.sh                          # builds the release server first
#   SERVER_BIN=.build/debug/syncline-server Scripts/api-check.sh   # any other server binary
#   Scripts/api-check.sh --max-examples 20        # extra arguments go to `st run`
#
# schemathesis is installed with pip into .build/api-check-venv (a throwaway virtual environment).
set -euo pipefail
cd "$(dirname "$0")/.."

SCHEMATHESIS_VERSION=4.32.5
VENV=.build/api-check-venv
started=$(date +%s)

if [ ! -x "$VENV/bin/st" ] || ! "$VENV/bin/pip" show schemathesis 2>/dev/null | grep -qx "Version: $SCHEMATHESIS_VERSION"; then
    echo "api-check: installing schemathesis $SCHEMATHESIS_VERSION into $VENV"
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install --quiet --disable-pip-version-check "schemathesis==$SCHEMATHESIS_VERSION"
fi

if [ -z "${SERVER_BIN:-}" ]; then
    swift build -c release --product syncline-server
    SERVER_BIN="$(swift build -c release --show-bin-path)/syncline-server"
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/syncline-api-check.XXXXXX")
token="api-check-$(od -An -N8 -tx8 /dev/urandom | tr -d ' ')"
server_pid=""
cleanup() {
    if [ -n "$server_pid" ] && kill -0 "$server_pid" 2>/dev/null; then
        kill -TERM "$server_pid"
        wait "$server_pid" 2>/dev/null || true
    fi
    rm -rf "$work"
}
trap cleanup EXIT

# Rate limiting is off: the fuzzer sends thousands of requests with one token.
"$SERVER_BIN" --host 127.0.0.1 --port 0 --data "$work/data" --dev-token "$token:*" --rate-limit 0 --max-long-poll 1 \
    --log-level warning >"$work/server.out" 2>"$work/server.err" &
server_pid=$!

port=""
for _ in $(seq 1 200); do
    port=$(sed -n 's/^syncline-server listening on 127\.0\.0\.1:\([0-9]*\)$/\1/p' "$work/server.out")
    [ -n "$port" ] && break
    if ! kill -0 "$server_pid" 2>/dev/null; then
        echo "api-check: the server did not start:" >&2
        cat "$work/server.err" >&2
        exit 1
    fi
    sleep 0.05
done
if [ -z "$port" ]; then
    echo "api-check: the server did not listen within 10 s" >&2
    exit 1
fi
echo "api-check: $SERVER_BIN listening on port $port"

# One retry on a network failure: after a 101 (the live route's WebSocket upgrade) the HTTP client
# puts the upgraded connection back in its pool, and its next request there gets WebSocket bytes;
# the retry goes out on a fresh connection. A server that really drops requests fails both tries.
# Run from the throwaway directory: schemathesis keeps a `.schemathesis` cache in its working directory.
root=$PWD
status=0
(cd "$work" && "$root/$VENV/bin/st" --no-color --config-file "$root/Scripts/api-check.toml" run "$root/docs/openapi.json" \
    --url "http://127.0.0.1:$port" -H "Authorization: Bearer $token" \
    --checks all --request-retries 1 --generation-database none "$@") || status=$?

if [ -s "$work/server.err" ]; then
    echo "api-check: server log (warnings and errors):"
    tail -n 50 "$work/server.err"
fi
echo "api-check: schemathesis exited with $status after $(($(date +%s) - started)) s"
exit "$status"
