#!/usr/bin/env bash
# bench/restore.sh: restores alone, side by side: stillpoint, restic and
# kopia (and cp of the same data, for the disk's own speed), in paired,
# alternating runs on one generated data set. Each tool backs the set up
# once (not timed), and one restore is made and removed (not timed); then
# every run restores with each tool in turn, the order rotating, the page
# cache dropped before each command (as root).
# With --strace, one more restore per tool runs under `strace -c -f` and
# the system calls per restored file are printed. With --sync, each timing
# ends only when the restored data is on the disk (syncfs of the target's
# filesystem, timed with the command), so that the disk, not the page
# cache, is the limit. See docs/benchmarks.md, "Restore".
set -euo pipefail
SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_ROOT=$(cd "$SCRIPT_DIR/.." && pwd)
# shellcheck source=bench/lib.sh
source "$SCRIPT_DIR/lib.sh"

SET=mixed
RUNS=5
TOOLS=stillpoint,restic,kopia
CP=0
STRACE=0
SYNC=0
QUICK=0
FRESH_FS=0
SAME_FS=0
VERIFY=1
KEEP=0
WORKDIR=${TMPDIR:-/var/tmp}
SP_BIN=
BASE_BIN=
BIN_CACHE="${STILLPOINT_BENCH_BIN:-${XDG_CACHE_HOME:-$HOME/.cache}/stillpoint-bench/bin}"
PASSWORD=stillpoint-bench-password

usage() {
	cat <<EOF2
usage: bench/restore.sh [options]
  --set mixed|many-small|big   data set (default: $SET; sizes as bench/compare.sh)
  --runs N                     restores per tool (default: $RUNS)
  --tools LIST                 among stillpoint,restic,kopia (default: $TOOLS)
  --cp                         also time cp -a of the data set (the disk's speed)
  --strace                     one more restore per tool under strace -c -f
  --sync                       time each command up to the end of a syncfs of the
                               target's filesystem (sync -f), so the data has
                               reached the disk in every timing, cp's too: the
                               page cache does not hide the disk's speed
  --fresh-fs                   restore each time into a new ext4 filesystem (a loop
                               image in the work directory, made before the timing;
                               needs root): no tool then pays for the inodes the
                               previous restore freed (ext4 skips inodes freed less
                               than a minute ago), as on a new disk
  --same-fs                    restore each time into one ext4 filesystem with a
                               journal (a loop image made once, needs root), the last
                               restore removed before each timing as without it: a
                               disk in use, where ext4 (having a journal) reuses the
                               inodes just freed, as most do (the root filesystem
                               of the machines this was measured on has no journal)
  --quick                      compare.sh's --quick sizes
  --no-verify                  skip the untimed diff -r of each restore
  --workdir DIR                where data, repositories and restores go (default: $WORKDIR)
  --stillpoint-bin PATH        use this binary instead of building ./cmd/stillpoint
  --baseline-bin PATH          also restore, in the same rotation, with this other
                               stillpoint binary (tool "baseline", from stillpoint's
                               repository): before/after pairs of one change
  --keep                       keep the work directory
EOF2
}
log() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { echo "restore.sh: error: $*" >&2; exit 1; }
while [[ $# -gt 0 ]]; do
	case $1 in
	--set) SET=$2; shift 2 ;;
	--runs) RUNS=$2; shift 2 ;;
	--tools) TOOLS=$2; shift 2 ;;
	--cp) CP=1; shift ;;
	--strace) STRACE=1; shift ;;
	--sync) SYNC=1; shift ;;
	--quick) QUICK=1; shift ;;
	--fresh-fs) FRESH_FS=1; shift ;;
	--same-fs) SAME_FS=1; shift ;;
	--no-verify) VERIFY=0; shift ;;
	--workdir) WORKDIR=$2; shift 2 ;;
	--stillpoint-bin) SP_BIN=$2; shift 2 ;;
	--baseline-bin) BASE_BIN=$2; shift 2 ;;
	--keep) KEEP=1; shift ;;
	-h | --help) usage; exit 0 ;;
	*) usage >&2; die "unknown argument: $1" ;;
	esac
