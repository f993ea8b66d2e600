#!/usr/bin/env bash
# bench/s3.sh: stillpoint, restic and kopia side by side on one SeaweedFS S3
# server, with every request counted.
#
# Starts `weed mini` (scripts/install-s3servers builds and caches it) on
# 127.0.0.1 with an S3 identity file, so every request is signed, and puts
# bench/s3count, a counting reverse proxy, in front of it: all three tools
# talk to the proxy, which counts requests by kind and bytes each way.
# On bench/gen's mixed set, each tool into its own bucket (a fresh prefix per
# run), the tools alternating and their order rotated run by run, it times
#   initial backup, unchanged incremental backup, full restore
# (wall, CPU user+sys and peak RSS by GNU time; the restore is compared with
# the source by diff -r, untimed) and records the requests of each. When
# stillpoint has --no-cache, it runs twice: with its local cache of the
# repository's small files (the default) and with --no-cache.
# Prints markdown tables of the medians and writes them to
# bench/results/s3-<date>.md. See docs/benchmarks.md, "S3 (SeaweedFS)".
set -euo pipefail

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_ROOT=$(cd "$SCRIPT_DIR/.." && pwd)
# shellcheck source=bench/lib.sh
source "$SCRIPT_DIR/lib.sh"

RUNS=3
QUICK=0
SIZE=
FILES=
SEED=1
WORKDIR=
KEEP=0
DROP_CACHES=0
RESULTS=
SP_BIN=
TOOLS=
BIN_CACHE="${STILLPOINT_BENCH_BIN:-${XDG_CACHE_HOME:-$HOME/.cache}/stillpoint-bench/bin}"
PASSWORD=stillpoint-bench-password

usage() {
	cat <<EOF
usage: bench/s3.sh [options]

  --runs N            runs per tool; medians are reported (default: $RUNS)
  --quick             the mixed set at 200 MiB with 2,000 small files
                      (default: 1 GiB with 10,000)
  --size BYTES        mixed set size (with --files: a smaller quick look,
                      e.g. --size 33554432 --files 300)
  --files N           small files of the mixed set
  --tools LIST        restic,kopia,stillpoint,stillpoint-nocache (default:
                      all; stillpoint-nocache only when stillpoint has --no-cache)
  --seed N            data set seed (default: $SEED)
  --workdir DIR       where data, server, caches and restores go (a fresh
                      subdirectory, removed afterwards; default \${TMPDIR:-/var/tmp})
  --keep              keep that subdirectory (logs of every command)
  --drop-caches       drop the page cache before every measured command (root;
                      default off: the machine is shared)
  --results FILE      results file (default: bench/results/s3-<date>.md)
  --stillpoint-bin P  use this stillpoint binary instead of building ./cmd/stillpoint
  -h, --help          this help
EOF
}

die() { echo "s3.sh: error: $*" >&2; exit 1; }
log() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
warn() { printf '[%s] WARNING: %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

while [[ $# -gt 0 ]]; do
	case $1 in
	--runs) RUNS=${2:?}; shift 2 ;;
	--quick) QUICK=1; shift ;;
	--size) SIZE=${2:?}; shift 2 ;;
	--files) FILES=${2:?}; shift 2 ;;
	--tools) TOOLS=${2:?}; shift 2 ;;
	--seed) SEED=${2:?}; shift 2 ;;
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
if [[ -z $SIZE ]]; then if [[ $QUICK -eq 1 ]]; then SIZE=$((200 << 20)); else SIZE=$((1 << 30)); fi; fi
if [[ -z $FILES ]]; then if [[ $QUICK -eq 1 ]]; then FILES=2000; else FILES=10000; fi; fi

TIME_BIN=/usr/bin/time
"$TIME_BIN" -f %e true >/dev/null 2>&1 || die "GNU time is required at $TIME_BIN (Debian: apt-get install time)"
command -v curl >/dev/null || die "curl is required (it makes the buckets, with --aws-sigv4)"
command -v ss >/dev/null || die "ss (iproute2) is required to check what the servers listen on"

