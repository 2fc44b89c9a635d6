#!/usr/bin/env bash
# A disposable PostgreSQL cluster on loopback, for the tests and stress runs (PLATFORM-NOTES):
#   Scripts/postgres.sh start [PORT]   starts one (on the first free port from 55432 when no PORT
#                                      is given) and prints its URL as the last line of stdout
#   Scripts/postgres.sh stop PORT      stops it and deletes its files
#   Scripts/postgres.sh halt PORT      stops it at once (as a crash would), keeping its files
#   Scripts/postgres.sh resume PORT    starts a halted one again (outage drills by hand)
#   Scripts/postgres.sh restart PORT   restarts it at once (pg_ctl restart -m immediate: a crash and
#                                      recovery), waiting until it accepts connections again
# fsync is off (a disposable cluster need not survive the machine), but synchronous_commit stays on:
# a commit is acknowledged only once its WAL left PostgreSQL's memory, so an immediate restart
# (a crash of PostgreSQL, not of the machine) loses no acknowledged write.
# Needs the PostgreSQL server binaries (Debian: postgresql-15); as root the cluster runs as the
# postgres user (initdb refuses root).
set -euo pipefail

pgbin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1 || true)
if [ -z "$pgbin" ] || [ ! -x "$pgbin/initdb" ]; then
    echo "postgres.sh: no PostgreSQL server binaries under /usr/lib/postgresql/*/bin (apt-get install postgresql)" >&2
    exit 1
fi
as_owner=()
if [ "$(id -u)" -eq 0 ]; then as_owner=(runuser -u postgres --); fi

port_is_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# Starts the cluster of $dir on $port and waits until it accepts connections.
run_cluster() {
    "${as_owner[@]}" "$pgbin/pg_ctl" -D "$dir/data" -l "$dir/log" -w -t 30 \
        -o "-p $port -k $dir -h 127.0.0.1 -c fsync=off -c max_connections=300" start >/dev/null \
        || { cat "$dir/log" >&2; exit 1; }
    "$pgbin/pg_isready" -q -h 127.0.0.1 -p "$port" -U postgres -t 10 || { echo "postgres.sh: the cluster on port $port is not ready" >&2; exit 1; }
}

case "${1:-}" in
start)
    port=${2:-}
    if [ -z "$port" ]; then
        for candidate in $(seq 55432 55532); do
            if port_is_free "$candidate" && [ ! -e "/tmp/syncline-pg-$candidate" ]; then port=$candidate; break; fi
        done
        [ -n "$port" ] || { echo "postgres.sh: no free port in 55432-55532" >&2; exit 1; }
    fi
    dir=/tmp/syncline-pg-$port
    if [ -e "$dir/data/postmaster.pid" ]; then
        echo "postgres.sh: a cluster already runs in $dir; stop it first (Scripts/postgres.sh stop $port)" >&2
        exit 1
    fi
    rm -rf "$dir"
    mkdir -p "$dir"
    if [ ${#as_owner[@]} -gt 0 ]; then chown postgres:postgres "$dir"; fi
    "${as_owner[@]}" "$pgbin/initdb" -D "$dir/data" -U postgres --auth=trust --encoding=UTF8 --no-locale -N >"$dir/initdb.log" 2>&1 \
        || { cat "$dir/initdb.log" >&2; exit 1; }
    run_cluster
    "$pgbin/psql" -q -h 127.0.0.1 -p "$port" -U postgres -d postgres -c "CREATE DATABASE syncline" >/dev/null
    echo "postgres://postgres@127.0.0.1:$port/syncline?sslmode=disable"
    ;;
stop)
    port=${2:?"usage: postgres.sh stop PORT"}
    dir=/tmp/syncline-pg-$port
    if [ -e "$dir/data/postmaster.pid" ]; then
        "${as_owner[@]}" "$pgbin/pg_ctl" -D "$dir/data" -m fast -w stop >/dev/null || true
    fi
    rm -rf "$dir"
    ;;
halt)
    port=${2:?"usage: postgres.sh halt PORT"}
    dir=/tmp/syncline-pg-$port
    "${as_owner[@]}" "$pgbin/pg_ctl" -D "$dir/data" -m immediate -w stop >/dev/null
    ;;
resume)
    port=${2:?"usage: postgres.sh resume PORT"}
    dir=/tmp/syncline-pg-$port
    run_cluster
    ;;
restart)
    port=${2:?"usage: postgres.sh restart PORT"}
    dir=/tmp/syncline-pg-$port
    "${as_owner[@]}" "$pgbin/pg_ctl" -D "$dir/data" -l "$dir/log" -m immediate -w -t 30 restart >/dev/null \
        || { tail -20 "$dir/log" >&2; exit 1; }
    "$pgbin/pg_isready" -q -h 127.0.0.1 -p "$port" -U postgres -t 10 || { echo "postgres.sh: the cluster on port $port is not ready" >&2; exit 1; }
    ;;
*)
    echo "usage: Scripts/postgres.sh start [PORT] | stop PORT | halt PORT | resume PORT | restart PORT" >&2
    exit 2
    ;;
esac
