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
# the kernel FUSE tests of `stillpoint mount` (fusermount3)
packages+=(fuse3)
# systemd-analyze verifies the unit `stillpoint service install` writes
packages+=(systemd)
# the Wine tier (scripts/wine-tests): Wine 8.0, and MinGW for the one DLL it lacks
packages+=(wine64 gcc-mingw-w64-x86-64-win32)
# the status page test of internal/web drives Debian's chromium headless
packages+=(chromium)

scripts/install-packages "${packages[@]}"

# restic 0.19.1 for the forget equality tests (internal/e2e/forget_*):
# built once from the Go module proxy by bench/lib.sh and cached with the
# benchmarks' binaries. A restic given in $STILLPOINT_RESTIC is used as is.
if [[ -z ${STILLPOINT_RESTIC:-} ]]; then
	# shellcheck source=bench/lib.sh
	source bench/lib.sh
	log() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
	BIN_CACHE="${STILLPOINT_BENCH_BIN:-${XDG_CACHE_HOME:-$HOME/.cache}/stillpoint-bench/bin}"
	W=$(mktemp -d "${TMPDIR:-/tmp}/stillpoint-test-build.XXXXXX")
	mkdir -p "$W/logs"
	if STILLPOINT_RESTIC=$(install_restic); then
		export STILLPOINT_RESTIC
	else
		# the forget tests fail under CI=true without it, and say why
		log "restic $RESTIC_VERSION could not be built (logs in $W/logs); the forget equality tests will skip or fail"
		unset STILLPOINT_RESTIC
	fi
	if [[ -n ${STILLPOINT_RESTIC:-} ]]; then rm -rf -- "$W"; fi
fi

# SeaweedFS and versitygw for the S3 tests (internal/backend/s3, internal/e2e):
# built once from the Go module proxy and cached with the benchmarks'
# binaries (a first SeaweedFS build takes minutes). Binaries given in
# $STILLPOINT_WEED / $STILLPOINT_VERSITYGW are used as they are.
if [[ -z ${STILLPOINT_WEED:-} ]]; then
	if STILLPOINT_WEED=$(scripts/install-s3servers weed); then
		export STILLPOINT_WEED
	else
		echo "test.sh: SeaweedFS could not be built; the S3 tests on it will skip, or fail under CI=true" >&2
		unset STILLPOINT_WEED
	fi
fi
if [[ -z ${STILLPOINT_VERSITYGW:-} ]]; then
	if STILLPOINT_VERSITYGW=$(scripts/install-s3servers versitygw); then
		export STILLPOINT_VERSITYGW
	else
		echo "test.sh: versitygw could not be built; the S3 tests on it will skip, or fail under CI=true" >&2
		unset STILLPOINT_VERSITYGW
	fi
fi

go test -count=1 -timeout 30m "$@" ./...

# the Windows build under Wine: the test binaries, a round trip of
# stillpoint.exe, a file held with share mode 0 and the VSS policies against Wine's E_NOTIMPL (skipped with a message when Wine is missing, outside CI)
scripts/wine-tests units roundtrip lock vss
