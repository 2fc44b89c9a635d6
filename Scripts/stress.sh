#!/usr/bin/env bash
# Stress test on loopback, bounded in time. Two modes:
#
#   Scripts/stress.sh [--processes 4] [--devices 25] [--ops 3000] [--duration 60]
#       Starts a release syncline-server, runs several syncline-sim processes against it (each in
#       its own namespace, devices mixing SQLite/LevelDB and REST/WebSocket, with faults and
#       crashes), then checks that every one converged with nothing lost, and prints server-accepted
#       changes/s, live pages/s, latency percentiles, the server's peak RSS and a verdict.
#
#   Scripts/stress.sh --connections 10000
#       Starts the server, opens N idle live WebSocket connections (each says hello), and reports
#       the server's memory per connection.
#
#   Scripts/stress.sh --nodes 3 [--database postgres://…] [--processes 4] [--devices 25] [--ops 3000] [--duration 60]
#       A cluster: N release nodes (`syncline-server --database URL`) on one PostgreSQL (without
#       --database, a disposable cluster started by Scripts/postgres.sh and deleted on exit). The
#       simulators get every node (`syncline-sim --server URL1,URL2,…`: devices spread round robin,
#       failing over to the next node). During the workload, nodes are SIGKILLed in turn and
#       started again on the same port, and PostgreSQL is restarted once (`pg_ctl restart -m
#       immediate`, only for a cluster this script started). Between the faults, a probe
#       (Scripts/live-probe.py) writes through one node and times the live delivery to a socket on
#       that node and to one on another node. Prints the usual figures plus the node kills, the
#       PostgreSQL restart and the cross-node live latency.
#
# Exit status 0 only on a zero-loss, converged run (or, with --connections, when every
# connection was welcomed).
set -euo pipefail
cd "$(dirname "$0")/.."

processes=4
devices=25
ops=3000
duration=60
connections=0
nodes=0
database=""
while [[ $# -gt 0 ]]; do
    case "$1" in
        --processes) processes="$2"; shift 2 ;;
        --devices) devices="$2"; shift 2 ;;
        --ops) ops="$2"; shift 2 ;;
        --duration) duration="$2"; shift 2 ;;
        --connections) connections="$2"; shift 2 ;;
        --nodes) nodes="$2"; shift 2 ;;
        --database) database="$2"; shift 2 ;;
        *) echo "unknown option $1 (see the comment at the top of $0)" >&2; exit 2 ;;
    esac
done

Scripts/bootstrap.sh
swift build -c release --product syncline-server
swift build -c release --product syncline-sim
bin=.build/release
work=$(mktemp -d /tmp/syncline-stress.XXXXXX)
server_pid=""
cleanup() {
    if [[ -n "$server_pid" ]] && kill -0 "$server_pid" 2>/dev/null; then kill "$server_pid"; wait "$server_pid" 2>/dev/null || true; fi
    rm -rf "$work"
}
trap cleanup EXIT

ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"
if [[ "$nodes" -gt 0 ]]; then
    trap - EXIT
    export bin work processes devices ops duration nodes database
    exec Scripts/stress-cluster.sh
fi
# The connection cap (default 10,000) is raised above what this run opens (--connections N, plus
# the simulators' and the script's own connections).
"$bin/syncline-server" --port 0 --data "$work/server" --dev-token stress:'*' --rate-limit 0 --log-level error \
    --max-connections $((connections + 1000)) > "$work/server.out" 2>&1 &
server_pid=$!
for _ in $(seq 1 100); do
    grep -q "listening on" "$work/server.out" 2>/dev/null && break
    sleep 0.1
done
port=$(grep -o 'listening on 127.0.0.1:[0-9]*' "$work/server.out" | head -1 | cut -d: -f2)
[[ -n "$port" ]] || { echo "the server did not start:"; cat "$work/server.out"; exit 1; }
url="http://127.0.0.1:$port"
rss_kib() { awk "/^$1:/ {print \$2}" "/proc/$server_pid/status"; }
metric() { curl -s "$url/metrics" | awk -v name="$1" '$1 == name {print $2}'; }

if [[ "$connections" -gt 0 ]]; then
    before=$(rss_kib VmRSS)
    export STRESS_MARK="$work/opened"
    python3 - "$port" "$connections" > "$work/connections.out" 2>&1 <<'PY' &
import asyncio, base64, os, sys, time
port, count = int(sys.argv[1]), int(sys.argv[2])
hello = b'{"type":"hello","cursor":0}'
def frame(payload):
    mask = os.urandom(4)
    return bytes([0x81, 0x80 | len(payload)]) + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
