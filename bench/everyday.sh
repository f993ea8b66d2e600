#!/usr/bin/env bash
# bench/everyday.sh: stats, find and dump of stillpoint against restic on
# the same snapshot, in the same run.
#
# Generates bench/gen's many-small set (200,000 files in 6-level
# directories) and one large file (bench/gen's big set), backs both up once
# with each tool, then times, for each tool, RUNS times in rotating order:
#   stats (restore-size), stats --mode raw-data, find with a name pattern,
#   dump of the many-small directory as a tar to /dev/null, and dump of the
#   large file to /dev/null
# recording wall time, CPU time (user+sys) and peak RSS (GNU time). Prints a
# markdown table of the medians with stillpoint/restic ratios.
# See docs/benchmarks.md ("Everyday commands").
set -euo pipefail

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=bench/lib.sh
source "$SCRIPT_DIR/lib.sh"
REPO_ROOT=$(cd "$SCRIPT_DIR/.." && pwd)

FILES=200000
BIG=$((1 << 30))
RUNS=3
WORKDIR=
KEEP=0
DROP_CACHES=0
RESULTS=
SP_BIN=
BIN_CACHE="${STILLPOINT_BENCH_BIN:-${XDG_CACHE_HOME:-$HOME/.cache}/stillpoint-bench/bin}"
PASSWORD=stillpoint-bench-password

usage() {
	cat <<EOF2
usage: bench/everyday.sh [options]

  --files N          files of the many-small set (default: $FILES)
  --big BYTES        size of the large file (default: $BIG)
  --quick            20,000 files and a 256 MiB file
  --runs N           runs per tool and measure; medians are reported (default: $RUNS)
  --workdir DIR      where data, repositories and logs go (default: \${TMPDIR:-/var/tmp})
  --keep             keep the work directory
  --drop-caches      drop the page cache before every measured command (root;
                     default off: the commands are usually run on a warm cache,
                     and dropping it disturbs everything else on the machine)
  --results FILE     also write the report to FILE
  --stillpoint-bin PATH  use this binary instead of building ./cmd/stillpoint
  -h, --help         this help
EOF2
}

die() { echo "everyday.sh: error: $*" >&2; exit 1; }
log() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

while [[ $# -gt 0 ]]; do
	case $1 in
	--files) FILES=${2:?}; shift 2 ;;
	--big) BIG=${2:?}; shift 2 ;;
	--quick) FILES=20000; BIG=$((256 << 20)); shift ;;
	--runs) RUNS=${2:?}; shift 2 ;;
	--workdir) WORKDIR=${2:?}; shift 2 ;;
	--keep) KEEP=1; shift ;;
	--drop-caches) DROP_CACHES=1; shift ;;
	--results) RESULTS=${2:?}; shift 2 ;;
	--stillpoint-bin) SP_BIN=${2:?}; shift 2 ;;
	-h | --help) usage; exit 0 ;;
	*) usage >&2; die "unknown argument: $1" ;;
	esac
done
[[ $RUNS =~ ^[1-9][0-9]*$ ]] || die "--runs must be a positive integer"

TIME_BIN=/usr/bin/time
"$TIME_BIN" -f %e true >/dev/null 2>&1 || die "GNU time is required at $TIME_BIN (Debian: apt-get install time)"
command -v go >/dev/null || die "go is not on PATH"

[[ -n $WORKDIR ]] || WORKDIR=${TMPDIR:-/var/tmp}
mkdir -p "$WORKDIR"
W=$(mktemp -d "$WORKDIR/stillpoint-everyday.XXXXXX")
cleanup() {
	local rc=$?
	if [[ $KEEP -eq 1 ]]; then log "kept $W"; else rm -rf -- "$W"; fi
	exit "$rc"
}
trap cleanup EXIT
trap 'echo "everyday.sh: interrupted" >&2; exit 130' INT TERM
mkdir -p "$W/bin" "$W/logs" "$W/data"

RESTIC=$(install_restic) || die "could not build restic $RESTIC_VERSION"
if [[ -n $SP_BIN ]]; then
	SP=$SP_BIN
	SP_VERSION="($SP_BIN)"