[[ -n $WORKDIR ]] || WORKDIR=${TMPDIR:-/var/tmp}
mkdir -p "$WORKDIR"
W=$(mktemp -d "$WORKDIR/stillpoint-s3bench.XXXXXX")
mkdir -p "$W/bin" "$W/logs" "$W/weed"
WEED_PID= PROXY_PID=
cleanup() {
	local rc=$?
	for p in $PROXY_PID $WEED_PID; do
		kill -TERM "$p" 2>/dev/null || true
	done
	for p in $PROXY_PID $WEED_PID; do
		for _ in $(seq 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.2; done
		kill -KILL "$p" 2>/dev/null || true
	done
	# weed mini leaves its gRPC sockets in /tmp, named by port
	for p in ${USED_PORTS:-} $(awk -F: '{print $NF}' "$W/logs/listening" 2>/dev/null); do
		rm -f -- /tmp/seaweedfs-*-grpc-"$p".sock
	done
	if [[ $KEEP -eq 1 ]]; then log "kept $W"; else rm -rf -- "$W"; fi
	exit "$rc"
}
trap cleanup EXIT
trap 'echo "s3.sh: interrupted" >&2; exit 130' INT TERM

# ---------------------------------------------------------------- tools
RESTIC=$(install_restic) || die "could not build restic"
KOPIA=$(install_kopia) || die "could not build kopia"
WEED=$("$REPO_ROOT/scripts/install-s3servers" weed) || die "could not build SeaweedFS"
if [[ -n $SP_BIN ]]; then
	SP=$(cd "$(dirname "$SP_BIN")" && pwd)/$(basename "$SP_BIN")
	SP_VERSION="(--stillpoint-bin $(basename "$SP_BIN"))"
else
	log "building stillpoint, bench/gen and bench/s3count from the work tree"
	(cd "$REPO_ROOT" && go build -o "$W/bin/stillpoint" ./cmd/stillpoint) >"$W/logs/build.log" 2>&1 || { cat "$W/logs/build.log" >&2; die "stillpoint does not build"; }
	SP=$W/bin/stillpoint
	SP_VERSION="$(cd "$REPO_ROOT" && git rev-parse --short HEAD)$(cd "$REPO_ROOT" && git diff --quiet HEAD -- cmd internal go.mod go.sum || echo '+uncommitted changes')"
fi
(cd "$REPO_ROOT" && go build -o "$W/bin/gen" ./bench/gen && go build -o "$W/bin/s3count" ./bench/s3count) >>"$W/logs/build.log" 2>&1 || { cat "$W/logs/build.log" >&2; die "bench/gen or bench/s3count does not build"; }
GEN=$W/bin/gen
SP_HAS_NOCACHE=0
"$SP" backup --help 2>&1 | grep -q -- '--no-cache' && SP_HAS_NOCACHE=1
if [[ -z $TOOLS ]]; then
	TOOLS=restic,kopia,stillpoint
	[[ $SP_HAS_NOCACHE -eq 1 ]] && TOOLS+=,stillpoint-nocache
fi
IFS=, read -r -a TOOL_LIST <<<"$TOOLS"
for t in "${TOOL_LIST[@]}"; do
	case $t in restic | kopia | stillpoint) ;; stillpoint-nocache) [[ $SP_HAS_NOCACHE -eq 1 ]] || die "this stillpoint has no --no-cache" ;; *) die "unknown tool $t" ;; esac
done
RESTIC_V=$("$RESTIC" version | awk '{print $2}')
KOPIA_V=$("$KOPIA" --version 2>&1 | awk '{sub(/^v/, "", $1); print $1}')

# ---------------------------------------------------------------- server
# free_port: a TCP port nothing listens on (the server may still lose it to
# another process before it binds; start_weed retries then).
free_port() {
	local p
	while :; do
		p=$((20000 + RANDOM % 40000))
		[[ " ${USED_PORTS:-} " == *" $p "* ]] && continue
		if [[ -z $(ss -Hltn "sport = :$p") ]]; then USED_PORTS="${USED_PORTS:-} $p"; echo "$p"; return; fi
	done
}

ACCESS_KEY=bench$(head -c 6 /dev/urandom | od -An -tx1 | tr -d ' \n')
SECRET_KEY=$(head -c 20 /dev/urandom | od -An -tx1 | tr -d ' \n')
cat >"$W/weed/s3.json" <<EOF
{"identities": [{"name": "bench", "credentials": [{"accessKey": "$ACCESS_KEY", "secretKey": "$SECRET_KEY"}],
  "actions": ["Admin", "Read", "List", "Tagging", "Write"]}]}
