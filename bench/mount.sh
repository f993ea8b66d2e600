#!/usr/bin/env bash
# bench/mount.sh: what reading a snapshot through `stillpoint mount` costs.
#
# On one generated data set (bench/gen mixed: 1 GiB, 10,000 small files among
# larger ones) it measures, with the page cache dropped before each command:
#   - stillpoint restore of the snapshot (wall, CPU, peak RSS);
#   - cp -a of the same snapshot out of `stillpoint mount` (wall), and the
#     mount's own CPU and peak RSS over the copy;
#   - cp -a of the data set itself (no mount, same disk): the floor of any
#     copy out of a mount, in the same units as the ratio;
#   - the same two for restic 0.19.1 (restore, and cp -a out of restic mount),
#     on a restic repository of the same data.
# Goals (issue 16): the copy out of the mount takes at most 1.5x the restore,
# and the mount's peak memory is at most half of restic's mount.
# Prints a markdown table of the medians and writes it to
# bench/results/mount-<date>.md. Needs root (FUSE, dropping caches) and fuse3.
set -euo pipefail

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=bench/lib.sh
source "$SCRIPT_DIR/lib.sh"
REPO_ROOT=$(cd "$SCRIPT_DIR/.." && pwd)

RUNS=3
QUICK=0
WORKDIR=
KEEP=0
SEED=1
RESULTS=
WITH_RESTIC=1
CACHE_SIZE=
SP_BIN=
BASE_BIN=
BIN_CACHE="${STILLPOINT_BENCH_BIN:-${XDG_CACHE_HOME:-$HOME/.cache}/stillpoint-bench/bin}"
PASSWORD=stillpoint-bench-password

usage() {
	cat <<EOF
usage: bench/mount.sh [options]

  --runs N             runs of each measure; medians are reported (default: $RUNS)
  --quick              a 200 MiB mixed set with 2,000 small files (default: 1 GiB, 10,000)
  --no-restic          measure stillpoint alone
  --cache-size SIZE    stillpoint mount --cache-size (default: the command's)
  --workdir DIR        where data, repositories and copies go (default: \${TMPDIR:-/var/tmp})
  --keep               keep the work directory
  --seed N             data set seed (default: $SEED)
  --results FILE       results file (default: bench/results/mount-<date>.md)
  --stillpoint-bin P   use this binary instead of building ./cmd/stillpoint
  --baseline-bin P     also copy out of this stillpoint binary's mount in every
                       run, right after the other one (a paired comparison)
  --bin-cache DIR      where the restic build is cached (default: $BIN_CACHE)
  -h, --help           this help

Exit codes: 0 measured (goals met or not: the table says), 1 a step failed,
2 bad arguments.
EOF
}

die() { echo "mount.sh: error: $*" >&2; exit 1; }
log() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

while [[ $# -gt 0 ]]; do
	case $1 in
	--runs) RUNS=${2:?--runs needs a value}; shift 2 ;;
	--quick) QUICK=1; shift ;;
	--no-restic) WITH_RESTIC=0; shift ;;
	--cache-size) CACHE_SIZE=${2:?--cache-size needs a value}; shift 2 ;;
	--workdir) WORKDIR=${2:?--workdir needs a value}; shift 2 ;;
	--keep) KEEP=1; shift ;;
	--seed) SEED=${2:?--seed needs a value}; shift 2 ;;
	--results) RESULTS=${2:?--results needs a value}; shift 2 ;;
	--stillpoint-bin) SP_BIN=${2:?--stillpoint-bin needs a value}; shift 2 ;;
	--baseline-bin) BASE_BIN=${2:?--baseline-bin needs a value}; shift 2 ;;
	--bin-cache) BIN_CACHE=${2:?--bin-cache needs a value}; shift 2 ;;
	-h | --help) usage; exit 0 ;;
	*) usage >&2; echo "mount.sh: unknown argument: $1" >&2; exit 2 ;;
	esac
done
[[ $RUNS =~ ^[1-9][0-9]*$ ]] || { echo "mount.sh: --runs must be a positive integer" >&2; exit 2; }
[[ $(id -u) -eq 0 ]] || die "run as root: the benchmark mounts FUSE file systems and drops the page cache"
"$REPO_ROOT/scripts/install-packages" fuse3 time
command -v fusermount3 >/dev/null || die "fusermount3 is missing (apt install fuse3)"
[[ -e /dev/fuse ]] || die "/dev/fuse is missing (modprobe fuse)"
TIME_BIN=/usr/bin/time

