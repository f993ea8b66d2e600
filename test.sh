#!/usr/bin/env bash
# Runs stillpoint's whole test suite. As root on Debian it first installs what
# the tests need (filesystem tools for loopback btrfs/XFS, GNU time, …), so it
# works on a fresh machine that has only Go. Tests that need root or a server
# skip outside CI and must run (or fail) when CI=true.
set -euo pipefail
cd "$(dirname "$0")"

packages=(btrfs-progs xfsprogs e2fsprogs util-linux kmod attr)

if [[ $(id -u) == 0 ]] && command -v apt-get >/dev/null; then
  missing=()
  for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  if ((${#missing[@]})); then
    echo "test.sh: installing ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  fi
fi

go test -count=1 -timeout 30m "$@" ./...