EOF
chmod 600 "$W/weed/s3.json"

# s3req METHOD URL: a signed request (curl's SigV4); prints the HTTP status.
s3req() {
	curl -s -o "$W/logs/curl.out" -w '%{http_code}' --aws-sigv4 "aws:amz:us-east-1:s3" \
		--user "$ACCESS_KEY:$SECRET_KEY" -X "$1" "$2" || echo 000
}

# check_loopback PID...: every listening socket of these processes is on 127.0.0.1.
check_loopback() {
	local bad=0 pid lines
	for pid in "$@"; do
		lines=$(ss -Hltnp | grep "pid=$pid," || true)
		[[ -n $lines ]] || continue
		if grep -vqE '^\S+\s+\S+\s+\S+\s+127\.0\.0\.1:' <<<"$lines"; then
			warn "process $pid listens beyond loopback:"; grep -vE '^\S+\s+\S+\s+\S+\s+127\.0\.0\.1:' <<<"$lines" >&2
			bad=1
		fi
	done
	return $bad
}

start_weed() {
	local attempt s3 p
	for attempt in 1 2 3; do
		p=()
		for _ in $(seq 9); do p+=("$(free_port)"); done
		s3=${p[0]}
		rm -rf -- "$W/weed/data"; mkdir -p "$W/weed/data"
		(
			cd "$W/weed" && exec env -i PATH=/usr/bin:/bin HOME="$W/weed" TMPDIR="$W/weed" setsid "$WEED" mini \
				-dir="$W/weed/data" -ip=127.0.0.1 -ip.bind=127.0.0.1 \
				-s3.config="$W/weed/s3.json" -s3.autoCreateBucket=false \
				-s3.port="$s3" -s3.port.grpc="${p[1]}" -master.port="${p[2]}" -master.port.grpc="${p[3]}" \
				-filer.port="${p[4]}" -filer.port.grpc="${p[5]}" -volume.port="${p[6]}" -volume.port.grpc="${p[7]}" \
				-admin.port="${p[8]}" -admin.port.legacy=0 -admin.ui=false -s3.port.iceberg=0 -s3.port.lance=0 \
				-webdav=false -master.telemetry=false \
				-filer.localSocket="$W/weed/filer.sock" -s3.localSocket="$W/weed/s3.sock"
		) >"$W/logs/weed.log" 2>&1 &
		WEED_PID=$!
		S3_URL=http://127.0.0.1:$s3
		# ready once a bucket can be made and written to (S3 answers before the volume server has joined)
		for _ in $(seq 180); do
			kill -0 "$WEED_PID" 2>/dev/null || break
			st=$(s3req PUT "$S3_URL/bench-ready")
			if [[ $st == 200 || $st == 409 ]] && [[ $(s3req PUT "$S3_URL/bench-ready/probe") == 200 ]]; then
				log "SeaweedFS ($(basename "$WEED")) serves S3 on $S3_URL (pid $WEED_PID)"
				return 0
			fi
			sleep 0.5
		done
		warn "SeaweedFS did not start (attempt $attempt):"; tail -n 5 "$W/logs/weed.log" >&2
		kill -TERM "$WEED_PID" 2>/dev/null || true; wait "$WEED_PID" 2>/dev/null || true
		WEED_PID=
	done
	die "SeaweedFS did not start"
}

start_weed
log "starting the counting proxy"
"$W/bin/s3count" -listen 127.0.0.1:0 -control 127.0.0.1:0 -upstream "$S3_URL" -ready-file "$W/proxy.addr" 2>"$W/logs/s3count.log" &
PROXY_PID=$!
for _ in $(seq 50); do [[ -s $W/proxy.addr ]] && break; sleep 0.1; done
[[ -s $W/proxy.addr ]] || die "s3count did not start: $(cat "$W/logs/s3count.log")"
read -r PROXY_ADDR CONTROL_ADDR <"$W/proxy.addr"
sleep 3 # let every component of weed mini bind before the check
check_loopback "$WEED_PID" "$PROXY_PID" || die "a server listens beyond 127.0.0.1 (see above)"
ss -Hltnp | grep -E "pid=($WEED_PID|$PROXY_PID)," | awk '{print $4}' | sort >"$W/logs/listening"
log "listening (all 127.0.0.1): $(tr '\n' ' ' <"$W/logs/listening")"
ENDPOINT=http://$PROXY_ADDR
for t in "${TOOL_LIST[@]}"; do
	st=$(s3req PUT "$S3_URL/bench-$t")
	[[ $st == 200 ]] || die "could not make bucket bench-$t: HTTP $st $(cat "$W/logs/curl.out")"