else
	log "building stillpoint and bench/gen"
	(cd "$REPO_ROOT" && go build -o "$W/bin/stillpoint" ./cmd/stillpoint && go build -o "$W/bin/gen" ./bench/gen) >"$W/logs/build.log" 2>&1 ||
		{ cat "$W/logs/build.log" >&2; die "build failed"; }
	SP=$W/bin/stillpoint
	SP_VERSION="$(cd "$REPO_ROOT" && git rev-parse --short HEAD)$(cd "$REPO_ROOT" && git diff --quiet HEAD -- cmd internal 2>/dev/null || echo '+dirty')"
fi
[[ -x $W/bin/gen ]] || (cd "$REPO_ROOT" && go build -o "$W/bin/gen" ./bench/gen) || die "could not build bench/gen"

SMALL=$W/data/small
BIGDIR=$W/data/big
log "generating $FILES small files and a $((BIG >> 20)) MiB file"
"$W/bin/gen" create -set many-small -out "$SMALL" -files "$FILES" >&2
"$W/bin/gen" create -set big -out "$BIGDIR" -size "$BIG" >&2
BIGFILE=$(find "$BIGDIR" -type f | head -n 1)
# a name that occurs a few times: every file whose number ends in 4242
PATTERN='file*4242.*'

export RESTIC_PASSWORD=$PASSWORD RESTIC_REPOSITORY=$W/restic RESTIC_CACHE_DIR=$W/restic-cache
export STILLPOINT_PASSWORD=$PASSWORD STILLPOINT_REPOSITORY=$W/stillpoint
log "backing up with restic $RESTIC_VERSION"
"$RESTIC" init >"$W/logs/restic-init.log" 2>&1
"$RESTIC" backup --host bench "$W/data" >"$W/logs/restic-backup.log" 2>&1 || die "restic backup failed (see $W/logs)"
log "backing up with stillpoint"
"$SP" init >"$W/logs/sp-init.log" 2>&1
"$SP" backup --quiet --snapshot off "$W/data" >"$W/logs/sp-backup.log" 2>&1 || die "stillpoint backup failed (see $W/logs)"

# cmd TOOL MEASURE: the command, one word a line
cmd() {
	case $1.$2 in
	restic.stats) printf '%s\n' "$RESTIC" stats latest ;;
	restic.raw) printf '%s\n' "$RESTIC" stats --mode raw-data latest ;;
	restic.find) printf '%s\n' "$RESTIC" find "$PATTERN" ;;
	restic.tar) printf '%s\n' "$RESTIC" dump latest "$SMALL" ;;
	restic.file) printf '%s\n' "$RESTIC" dump latest "$BIGFILE" ;;
	stillpoint.stats) printf '%s\n' "$SP" stats latest ;;
	stillpoint.raw) printf '%s\n' "$SP" stats --mode raw-data latest ;;
	stillpoint.find) printf '%s\n' "$SP" find "$PATTERN" ;;
	stillpoint.tar) printf '%s\n' "$SP" dump latest "$SMALL" ;;
	stillpoint.file) printf '%s\n' "$SP" dump latest "$BIGFILE" ;;
	esac
}
title() {
	case $1 in
	stats) echo "stats (restore-size)" ;;
	raw) echo "stats --mode raw-data" ;;
	find) echo "find '$PATTERN'" ;;
	tar) echo "dump of the $FILES-file directory as tar" ;;
	file) echo "dump of one $((BIG >> 20)) MiB file" ;;
	esac
}
MEASURES=(stats raw find tar file)
TOOLS=(restic stillpoint)
RAW=$W/raw.tsv
: >"$RAW"

drop() {
	[[ $DROP_CACHES -eq 1 ]] || return 0
	sync
	echo 3 >/proc/sys/vm/drop_caches || die "cannot drop caches (not root?)"
}

# the output of stats and find must agree between the tools: check once
"$SP" --json stats latest >"$W/logs/sp-stats.json"
"$RESTIC" --json stats latest >"$W/logs/restic-stats.json"
"$SP" find "$PATTERN" | grep -c '^  ' >"$W/logs/sp-find.count" || true
"$RESTIC" find "$PATTERN" | grep -c "^/" >"$W/logs/restic-find.count" || true
log "find matches: stillpoint $(cat "$W/logs/sp-find.count"), restic $(cat "$W/logs/restic-find.count")"
cmp <("$SP" dump latest "$BIGFILE") "$BIGFILE" || die "stillpoint's dump of the large file differs from it"