[[ -n $WORKDIR ]] || WORKDIR=${TMPDIR:-/var/tmp}
mkdir -p "$WORKDIR"
W=$(mktemp -d "$WORKDIR/stillpoint-mount-bench.XXXXXX")
MOUNTED=()
cleanup() {
	local rc=$? m
	for m in "${MOUNTED[@]}"; do
		if grep -qs " $m " /proc/self/mountinfo; then
			fusermount3 -u "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || true
		fi
	done
	if [[ $KEEP -eq 1 ]]; then log "kept $W"; else rm -rf -- "$W"; fi
	exit "$rc"
}
trap cleanup EXIT
trap 'echo "mount.sh: interrupted" >&2; exit 130' INT TERM
mkdir -p "$W/bin" "$W/logs"

if [[ -n $SP_BIN ]]; then
	SP=$SP_BIN
	SP_VERSION="($(basename "$SP_BIN"))" # its name only: no path of this machine in the results
else
	log "building stillpoint"
	(cd "$REPO_ROOT" && go build -o "$W/bin/stillpoint" ./cmd/stillpoint) >"$W/logs/build.log" 2>&1 || { cat "$W/logs/build.log" >&2; die "build failed"; }
	SP=$W/bin/stillpoint
	SP_VERSION="$(cd "$REPO_ROOT" && git rev-parse --short HEAD)$(cd "$REPO_ROOT" && git diff --quiet HEAD -- cmd internal 2>/dev/null || echo '+dirty')"
fi
(cd "$REPO_ROOT" && go build -o "$W/bin/gen" ./bench/gen) >"$W/logs/build-gen.log" 2>&1 || die "could not build bench/gen"
RESTIC=
if [[ $WITH_RESTIC -eq 1 ]]; then
	RESTIC=$(install_restic) || die "could not build restic $RESTIC_VERSION"
fi

drop_caches() { sync; echo 3 >/proc/sys/vm/drop_caches; }
LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)

DATA=$W/data
if [[ $QUICK -eq 1 ]]; then set_args=(-size $((200 << 20)) -files 2000); else set_args=(-size $((1 << 30)) -files 10000); fi
log "generating the mixed data set"
geninfo=$("$W/bin/gen" create -set mixed -out "$DATA" -seed "$SEED" "${set_args[@]}" 2>&1 | tail -n 1)
log "$geninfo"

export STILLPOINT_PASSWORD=$PASSWORD RESTIC_PASSWORD=$PASSWORD STILLPOINT_KEY_DIR=$W/keys
SP_REPO=$W/sp-repo
RESTIC_REPO=$W/restic-repo
log "stillpoint backup"
"$SP" init --repo "$SP_REPO" >"$W/logs/sp-init.log" 2>&1
"$SP" backup --repo "$SP_REPO" --quiet "$DATA" >"$W/logs/sp-backup.log" 2>&1
if [[ $WITH_RESTIC -eq 1 ]]; then
	log "restic backup"
	"$RESTIC" init --repo "$RESTIC_REPO" --cache-dir "$W/restic-cache" >"$W/logs/restic-init.log" 2>&1
	"$RESTIC" backup --repo "$RESTIC_REPO" --cache-dir "$W/restic-cache" --host bench "$DATA" >"$W/logs/restic-backup.log" 2>&1
fi

# timed NAME CMD...: runs CMD under GNU time; prints "wall user sys maxrss_kib"
timed() {
	local name=$1
	shift
	"$TIME_BIN" -f '%e %U %S %M' -o "$W/logs/$name.time" "$@" >"$W/logs/$name.log" 2>&1 || { tail -n 20 "$W/logs/$name.log" >&2; die "$name failed"; }
	tail -n 1 "$W/logs/$name.time"
}

# wait_for PATH: until PATH exists (the mount is serving), at most 60 s
wait_for() {
	local i
	for ((i = 0; i < 600; i++)); do
		[[ -e $1 ]] && return 0
		sleep 0.1
	done
	return 1
}

