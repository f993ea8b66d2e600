#!/usr/bin/env bash
# bench/prune.sh: prune of stillpoint against restic's on the same history.
#
# Makes one data set with bench/gen (mixed by default), backs it up with both
# tools BACKUPS times, applying bench/gen's ~1% change before each backup
# after the first, forgets down to the last KEEP snapshots with each tool, and
# then times `prune` (the defaults of both: 5% unused space allowed) on fresh
# copies of each repository, RUNS times, the tools alternating. Wall time,
# CPU time and peak memory (GNU time's maximum resident set size) are
# reported, with the repository sizes before and after; stillpoint's pruned
# repository must pass check --read-data. See docs/benchmarks.md (Prune).
set -euo pipefail

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_ROOT=$(cd "$SCRIPT_DIR/.." && pwd)
# shellcheck source=bench/lib.sh
source "$SCRIPT_DIR/lib.sh"

SET=mixed
SIZE=$((512 << 20))
FILES=5000
BACKUPS=50
KEEP=10
RUNS=3
SEED=1
WORKDIR=${TMPDIR:-/var/tmp}
KEEP_WORK=0
RESULTS=
BIN_CACHE="${STILLPOINT_BENCH_BIN:-${XDG_CACHE_HOME:-$HOME/.cache}/stillpoint-bench/bin}"
PASSWORD=stillpoint-bench-password

usage() {
	cat <<EOF
usage: bench/prune.sh [options]

  --set NAME       bench/gen data set: mixed, many-small, big (default: $SET)
  --size BYTES     data set size (default: $SIZE)
  --files N        data set files (default: $FILES)
  --backups N      backups in the history (default: $BACKUPS)
  --keep N         snapshots forget keeps (default: $KEEP)
  --runs N         prunes timed per tool, each on a fresh copy; the median
                   is reported (default: $RUNS)
  --seed N         data set seed (default: $SEED)
  --workdir DIR    where the data and repositories go (default: \${TMPDIR:-/var/tmp})
  --keep-work      keep the work directory
  --results FILE   also write the table to FILE
  -h, --help       this help
EOF
}

die() { echo "prune.sh: error: $*" >&2; exit 1; }
log() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

while [[ $# -gt 0 ]]; do
	case $1 in
	--set) SET=$2; shift 2 ;;
	--size) SIZE=$2; shift 2 ;;
	--files) FILES=$2; shift 2 ;;
	--backups) BACKUPS=$2; shift 2 ;;
	--keep) KEEP=$2; shift 2 ;;
	--runs) RUNS=$2; shift 2 ;;
	--seed) SEED=$2; shift 2 ;;
	--workdir) WORKDIR=$2; shift 2 ;;
	--keep-work) KEEP_WORK=1; shift ;;
	--results) RESULTS=$2; shift 2 ;;
	-h | --help) usage; exit 0 ;;
	*) usage >&2; die "unknown argument: $1" ;;
	esac
done
for v in SIZE FILES BACKUPS KEEP RUNS SEED; do
	[[ ${!v} =~ ^[0-9]+$ ]] || die "--${v,,} must be a number"
done
TIME_BIN=/usr/bin/time
"$TIME_BIN" -f %e true >/dev/null 2>&1 || die "GNU time is required at $TIME_BIN (Debian: apt-get install time)"

W=$(mktemp -d "$WORKDIR/stillpoint-prune-bench.XXXXXX")
mkdir -p "$W/logs" "$W/bin"
cleanup() { if [[ $KEEP_WORK -eq 0 ]]; then rm -rf -- "$W"; else log "work directory kept: $W"; fi; }
trap cleanup EXIT

log "building stillpoint and bench/gen"
(cd "$REPO_ROOT" && go build -o "$W/bin/stillpoint" ./cmd/stillpoint && go build -o "$W/bin/gen" ./bench/gen) >"$W/logs/build.log" 2>&1 ||
	{ cat "$W/logs/build.log" >&2; die "build failed"; }
SP=$W/bin/stillpoint
GEN=$W/bin/gen
RESTIC=$(install_restic) || die "could not build restic"
export RESTIC_PASSWORD=$PASSWORD STILLPOINT_PASSWORD=$PASSWORD
export STILLPOINT_CACHE_DIR=$W/sp-cache STILLPOINT_KEY_DIR=$W/sp-keys

DATA=$W/data
log "generating the $SET set ($SIZE bytes, $FILES files)"
"$GEN" create -set "$SET" -out "$DATA" -seed "$SEED" -size "$SIZE" -files "$FILES" >"$W/logs/gen.log"
"$RESTIC" init --repo "$W/restic" >"$W/logs/restic-init.log" 2>&1
"$SP" init --repo "$W/sp" >"$W/logs/sp-init.log" 2>&1

