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

# restic 0.19.1 for the forget equality tests (internal/e2e/forget_*), and
# SeaweedFS and versitygw for the S3 tests (internal/backend/s3,
# internal/e2e): built from the Go module proxy once and cached with the
# benchmarks' binaries (a first SeaweedFS build takes minutes). On a fresh
# machine they build while the packages install (the one waits on the
# network, the other on the CPU) and while the tests that need none of them
# run. Binaries given in $STILLPOINT_RESTIC,
# $STILLPOINT_WEED and $STILLPOINT_VERSITYGW are used as they are.
tools=$(mktemp -d "${TMPDIR:-/tmp}/stillpoint-test-tools.XXXXXX")
trap 'rm -rf -- "$tools"' EXIT
declare -A tool_pid=()
if [[ -z ${STILLPOINT_RESTIC:-} ]]; then
	(
		# shellcheck source=bench/lib.sh
		source bench/lib.sh
		log() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
		BIN_CACHE="${STILLPOINT_BENCH_BIN:-${XDG_CACHE_HOME:-$HOME/.cache}/stillpoint-bench/bin}"
		W=$tools/restic-build
		mkdir -p "$W/logs"
		install_restic
	) >"$tools/RESTIC" &
	tool_pid[RESTIC]=$!
fi
for server in weed versitygw; do
	var=STILLPOINT_${server^^}
	if [[ -z ${!var:-} ]]; then
		scripts/install-s3servers "$server" >"$tools/${server^^}" &
		tool_pid[${server^^}]=$!
	fi
done

scripts/install-packages "${packages[@]}"

# wait_tools: the builds end; each built tool is handed to the tests
wait_tools() {
	local name
	for name in "${!tool_pid[@]}"; do
		if wait "${tool_pid[$name]}"; then
			export "STILLPOINT_$name=$(<"$tools/$name")"
		else
			# the tests that need it skip, or fail under CI=true and say why
			echo "test.sh: ${name,,} could not be built (the message is above); the tests that need it will skip, or fail under CI=true" >&2
		fi
	done
	tool_pid=()
}

# While tools still build, the packages that need none of them are tested
# (the builds run niced), and the two that do come after the builds.
# (A tool already cached is found in milliseconds: its job has ended by
# now, and the suite runs as one.)
needs_tools='/internal/(backend/s3|e2e)$'
building=0
for pid in "${tool_pid[@]}"; do
	if kill -0 "$pid" 2>/dev/null; then building=1; fi
done
if ((building)); then
	mapfile -t free < <(go list ./... | grep -Ev "$needs_tools")
	mapfile -t bound < <(go list ./... | grep -E "$needs_tools")
	rc=0
	go test -count=1 -timeout 30m "$@" "${free[@]}" || rc=$?
	wait_tools
	((rc == 0)) || exit "$rc"
	go test -count=1 -timeout 30m "$@" "${bound[@]}"
else
	wait_tools
	go test -count=1 -timeout 30m "$@" ./...
fi

# the Windows build under Wine: the test binaries, a round trip of
# stillpoint.exe, a file held with share mode 0 and the VSS policies against Wine's E_NOTIMPL (skipped with a message when Wine is missing, outside CI)
scripts/wine-tests units roundtrip lock vss