done

# ---------------------------------------------------------------- tools' commands
# tool_env TOOL: environment of every command of TOOL.
tool_env() {
	local d=$W/t/$1
	echo "AWS_ACCESS_KEY_ID=$ACCESS_KEY AWS_SECRET_ACCESS_KEY=$SECRET_KEY"
	case $1 in
	restic) echo "RESTIC_PASSWORD=$PASSWORD RESTIC_CACHE_DIR=$d/cache" ;;
	kopia) echo "KOPIA_PASSWORD=$PASSWORD KOPIA_CHECK_FOR_UPDATES=false KOPIA_CONFIG_PATH=$d/config/repository.config KOPIA_CACHE_DIRECTORY=$d/cache KOPIA_LOG_DIR=$d/logs KOPIA_PERSIST_CREDENTIALS_ON_CONNECT=false KOPIA_USE_KEYRING=false" ;;
	stillpoint*) echo "STILLPOINT_PASSWORD=$PASSWORD STILLPOINT_CACHE_DIR=$d/cache" ;;
	esac
}

# tool_cmd TOOL ACTION RUN DATA TARGET: the command, one word a line.
tool_cmd() {
	local t=$1 action=$2 run=$3 data=$4 target=$5 d=$W/t/$1
	local loc=$ENDPOINT/bench-$t/run$run
	case $t in
	restic)
		case $action in
		init) printf '%s\n' "$RESTIC" init -r "s3:$loc" --cache-dir "$d/cache" ;;
		backup) printf '%s\n' "$RESTIC" backup -r "s3:$loc" --cache-dir "$d/cache" --host bench "$data" ;;
		restore) printf '%s\n' "$RESTIC" restore -r "s3:$loc" --cache-dir "$d/cache" "latest:$data" --target "$target" ;;
		esac ;;
	kopia)
		case $action in
		init)
			printf '%s\n' "$KOPIA" repository create s3 --bucket "bench-$t" --prefix "run$run/" --endpoint "$PROXY_ADDR" --disable-tls \
				--access-key "$ACCESS_KEY" --secret-access-key "$SECRET_KEY" --cache-directory "$d/cache" ;;
		policy) printf '%s\n' "$KOPIA" policy set --global --compression=zstd ;;
		backup) printf '%s\n' "$KOPIA" snapshot create --no-progress "$data" ;;
		restore) printf '%s\n' "$KOPIA" snapshot restore --no-progress "$data" "$target" ;;
		esac ;;
	stillpoint | stillpoint-nocache)
		local nc=()
		[[ $t == stillpoint-nocache ]] && nc=(--no-cache)
		local cd=()
		"$SP" backup --help 2>&1 | grep -q -- '--cache-dir' && cd=(--cache-dir "$d/cache")
		case $action in
		init) printf '%s\n' "$SP" init -r "s3:$loc" "${cd[@]}" "${nc[@]}" ;;
		backup) printf '%s\n' "$SP" backup -r "s3:$loc" --quiet "${cd[@]}" "${nc[@]}" "$data" ;;
		restore) printf '%s\n' "$SP" restore -r "s3:$loc" "${cd[@]}" "${nc[@]}" latest --target "$target" ;;
		esac ;;
	esac
}

counts_reset() { curl -s -X POST "http://$CONTROL_ADDR/reset" >/dev/null; }
counts_get() { curl -s "http://$CONTROL_ADDR/counts"; }