done
[[ $RUNS =~ ^[1-9][0-9]*$ ]] || die "--runs must be a positive integer"
case $SET in
mixed) if [[ $QUICK -eq 1 ]]; then GEN_ARGS=(-size $((200 << 20)) -files 2000); else GEN_ARGS=(-size $((1 << 30)) -files 10000); fi ;;
many-small) if [[ $QUICK -eq 1 ]]; then GEN_ARGS=(-files 20000); else GEN_ARGS=(-files 200000); fi ;;
big) if [[ $QUICK -eq 1 ]]; then GEN_ARGS=(-size $((512 << 20))); else GEN_ARGS=(-size $((4 << 30))); fi ;;
*) die "unknown set $SET" ;;
esac
IFS=, read -r -a TOOL_LIST <<<"$TOOLS"
[[ -x /usr/bin/time ]] || die "GNU time is needed at /usr/bin/time"
[[ $STRACE -eq 0 ]] || command -v strace >/dev/null || die "--strace needs strace"

[[ $FRESH_FS -eq 0 || $(id -u) -eq 0 ]] || die "--fresh-fs needs root (mount)"
[[ $SAME_FS -eq 0 || $(id -u) -eq 0 ]] || die "--same-fs needs root (mount)"
[[ $FRESH_FS -eq 0 || $SAME_FS -eq 0 ]] || die "--fresh-fs and --same-fs exclude each other"
mkdir -p "$WORKDIR"
W=$(mktemp -d "$WORKDIR/stillpoint-restore.XXXXXX")
FS_MOUNTED=0
# unmount_target: the loop filesystem of --fresh-fs goes (mount -o loop
# detaches its loop device on unmount)
unmount_target() {
	if [[ $FS_MOUNTED -eq 1 ]]; then
		umount "$W/target" || umount -l "$W/target"
		FS_MOUNTED=0
	fi
	rm -f -- "$W/fs.img"
}
trap 'unmount_target; [[ $KEEP -eq 1 ]] && log "kept $W" || rm -rf -- "$W"' EXIT
mkdir -p "$W/logs" "$W/bin"
declare -A BIN
for t in "${TOOL_LIST[@]}"; do
	case $t in
	restic) BIN[restic]=$(install_restic) ;;
	kopia) BIN[kopia]=$(install_kopia) ;;
	stillpoint)
		if [[ -n $SP_BIN ]]; then BIN[stillpoint]=$SP_BIN; else
			(cd "$REPO_ROOT" && go build -o "$W/bin/stillpoint" ./cmd/stillpoint) || die "stillpoint does not build"
			BIN[stillpoint]=$W/bin/stillpoint
		fi ;;
	*) die "unknown tool $t" ;;
	esac
done
(cd "$REPO_ROOT" && go build -o "$W/bin/gen" ./bench/gen) || die "bench/gen does not build"
DATA=$W/data
log "$("$W/bin/gen" create -set "$SET" -out "$DATA" -seed 1 "${GEN_ARGS[@]}")"
NFILES=$(find "$DATA" -type f | wc -l)
DATA_BYTES=$(du -sb "$DATA" | cut -f1)

export RESTIC_PASSWORD=$PASSWORD KOPIA_PASSWORD=$PASSWORD STILLPOINT_PASSWORD=$PASSWORD
export KOPIA_CHECK_FOR_UPDATES=false KOPIA_CONFIG_PATH=$W/kopia/config/repository.config
export KOPIA_CACHE_DIRECTORY=$W/kopia/cache KOPIA_LOG_DIR=$W/kopia/logs
export KOPIA_PERSIST_CREDENTIALS_ON_CONNECT=false KOPIA_USE_KEYRING=false
# restore_cmd TOOL TARGET: the restore command, one word a line
restore_cmd() {
	case $1 in
	stillpoint | baseline) printf '%s\n' "${BIN[$1]}" restore --repo "$W/sp/repo" --quiet latest --target "$2" ;;
	restic) printf '%s\n' "${BIN[restic]}" restore --repo "$W/restic/repo" --cache-dir "$W/restic/cache" --quiet "latest:$DATA" --target "$2" ;;
	kopia) printf '%s\n' "${BIN[kopia]}" snapshot restore --no-progress "$DATA" "$2" ;;
	cp) printf '%s\n' cp -a "$DATA" "$2/" ;;
	esac
}
for t in "${TOOL_LIST[@]}"; do
	log "backing up with $t (not timed)"
	case $t in
	stillpoint) "${BIN[stillpoint]}" init --repo "$W/sp/repo" >"$W/logs/sp" && "${BIN[stillpoint]}" backup --repo "$W/sp/repo" --quiet "$DATA" >>"$W/logs/sp" ;;
	restic) "${BIN[restic]}" init --repo "$W/restic/repo" --cache-dir "$W/restic/cache" >"$W/logs/restic" && "${BIN[restic]}" backup --repo "$W/restic/repo" --cache-dir "$W/restic/cache" --host bench --quiet "$DATA" >>"$W/logs/restic" ;;
	kopia) mkdir -p "$W/kopia/config" && "${BIN[kopia]}" repository create filesystem --path "$W/kopia/repo" --cache-directory "$W/kopia/cache" >"$W/logs/kopia" 2>&1 &&
		"${BIN[kopia]}" policy set --global --compression=zstd >>"$W/logs/kopia" 2>&1 && "${BIN[kopia]}" snapshot create --no-progress "$DATA" >>"$W/logs/kopia" 2>&1 ;;
	esac || die "backup with $t failed (log: $W/logs)"
