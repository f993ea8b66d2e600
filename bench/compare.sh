#!/usr/bin/env bash
# bench/compare.sh: side-by-side benchmark of stillpoint, restic and kopia.
#
# Builds pinned releases of restic and kopia from the Go module proxy (cached),
# builds stillpoint from this work tree, generates deterministic data sets with
# bench/gen, and measures for every tool on the same data:
#   initial backup, unchanged incremental, incremental after ~1% change,
#   full restore, full read-back check (check --read-data or equivalent)
# recording wall time, CPU time (user+sys), peak RSS (GNU time) and repository
# size (du -sb). Prints markdown tables of the medians and writes them to
# bench/results/<date>.md. See docs/benchmarks.md.
set -euo pipefail

# ---------------------------------------------------------------- pinned tools
# RESTIC_VERSION, KOPIA_VERSION and install_restic / install_kopia (which
# build them once and cache them) are in lib.sh, shared with torture.sh.
SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=bench/lib.sh
source "$SCRIPT_DIR/lib.sh"

# ---------------------------------------------------------------- defaults
ALL_TOOLS=(restic kopia stillpoint)
ALL_SETS=(mixed many-small big)
ALL_PROFILES=(default fastest)
TOOLS=restic,kopia,stillpoint
SETS=mixed,many-small,big
PROFILES=default,fastest
RUNS=3
QUICK=0
WORKDIR=
KEEP=0
SEED=1
MUTATE_SEED=1001
VERIFY_RESTORE=1
RESULTS=
WARM=0
PHASES_ARG=
if [[ $(id -u) -eq 0 ]]; then DROP_CACHES=1; else DROP_CACHES=0; fi
BIN_CACHE="${STILLPOINT_BENCH_BIN:-${XDG_CACHE_HOME:-$HOME/.cache}/stillpoint-bench/bin}"
PASSWORD=stillpoint-bench-password
SP_BIN=

REPO_ROOT=$(cd "$SCRIPT_DIR/.." && pwd)

usage() {
	cat <<EOF
usage: bench/compare.sh [options]

  --tools LIST       tools to compare (default: $TOOLS)
  --sets LIST        data sets: mixed, many-small, big (default: $SETS)
  --profiles LIST    compression profiles: default, fastest (default: $PROFILES)
                       default: stillpoint default, restic --compression auto,
                                kopia zstd
                       fastest: stillpoint --compression fastest (skipped if
                                unsupported), restic --compression fastest,
                                kopia zstd-fastest
  --runs N           runs per tool and measure; the median is reported (default: $RUNS)
  --quick            small data sets (mixed 200 MiB, many-small 20,000 files,
                     big 512 MiB)
  --workdir DIR      where data, repositories and restores go (one disk);
                     a fresh subdirectory is created and removed afterwards
                     (default: \${TMPDIR:-/var/tmp})
  --keep             keep the work subdirectory (for debugging)
  --[no-]drop-caches drop the page cache before every measured command
                     (default: on when running as root)
  --warm             warm-cache runs: do not drop the page cache, and read the
                     data set (and, for restore and check, the tool's
                     repository) into it before every measured command
  --phases LIST      measures to run, in their fixed order: initial,
                     unchanged, changed, restore, check (default: all); initial
                     is always run, the others need its snapshot.
                     E.g. --warm --phases initial --sets mixed for the
                     initial backup alone
  --no-verify-restore  skip the (untimed) diff of restored data against the source
  --seed N           data set seed (default: $SEED)
  --results FILE     results file (default: bench/results/<date>.md)
  --stillpoint-bin PATH  use this stillpoint binary instead of building
                     ./cmd/stillpoint from the work tree
  --bin-cache DIR    where built restic/kopia binaries are cached
                     (default: $BIN_CACHE)
  -h, --help         this help

Passwords are passed via RESTIC_PASSWORD, KOPIA_PASSWORD and
STILLPOINT_PASSWORD (set here to a fixed benchmark password).
EOF
}

