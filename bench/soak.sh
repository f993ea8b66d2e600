#!/usr/bin/env bash
# bench/soak.sh: prune while backups run, for minutes (docs/benchmarks.md,
# "Prune while backups run (soak)").
#
# Builds stillpoint from this work tree and bench/soak, then runs CLIENTS
# backup clients against one repository (local backend), each over its own
# tree of a few thousand files (mixed sizes up to a few MiB, some text) that
# it changes by 1-5% before each backup (modify, append, chmod, add, delete,
# rename, and files whose old content comes back), with its own --host, for
# DURATION, while `forget --keep-last N --prune --json` runs in a loop. Then
# every snapshot left is restored and compared with the manifest (path, kind,
# mode, size, SHA-256) its client took right before that backup, `check
# --read-data` must be clean, and a last `prune` and `prune --now` must
# complete. Any failed backup or prune, a snapshot that is gone although
# forget did not remove it, or one that does not restore exactly: exit 1,
# and the work directory is kept.
#
# Reports prunes run, space reclaimed, the repository's size over time and
# backup throughput while a prune ran against while none did; the report
# with the raw figures goes to bench/results/soak-<date>.md.
set -euo pipefail

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_ROOT=$(cd "$SCRIPT_DIR/.." && pwd)

DURATION=10m
CLIENTS=4
KEEP_LAST=5
FILES=2000
MAX_SIZE=$((3 << 20))
SEED=1
PAUSE=0s
WORKDIR=${TMPDIR:-/var/tmp}
RESULTS=
KEEP=0
SP_BIN=

usage() {
	cat <<EOF
usage: bench/soak.sh [options]

  --duration D     how long the clients and the prune loop run, as Go
                   durations (default: $DURATION)
  --clients N      backup clients (default: $CLIENTS)
  --keep-last N    forget --keep-last, per client (default: $KEEP_LAST)
  --files N        files in each client's tree at the start (default: $FILES)
  --max-size BYTES the largest file (default: $MAX_SIZE)
  --seed N         seed of the trees and their changes (default: $SEED)
  --prune-pause D  wait D after each forget --prune that pruned, so backups
                   also run while no prune does (default: $PAUSE, back to back)
  --workdir DIR    where the work directory is made (default: \${TMPDIR:-/var/tmp});
                   needs room for the sources, the repository and one restore
  --results FILE   the report (default: bench/results/soak-<date>.md)
  --keep           keep the work directory (it is kept anyway on failure)
  --stillpoint-bin PATH  use this stillpoint instead of building ./cmd/stillpoint
  -h, --help       this help

Quick look: bench/soak.sh --duration 1m --files 300 --max-size 262144
EOF
}

die() { echo "soak.sh: error: $*" >&2; exit 1; }
log() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

while [[ $# -gt 0 ]]; do
	case $1 in
	--duration) DURATION=${2:?--duration needs a value}; shift 2 ;;
	--clients) CLIENTS=${2:?--clients needs a value}; shift 2 ;;
	--keep-last) KEEP_LAST=${2:?--keep-last needs a value}; shift 2 ;;
	--files) FILES=${2:?--files needs a value}; shift 2 ;;
	--max-size) MAX_SIZE=${2:?--max-size needs a value}; shift 2 ;;
	--seed) SEED=${2:?--seed needs a value}; shift 2 ;;
	--prune-pause) PAUSE=${2:?--prune-pause needs a value}; shift 2 ;;
	--workdir) WORKDIR=${2:?--workdir needs a value}; shift 2 ;;
	--results) RESULTS=${2:?--results needs a value}; shift 2 ;;
	--keep) KEEP=1; shift ;;
	--stillpoint-bin) SP_BIN=${2:?--stillpoint-bin needs a value}; shift 2 ;;
	-h | --help) usage; exit 0 ;;
	*) usage >&2; die "unknown argument: $1" ;;
	esac
done
for v in CLIENTS KEEP_LAST FILES MAX_SIZE SEED; do
	[[ ${!v} =~ ^[0-9]+$ && ${!v} -gt 0 ]] || die "--${v,,} must be a positive integer, got '${!v}'"
done
command -v go >/dev/null || die "go is not on PATH"
[[ -n $RESULTS ]] || RESULTS=$REPO_ROOT/bench/results/soak-$(date -u +%Y-%m-%d).md

mkdir -p "$WORKDIR" || die "cannot create --workdir $WORKDIR"
W=$(mktemp -d "$WORKDIR/stillpoint-soak.XXXXXX") || die "cannot create a directory in $WORKDIR"
RC=1
cleanup() {
	if [[ $KEEP -eq 1 || $RC -ne 0 ]]; then
		log "kept the work directory $W"
	else
		rm -rf -- "$W"
	fi
}
trap cleanup EXIT
mkdir -p "$W/bin"

VERSION=
if [[ -n $SP_BIN ]]; then
	[[ -x $SP_BIN ]] || die "--stillpoint-bin $SP_BIN is not an executable file"
	cp "$SP_BIN" "$W/bin/stillpoint"
	VERSION="(given binary)"
else
	log "building stillpoint and bench/soak"
	(cd "$REPO_ROOT" && go build -o "$W/bin/stillpoint" ./cmd/stillpoint) || die "go build ./cmd/stillpoint failed"
	VERSION="$(cd "$REPO_ROOT" && git rev-parse --short HEAD 2>/dev/null || echo unknown)$(cd "$REPO_ROOT" && git diff --quiet HEAD -- cmd internal 2>/dev/null || echo '+dirty')"
fi
(cd "$REPO_ROOT" && go build -o "$W/bin/soak" ./bench/soak) || die "go build ./bench/soak failed"

log "soak: $CLIENTS clients for $DURATION, forget --keep-last $KEEP_LAST --prune in a loop (work directory $W)"
set +e
"$W/bin/soak" -bin "$W/bin/stillpoint" -dir "$W/run" -duration "$DURATION" -clients "$CLIENTS" \
	-keep-last "$KEEP_LAST" -files "$FILES" -max-size "$MAX_SIZE" -seed "$SEED" -prune-pause "$PAUSE" \
	-version "$VERSION" -results "$RESULTS"
RC=$?
set -e
log "report: $RESULTS"
exit $RC