# run_tool LOG TOOL ACTION RUN DATA TARGET [timed]
run_tool() {
	local logf=$1 t=$2 action=$3 run=$4 data=$5 target=$6 timed=${7:-}
	local -a cmd envv
	mapfile -t cmd < <(tool_cmd "$t" "$action" "$run" "$data" "$target")
	[[ ${#cmd[@]} -gt 0 ]] || return 0
	read -r -a envv <<<"$(tool_env "$t" | tr '\n' ' ')"
	{ printf '$'; printf ' %q' "${cmd[@]}" | sed "s/$SECRET_KEY/SECRET/g"; printf '\n'; } >>"$logf"
	if [[ -n $timed ]]; then
		env "${envv[@]}" "$TIME_BIN" -f '%e %U %S %M' -o "$logf.time" "${cmd[@]}" >>"$logf" 2>&1
	else
		env "${envv[@]}" "${cmd[@]}" >>"$logf" 2>&1
	fi
}

find_restored() {
	local target=$1 data=$2 c first
	first=$(find "$data" -mindepth 1 -maxdepth 1 -printf '%f\n' | sort | head -n 1)
	for c in "$target" "$target$data" "$target/$(basename "$data")"; do
		[[ -e $c/$first ]] && { echo "$c"; return 0; }
	done
	return 1
}

drop_caches() {
	[[ $DROP_CACHES -eq 1 ]] || return 0
	sync
	echo 3 >/proc/sys/vm/drop_caches 2>/dev/null || { warn "cannot drop caches"; DROP_CACHES=0; }
}

# ---------------------------------------------------------------- runs
RAW=$W/raw.tsv
: >"$RAW"
PHASES=(initial unchanged restore)
START_TIME=$(date -u '+%Y-%m-%d %H:%M UTC')
LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)
data=$W/data
geninfo=$("$GEN" create -set mixed -out "$data" -seed "$SEED" -size "$SIZE" -files "$FILES") || die "bench/gen failed"
log "$geninfo"
SET_INFO=$(sed -E 's/^gen: //; s/ in [0-9.]+s .*$//' <<<"$geninfo")
declare -A FAILED
for ((run = 1; run <= RUNS; run++)); do
	n=${#TOOL_LIST[@]}
	order=()
	for ((i = 0; i < n; i++)); do order+=("${TOOL_LIST[$(((i + run - 1) % n))]}"); done
	log "== run $run of $RUNS (order: ${order[*]}; load average $(cut -d' ' -f1-3 /proc/loadavg))"
	rm -rf -- "$W/t"
	active=()
	for t in "${order[@]}"; do
		mkdir -p "$W/t/$t/cache" "$W/t/$t/config" "$W/t/$t/logs"
		logf=$W/logs/run$run-$t.log
		if run_tool "$logf" "$t" init "$run" "$data" "" && run_tool "$logf" "$t" policy "$run" "$data" ""; then
			active+=("$t")
		else
			warn "$t: init failed (log $logf)"; tail -n 5 "$logf" >&2; FAILED[$t]=1
		fi
	done
	for ph in "${PHASES[@]}"; do
		for t in "${active[@]}"; do
			[[ -z ${FAILED[$t.$run]:-} ]] || continue
			logf=$W/logs/run$run-$t.log
			action=$ph
			[[ $ph == initial || $ph == unchanged ]] && action=backup
			target=$W/restore
			rm -rf -- "$target"
			[[ $ph == restore ]] && mkdir -p "$target"
			drop_caches
			rm -f "$logf.time"
			load=$(cut -d' ' -f1 /proc/loadavg)
			counts_reset
			if run_tool "$logf" "$t" "$action" "$run" "$data" "$target" timed; then status=ok; else status=fail; fi
			cnt=$(counts_get)
			if [[ $status == ok && $ph == restore ]]; then
				if ! root=$(find_restored "$target" "$data") || ! diff -rq --no-dereference "$data" "$root" >"$logf.diff" 2>&1; then
					warn "$t: the restore differs from the source ($(head -n 3 "$logf.diff" 2>/dev/null))"
					status=fail
				fi
			fi
			rm -rf -- "$target"
			wall=- user=- sys=- rss=-
			[[ $status == ok ]] && read -r wall user sys rss < <(tail -n 1 "$logf.time")
			# shellcheck disable=SC2046
			printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$t" "$ph" "$run" "$status" "$wall" "$user" "$sys" "$rss" "$load" \
				"$(awk '{printf "%s=%s ", $1, $2}' <<<"$cnt")" >>"$RAW"
			req=$(awk '$1=="requests"{print $2}' <<<"$cnt")
			if [[ $status == ok ]]; then
				log "$t $ph: wall ${wall}s cpu $(awk -v u="$user" -v s="$sys" 'BEGIN{printf "%.2f", u+s}')s rss $((rss / 1024))MiB requests $req (load $load)"
			else
				warn "$t $ph failed (log $logf):"; tail -n 5 "$logf" | sed "s/$SECRET_KEY/SECRET/g" >&2
				FAILED[$t]=1 FAILED[$t.$run]=1
			fi
		done
	done
done
END_TIME=$(date -u '+%Y-%m-%d %H:%M UTC')
LOAD_END=$(cut -d' ' -f1-3 /proc/loadavg)

# ---------------------------------------------------------------- report
# med TOOL PHASE FIELD: median over the ok runs. FIELD: wall, cpu, rss (MiB),
# load, or a counter of s3count (requests, GET, LIST, HEAD, PUT, DELETE,
# POST, sent_bytes, received_bytes).
med() {
	awk -F'\t' -v t="$1" -v ph="$2" -v f="$3" '
		$1==t && $2==ph && $4=="ok" {
			if (f=="wall") v=$5; else if (f=="cpu") v=$6+$7; else if (f=="rss") v=$8/1024; else if (f=="load") v=$9;
			else { v=""; n=split($10, kv, " "); for (i=1;i<=n;i++) { split(kv[i], p, "="); if (p[1]==f) v=p[2] } }
			if (v!="") print v }' "$RAW" | sort -g |
		awk '{a[NR]=$1} END{ if (NR==0) exit; if (NR%2) print a[(NR+1)/2]; else print (a[NR/2]+a[NR/2+1])/2 }'
}
okruns() { awk -F'\t' -v t="$1" -v ph="$2" '$1==t && $2==ph {n++; if ($4=="ok") k++} END{printf "%d/%d", k, n}' "$RAW"; }
fmt() { if [[ -z $1 ]]; then echo "–"; else awk -v v="$1" -v d="$2" 'BEGIN{printf "%.*f", d, v}'; fi; }
ratio() { if [[ -z $1 || -z $2 ]]; then echo "–"; else awk -v a="$1" -v b="$2" 'BEGIN{ if (b==0) print "–"; else printf "%.2f×", a/b }'; fi; }
# goal VALUE LIMIT: "met" when VALUE <= LIMIT (or < with strict)
goal() { if [[ -z $1 || -z $2 ]]; then echo "–"; else awk -v a="$1" -v b="$2" -v s="${3:-}" 'BEGIN{ if ((s=="" && a<=b) || (s!="" && a<b)) print "**met**"; else print "**not met**" }'; fi; }
label() {
	case $1 in
	restic) echo "restic $RESTIC_V" ;;
	kopia) echo "kopia $KOPIA_V" ;;
	stillpoint) echo "stillpoint" ;;
	stillpoint-nocache) echo "stillpoint --no-cache" ;;
	esac
}
title() { case $1 in initial) echo "initial backup" ;; unchanged) echo "unchanged incremental" ;; restore) echo "full restore" ;; esac; }