die() { echo "compare.sh: error: $*" >&2; exit 1; }
log() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
warn() { printf '[%s] WARNING: %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

contains() { # contains WORD LIST...
	local w=$1; shift
	local x
	for x in "$@"; do [[ $x == "$w" ]] && return 0; done
	return 1
}

while [[ $# -gt 0 ]]; do
	case $1 in
	--tools) TOOLS=${2:?--tools needs a value}; shift 2 ;;
	--tools=*) TOOLS=${1#*=}; shift ;;
	--sets) SETS=${2:?--sets needs a value}; shift 2 ;;
	--sets=*) SETS=${1#*=}; shift ;;
	--profiles) PROFILES=${2:?--profiles needs a value}; shift 2 ;;
	--profiles=*) PROFILES=${1#*=}; shift ;;
	--runs) RUNS=${2:?--runs needs a value}; shift 2 ;;
	--runs=*) RUNS=${1#*=}; shift ;;
	--quick) QUICK=1; shift ;;
	--workdir) WORKDIR=${2:?--workdir needs a value}; shift 2 ;;
	--workdir=*) WORKDIR=${1#*=}; shift ;;
	--keep) KEEP=1; shift ;;
	--drop-caches) DROP_CACHES=1; shift ;;
	--no-drop-caches) DROP_CACHES=0; shift ;;
	--warm) WARM=1; shift ;;
	--phases) PHASES_ARG=${2:?--phases needs a value}; shift 2 ;;
	--phases=*) PHASES_ARG=${1#*=}; shift ;;
	--no-verify-restore) VERIFY_RESTORE=0; shift ;;
	--seed) SEED=${2:?--seed needs a value}; shift 2 ;;
	--seed=*) SEED=${1#*=}; shift ;;
	--results) RESULTS=${2:?--results needs a value}; shift 2 ;;
	--results=*) RESULTS=${1#*=}; shift ;;
	--stillpoint-bin) SP_BIN=${2:?--stillpoint-bin needs a value}; shift 2 ;;
	--stillpoint-bin=*) SP_BIN=${1#*=}; shift ;;
	--bin-cache) BIN_CACHE=${2:?--bin-cache needs a value}; shift 2 ;;
	--bin-cache=*) BIN_CACHE=${1#*=}; shift ;;
	-h | --help) usage; exit 0 ;;
	*) usage >&2; die "unknown argument: $1" ;;
	esac
done

