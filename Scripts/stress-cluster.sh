#!/usr/bin/env bash
# `Scripts/stress.sh --nodes N [--database URL]`: the cluster stress run (see the comment at the top
# of stress.sh, which builds the release binaries and runs this with bin, work, processes, devices,
# ops, duration, nodes and database in the environment). Not meant to be run by itself.
set -euo pipefail
cd "$(dirname "$0")/.."
: "${bin:?run Scripts/stress.sh --nodes N}" "${work:?}" "${processes:?}" "${devices:?}" "${ops:?}" "${duration:?}" "${nodes:?}"

pg_port=""
chaos_pid=""
sim_pids=()
cleanup() {
    touch "$work/done"
    if [[ -n "$chaos_pid" ]]; then kill "$chaos_pid" 2>/dev/null || true; wait "$chaos_pid" 2>/dev/null || true; fi
    for pid in "${sim_pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    for i in $(seq 1 "$nodes"); do
        if [[ -s "$work/node-$i.pid" ]]; then
            pid=$(cat "$work/node-$i.pid")
            if kill -0 "$pid" 2>/dev/null; then kill "$pid" 2>/dev/null || true; fi
        fi
    done
    for i in $(seq 1 "$nodes"); do
        [[ -s "$work/node-$i.pid" ]] && wait "$(cat "$work/node-$i.pid")" 2>/dev/null || true
    done
    if [[ -n "$pg_port" ]]; then Scripts/postgres.sh stop "$pg_port" || true; fi
    rm -rf "$work"
}
trap cleanup EXIT

pgbin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1 || true)
if [[ -z "$database" ]]; then
    database=$(Scripts/postgres.sh start | tail -1)
    pg_port=$(echo "$database" | sed -E 's|.*:([0-9]+)/.*|\1|')
    echo "disposable PostgreSQL at $database"
fi
# Fail fast when the database does not answer (a node would retry for a long time).
pg_host=$(echo "$database" | sed -E 's|^postgres(ql)?://([^@/]*@)?([^:/?]+).*|\3|')
pg_db_port=$(echo "$database" | sed -E 's|^postgres(ql)?://[^/]*:([0-9]+)/.*|\2|')
[[ "$pg_db_port" =~ ^[0-9]+$ ]] || pg_db_port=5432
if [[ -x "$pgbin/pg_isready" ]] && ! "$pgbin/pg_isready" -q -h "$pg_host" -p "$pg_db_port" -t 5; then
    echo "stress: PostgreSQL at $pg_host:$pg_db_port does not accept connections" >&2
    exit 1
fi
psql_url=$(echo "$database" | sed -E 's/[?&]schema=[^&]*//')

# Starts node $1 on port $2 (0: any free port) and waits for its "listening" line; prints its port.
start_node() {
    local i=$1 port=$2 before
    before=$(grep -c "listening on" "$work/node-$i.out" 2>/dev/null || true)
    "$bin/syncline-server" --port "$port" --database "$database" --dev-token stress:'*' --rate-limit 0 --log-level error \
        --max-connections 5000 >> "$work/node-$i.out" 2>&1 &
    echo $! > "$work/node-$i.pid"
    for _ in $(seq 1 300); do
        [[ $(grep -c "listening on" "$work/node-$i.out" 2>/dev/null || true) -gt ${before:-0} ]] && break
        kill -0 "$(cat "$work/node-$i.pid")" 2>/dev/null || break
        sleep 0.1
    done
    grep -o 'listening on 127.0.0.1:[0-9]*' "$work/node-$i.out" | tail -1 | cut -d: -f2
}

ports=()
for i in $(seq 1 "$nodes"); do
    port=$(start_node "$i" 0)
    [[ -n "$port" ]] || { echo "node $i did not start:"; cat "$work/node-$i.out"; exit 1; }
    ports+=("$port")
done
urls=$(for port in "${ports[@]}"; do printf 'http://127.0.0.1:%s,' "$port"; done)
urls=${urls%,}
# Every node serves (PostgreSQL reachable, schema ready) before the workload starts.
for port in "${ports[@]}"; do
    for _ in $(seq 1 300); do curl -sf "http://127.0.0.1:$port/healthz" > /dev/null && break; sleep 0.1; done
done

