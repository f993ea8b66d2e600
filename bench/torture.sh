#!/usr/bin/env bash
# bench/torture.sh: the live-write torture benchmark (docs/consistency.md).
#
# Runs applications that write while backups run (a SQLite bank in rollback
# and WAL mode, a bank of plain files, a big file rewritten in place at
# random blocks, a file rewritten sequentially at full speed, a git
# repository under commit churn, and PostgreSQL under pgbench), backs them
# up K times in every mode (cp -a, restic, kopia, stillpoint live / btrfs /
# btrfs + hold / reflink / inactivity wait / writer), restores and verifies
# every backup, and prints a table of torn restores and writer stalls (also
# written to bench/results/). Exits non-zero when a stillpoint mode restores
# a torn copy it classed whole (silent), or a mode that promises
# point-in-time consistency restores any torn copy.
#
# Needs root (loop mounts, fanotify, PostgreSQL run as its own user). As root
# on Debian it installs what it needs. restic and kopia are built once from
# the Go module proxy (bench/lib.sh) and cached; a missing one is built in the
# background, at low priority, while the other modes run.
set -euo pipefail

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_ROOT=$(cd "$SCRIPT_DIR/.." && pwd)
# shellcheck source=bench/lib.sh
source "$SCRIPT_DIR/lib.sh"

QUICK=0
K=
K_RARE=
WORKLOADS=
MODES=
KEEP=0
WORKDIR=
RESULTS=
SP_BIN=
SP_REV=
BIN_CACHE="${STILLPOINT_BENCH_BIN:-${XDG_CACHE_HOME:-$HOME/.cache}/stillpoint-bench/bin}"
EXTRA=()