[[ $RUNS =~ ^[1-9][0-9]*$ ]] || die "--runs must be a positive integer, got '$RUNS'"
[[ $SEED =~ ^[0-9]+$ ]] || die "--seed must be a non-negative integer, got '$SEED'"
IFS=, read -r -a TOOL_LIST <<<"$TOOLS"
IFS=, read -r -a SET_LIST <<<"$SETS"
IFS=, read -r -a PROFILE_LIST <<<"$PROFILES"
for t in "${TOOL_LIST[@]}"; do contains "$t" "${ALL_TOOLS[@]}" || die "unknown tool '$t' (known: ${ALL_TOOLS[*]})"; done
for s in "${SET_LIST[@]}"; do contains "$s" "${ALL_SETS[@]}" || die "unknown data set '$s' (known: ${ALL_SETS[*]})"; done
for p in "${PROFILE_LIST[@]}"; do contains "$p" "${ALL_PROFILES[@]}" || die "unknown profile '$p' (known: ${ALL_PROFILES[*]})"; done
[[ ${#TOOL_LIST[@]} -gt 0 ]] || die "no tools selected"

command -v go >/dev/null || die "go is not on PATH"

# ---------------------------------------------------------------- GNU time
TIME_BIN=/usr/bin/time
if ! "$TIME_BIN" -f %e true >/dev/null 2>&1; then
	"$REPO_ROOT/scripts/install-packages" time || die "could not install GNU time"
	"$TIME_BIN" -f %e true >/dev/null 2>&1 || die "GNU time is required at $TIME_BIN (Debian: apt-get install time)"
fi

# ---------------------------------------------------------------- work dir
if [[ -z $WORKDIR ]]; then WORKDIR=${TMPDIR:-/var/tmp}; fi
mkdir -p "$WORKDIR" || die "cannot create --workdir $WORKDIR"
W=$(mktemp -d "$WORKDIR/stillpoint-bench.XXXXXX") || die "cannot create a directory in $WORKDIR"
cleanup() {
	local rc=$?
	if [[ $KEEP -eq 1 ]]; then
		log "kept work directory $W"
	elif [[ -n ${W:-} && -d $W ]]; then
		rm -rf -- "$W" || warn "could not remove $W"
	fi
	exit "$rc"
}
trap cleanup EXIT
trap 'echo "compare.sh: interrupted" >&2; exit 130' INT TERM
mkdir -p "$W/bin" "$W/logs"
RAW=$W/raw.tsv
: >"$RAW"

# ---------------------------------------------------------------- build tools
declare -A BIN VERSION
ACTIVE_TOOLS=()
NOTES=()
for t in "${TOOL_LIST[@]}"; do
	case $t in
	restic)
		BIN[restic]=$(install_restic) || die "could not build restic $RESTIC_VERSION (see above)"
		VERSION[restic]=$("${BIN[restic]}" version | awk '{print $2}')
		;;
	kopia)
		BIN[kopia]=$(install_kopia) || die "could not build kopia $KOPIA_VERSION (see above)"
		VERSION[kopia]=$("${BIN[kopia]}" --version 2>&1 | awk '{sub(/^v/, "", $1); print $1}')
		;;
	stillpoint)
		if [[ -n $SP_BIN ]]; then
			[[ -x $SP_BIN ]] || die "--stillpoint-bin $SP_BIN is not an executable file"
			BIN[stillpoint]=$(cd "$(dirname "$SP_BIN")" && pwd)/$(basename "$SP_BIN")
			VERSION[stillpoint]="($SP_BIN)"
			ACTIVE_TOOLS+=("$t")
			continue
		fi
		log "building stillpoint from $REPO_ROOT"
		if (cd "$REPO_ROOT" && go build -o "$W/bin/stillpoint" ./cmd/stillpoint) >"$W/logs/build-stillpoint.log" 2>&1; then
			BIN[stillpoint]=$W/bin/stillpoint
			VERSION[stillpoint]="$(cd "$REPO_ROOT" && git rev-parse --short HEAD 2>/dev/null || echo unknown)$(cd "$REPO_ROOT" && git diff --quiet HEAD -- 2>/dev/null || echo '+dirty')"
		else
			warn "stillpoint does not build yet; continuing without it. Build output:"
			sed 's/^/    /' "$W/logs/build-stillpoint.log" | head -n 20 >&2
			NOTES+=("stillpoint was skipped: \`go build ./cmd/stillpoint\` failed ($(head -n 1 "$W/logs/build-stillpoint.log"))")
			continue
		fi
		;;
	esac
	ACTIVE_TOOLS+=("$t")
done
[[ ${#ACTIVE_TOOLS[@]} -gt 0 ]] || die "no tool left to benchmark"
for t in "${ACTIVE_TOOLS[@]}"; do log "tool: $t ${VERSION[$t]} (${BIN[$t]})"; done

STILLPOINT_HAS_COMPRESSION=0
if [[ -n ${BIN[stillpoint]:-} ]] && "${BIN[stillpoint]}" backup --help 2>&1 | grep -q -- '--compression'; then
	STILLPOINT_HAS_COMPRESSION=1
fi

log "building bench/gen"
(cd "$REPO_ROOT" && go build -o "$W/bin/gen" ./bench/gen) >"$W/logs/build-gen.log" 2>&1 ||
	{ cat "$W/logs/build-gen.log" >&2; die "could not build bench/gen"; }
GEN=$W/bin/gen

# ---------------------------------------------------------------- helpers
drop_caches() {
	[[ $DROP_CACHES -eq 1 ]] || return 0
	sync
	if ! echo 3 >/proc/sys/vm/drop_caches 2>/dev/null; then
		warn "cannot write /proc/sys/vm/drop_caches; continuing without dropping caches"
		DROP_CACHES=0
		NOTES+=("page cache could NOT be dropped (no permission); all phases ran with a warm cache")
	fi
}

set_args() { # set_args SET -> gen create arguments
	case $1 in
	mixed) if [[ $QUICK -eq 1 ]]; then echo "-size $((200 << 20)) -files 2000"; else echo "-size $((1 << 30)) -files 10000"; fi ;;
	many-small) if [[ $QUICK -eq 1 ]]; then echo "-files 20000"; else echo "-files 200000"; fi ;;
	big) if [[ $QUICK -eq 1 ]]; then echo "-size $((512 << 20))"; else echo "-size $((4 << 30))"; fi ;;
	esac
}

