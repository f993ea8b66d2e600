#!/usr/bin/env bash
# Runs stillpoint's whole test suite. As root on Debian it first installs what
# the tests need (filesystem tools for loopback btrfs/XFS, GNU time, …), so it
# works on a fresh machine that has only Go. Tests that need root or a server
# skip outside CI and must run (or fail) when CI=true.
set -euo pipefail
cd "$(dirname "$0")"

# loopback filesystems for the snapshot tests; PostgreSQL and MariaDB for the
# writer tests (the tests start their own servers on 127.0.0.1)
packages=(btrfs-progs xfsprogs e2fsprogs util-linux mount kmod attr postgresql mariadb-server git)

scripts/install-packages "${packages[@]}"

go test -count=1 -timeout 30m "$@" ./...
