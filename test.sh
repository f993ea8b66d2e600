#!/usr/bin/env bash
# Runs stillpoint's whole test suite. As root on Debian it first installs what
# the tests need (filesystem tools for loopback btrfs/XFS, GNU time, …), so it
# works on a fresh machine that has only Go. Tests that need root or a server
# skip outside CI and must run (or fail) when CI=true.
set -euo pipefail
cd "$(dirname "$0")"

# loopback filesystems for the snapshot tests; PostgreSQL and MariaDB for the
# writer tests (the tests start their own servers on 127.0.0.1)
packages=(btrfs-progs xfsprogs e2fsprogs util-linux mount kmod attr postgresql mariadb-server)

if [[ $(id -u) == 0 ]] && command -v apt-get >/dev/null; then
  missing=()
  for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  if ((${#missing[@]})); then
    echo "test.sh: installing ${missing[*]}"
    apt-get update -qq
    # keep the packages' own services from starting: the tests run theirs
    added_policy=
    if [[ ! -e /usr/sbin/policy-rc.d ]]; then
      printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
      chmod +x /usr/sbin/policy-rc.d
      added_policy=1
    fi
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    [[ -n $added_policy ]] && rm -f /usr/sbin/policy-rc.d
  fi
fi

go test -count=1 -timeout 30m "$@" ./...