# tool_env TOOL: the environment every command of TOOL runs with.
tool_env() {
	local t=$1 d=$W/t/$1
	case $t in
	restic) echo "RESTIC_PASSWORD=$PASSWORD RESTIC_CACHE_DIR=$d/cache" ;;
	kopia) echo "KOPIA_PASSWORD=$PASSWORD KOPIA_CHECK_FOR_UPDATES=false KOPIA_CONFIG_PATH=$d/config/repository.config KOPIA_CACHE_DIRECTORY=$d/cache KOPIA_LOG_DIR=$d/logs KOPIA_PERSIST_CREDENTIALS_ON_CONNECT=false KOPIA_USE_KEYRING=false" ;;
	stillpoint) echo "STILLPOINT_PASSWORD=$PASSWORD" ;;
	esac
}

# tool_cmd TOOL PROFILE ACTION DATA TARGET: prints the command, one word a line.
tool_cmd() {
	local t=$1 prof=$2 action=$3 data=$4 target=$5 d=$W/t/$1
	local repo=$d/repo
	case $t in
	restic)
		local comp=auto
		[[ $prof == fastest ]] && comp=fastest
		case $action in
		init) printf '%s\n' "${BIN[restic]}" init --repo "$repo" --cache-dir "$d/cache" ;;
		policy) ;;
		backup) printf '%s\n' "${BIN[restic]}" backup --repo "$repo" --cache-dir "$d/cache" --compression "$comp" --host bench "$data" ;;
		restore) printf '%s\n' "${BIN[restic]}" restore --repo "$repo" --cache-dir "$d/cache" "latest:$data" --target "$target" ;;
		check) printf '%s\n' "${BIN[restic]}" check --repo "$repo" --cache-dir "$d/cache" --read-data ;;
		esac
		;;
	kopia)
		local comp=zstd
		[[ $prof == fastest ]] && comp=zstd-fastest
		case $action in
		init) printf '%s\n' "${BIN[kopia]}" repository create filesystem --path "$repo" --cache-directory "$d/cache" ;;
		policy) printf '%s\n' "${BIN[kopia]}" policy set --global "--compression=$comp" ;;
		backup) printf '%s\n' "${BIN[kopia]}" snapshot create --no-progress "$data" ;;
		restore) printf '%s\n' "${BIN[kopia]}" snapshot restore --no-progress "$data" "$target" ;;
		check) printf '%s\n' "${BIN[kopia]}" snapshot verify --no-progress --verify-files-percent=100 ;;
		esac
		;;
	stillpoint)
		local comp=()
		[[ $prof == fastest ]] && comp=(--compression fastest)
		case $action in
		init) printf '%s\n' "${BIN[stillpoint]}" init --repo "$repo" ;;
		policy) ;;
		backup) printf '%s\n' "${BIN[stillpoint]}" backup --repo "$repo" --quiet "${comp[@]}" "$data" ;;
		restore) printf '%s\n' "${BIN[stillpoint]}" restore --repo "$repo" latest --target "$target" ;;
		check) printf '%s\n' "${BIN[stillpoint]}" check --repo "$repo" --read-data ;;
		esac
		;;
	esac
}