log "$BACKUPS backups with each tool, ~1% change before each after the first"
for i in $(seq 1 "$BACKUPS"); do
	if [[ $i -gt 1 ]]; then
		"$GEN" mutate -dir "$DATA" -seed $((SEED * 1000 + i)) >>"$W/logs/mutate.log"
	fi
	"$RESTIC" backup --repo "$W/restic" --cache-dir "$W/restic-cache" --host bench -q "$DATA" >>"$W/logs/restic-backup.log" 2>&1 ||
		die "restic backup $i failed (see $W/logs/restic-backup.log; --keep-work keeps it)"
	"$SP" backup --repo "$W/sp" --host bench -q "$DATA" >>"$W/logs/sp-backup.log" 2>&1 ||
		die "stillpoint backup $i failed (see $W/logs/sp-backup.log)"
	if ((i % 10 == 0)); then log "  $i backups"; fi
done
log "forget down to the last $KEEP"
"$RESTIC" forget --repo "$W/restic" --cache-dir "$W/restic-cache" --keep-last "$KEEP" -q >"$W/logs/restic-forget.log" 2>&1
"$SP" forget --repo "$W/sp" --keep-last "$KEEP" -q >"$W/logs/sp-forget.log" 2>&1

size_of() { du -sb "$1" | cut -f1; }
mib() { awk -v b="$1" 'BEGIN { printf "%.1f", b / 1048576 }'; }
median() { sort -n | awk '{ a[NR] = $1 } END { print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }

declare -A WALL CPU RSS BEFORE AFTER WALLS CPUS RSSS
# the tools alternate run by run, so a change in the machine's load falls
# on both alike
for run in $(seq 1 "$RUNS"); do
	for tool in restic stillpoint; do
		rm -rf -- "$W/run"
		mkdir -p "$W/run"
		if [[ $tool == restic ]]; then
			cp -a "$W/restic" "$W/run/repo"
			cp -a "$W/restic-cache" "$W/run/cache"
			cmd=("$RESTIC" prune --repo "$W/run/repo" --cache-dir "$W/run/cache")
		else
			cp -a "$W/sp" "$W/run/repo"
			cmd=("$SP" prune --repo "$W/run/repo")
		fi
		BEFORE[$tool]=$(size_of "$W/run/repo")
		sync
		"$TIME_BIN" -f '%e %U %S %M' -o "$W/logs/$tool-prune-$run.time" "${cmd[@]}" >"$W/logs/$tool-prune-$run.log" 2>&1 ||
			die "$tool prune failed: $(tail -n 5 "$W/logs/$tool-prune-$run.log")"
		read -r wall user sys rss <"$W/logs/$tool-prune-$run.time"
		cpu=$(awk -v u="$user" -v s="$sys" 'BEGIN { printf "%.2f", u + s }')
		WALLS[$tool]+="$wall "
		CPUS[$tool]+="$cpu "
		RSSS[$tool]+="$rss "
		AFTER[$tool]=$(size_of "$W/run/repo")
		log "  $tool prune run $run: ${wall}s wall, ${cpu}s CPU, $((rss / 1024)) MiB peak"
		if [[ $tool == stillpoint && $run -eq 1 ]]; then
			# the pruned repository is whole
			"$SP" check --repo "$W/run/repo" --read-data >"$W/logs/sp-check.log" 2>&1 ||
				die "check --read-data after prune failed: $(tail -n 5 "$W/logs/sp-check.log")"
		fi
	done
done
for tool in restic stillpoint; do
	WALL[$tool]=$(tr ' ' '\n' <<<"${WALLS[$tool]}" | grep . | median)
	CPU[$tool]=$(tr ' ' '\n' <<<"${CPUS[$tool]}" | grep . | median)
	RSS[$tool]=$(tr ' ' '\n' <<<"${RSSS[$tool]}" | grep . | median)
done

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }
{
	echo "prune after $BACKUPS backups of the $SET set ($(mib "$SIZE") MiB, $FILES files, ~1% change each) and forget --keep-last $KEEP; median of $RUNS runs; $(nproc) cores"
	echo
	echo "| tool | prune wall (s) | CPU user+sys (s) | peak RSS (MiB) | repository before (MiB) | after (MiB) |"
	echo "|---|---:|---:|---:|---:|---:|"
	for tool in restic stillpoint; do
		echo "| $tool | ${WALL[$tool]} | ${CPU[$tool]} | $((RSS[$tool] / 1024)) | $(mib "${BEFORE[$tool]}") | $(mib "${AFTER[$tool]}") |"
	done
	echo
	echo "stillpoint / restic: wall $(ratio "${WALL[stillpoint]}" "${WALL[restic]}")×, CPU $(ratio "${CPU[stillpoint]}" "${CPU[restic]}")×, memory $(ratio "${RSS[stillpoint]}" "${RSS[restic]}")×"
	echo "runs (wall s): restic ${WALLS[restic]}; stillpoint ${WALLS[stillpoint]}"
	echo "restic: $("$RESTIC" version | head -n 1); stillpoint: $(cd "$REPO_ROOT" && git rev-parse --short HEAD)"
} | tee -a "${RESULTS:-/dev/null}"