# A node's figures before it dies (its metrics start again at zero when it comes back).
node_figures() {
    local i=$1 pid port=${ports[$(($1 - 1))]}
    pid=$(cat "$work/node-$i.pid")
    curl -s --max-time 2 "http://127.0.0.1:$port/metrics" | awk '$1 == "syncline_live_pages_sent_total" {print $2}' >> "$work/pages" || true
    awk '/^VmHWM:/ {print $2}' "/proc/$pid/status" >> "$work/rss" 2>/dev/null || true
}

# Probe: writes through node $1, live sockets on node $1 and node $2.
probe() {
    local from=${ports[$(($1 - 1))]} to=${ports[$(($2 - 1))]}
    python3 Scripts/live-probe.py "$from" "$to" stress probe 12 0.05 >> "$work/probe.txt" 2>> "$work/probe.err" || true
}

# The faults, while the simulators run: kill a node, start it again, probe; PostgreSQL restarted once,
# halfway. Stops a few seconds before the workload's end (every node is up for the quiescence).
chaos() {
    local start=$SECONDS round=0 victim elapsed pg_done=0
    sleep 4
    probe 1 2
    while [[ ! -e "$work/done" ]]; do
        elapsed=$((SECONDS - start))
        [[ $elapsed -lt $((duration - 10)) ]] || break
        if [[ $pg_done -eq 0 && $elapsed -ge $((duration / 2)) ]]; then
            pg_done=1
            if [[ -n "$pg_port" ]]; then
                local t0=$SECONDS
                echo "t=${elapsed}s restart PostgreSQL (pg_ctl restart -m immediate)" >> "$work/chaos.log"
                if Scripts/postgres.sh restart "$pg_port" >> "$work/chaos.log" 2>&1; then
                    echo "postgres $((SECONDS - t0))" >> "$work/events"
                else
                    echo "PostgreSQL did not restart" >> "$work/chaos.err"
                fi
                sleep 3
                probe 1 2
                continue
            fi
        fi
        victim=$((round % nodes + 1))
        round=$((round + 1))
        node_figures "$victim"
        echo "t=${elapsed}s SIGKILL node $victim (port ${ports[$((victim - 1))]})" >> "$work/chaos.log"
        kill -9 "$(cat "$work/node-$victim.pid")" 2>/dev/null || true
        wait "$(cat "$work/node-$victim.pid")" 2>/dev/null || true
        echo "kill $victim" >> "$work/events"
        sleep 2  # the node's devices fail over meanwhile
        local restarted=""
        for _ in 1 2 3; do
            restarted=$(start_node "$victim" "${ports[$((victim - 1))]}")
            [[ -n "$restarted" ]] && kill -0 "$(cat "$work/node-$victim.pid")" 2>/dev/null && break
            sleep 1
        done
        if [[ "$restarted" != "${ports[$((victim - 1))]}" ]]; then
            echo "node $victim did not come back on port ${ports[$((victim - 1))]}" >> "$work/chaos.err"
            return
        fi
        echo "t=$((SECONDS - start))s node $victim back on port $restarted" >> "$work/chaos.log"
        sleep 2
        probe "$(( (victim % nodes) + 1 ))" "$(( ((victim + 1) % nodes) + 1 ))"
    done
}

echo "$nodes nodes on $urls; PostgreSQL $([[ -n "$pg_port" ]] && echo "on port $pg_port (started here)" || echo "given by --database")"
echo "$processes simulators × $devices devices over the nodes, $ops operations or ${duration}s each"
start=$(date +%s.%N)
: > "$work/events"
: > "$work/probe.txt"
chaos > /dev/null 2>> "$work/chaos.err" &
chaos_pid=$!
for i in $(seq 1 "$processes"); do
    "$bin/syncline-sim" --server "$urls" --token stress --namespace "stress-$i" --devices "$devices" --ops "$ops" \
        --duration "$duration" --seed "$i" --json > "$work/sim-$i.json" 2> "$work/sim-$i.err" &
    sim_pids+=($!)