done
ALL=("${TOOL_LIST[@]}")
if [[ -n $BASE_BIN ]]; then
	[[ -n ${BIN[stillpoint]:-} ]] || die "--baseline-bin needs stillpoint among --tools"
	BIN[baseline]=$BASE_BIN
	TOOL_LIST+=(baseline)
	ALL+=(baseline)
fi
[[ $CP -eq 1 ]] && ALL+=(cp)
restored_root() { # where TARGET mirrors DATA
	local c
	for c in "$1$DATA" "$1/$(basename "$DATA")" "$1"; do [[ -d $c && -n $(ls -A "$c") ]] && { echo "$c"; return; }; done
}
drop() { sync; [[ $(id -u) -ne 0 ]] || echo 3 >/proc/sys/vm/drop_caches; }
# new_target: an empty $W/target; with --fresh-fs a new ext4 filesystem,
# with --same-fs the one made the first time, emptied
new_target() {
	T=$W/target
	if [[ $SAME_FS -eq 1 && $FS_MOUNTED -eq 1 ]]; then
		find "$T" -mindepth 1 -maxdepth 1 -exec rm -rf -- {} +
		return
	fi
	unmount_target
	rm -rf -- "$T" && mkdir -p "$T"
	if [[ $FRESH_FS -eq 1 || $SAME_FS -eq 1 ]]; then
		truncate -s $((DATA_BYTES * 2 + (1 << 30))) "$W/fs.img"
		mkfs.ext4 -q -F -E lazy_itable_init=0,lazy_journal_init=0 "$W/fs.img" || die "mkfs.ext4 failed"
		mount -o loop "$W/fs.img" "$T" || die "mounting the fresh filesystem failed"
		FS_MOUNTED=1
		rmdir "$T/lost+found"
	fi
}
RAW=$W/raw.tsv
: >"$RAW"
# one untimed restore first: a restore into a directory that replaces one
# just removed is slower (on ext4 without a journal, new inodes skip those
# freed less than a minute ago: recently_deleted), and without this the
# first command of run 1 alone would not pay for it
new_target
mapfile -t cmd < <(restore_cmd "${ALL[0]}" "$T")
"${cmd[@]}" >"$W/logs/warm-up" 2>&1 || die "${ALL[0]} restore failed: $(tail -n 3 "$W/logs/warm-up")"
LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)
for ((run = 1; run <= RUNS; run++)); do
	n=${#ALL[@]}
	for ((i = 0; i < n; i++)); do
		t=${ALL[$(((i + run - 1) % n))]}
		new_target
		mapfile -t cmd < <(restore_cmd "$t" "$T")
		drop
		load=$(cut -d' ' -f1 /proc/loadavg)
		# shellcheck disable=SC2016 # $0 and $@ are the inner shell's
		[[ $SYNC -eq 0 ]] || cmd=(sh -c '"$@" && sync -f "$0"' "$T" "${cmd[@]}")
		/usr/bin/time -f '%e %U %S %M' -o "$W/time" "${cmd[@]}" >"$W/logs/$t.$run" 2>&1 || die "$t restore failed: $(tail -n 3 "$W/logs/$t.$run")"
		read -r wall user sys rss <"$W/time"
		if [[ $VERIFY -eq 1 ]]; then
			root=$(restored_root "$T")
			diff -rq --no-dereference "$DATA" "$root" >/dev/null || die "$t: the restore differs from the source"
		fi
		printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$t" "$run" "$wall" "$user" "$sys" "$rss" "$load" >>"$RAW"
		log "run $run $t: wall $wall user $user sys $sys rss $((rss / 1024))MiB (load $load)"
	done
done
unmount_target
rm -rf -- "$W/target"
LOAD_END=$(cut -d' ' -f1-3 /proc/loadavg)
med() { sort -g | awk '{a[NR]=$1} END{if (NR%2) print a[(NR+1)/2]; else print (a[NR/2]+a[NR/2+1])/2}'; }
col() { awk -F'\t' -v t="$1" -v c="$2" '$1==t { if (c=="cpu") print $4+$5; else print $c }' "$RAW" | med; }
echo
echo "restore of $SET ($NFILES files, $(du -sh "$DATA" | cut -f1)), $RUNS runs$([[ $SYNC -eq 1 ]] && echo ", each timed up to a syncfs of the target")$([[ $FRESH_FS -eq 1 ]] && echo ", each into a new ext4 filesystem")$([[ $SAME_FS -eq 1 ]] && echo ", each into the same ext4 filesystem with a journal"), load average $LOAD_START at the start, $LOAD_END at the end"
echo
echo "| tool | wall s | user s | sys s | CPU s | peak RSS MiB | stillpoint ÷ tool: wall, CPU |"
echo "|---|--:|--:|--:|--:|--:|--:|"
spw=$(col stillpoint 3 2>/dev/null || true)
spc=$(col stillpoint cpu 2>/dev/null || true)
for t in "${ALL[@]}"; do
	w=$(col "$t" 3) c=$(col "$t" cpu)
	printf '| %s | %.2f | %.2f | %.2f | %.2f | %.0f | %s |\n' "$t" "$w" "$(col "$t" 4)" "$(col "$t" 5)" "$c" "$(awk -v k="$(col "$t" 6)" 'BEGIN{print k/1024}')" \
		"$([[ -n $spw ]] && awk -v a="$spw" -v b="$w" -v x="$spc" -v y="$c" 'BEGIN{printf "%.2f×, %.2f×", a/b, x/y}')"
done
echo
echo "raw (tool, run, wall, user, sys, max RSS KiB, load average at the start):"
cat "$RAW"

if [[ $STRACE -eq 1 ]]; then
	echo
	echo "system calls per restored file ($NFILES files; strace -c -f; runtime: futex, nanosleep, epoll_pwait, signals, memory and thread calls)"
	for t in "${TOOL_LIST[@]}"; do
		new_target
		mapfile -t cmd < <(restore_cmd "$t" "$T")
		drop
		strace -c -f -o "$W/strace.$t" "${cmd[@]}" >/dev/null 2>&1 || die "$t restore under strace failed"
	done
	unmount_target
	rm -rf -- "$W/target"
	awk -v nf="$NFILES" '
		FNR == 1 { tool = FILENAME; sub(/.*strace\./, "", tool); tools[++nt] = tool }
		/^-|^%|total/ { next }
		NF >= 5 {
			name = $NF; calls = (NF == 6 ? $4 : $4)
			rt = name ~ /^(futex|nanosleep|epoll_pwait|sched_yield|tgkill|getpid|gettid|rt_sig.*|sigaltstack|madvise|mmap|munmap|mprotect|clone3?|sched_getaffinity|rseq|set_robust_list|prlimit64|execve|arch_prctl|brk)$/
			if (rt) runtime[tool] += calls; else { fsc[tool] += calls; c[tool, name] = calls; names[name] = 1 }
		}
		END {
			printf "| system call |"; for (i = 1; i <= nt; i++) printf " %s |", tools[i]; printf "\n|---|"; for (i = 1; i <= nt; i++) printf "--:|"; printf "\n"
			for (n in names) { keep = 0; for (i = 1; i <= nt; i++) if (c[tools[i], n] / nf >= 0.05) keep = 1; if (keep) { row = sprintf("| %s |", n); for (i = 1; i <= nt; i++) row = row sprintf(" %.2f |", c[tools[i], n] / nf); print row | "sort" } }
			close("sort")
			printf "| **files and directories, all** |"; for (i = 1; i <= nt; i++) printf " **%.2f** |", fsc[tools[i]] / nf; printf "\n"
			printf "| runtime |"; for (i = 1; i <= nt; i++) printf " %.2f |", runtime[tools[i]] / nf; printf "\n"
		}' $(for t in "${TOOL_LIST[@]}"; do echo "$W/strace.$t"; done)
fi