# run_tool LOG TOOL PROFILE ACTION DATA TARGET [timed]: runs one command with the
# tool's environment, output to LOG; when timed, GNU time writes $LOG.time.
run_tool() {
	local logf=$1 t=$2 prof=$3 action=$4 data=$5 target=$6 timed=${7:-}
	local -a cmd envv
	mapfile -t cmd < <(tool_cmd "$t" "$prof" "$action" "$data" "$target")
	[[ ${#cmd[@]} -gt 0 ]] || return 0
	read -r -a envv <<<"$(tool_env "$t")"
	{ printf '$'; printf ' %q' "${cmd[@]}"; printf '\n'; } >>"$logf"
	if [[ -n $timed ]]; then
		env "${envv[@]}" "$TIME_BIN" -f '%e %U %S %M %I %O' -o "$logf.time" "${cmd[@]}" >>"$logf" 2>&1
	else
		env "${envv[@]}" "${cmd[@]}" >>"$logf" 2>&1
	fi
}

# record SET PROFILE TOOL PHASE RUN STATUS TIMEFILE REPOBYTES
record() {
	local wall=- user=- sys=- rss=- rin=- rout=-
	if [[ $6 == ok && -s $7 ]]; then
		read -r wall user sys rss rin rout < <(tail -n 1 "$7")
	fi
	printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "$4" "$5" "$6" \
		"$wall" "$user" "$sys" "$rss" "$rin" "$rout" "$8" >>"$RAW"
}

# find_restored TARGET DATA: the directory inside TARGET that mirrors DATA.
find_restored() {
	local target=$1 data=$2 c first
	first=$(find "$data" -mindepth 1 -maxdepth 1 -printf '%f\n' | sort | head -n 1)
	for c in "$target" "$target$data" "$target/$(basename "$data")"; do
		if [[ -e $c/$first ]]; then
			echo "$c"
			return 0
		fi
	done
	return 1
}

ALL_PHASES=(initial unchanged changed restore check)
PHASES=("${ALL_PHASES[@]}")
if [[ -n $PHASES_ARG ]]; then
	IFS=, read -r -a want <<<"$PHASES_ARG"
	for p in "${want[@]}"; do contains "$p" "${ALL_PHASES[@]}" || die "unknown measure '$p' in --phases (known: ${ALL_PHASES[*]})"; done
	PHASES=(initial)
	for p in "${ALL_PHASES[@]:1}"; do contains "$p" "${want[@]}" && PHASES+=("$p"); done
fi
[[ $WARM -eq 1 ]] && DROP_CACHES=0

# warm_cache DIR...: reads every file below the directories into the page
# cache (--warm).
warm_cache() {
	[[ $WARM -eq 1 ]] || return 0
	local d
	for d in "$@"; do
		[[ -d $d ]] && find "$d" -type f -print0 | xargs -0 -r cat >/dev/null
	done
	return 0
}
phase_title() {
	case $1 in
	initial) echo "initial backup" ;;
	unchanged) echo "incremental, unchanged" ;;
	changed) echo "incremental, ~1% changed" ;;
	restore) echo "full restore" ;;
	check) echo "check, read all data" ;;
	esac
}

declare -A SET_INFO
SP_NOCOMP=0
declare -A FAILED