done
failed=0
for pid in "${sim_pids[@]}"; do wait "$pid" || failed=$((failed + 1)); done
sim_pids=()
end=$(date +%s.%N)
touch "$work/done"
wait "$chaos_pid" 2>/dev/null || true
chaos_pid=""
for i in $(seq 1 "$nodes"); do node_figures "$i"; done
elapsed=$(python3 -c "print(max($end - $start, 0.001))")
applied=$("$pgbin/psql" -Atq "$psql_url" -c "SELECT coalesce(sum(head), 0) FROM namespaces WHERE ns LIKE 'stress-%'" 2>/dev/null || echo 0)
cat "$work/chaos.log" 2>/dev/null || true
python3 - "$work" "$processes" "$elapsed" "${applied:-0}" "$failed" "$nodes" "${pg_port:-}" <<'PY'
import json, sys
work, processes, elapsed, applied, failed, nodes, pg_port = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4]), int(sys.argv[5]), int(sys.argv[6]), sys.argv[7]
runs = []
for i in range(1, processes + 1):
    try:
        runs.append(json.load(open(f"{work}/sim-{i}.json")))
    except Exception as error:
        print(f"simulator {i} wrote no summary ({error}); its stderr:")
        print(open(f"{work}/sim-{i}.err").read()[-2000:])
def numbers(name):
    try:
        return [float(line) for line in open(f"{work}/{name}") if line.strip()]
    except FileNotFoundError:
        return []
def percentile(values, q):
    if not values:
        return 0.0
    values = sorted(values)
    return values[min(max(int(-(-q * len(values) // 1)) - 1, 0), len(values) - 1)]
events = [line.split() for line in open(f"{work}/events") if line.strip()]
kills = [e for e in events if e[0] == "kill"]
pg_restarts = [e for e in events if e[0] == "postgres"]
chaos_errors = open(f"{work}/chaos.err").read().strip() if __import__("os").path.exists(f"{work}/chaos.err") else ""
probe = [tuple(map(float, line.split())) for line in open(f"{work}/probe.txt") if len(line.split()) == 2]
same = [p[0] for p in probe]
cross = [p[1] for p in probe]
pages = sum(numbers("pages"))
peak = max(numbers("rss"), default=0)
lost = sum(r["lost"] for r in runs)
duplicated = sum(r["duplicated"] for r in runs)
converged = all(r["converged"] for r in runs) and len(runs) == processes
p50 = sorted(r["latency_ms"]["p50"] for r in runs)[len(runs) // 2] if runs else 0
p95 = max((r["latency_ms"]["p95"] for r in runs), default=0)
p99 = max((r["latency_ms"]["p99"] for r in runs), default=0)
ops = sum(r["ops"] for r in runs)
print(f"elapsed                     {elapsed:.1f} s ({ops} operations by {sum(r['devices'] for r in runs)} devices over {nodes} nodes)")
print(f"server-accepted changes/s   {applied / elapsed:,.0f} ({applied:,.0f} applied, the namespaces' heads in PostgreSQL)")
print(f"live deliveries/s           {pages / elapsed:,.0f} ({pages:,.0f} pages pushed, every node and incarnation)")
print(f"latency p50 / p95 / p99     {p50:.0f} / {p95:.0f} / {p99:.0f} ms (median p50, worst p95 and p99 of the simulators)")
print(f"node peak RSS               {peak / 1024:.1f} MiB (the largest node)")
print(f"node kills (SIGKILL)        {len(kills)} ({', '.join('node ' + k[1] for k in kills)}), each started again on its port")
if pg_restarts:
    print(f"PostgreSQL restarts         {len(pg_restarts)} (pg_ctl restart -m immediate, {pg_restarts[0][1]} s)")
else:
    print("PostgreSQL restarts         0" + ("" if pg_port else " (--database given: not this script's cluster)"))
if probe:
    ratio = percentile(cross, 0.5) / max(percentile(same, 0.5), 0.001)
    print(f"live write→delivery         same node p50 / p99 {percentile(same, 0.5):.1f} / {percentile(same, 0.99):.1f} ms, "
          f"other node {percentile(cross, 0.5):.1f} / {percentile(cross, 0.99):.1f} ms (p50 ratio {ratio:.2f}, {len(probe)} probe writes)")
else:
    print("live write→delivery         no probe write measured")
print(f"lost / duplicated           {lost} / {duplicated}")
problems = []
if failed: problems.append(f"{failed} simulators exited non-zero")
if chaos_errors: problems.append("faults: " + chaos_errors.replace("\n", "; "))
if not kills: problems.append("no node was killed")
if pg_port and not pg_restarts: problems.append("PostgreSQL was not restarted")
ok = converged and lost == 0 and duplicated == 0 and not problems
print("verdict                     " + ("ZERO LOSS, every simulator converged" if ok else f"FAILED ({'; '.join(problems) or 'not converged'})"))
for r in runs:
    for difference in r.get("differences", [])[:5]:
        print("  difference:", difference)
sys.exit(0 if ok else 1)
PY
