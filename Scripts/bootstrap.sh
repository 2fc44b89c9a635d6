#!/usr/bin/env bash
# Installs the system libraries Syncline links against: SQLite, LevelDB and zlib (Debian packages).
# Idempotent: does nothing when they are present. Needs root to install; otherwise prints the
# exact command and exits non-zero.
set -euo pipefail

packages=(libleveldb-dev libsqlite3-dev zlib1g-dev)
missing=()
for package in "${packages[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed"; then
        missing+=("$package")
    fi
done

if ! command -v swift >/dev/null 2>&1; then
    echo "bootstrap: swift is not on PATH; install Swift 6.2 or later (https://www.swift.org/install/)" >&2
    exit 1
fi

if [ ${#missing[@]} -eq 0 ]; then
    exit 0
fi

if [ "$(id -u)" -eq 0 ]; then
    echo "bootstrap: installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    # A fresh machine's package lists may be empty or stale: refresh them first, quietly, so the
    # install finds the packages at once instead of printing "Unable to locate package".
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}"
else
    echo "bootstrap: missing system packages: ${missing[*]}" >&2
    echo "bootstrap: run: sudo apt-get update && sudo apt-get install -y ${missing[*]}" >&2
    exit 1
fi