# ---------------------------------------------------------------- main loop
START_TIME=$(date -u '+%Y-%m-%d %H:%M:%S UTC')
LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)
for set in "${SET_LIST[@]}"; do
	data=$W/data/$set
	for pi in "${!PROFILE_LIST[@]}"; do
		prof=${PROFILE_LIST[$pi]}
		for ((run = 1; run <= RUNS; run++)); do
			# rotate the tool order every run so no tool always goes first
			order=()
			n=${#ACTIVE_TOOLS[@]}
			for ((i = 0; i < n; i++)); do order+=("${ACTIVE_TOOLS[$(((i + run - 1 + pi) % n))]}"); done
			log "== $set / $prof / run $run of $RUNS (order: ${order[*]})"

			rm -rf -- "$data" "$W/t"
			mkdir -p "$W/data"
			# shellcheck disable=SC2046
			geninfo=$("$GEN" create -set "$set" -out "$data" -seed "$SEED" $(set_args "$set")) ||
				die "bench/gen create failed for $set"
			log "$geninfo"
			SET_INFO[$set]=$(sed -E 's/^gen: //; s/ in [0-9.]+s .*$//' <<<"$geninfo")

			active=()
			for t in "${order[@]}"; do
				if [[ $prof == fastest && $t == stillpoint && $STILLPOINT_HAS_COMPRESSION -eq 0 ]]; then
					log "stillpoint has no --compression flag; skipping it in the 'fastest' profile"
					SP_NOCOMP=1
					continue
				fi
				mkdir -p "$W/t/$t/cache" "$W/t/$t/config" "$W/t/$t/logs"
				logf=$W/logs/$set-$prof-$run-$t.log
				if run_tool "$logf" "$t" "$prof" init "$data" "" && run_tool "$logf" "$t" "$prof" policy "$data" ""; then
					active+=("$t")
				else
					warn "$t: init failed (log: $logf); skipping $t for this run"
					tail -n 5 "$logf" | sed 's/^/    /' >&2
					FAILED[$t]=1
					for ph in "${PHASES[@]}"; do record "$set" "$prof" "$t" "$ph" "$run" fail "" -; done
				fi
			done

			for ph in "${PHASES[@]}"; do
				if [[ $ph == changed ]]; then
					mutinfo=$("$GEN" mutate -dir "$data" -seed "$MUTATE_SEED") || die "bench/gen mutate failed"
					log "$mutinfo"
					SET_INFO[$set.mutate]=${mutinfo#mutate: }
				fi
				still=()
				for t in "${active[@]}"; do
					logf=$W/logs/$set-$prof-$run-$t.log
					target=$W/restore/$t
					action=$ph
					case $ph in initial | unchanged | changed) action=backup ;; esac
					rm -rf -- "$W/restore"
					[[ $ph == restore ]] && mkdir -p "$W/restore"
					drop_caches
					case $ph in
					restore | check) warm_cache "$W/t/$t/repo" ;;
					*) warm_cache "$data" ;;
					esac
					rm -f "$logf.time"
					if run_tool "$logf" "$t" "$prof" "$action" "$data" "$target" timed; then
						status=ok
					else
						status=fail
					fi
					size=-
					[[ $action == backup ]] && { size=$(du -sb "$W/t/$t/repo" 2>/dev/null | cut -f1) || size=-; }
					if [[ $status == ok && $ph == restore && $VERIFY_RESTORE -eq 1 ]]; then
						if root=$(find_restored "$target" "$data") && diff -rq --no-dereference "$data" "$root" >"$logf.diff" 2>&1; then
							:
						else
							warn "$t: restored data differs from the source (see $logf.diff); counting the restore as failed"
							head -n 5 "$logf.diff" 2>/dev/null | sed 's/^/    /' >&2 || true
							status=fail
						fi
					fi
					rm -rf -- "$W/restore"
					record "$set" "$prof" "$t" "$ph" "$run" "$status" "$logf.time" "$size"
					if [[ $status == ok ]]; then
						read -r wall user sys rss _ < "$logf.time" || true
						msg="$t $ph: wall ${wall}s cpu $(awk -v u="$user" -v s="$sys" 'BEGIN{printf "%.2f", u+s}')s rss $((rss / 1024))MiB"
						[[ $size != - ]] && msg+=" repo $((size >> 20))MiB"
						log "$msg"
						still+=("$t")
					else
						warn "$t: $ph failed (log: $logf); skipping its remaining phases in this run"
						tail -n 5 "$logf" | sed 's/^/    /' >&2
						FAILED[$t]=1
						skip=0
						for p2 in "${PHASES[@]}"; do
							[[ $skip -eq 1 ]] && record "$set" "$prof" "$t" "$p2" "$run" fail "" -
							[[ $p2 == "$ph" ]] && skip=1
						done
					fi
				done
				active=("${still[@]}")
				[[ ${#active[@]} -gt 0 ]] || break
			done
			rm -rf -- "$W/t" "$W/restore"
		done
	done
	rm -rf -- "$data"
done
END_TIME=$(date -u '+%Y-%m-%d %H:%M:%S UTC')
LOAD_END=$(cut -d' ' -f1-3 /proc/loadavg)

# ---------------------------------------------------------------- report
median() { # stdin: numbers, one a line
	sort -g | awk '{a[NR]=$1} END{ if (NR==0) exit; if (NR%2) print a[(NR+1)/2]; else print (a[NR/2]+a[NR/2+1])/2 }'
}
# stat SET PROFILE TOOL PHASE FIELD -> median over ok runs (empty if none)
mstat() {
	awk -F'\t' -v s="$1" -v p="$2" -v t="$3" -v ph="$4" -v f="$5" '
		$1==s && $2==p && $3==t && $4==ph && $6=="ok" {
			if (f=="cpu") print $8+$9; else if (f=="wall") print $7;
			else if (f=="rss") print $10/1024; else if (f=="repo" && $13!="-") print $13/1048576 }' "$RAW" | median
}
okcount() {
	awk -F'\t' -v s="$1" -v p="$2" -v t="$3" -v ph="$4" '$1==s && $2==p && $3==t && $4==ph { n++; if ($6=="ok") k++ } END { printf "%d/%d", k, n }' "$RAW"
}
fmt() { # fmt VALUE DECIMALS
	if [[ -z $1 ]]; then echo "–"; else awk -v v="$1" -v d="$2" 'BEGIN{printf "%.*f", d, v}'; fi
}
ratio() {
	if [[ -z $1 || -z $2 ]]; then echo "–"; else awk -v a="$1" -v b="$2" 'BEGIN{ if (b==0) print "–"; else printf "%.2f×", a/b }'; fi
}
profile_desc() {
	case $1 in
	default) echo "stillpoint default, restic \`--compression auto\`, kopia \`--compression=zstd\`" ;;
	fastest) echo "stillpoint \`--compression fastest\`, restic \`--compression fastest\`, kopia \`--compression=zstd-fastest\`" ;;
	esac
}
label() {
	case $1 in
	restic) echo "restic ${VERSION[restic]}" ;;
	kopia) echo "kopia ${VERSION[kopia]}" ;;
	stillpoint) echo "stillpoint ${VERSION[stillpoint]}" ;;
	esac
}