usage() {
	cat <<EOF
usage: bench/torture.sh [options] [-- torture-run-flags...]

  --quick            small sizes, 3 backups per workload and mode, 20 for
                     seq-rewrite and git-churn in btrfs and hold only
                     (the CI check; about 10 minutes on 2 cores)
  --k N              backups per workload and mode (default 20, quick 3)
  --k-rare N         backups per snapshot mode (btrfs, hold, reflink, inactivity,
                     writer) of seq-rewrite and git-churn, whose tears show in a
                     few percent of snapshots (default 100, quick 20)
  --workloads LIST   bank-sqlite-rollback,bank-sqlite-wal,bank-files,bank-gaps,big-file,
                     seq-rewrite,git-churn,postgres (default: all)
  --modes LIST       cp,restic,kopia,read,retry,stage,btrfs,hold,reflink,inactivity,
                     writer (default: all)
  --keep             keep the work directory, torn restores included
  --workdir DIR      where the work directory is made (default \${TMPDIR:-/var/tmp});
                     needs room for the repositories and a few restores
  --results FILE     results file (default bench/results/torture-<date>[-quick].md)
  --stillpoint-bin PATH  use this stillpoint instead of building ./cmd/stillpoint
  --bin-cache DIR    where built restic/kopia are cached (default $BIN_CACHE)
  -h, --help         this help

Flags after -- go to \`torture run\` as they are (see \`go run ./bench/torture run -h\`),
e.g. -- -big-mib 256 -pg-scale 5.
EOF
}

die() { echo "torture.sh: error: $*" >&2; exit 1; }
log() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

while [[ $# -gt 0 ]]; do
	case $1 in
	--quick) QUICK=1; shift ;;
	--k) K=${2:?--k needs a value}; shift 2 ;;
	--k=*) K=${1#*=}; shift ;;
	--k-rare) K_RARE=${2:?--k-rare needs a value}; shift 2 ;;
	--k-rare=*) K_RARE=${1#*=}; shift ;;
	--workloads) WORKLOADS=${2:?--workloads needs a value}; shift 2 ;;
	--workloads=*) WORKLOADS=${1#*=}; shift ;;
	--modes) MODES=${2:?--modes needs a value}; shift 2 ;;
	--modes=*) MODES=${1#*=}; shift ;;
	--keep) KEEP=1; shift ;;
	--workdir) WORKDIR=${2:?--workdir needs a value}; shift 2 ;;
	--workdir=*) WORKDIR=${1#*=}; shift ;;
	--results) RESULTS=${2:?--results needs a value}; shift 2 ;;
	--results=*) RESULTS=${1#*=}; shift ;;
	--stillpoint-bin) SP_BIN=${2:?--stillpoint-bin needs a value}; shift 2 ;;
	--stillpoint-bin=*) SP_BIN=${1#*=}; shift ;;
	--bin-cache) BIN_CACHE=${2:?--bin-cache needs a value}; shift 2 ;;
	--bin-cache=*) BIN_CACHE=${1#*=}; shift ;;
	--) shift; EXTRA=("$@"); break ;;
	-h | --help) usage; exit 0 ;;
	*) usage >&2; die "unknown argument: $1" ;;
	esac
done
[[ -z $K || $K =~ ^[1-9][0-9]*$ ]] || die "--k must be a positive integer, got '$K'"
[[ -z $K_RARE || $K_RARE =~ ^[1-9][0-9]*$ ]] || die "--k-rare must be a positive integer, got '$K_RARE'"
[[ $(id -u) -eq 0 ]] || die "needs root (loop mounts, fanotify, PostgreSQL run as its own user)"
command -v go >/dev/null || die "go is not on PATH"
START=$SECONDS

# ---------------------------------------------------------------- tools
W=$(mktemp -d "${TMPDIR:-/tmp}/stillpoint-torture-build.XXXXXX")
mkdir -p "$W/bin" "$W/logs"
BUILD_PIDS=()
cleanup() {
	local rc=$? p
	for p in "${BUILD_PIDS[@]}"; do
		if kill -0 "$p" 2>/dev/null; then
			kill -- -"$p" 2>/dev/null || true
			wait "$p" 2>/dev/null || true
		fi
	done
	rm -rf -- "$W"
	exit "$rc"
}
trap cleanup EXIT
trap 'echo "torture.sh: interrupted" >&2; exit 130' INT TERM

# restic and kopia: cached, or built now in the background (at low priority,
# both at once) while everything else is prepared and the other modes run; the
# harness runs their modes last and waits for the binaries. A failed build
# leaves BINARY.failed, which the harness reports.
want() { [[ -z $MODES || ,$MODES, == *",$1,"* ]]; }
RESTIC=$BIN_CACHE/restic-$RESTIC_VERSION
KOPIA=$BIN_CACHE/kopia-$KOPIA_VERSION
build_bg() { # build_bg restic|kopia
	local out=$BIN_CACHE/$1-$2
	rm -f "$out.failed"
	log "building $1 $2 in the background (once; cached in $BIN_CACHE)"
	# its own process group (setsid), so that cleanup can stop the whole build
	setsid nice -n 19 bash -c '
		log() { printf "[%s] %s\n" "$(date +%H:%M:%S)" "$*" >&2; }
		source "$SCRIPT_DIR/lib.sh"
		"install_$1" >/dev/null || touch "$2.failed"' build "$1" "$out" >"$W/logs/$1.log" 2>&1 &
	BUILD_PIDS+=($!)
}
export W BIN_CACHE SCRIPT_DIR
mkdir -p "$BIN_CACHE"
if want restic && [[ ! -x $RESTIC ]]; then build_bg restic "$RESTIC_VERSION"; fi
if want kopia && [[ ! -x $KOPIA ]]; then build_bg kopia "$KOPIA_VERSION"; fi

# ---------------------------------------------------------------- packages
# git: the git-churn workload; coreutils: yes and dd of the dirty-page pressure
packages=(postgresql btrfs-progs xfsprogs util-linux mount git coreutils)
"$REPO_ROOT/scripts/install-packages" "${packages[@]}"
for t in mkfs.btrfs mkfs.xfs losetup git; do
	command -v "$t" >/dev/null || die "$t is missing (Debian: apt-get install btrfs-progs xfsprogs util-linux git)"
done
compgen -G '/usr/lib/postgresql/*/bin/pgbench' >/dev/null || die "PostgreSQL is missing (Debian: apt-get install postgresql)"

# ---------------------------------------------------------------- build
if [[ -n $SP_BIN ]]; then
	[[ -x $SP_BIN ]] || die "--stillpoint-bin $SP_BIN is not an executable file"
	SP_BIN=$(cd "$(dirname "$SP_BIN")" && pwd)/$(basename "$SP_BIN")
else
	log "building stillpoint"
	(cd "$REPO_ROOT" && go build -o "$W/bin/stillpoint" ./cmd/stillpoint) || die "could not build stillpoint"
	SP_BIN=$W/bin/stillpoint
	SP_REV=$(cd "$REPO_ROOT" && git rev-parse --short HEAD 2>/dev/null)$(cd "$REPO_ROOT" && git diff --quiet HEAD -- 2>/dev/null || echo '+dirty') || SP_REV=
fi
log "building bench/torture"
(cd "$REPO_ROOT" && go build -o "$W/bin/torture" ./bench/torture) || die "could not build bench/torture"

# ---------------------------------------------------------------- run
mkdir -p "$REPO_ROOT/bench/results"
if [[ -z $RESULTS ]]; then
	suffix=
	[[ $QUICK -eq 1 ]] && suffix=-quick
	RESULTS=$REPO_ROOT/bench/results/torture-$(date +%Y-%m-%d)$suffix.md
	[[ -e $RESULTS ]] && RESULTS=${RESULTS%.md}-$(date +%H%M%S).md
fi
CMDLINE="bench/torture.sh"
[[ $QUICK -eq 1 ]] && CMDLINE+=" --quick"
[[ -n $K ]] && CMDLINE+=" --k $K"
[[ -n $K_RARE ]] && CMDLINE+=" --k-rare $K_RARE"
[[ -n $WORKLOADS ]] && CMDLINE+=" --workloads $WORKLOADS"
[[ -n $MODES ]] && CMDLINE+=" --modes $MODES"
((${#EXTRA[@]})) && CMDLINE+=" -- ${EXTRA[*]}"

args=(run -stillpoint "$SP_BIN" -stillpoint-rev "$SP_REV" -restic "$RESTIC" -kopia "$KOPIA" -tool-wait 30m
	-results "$RESULTS" -command "$CMDLINE" -workdir "${WORKDIR:-${TMPDIR:-/var/tmp}}")
[[ $QUICK -eq 1 ]] && args+=(-quick)
[[ -n $K ]] && args+=(-k "$K")
[[ -n $K_RARE ]] && args+=(-k-rare "$K_RARE")
[[ -n $WORKLOADS ]] && args+=(-workloads "$WORKLOADS")
[[ -n $MODES ]] && args+=(-modes "$MODES")
[[ $KEEP -eq 1 ]] && args+=(-keep)
rc=0
"$W/bin/torture" "${args[@]}" "${EXTRA[@]}" || rc=$?
for p in "${BUILD_PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
BUILD_PIDS=()
for t in restic kopia; do
	[[ -s $W/logs/$t.log ]] && sed "s/^/    $t: /" "$W/logs/$t.log" >&2
done
log "torture.sh finished in $((SECONDS - START))s (exit $rc)"
exit "$rc"