# through_mount NAME MOUNTPOINT SNAPDIR MOUNT-CMD...: starts the mount under
# GNU time, copies SNAPDIR (below the mount point) with cp -a, unmounts;
# prints "cp_wall mount_user mount_sys mount_maxrss_kib"
through_mount() {
	local name=$1 mnt=$2 snapdir=$3
	shift 3
	mkdir -p "$mnt"
	MOUNTED+=("$mnt")
	"$TIME_BIN" -f '%e %U %S %M' -o "$W/logs/$name.mount.time" "$@" >"$W/logs/$name.mount.log" 2>&1 &
	local pid=$! start end user sys rss
	wait_for "$mnt/$snapdir" || { kill "$pid"; die "$name: the mount did not come up: $(tail -n 5 "$W/logs/$name.mount.log")"; }
	rm -rf -- "$W/copy"
	start=$(date +%s.%N)
	cp -a "$mnt/$snapdir/." "$W/copy" || { fusermount3 -u "$mnt"; die "$name: cp -a failed"; }
	end=$(date +%s.%N)
	fusermount3 -u "$mnt"
	wait "$pid" || true
	read -r _ user sys rss < <(tail -n 1 "$W/logs/$name.mount.time")
	echo "$(awk -v a="$start" -v b="$end" 'BEGIN{printf "%.2f", b-a}') $user $sys $rss"
}

# local_copy: cp -a of the data set itself, on the same disk, with the page
# cache dropped: what cp costs without any mount, the floor of every copy
# out of one; prints "cp_wall"
local_copy() {
	rm -rf -- "$W/copy"
	local start end
	start=$(date +%s.%N)
	cp -a "$DATA/." "$W/copy" || die "cp -a of the data set failed"
	end=$(date +%s.%N)
	rm -rf -- "$W/copy"
	awk -v a="$start" -v b="$end" 'BEGIN{printf "%.2f 0 0 0", b-a}'
}

verify() { # verify DIR NAME: DIR equals the data set
	diff -rq --no-dereference "$DATA" "$1" >"$W/logs/$2.diff" 2>&1 || die "$2: the copy differs from the data set: $(head -n 3 "$W/logs/$2.diff")"
}

declare -A R
CACHE_ARGS=()
if [[ -n $CACHE_SIZE ]]; then CACHE_ARGS=(--cache-size "$CACHE_SIZE"); fi
for ((run = 1; run <= RUNS; run++)); do
	log "run $run/$RUNS: stillpoint restore"
	rm -rf -- "$W/restore"
	drop_caches
	R[sp-restore.$run]=$(timed "sp-restore-$run" "$SP" restore --repo "$SP_REPO" --quiet latest --target "$W/restore")
	if [[ $run -eq 1 ]]; then verify "$W/restore$DATA" sp-restore; fi
	rm -rf -- "$W/restore"

	log "run $run/$RUNS: cp -a out of stillpoint mount"
	drop_caches
	R[sp-mount.$run]=$(through_mount "sp-mount-$run" "$W/mnt-sp" "latest$DATA" "$SP" mount --repo "$SP_REPO" "${CACHE_ARGS[@]}" "$W/mnt-sp")
	if [[ $run -eq 1 ]]; then verify "$W/copy" sp-mount; fi
	rm -rf -- "$W/copy"
	log "run $run/$RUNS: cp -a of the data set itself"
	drop_caches
	R[local-cp.$run]=$(local_copy)
	if [[ -n $BASE_BIN ]]; then
		log "run $run/$RUNS: cp -a out of the baseline's mount"
		drop_caches
		R[base-mount.$run]=$(through_mount "base-mount-$run" "$W/mnt-base" "latest$DATA" "$BASE_BIN" mount --repo "$SP_REPO" "${CACHE_ARGS[@]}" "$W/mnt-base")
		rm -rf -- "$W/copy"
	fi

	if [[ $WITH_RESTIC -eq 1 ]]; then
		log "run $run/$RUNS: restic restore"
		drop_caches
		R[restic-restore.$run]=$(timed "restic-restore-$run" "$RESTIC" restore --repo "$RESTIC_REPO" --cache-dir "$W/restic-cache" "latest:$DATA" --target "$W/restore")
		rm -rf -- "$W/restore"
		log "run $run/$RUNS: cp -a out of restic mount"
		drop_caches
		R[restic-mount.$run]=$(through_mount "restic-mount-$run" "$W/mnt-restic" "snapshots/latest$DATA" "$RESTIC" mount --repo "$RESTIC_REPO" --cache-dir "$W/restic-cache" "$W/mnt-restic")
		if [[ $run -eq 1 ]]; then verify "$W/copy" restic-mount; fi
		rm -rf -- "$W/copy"
	fi