mkdir -p "$REPO_ROOT/bench/results"
if [[ -z $RESULTS ]]; then
	RESULTS=$REPO_ROOT/bench/results/$(date +%Y-%m-%d).md
	[[ -e $RESULTS ]] && RESULTS=$REPO_ROOT/bench/results/$(date +%Y-%m-%d-%H%M%S).md
fi

CMDLINE="bench/compare.sh"
[[ $QUICK -eq 1 ]] && CMDLINE+=" --quick"
CMDLINE+=" --tools $TOOLS --sets $SETS --profiles $PROFILES --runs $RUNS"
[[ $SEED != 1 ]] && CMDLINE+=" --seed $SEED"
[[ $WARM -eq 1 ]] && CMDLINE+=" --warm"
[[ -n $PHASES_ARG ]] && CMDLINE+=" --phases $(IFS=,; echo "${PHASES[*]}")"

{
	echo "## Results: $(date +%Y-%m-%d)"
	echo
	echo "- command: \`$CMDLINE\`$([[ $QUICK -eq 1 ]] && echo ' (quick sizes)')"
	echo "- started $START_TIME (load average $LOAD_START), finished $END_TIME (load average $LOAD_END); other work on the machine skews wall times"
	echo "- machine: $(nproc) cores ($(awk -F': ' '/model name/{print $2; exit}' /proc/cpuinfo 2>/dev/null || echo unknown CPU)), $(awk '/MemTotal/{printf "%.0f GiB", $2/1048576}' /proc/meminfo) RAM, $(uname -sr), work dir on $(df -T "$WORKDIR" | awk 'NR==2{print $2}') ($(df -h "$WORKDIR" | awk 'NR==2{print $1}'))"
	echo "- $(go version | sed 's/^go version //')"
	echo "- tools: $(for t in "${ACTIVE_TOOLS[@]}"; do printf '%s; ' "$(label "$t")"; done | sed 's/; $//')"
	echo "- page cache dropped before every measured command: $([[ $DROP_CACHES -eq 1 ]] && echo yes || echo no)$([[ $WARM -eq 1 ]] && echo '; warm: the data set (restore, check: the repository) read into it before every measured command')"
	echo "- $RUNS run(s) per tool and measure, tool order rotated every run; figures are medians of the successful runs"
	echo "- wall and CPU (user+sys) in seconds, peak RSS in MiB (GNU time), repository size in MiB (\`du -sb\` after that backup)"
	for n in "${NOTES[@]}"; do echo "- NOTE: $n"; done
	[[ $SP_NOCOMP -eq 1 ]] && echo "- NOTE: stillpoint has no \`--compression\` flag yet, so it is missing from the 'fastest' profile"
	echo
	for set in "${SET_LIST[@]}"; do
		echo "### data set ${SET_INFO[$set]:-$set (not generated)}"
		echo
		[[ -n ${SET_INFO[$set.mutate]:-} ]] && echo "Change before the third backup: ${SET_INFO[$set.mutate]}." && echo
		for prof in "${PROFILE_LIST[@]}"; do
			echo "#### $set, compression profile '$prof' ($(profile_desc "$prof"))"
			echo
			echo "| measure | tool | wall s | CPU s | peak RSS MiB | repo MiB | ok runs |"
			echo "|---|---|--:|--:|--:|--:|--:|"
			for ph in "${PHASES[@]}"; do
				declare -A M=()
				for t in "${ACTIVE_TOOLS[@]}"; do
					for f in wall cpu rss repo; do M[$t.$f]=$(mstat "$set" "$prof" "$t" "$ph" "$f"); done
					oks=$(okcount "$set" "$prof" "$t" "$ph")
					[[ $oks == 0/0 ]] && continue
					echo "| $(phase_title "$ph") | $(label "$t") | $(fmt "${M[$t.wall]}" 2) | $(fmt "${M[$t.cpu]}" 2) | $(fmt "${M[$t.rss]}" 0) | $(fmt "${M[$t.repo]}" 1) | $oks |"
				done
				if contains stillpoint "${ACTIVE_TOOLS[@]}"; then
					for o in restic kopia; do
						contains "$o" "${ACTIVE_TOOLS[@]}" || continue
						echo "| $(phase_title "$ph") | **stillpoint/$o** | $(ratio "${M[stillpoint.wall]}" "${M[$o.wall]}") | $(ratio "${M[stillpoint.cpu]}" "${M[$o.cpu]}") | $(ratio "${M[stillpoint.rss]}" "${M[$o.rss]}") | $(ratio "${M[stillpoint.repo]}" "${M[$o.repo]}") | |"
					done
				fi
				unset M
			done
			echo
		done
	done
	echo "<details><summary>raw measurements (set, profile, tool, measure, run, status, wall s, user s, sys s, max RSS KiB, fs inputs, fs outputs, repo bytes)</summary>"
	echo
	echo '```'
	cat "$RAW"
	echo '```'
	echo
	echo "</details>"
} >"$RESULTS"

echo
cat "$RESULTS"
echo
log "results written to ${RESULTS#"$REPO_ROOT"/}"
if [[ -n ${FAILED[*]:-} ]]; then
	warn "some commands failed: $(for k in "${!FAILED[@]}"; do printf '%s ' "$k"; done)(logs were in $W/logs; use --keep to keep them)"
fi