async def connect(opened):
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    key = base64.b64encode(os.urandom(16)).decode()
    writer.write((f"GET /v1/ns/idle/live HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                  f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\nAuthorization: Bearer stress\r\n\r\n").encode())
    await reader.readuntil(b"\r\n\r\n")
    writer.write(frame(hello))
    data = await reader.read(256)
    if b"welcome" in data:
        opened.append((reader, writer))
async def main():
    opened = []
    start = time.time()
    for batch in range(0, count, 500):
        await asyncio.gather(*(connect(opened) for _ in range(min(500, count - batch))), return_exceptions=True)
    print(f"opened {len(opened)} of {count} live connections in {time.time() - start:.1f} s", flush=True)
    with open(os.environ.get("STRESS_MARK", "/dev/null"), "w") as mark:
        mark.write(str(len(opened)))
    await asyncio.sleep(15)  # held open while the script measures the server
asyncio.run(main())
PY
    client_pid=$!
    for _ in $(seq 1 1200); do [[ -s "$STRESS_MARK" ]] && break; sleep 0.1; done
    sleep 2  # let the server settle with every connection open
    after=$(rss_kib VmRSS)
    live=$(metric syncline_live_connections)
    opened=$(cat "$STRESS_MARK" 2>/dev/null || echo 0)
    kill "$client_pid" 2>/dev/null || true
    wait "$client_pid" 2>/dev/null || true
    cat "$work/connections.out"
    echo "server RSS: ${before} KiB before, ${after} KiB with ${live:-?} live connections open"
    echo "memory per idle live connection: $(( (after - before) * 1024 / (opened > 0 ? opened : 1) )) bytes"
    [[ "$opened" -eq "$connections" ]] || { echo "only $opened of $connections connections were welcomed"; exit 1; }
    exit 0
fi

echo "server on $url; $processes simulators × $devices devices, $ops operations or ${duration}s each"
start=$(date +%s.%N)
pids=()
for i in $(seq 1 "$processes"); do
    "$bin/syncline-sim" --server "$url" --token stress --namespace "stress-$i" --devices "$devices" --ops "$ops" \
        --duration "$duration" --seed "$i" --json > "$work/sim-$i.json" 2> "$work/sim-$i.err" &
    pids+=($!)
done
failed=0
for pid in "${pids[@]}"; do wait "$pid" || failed=$((failed + 1)); done
end=$(date +%s.%N)
elapsed=$(python3 -c "print(max($end - $start, 0.001))")
applied=$(metric syncline_changes_applied_total)
pages=$(metric syncline_live_pages_sent_total)
peak=$(rss_kib VmHWM)
python3 - "$work" "$processes" "$elapsed" "${applied:-0}" "${pages:-0}" "$peak" "$failed" <<'PY'
import json, sys
work, processes, elapsed, applied, pages, peak, failed = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4]), float(sys.argv[5]), int(sys.argv[6]), int(sys.argv[7])
runs = []
for i in range(1, processes + 1):
    try:
        runs.append(json.load(open(f"{work}/sim-{i}.json")))
    except Exception as error:
        print(f"simulator {i} wrote no summary ({error}); its stderr:")
        print(open(f"{work}/sim-{i}.err").read()[-2000:])
lost = sum(r["lost"] for r in runs)
duplicated = sum(r["duplicated"] for r in runs)
converged = all(r["converged"] for r in runs) and len(runs) == processes
p50 = sorted(r["latency_ms"]["p50"] for r in runs)[len(runs) // 2] if runs else 0
p95 = max((r["latency_ms"]["p95"] for r in runs), default=0)
p99 = max((r["latency_ms"]["p99"] for r in runs), default=0)
ops = sum(r["ops"] for r in runs)
print(f"elapsed                     {elapsed:.1f} s ({ops} operations by {sum(r['devices'] for r in runs)} devices)")
print(f"server-accepted changes/s   {applied / elapsed:,.0f} ({applied:,.0f} applied)")
print(f"live deliveries/s           {pages / elapsed:,.0f} ({pages:,.0f} pages pushed)")
print(f"latency p50 / p95 / p99     {p50:.0f} / {p95:.0f} / {p99:.0f} ms (median p50, worst p95 and p99 of the simulators)")
print(f"server peak RSS             {peak / 1024:.1f} MiB")
print(f"lost / duplicated           {lost} / {duplicated}")
ok = converged and lost == 0 and duplicated == 0 and failed == 0
print("verdict                     " + ("ZERO LOSS, every simulator converged" if ok else f"FAILED ({failed} simulators exited non-zero)"))
for r in runs:
    for difference in r.get("differences", [])[:5]:
        print("  difference:", difference)
sys.exit(0 if ok else 1)
PY