done
LOAD_END=$(cut -d' ' -f1-3 /proc/loadavg)

# median KEY FIELD: the median of field FIELD (from 1) over the runs
median() {
	local key=$1 f=$2 run
	for ((run = 1; run <= RUNS; run++)); do awk -v f="$f" '{print $f}' <<<"${R[$key.$run]}"; done |
		sort -g | awk '{v[NR]=$1} END{if (NR%2) print v[(NR+1)/2]; else printf "%.2f\n", (v[NR/2]+v[NR/2+1])/2}'
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN{ if (b > 0) printf "%.2f", a/b; else print "-" }'; }
mib() { awk -v k="$1" 'BEGIN{printf "%.0f", k/1024}'; }
cpu() { awk -v u="$(median "$1" 2)" -v s="$(median "$1" 3)" 'BEGIN{printf "%.2f", u+s}'; }

mkdir -p "$REPO_ROOT/bench/results"
[[ -n $RESULTS ]] || RESULTS=$REPO_ROOT/bench/results/mount-$(date +%Y-%m-%d-%H%M).md
{
	restic_note=
	[[ $WITH_RESTIC -eq 1 ]] && restic_note=", restic $("$RESTIC" version | awk '{print $2}')"
	echo "## stillpoint mount, $(date -u +%Y-%m-%dT%H:%MZ)"
	echo
	echo "- stillpoint $SP_VERSION$restic_note"
	echo "- data: ${geninfo#gen: }"
	echo "- machine: $(nproc) cores, $(awk '/MemTotal/{printf "%.0f GiB", $2/1048576}' /proc/meminfo) RAM, $(uname -r); load average $LOAD_START at the start, $LOAD_END at the end (the machine is shared)"
	echo "- $RUNS runs, medians; page cache dropped before each command; \`cp -a\` of the snapshot's data directory out of a fresh mount"
	echo
	echo "| tool | restore, wall s | cp -a out of the mount, wall s | ratio (goal ≤ 1.5) | mount CPU s | mount peak RSS MiB | restore peak RSS MiB |"
	echo "|---|---|---|---|---|---|---|"
	echo "| stillpoint | $(median sp-restore 1) | $(median sp-mount 1) | $(ratio "$(median sp-mount 1)" "$(median sp-restore 1)") | $(cpu sp-mount) | $(mib "$(median sp-mount 4)") | $(mib "$(median sp-restore 4)") |"
	if [[ -n $BASE_BIN ]]; then
		echo "| baseline ($(basename "$BASE_BIN")) | | $(median base-mount 1) | $(ratio "$(median base-mount 1)" "$(median sp-restore 1)") | $(cpu base-mount) | $(mib "$(median base-mount 4)") | |"
	fi
	echo "| \`cp -a\` of the data set itself (no mount, same disk) | | $(median local-cp 1) | $(ratio "$(median local-cp 1)" "$(median sp-restore 1)") | | | |"
	if [[ $WITH_RESTIC -eq 1 ]]; then
		echo "| restic | $(median restic-restore 1) | $(median restic-mount 1) | $(ratio "$(median restic-mount 1)" "$(median restic-restore 1)") | $(cpu restic-mount) | $(mib "$(median restic-mount 4)") | $(mib "$(median restic-restore 4)") |"
		echo
		echo "Peak memory of stillpoint's mount against restic's: $(ratio "$(median sp-mount 4)" "$(median restic-mount 4)") (goal ≤ 0.5). The copy out of stillpoint's mount against the one out of restic's: $(ratio "$(median sp-mount 1)" "$(median restic-mount 1)")."
	fi
	echo
	echo "Per run (wall user sys maxrss-KiB; for a mount: the copy's wall, then the mount process's CPU and peak RSS):"
	echo
	echo '```'
	for k in $(printf '%s\n' "${!R[@]}" | sort); do echo "$k ${R[$k]}"; done
	echo '```'
} >"$RESULTS"
cat "$RESULTS"
log "results written to ${RESULTS#"$REPO_ROOT"/}"