START=$(date -u '+%Y-%m-%d %H:%M:%S UTC')
LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)
for ((run = 1; run <= RUNS; run++)); do
	for m in "${MEASURES[@]}"; do
		order=("${TOOLS[@]}")
		((run % 2 == 0)) && order=(stillpoint restic)
		for t in "${order[@]}"; do
			mapfile -t c < <(cmd "$t" "$m")
			drop
			if "$TIME_BIN" -f '%e %U %S %M' -o "$W/logs/time" "${c[@]}" >/dev/null 2>"$W/logs/$t-$m-$run.err"; then
				read -r wall user sys rss <"$W/logs/time"
				printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$m" "$t" "$run" "$wall" "$(awk -v u="$user" -v s="$sys" 'BEGIN{print u+s}')" "$rss" >>"$RAW"
				log "$t $m run $run: wall ${wall}s cpu ${user}+${sys}s rss $((rss / 1024)) MiB"
			else
				log "$t $m run $run FAILED: $(tail -n 2 "$W/logs/$t-$m-$run.err")"
			fi
		done
	done
done
END=$(date -u '+%Y-%m-%d %H:%M:%S UTC')
LOAD_END=$(cut -d' ' -f1-3 /proc/loadavg)

med() { # med MEASURE TOOL COLUMN
	awk -F'\t' -v m="$1" -v t="$2" -v c="$3" '$1==m && $2==t {print $c}' "$RAW" | sort -g |
		awk '{a[NR]=$1} END{ if (NR==0) exit; if (NR%2) print a[(NR+1)/2]; else print (a[NR/2]+a[NR/2+1])/2 }'
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN{ if (a=="" || b=="" || b==0) print "–"; else printf "%.2f×", a/b }'; }

CMDLINE="bench/everyday.sh --files $FILES --big $BIG --runs $RUNS"
[[ $DROP_CACHES -eq 1 ]] && CMDLINE+=" --drop-caches"
REPORT=$W/report.md
{
	echo "- command: \`$CMDLINE\`; started $START (load $LOAD_START), finished $END (load $LOAD_END)"
	echo "- machine: $(nproc) cores ($(awk -F': ' '/model name/{print $2; exit}' /proc/cpuinfo)), $(uname -sr); $(go version | sed 's/^go version //')"
	echo "- restic $("$RESTIC" version | awk '{print $2}'), stillpoint $SP_VERSION; page cache $([[ $DROP_CACHES -eq 1 ]] && echo dropped before each command || echo warm)"
	echo "- restore-size: stillpoint $(grep -o '"files":[0-9]*' "$W/logs/sp-stats.json" | head -n 1) $(grep -o '"bytes":[0-9]*' "$W/logs/sp-stats.json" | head -n 1), restic $(grep -o '"total_file_count":[0-9]*' "$W/logs/restic-stats.json") $(grep -o '"total_size":[0-9]*' "$W/logs/restic-stats.json") (restic counts directories as files); find matches: stillpoint $(cat "$W/logs/sp-find.count"), restic $(cat "$W/logs/restic-find.count")"
	echo "- medians of $RUNS runs; wall and CPU (user+sys) in seconds, peak RSS in MiB"
	echo
	echo "| command | restic wall | stillpoint wall | **wall ratio** | restic CPU | stillpoint CPU | CPU ratio | restic RSS | stillpoint RSS |"
	echo "|---|--:|--:|--:|--:|--:|--:|--:|--:|"
	for m in "${MEASURES[@]}"; do
		rw=$(med "$m" restic 4) sw=$(med "$m" stillpoint 4) rc=$(med "$m" restic 5) sc=$(med "$m" stillpoint 5)
		rr=$(med "$m" restic 6) sr=$(med "$m" stillpoint 6)
		echo "| $(title "$m") | $rw | $sw | **$(ratio "$sw" "$rw")** | $rc | $sc | $(ratio "$sc" "$rc") | $(awk -v k="$rr" 'BEGIN{printf "%.0f", k/1024}') | $(awk -v k="$sr" 'BEGIN{printf "%.0f", k/1024}') |"
	done
} >"$REPORT"
echo
cat "$REPORT"
[[ -n $RESULTS ]] && cp "$REPORT" "$RESULTS"
log "done"