mkdir -p "$REPO_ROOT/bench/results"
if [[ -z $RESULTS ]]; then
	RESULTS=$REPO_ROOT/bench/results/s3-$(date +%Y-%m-%d).md
	[[ -e $RESULTS ]] && RESULTS=$REPO_ROOT/bench/results/s3-$(date +%Y-%m-%d-%H%M%S).md
fi
CMDLINE="bench/s3.sh"
[[ $QUICK -eq 1 ]] && CMDLINE+=" --quick"
[[ $QUICK -eq 0 && ($SIZE != $((1 << 30)) || $FILES != 10000) ]] && CMDLINE+=" --size $SIZE --files $FILES"
CMDLINE+=" --runs $RUNS --tools $TOOLS"
[[ $SEED != 1 ]] && CMDLINE+=" --seed $SEED"
SPS=()
for t in stillpoint stillpoint-nocache; do [[ " ${TOOL_LIST[*]} " == *" $t "* ]] && SPS+=("$t"); done
{
	echo "## S3 (SeaweedFS) results: $(date +%Y-%m-%d)"
	echo
	echo "- command: \`$CMDLINE\`"
	echo "- data: bench/gen mixed set, $SET_INFO"
	echo "- server: SeaweedFS \`weed mini\` ($(basename "$WEED")) on 127.0.0.1, signed requests; every tool through bench/s3count on 127.0.0.1"
	echo "- tools: stillpoint $SP_VERSION$([[ ${#SPS[@]} -gt 1 ]] && echo ' (with its cache, and with --no-cache)'); restic $RESTIC_V (compression auto); kopia $KOPIA_V (zstd)"
	echo "- started $START_TIME (load average $LOAD_START), finished $END_TIME (load average $LOAD_END); $(nproc) cores shared with other work"
	echo "- $RUNS run(s), tools alternating, order rotated per run; each run a fresh repository (own bucket per tool, prefix runN) and a fresh local cache per tool; page cache $([[ $DROP_CACHES -eq 1 ]] && echo dropped before each command || echo warm)"
	echo "- medians of the successful runs; wall and CPU (user+sys of the tool, not the server) in s; requests and bytes as the proxy counted them (sent: request bodies, received: response bodies)"
	echo
	echo "| measure | tool | wall s | CPU s | peak RSS MiB | requests | GET | LIST | HEAD | PUT | DELETE | POST | MiB sent | MiB received | ok runs | load |"
	echo "|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|"
	for ph in "${PHASES[@]}"; do
		for t in "${TOOL_LIST[@]}"; do
			row="| $(title "$ph") | $(label "$t") | $(fmt "$(med "$t" "$ph" wall)" 2) | $(fmt "$(med "$t" "$ph" cpu)" 2) | $(fmt "$(med "$t" "$ph" rss)" 0)"
			for f in requests GET LIST HEAD PUT DELETE POST; do row+=" | $(fmt "$(med "$t" "$ph" "$f")" 0)"; done
			s=$(med "$t" "$ph" sent_bytes); r=$(med "$t" "$ph" received_bytes)
			row+=" | $(fmt "${s:+$(awk -v v="$s" 'BEGIN{print v/1048576}')}" 1) | $(fmt "${r:+$(awk -v v="$r" 'BEGIN{print v/1048576}')}" 1) | $(okruns "$t" "$ph") | $(fmt "$(med "$t" "$ph" load)" 1) |"
			echo "$row"
		done
		for sp in "${SPS[@]}"; do
			for o in restic kopia; do
				[[ " ${TOOL_LIST[*]} " == *" $o "* ]] || continue
				echo "| $(title "$ph") | **$(label "$sp") / $o** | $(ratio "$(med "$sp" "$ph" wall)" "$(med "$o" "$ph" wall)") | $(ratio "$(med "$sp" "$ph" cpu)" "$(med "$o" "$ph" cpu)") | $(ratio "$(med "$sp" "$ph" rss)" "$(med "$o" "$ph" rss)") | $(ratio "$(med "$sp" "$ph" requests)" "$(med "$o" "$ph" requests)") | | | | | | | | | | |"
			done
		done
	done
	echo
	echo "Goals of issue 14 (medians of this run):"
	echo
	echo "| goal | $(for sp in "${SPS[@]}"; do printf '%s | ' "$(label "$sp")"; done | sed 's/ | $//') |"
	echo "|---|$(for _ in "${SPS[@]}"; do printf -- '---|'; done)"
	g() { # g TEXT PHASE FIELD OTHER FACTOR [strict]
		local row="| $1 |" sp v o
		for sp in "${SPS[@]}"; do
			v=$(med "$sp" "$2" "$3"); o=$(med "$4" "$2" "$3")
			row+=" $(goal "$v" "${o:+$(awk -v o="$o" -v f="$5" 'BEGIN{print o*f}')}" "${6:-}") ($(ratio "$v" "$o")) |"
		done
		echo "$row"
	}
	g "initial backup ≤ 0.5× restic's time" initial wall restic 0.5
	g "initial backup ≤ 0.8× kopia's time" initial wall kopia 0.8
	g "unchanged incremental ≤ kopia's time" unchanged wall kopia 1
	g "unchanged incremental ≤ kopia's requests" unchanged requests kopia 1
	g "restore ≤ 0.8× restic's time" restore wall restic 0.8
	g "requests per unchanged backup fewer than restic's" unchanged requests restic 1 strict
	g "requests per unchanged backup fewer than kopia's" unchanged requests kopia 1 strict
	echo
	echo "<details><summary>raw (tool, measure, run, status, wall s, user s, sys s, max RSS KiB, load, proxy counters)</summary>"
	echo
	echo '```'
	cat "$RAW"
	echo '```'
	echo
	echo "</details>"
} >"$RESULTS"
echo
cat "$RESULTS"
log "results written to ${RESULTS#"$REPO_ROOT"/}"
[[ -z ${FAILED[*]:-} ]] || warn "some commands failed: ${!FAILED[*]}"
