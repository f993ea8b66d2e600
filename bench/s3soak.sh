#!/usr/bin/env bash
# bench/s3soak.sh: stillpoint on a small SeaweedFS cluster, with a volume
# server killed in the middle of a backup.
#
# Starts, all on 127.0.0.1 (checked with ss): one master (default
# replication 001: two copies of every volume, on two different servers of
# the same rack), three volume servers, a filer and the S3 gateway with an
# identity file, so every request is signed (scripts/install-s3servers
# builds and caches weed). Then runs ROUNDS backups of a tree from bench/gen
# (the mixed set), changed by `gen mutate` before each; before each backup a
# manifest of the tree is taken (path, type, mode, size, SHA-256). In round
# KILL_ROUND a large new file makes the backup long, and a volume server is
# killed (SIGKILL, by its pid) KILL_AFTER seconds into it and started again
# DOWN_FOR seconds later, on the same directory and ports. That backup may
# complete or fail; the script records which, with its message. Every other
# backup must complete. At the end every snapshot is restored and compared
# with its manifest, and `check --read-data` must be clean.
# Exit code 0 when all of that holds, 1 otherwise. A report (markdown) goes to
# bench/results/s3soak-<date>.md. See docs/benchmarks.md, "S3 soak".
set -euo pipefail

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_ROOT=$(cd "$SCRIPT_DIR/.." && pwd)

ROUNDS=8
KILL_ROUND=4
KILL_AFTER=3
DOWN_FOR=20
SIZE=$((96 << 20))
FILES=800
BIG=$((256 << 20))
PERCENT=3
WORKDIR=
KEEP=0
RESULTS=
SP_BIN=
PASSWORD=stillpoint-soak-password

usage() {
	cat <<EOF
usage: bench/s3soak.sh [options]

  --rounds N          backups (default $ROUNDS)
  --kill-round N      the backup during which a volume server is killed (default $KILL_ROUND)
  --kill-after S      seconds into that backup (default $KILL_AFTER)
  --down-for S        seconds the volume server stays down (default $DOWN_FOR)
  --size BYTES        size of the mixed set (default $SIZE)
  --files N           its small files (default $FILES)
  --big BYTES         the new file of the kill round (default $BIG)
  --percent P         share changed before each backup (default $PERCENT)
  --workdir DIR       where the cluster, data and restores go (a fresh
                      subdirectory, removed afterwards unless the run fails)
  --keep              keep it in any case
  --results FILE      report (default bench/results/s3soak-<date>.md)
  --stillpoint-bin P  this binary instead of building ./cmd/stillpoint
EOF
}
die() { echo "s3soak.sh: error: $*" >&2; exit 1; }
log() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

while [[ $# -gt 0 ]]; do
	case $1 in
	--rounds) ROUNDS=${2:?}; shift 2 ;;
	--kill-round) KILL_ROUND=${2:?}; shift 2 ;;
	--kill-after) KILL_AFTER=${2:?}; shift 2 ;;
	--down-for) DOWN_FOR=${2:?}; shift 2 ;;
	--size) SIZE=${2:?}; shift 2 ;;
	--files) FILES=${2:?}; shift 2 ;;
	--big) BIG=${2:?}; shift 2 ;;
	--percent) PERCENT=${2:?}; shift 2 ;;
	--workdir) WORKDIR=${2:?}; shift 2 ;;
	--keep) KEEP=1; shift ;;
	--results) RESULTS=${2:?}; shift 2 ;;
	--stillpoint-bin) SP_BIN=${2:?}; shift 2 ;;
	-h | --help) usage; exit 0 ;;
	*) usage >&2; die "unknown argument: $1" ;;
	esac
done
((KILL_ROUND >= 2 && KILL_ROUND < ROUNDS)) || die "--kill-round must be between 2 and --rounds - 1"
command -v curl >/dev/null || die "curl is required"
command -v ss >/dev/null || die "ss is required"

[[ -n $WORKDIR ]] || WORKDIR=${TMPDIR:-/var/tmp}
mkdir -p "$WORKDIR"
W=$(mktemp -d "$WORKDIR/stillpoint-s3soak.XXXXXX")
mkdir -p "$W/bin" "$W/logs" "$W/cluster" "$W/manifests"
declare -A PID
USED_PORTS=
FAILED=0
cleanup() {
	local rc=$? n p
	for n in s3 filer vol1 vol2 vol3 master; do
		p=${PID[$n]:-}
		[[ -n $p ]] && kill -TERM "$p" 2>/dev/null || true
	done
	for n in s3 filer vol1 vol2 vol3 master; do
		p=${PID[$n]:-}
		[[ -n $p ]] || continue
		for _ in $(seq 75); do kill -0 "$p" 2>/dev/null || break; sleep 0.2; done
		kill -KILL "$p" 2>/dev/null || true
	done
	for p in $USED_PORTS; do rm -f -- /tmp/seaweedfs-*-grpc-"$p".sock /tmp/seaweedfs-*-"$p".sock; done
	if [[ $KEEP -eq 1 || $rc -ne 0 ]]; then log "kept $W"; else rm -rf -- "$W"; fi
	exit "$rc"
}
trap cleanup EXIT
trap 'echo "s3soak.sh: interrupted" >&2; exit 130' INT TERM

WEED=$("$REPO_ROOT/scripts/install-s3servers" weed) || die "could not build SeaweedFS"
if [[ -n $SP_BIN ]]; then
	SP=$(cd "$(dirname "$SP_BIN")" && pwd)/$(basename "$SP_BIN"); SP_VERSION="(--stillpoint-bin $(basename "$SP_BIN"))"
else
	log "building stillpoint and bench/gen from the work tree"
	(cd "$REPO_ROOT" && go build -o "$W/bin/stillpoint" ./cmd/stillpoint) >"$W/logs/build.log" 2>&1 || { cat "$W/logs/build.log" >&2; die "stillpoint does not build"; }
	SP=$W/bin/stillpoint
	SP_VERSION="$(cd "$REPO_ROOT" && git rev-parse --short HEAD)$(cd "$REPO_ROOT" && git diff --quiet HEAD -- cmd internal go.mod go.sum || echo '+uncommitted changes')"
fi
(cd "$REPO_ROOT" && go build -o "$W/bin/gen" ./bench/gen) >>"$W/logs/build.log" 2>&1 || die "bench/gen does not build"
GEN=$W/bin/gen

free_port() {
	local p
	while :; do
		p=$((20000 + RANDOM % 30000)) # +10000 stays below 60000
		[[ " $USED_PORTS " == *" $p "* ]] && continue
		if [[ -z $(ss -Hltn "sport = :$p") && -z $(ss -Hltn "sport = :$((p + 10000))") ]]; then USED_PORTS+=" $p $((p + 10000))"; echo "$p"; return; fi
	done
}

ACCESS_KEY=soak$(head -c 6 /dev/urandom | od -An -tx1 | tr -d ' \n')
SECRET_KEY=$(head -c 20 /dev/urandom | od -An -tx1 | tr -d ' \n')
cat >"$W/cluster/s3.json" <<EOF
{"identities": [{"name": "soak", "credentials": [{"accessKey": "$ACCESS_KEY", "secretKey": "$SECRET_KEY"}],
  "actions": ["Admin", "Read", "List", "Tagging", "Write"]}]}
EOF
chmod 600 "$W/cluster/s3.json"
s3req() {
	curl -s -o "$W/logs/curl.out" -w '%{http_code}' --aws-sigv4 "aws:amz:us-east-1:s3" \
		--user "$ACCESS_KEY:$SECRET_KEY" -X "$1" "$2" || echo 000
}

# ports: each server's HTTP port P, its gRPC port P+10000 (weed's default)
MP=$(free_port) FP=$(free_port) SP3=$(free_port)
VP=("" "$(free_port)" "$(free_port)" "$(free_port)")

# start NAME ARGS...: one weed component, its own session, output to its log.
start() {
	local name=$1; shift
	mkdir -p "$W/cluster/$name"
	(cd "$W/cluster/$name" && exec env -i PATH=/usr/bin:/bin HOME="$W/cluster/$name" TMPDIR="$W/cluster/$name" setsid "$WEED" "$@") >>"$W/logs/$name.log" 2>&1 &
	PID[$name]=$!
	log "started $name (pid ${PID[$name]})"
}
start_volume() { # start_volume N
	local n=$1
	start "vol$n" volume -ip=127.0.0.1 -ip.bind=127.0.0.1 -port="${VP[$n]}" -port.grpc=$((VP[n] + 10000)) \
		-dir="$W/cluster/vol$n" -max=40 -mserver="127.0.0.1:$MP.$((MP + 10000))" -dataCenter=dc1 -rack=rack1 \
		-metricsPort=0
}

start master master -ip=127.0.0.1 -ip.bind=127.0.0.1 -port="$MP" -port.grpc=$((MP + 10000)) -mdir="$W/cluster/master" \
	-defaultReplication=001 -volumeSizeLimitMB=64 -telemetry=false -metricsPort=0
sleep 2
for n in 1 2 3; do start_volume "$n"; done
start filer filer -ip=127.0.0.1 -ip.bind=127.0.0.1 -port="$FP" -port.grpc=$((FP + 10000)) \
	-master="127.0.0.1:$MP.$((MP + 10000))" -defaultStoreDir="$W/cluster/filer" -localSocket="$W/cluster/filer.sock" -metricsPort=0 -s3=false -webdav=false -iam=false
sleep 2
start s3 s3 -ip=127.0.0.1 -ip.bind=127.0.0.1 -port="$SP3" -port.grpc=$((SP3 + 10000)) -port.iceberg=0 -port.lance=0 \
	-filer="127.0.0.1:$FP.$((FP + 10000))" -config="$W/cluster/s3.json" -localSocket="$W/cluster/s3.sock" -metricsPort=0
S3_URL=http://127.0.0.1:$SP3
ready=0
for _ in $(seq 240); do
	# ready once an object can be written (S3 answers before the volume servers have joined)
	st=$(s3req PUT "$S3_URL/soak-ready")
	if [[ $st == 200 || $st == 409 ]] && [[ $(s3req PUT "$S3_URL/soak-ready/probe") == 200 ]]; then ready=1; break; fi
	sleep 0.5
done
[[ $ready -eq 1 ]] || { for n in master vol1 filer s3; do tail -n 5 "$W/logs/$n.log" >&2; done; die "the cluster did not start"; }
st=$(s3req PUT "$S3_URL/soak")
[[ $st == 200 ]] || die "could not make bucket soak: HTTP $st $(cat "$W/logs/curl.out")"
sleep 3
# every listening socket of the cluster on loopback
pids=$(printf '%s|' "${PID[@]}"); pids=${pids%|}
ss -Hltnp | grep -E "pid=($pids)," >"$W/logs/listening" || true
if grep -vE '^\S+\s+\S+\s+\S+\s+127\.0\.0\.1:' "$W/logs/listening"; then die "a component listens beyond 127.0.0.1 (above)"; fi
LISTEN_COUNT=$(wc -l <"$W/logs/listening")
log "cluster up: S3 on $S3_URL; $LISTEN_COUNT listening sockets, all on 127.0.0.1"

export AWS_ACCESS_KEY_ID=$ACCESS_KEY AWS_SECRET_ACCESS_KEY=$SECRET_KEY STILLPOINT_PASSWORD=$PASSWORD
export STILLPOINT_CACHE_DIR=$W/spcache
REPO=s3:$S3_URL/soak/repo
sp() { "$SP" -r "$REPO" "$@"; }

# manifest DIR: path, type, mode, size and SHA-256 of every entry, sorted.
manifest() {
	(
		cd "$1" || exit 1
		LC_ALL=C join -t $'\t' -a 1 \
			<(find . -mindepth 1 -printf '%P\t%y\t%m\t%s\n' | awk -F'\t' -v OFS='\t' '{ if ($2 == "d") $4 = "-"; print }' | LC_ALL=C sort -t $'\t' -k1,1) \
			<(find . -type f -printf '%P\0' | xargs -0 -r sha256sum -- | awk '{ h = $1; sub(/^[0-9a-f]+  /, ""); print $0 "\t" h }' | LC_ALL=C sort -t $'\t' -k1,1)
	)
}

# alive PID: the process runs (a zombie waiting to be reaped does not).
alive() { [[ -r /proc/$1/stat ]] && [[ $(awk '{print $3}' "/proc/$1/stat" 2>/dev/null) != Z ]]; }

START_TIME=$(date -u '+%Y-%m-%d %H:%M UTC')
LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)
DATA=$W/data
"$GEN" create -set mixed -out "$DATA" -seed 7 -size "$SIZE" -files "$FILES" >"$W/logs/gen.log"
log "$(cat "$W/logs/gen.log")"
sp init >"$W/logs/init.log" 2>&1 || { cat "$W/logs/init.log" >&2; die "init failed"; }

# volumes SERVER: how many volumes (replicas) each volume server holds, as the master says
volumes() {
	curl -s "http://127.0.0.1:$MP/vol/status" | python3 -c '
import json, sys
d = json.load(sys.stdin)["Volumes"]["DataCenters"]
port = {sys.argv[i]: "vol%d" % i for i in range(1, 4)}
out = []
for dc in d.values():
    for rack in dc.values():
        for node, vols in sorted(rack.items()):
            out.append("%s %d" % (port.get(node.rsplit(":", 1)[-1], node), len(vols or [])))
print(", ".join(sorted(out)) or "none")' "${VP[1]}" "${VP[2]}" "${VP[3]}" 2>/dev/null || echo unknown
}

ROWS=()
KILL_RESULT= KILL_MESSAGE= KILL_SNAPSHOT=
declare -A SNAP_ROUND
for ((r = 1; r <= ROUNDS; r++)); do
	if ((r > 1)); then "$GEN" mutate -dir "$DATA" -seed $((100 + r)) -percent "$PERCENT" >>"$W/logs/gen.log"; fi
	if ((r == KILL_ROUND)); then
		"$GEN" create -set big -out "$DATA/big-$r" -seed $((200 + r)) -size "$BIG" >>"$W/logs/gen.log"
	fi
	manifest "$DATA" >"$W/manifests/round$r"
	logf=$W/logs/backup$r.log
	load=$(cut -d' ' -f1 /proc/loadavg)
	s3lines0=$(wc -l <"$W/logs/s3.log") masterlines0=$(wc -l <"$W/logs/master.log")
	# the backup records its own exit code and wall time
	(
		t0=$(date +%s.%N)
		rc=0
		sp backup --json --tag "round$r" "$DATA" >"$logf.json" 2>"$logf" || rc=$?
		echo "$rc $(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN{printf "%.1f", b-a}') $(date +%H:%M:%S)" >"$logf.rc"
	) &
	bpid=$!
	note=
	if ((r == KILL_ROUND)); then
		sleep "$KILL_AFTER"
		if alive "$bpid"; then
			VOLS_BEFORE=$(volumes)
			kill -KILL "${PID[vol2]}"; wait "${PID[vol2]}" 2>/dev/null || true
			note="vol2 (pid ${PID[vol2]}) killed ${KILL_AFTER}s into the backup at $(date +%H:%M:%S)"
			log "$note"
			sleep "$DOWN_FOR"
			start_volume 2
			note+=", started again ${DOWN_FOR}s later at $(date +%H:%M:%S) (pid ${PID[vol2]})"
			if alive "$bpid"; then note+="; the backup was still running then"; else note+="; the backup had ended while it was down"; fi
			log "vol2 back (pid ${PID[vol2]})"
		else
			note="the backup was over before the kill (raise --big or lower --kill-after); vol2 not killed"
			log "$note"
		fi
	fi
	wait "$bpid" || true
	read -r rc dur ended <"$logf.rc"
	((r == KILL_ROUND)) && note+="; the backup ended at $ended"
	id=$(grep -o '"snapshot_id":"[0-9a-f]*"' "$logf.json" | tail -n 1 | cut -d'"' -f4 || true)
	req=$(grep -o '"total":[0-9]*' "$logf.json" | tail -n 1 | cut -d: -f2 || true)
	added=$(grep -o '"stored_added":[0-9]*' "$logf.json" | tail -n 1 | cut -d: -f2 || true)
	[[ -n $id ]] && SNAP_ROUND[$id]=$r
	result=completed
	if ((rc != 0)); then
		result="failed (exit $rc)"
		msg=$(grep -v '^\s*$' "$logf" | tail -n 3 | tr '\n' ' ')
	else
		msg=$(grep -v '^\s*$' "$logf" | grep -iE 'retr|error|fail' | tail -n 3 | tr '\n' ' ' || true)
	fi
	log "round $r: backup $result in ${dur}s, snapshot ${id:0:8}, ${req:-?} requests, $(( ${added:-0} >> 20 )) MiB stored (load $load) ${msg:+— $msg}"
	if ((r == KILL_ROUND)); then
		# what the servers said meanwhile: the gateway's warnings and errors (a write
		# to a replica on the dead server, retried by the gateway itself), the
		# volumes the master took out of writing
		KILL_S3LOG=$(tail -n +$((s3lines0 + 1)) "$W/logs/s3.log" | grep -c '^[WE][0-9]' || true)
		KILL_S3EX=$(tail -n +$((s3lines0 + 1)) "$W/logs/s3.log" | grep -m 1 '^[WE][0-9]' | cut -c1-220 || true)
		KILL_UNWRITABLE=$(tail -n +$((masterlines0 + 1)) "$W/logs/master.log" | grep -c 'becomes unwritable' || true)
		KILL_RESULT=$result KILL_MESSAGE=${msg:-none} KILL_SNAPSHOT=${id:-none} KILL_NOTE=$note
	elif ((rc != 0)); then
		FAILED=1
	fi
	ROWS+=("| $r | $result | $dur | ${id:0:8} | ${req:--} | $(( ${added:-0} >> 20 )) | $load | ${note:-} |")
done
# the backup after the kill round must have completed: it is in ROWS as such, and FAILED covers it

VOLS_END=$(volumes)
log "volumes per server before the kill: ${VOLS_BEFORE:-unknown}; at the end: $VOLS_END"
log "restoring every snapshot and comparing it with its manifest"
mapfile -t IDS < <(sp snapshots --json | grep -o '"id":"[0-9a-f]\{64\}"' | cut -d'"' -f4)
RESTORED=0 MISMATCH=0
for id in "${IDS[@]}"; do
	r=${SNAP_ROUND[$id]:-}
	if [[ -z $r ]]; then log "snapshot ${id:0:8} is not one this run recorded"; MISMATCH=$((MISMATCH + 1)); continue; fi
	rm -rf -- "$W/restore"; mkdir -p "$W/restore"
	if ! sp restore "$id" --target "$W/restore" >"$W/logs/restore-$r.log" 2>&1; then
		log "restore of round $r (${id:0:8}) failed: $(tail -n 2 "$W/logs/restore-$r.log")"; MISMATCH=$((MISMATCH + 1)); continue
	fi
	if diff <(manifest "$W/restore$DATA") "$W/manifests/round$r" >"$W/logs/diff-$r" 2>&1; then
		RESTORED=$((RESTORED + 1))
	else
		log "round $r (${id:0:8}) differs from its manifest: $(head -n 4 "$W/logs/diff-$r")"; MISMATCH=$((MISMATCH + 1))
	fi
done
rm -rf -- "$W/restore"
log "check --read-data"
CHECK=clean
sp check --read-data >"$W/logs/check.log" 2>&1 || CHECK="NOT clean (exit $?): $(tail -n 3 "$W/logs/check.log" | tr '\n' ' ')"
END_TIME=$(date -u '+%Y-%m-%d %H:%M UTC')
LOAD_END=$(cut -d' ' -f1-3 /proc/loadavg)
EXPECTED=${#SNAP_ROUND[@]}
[[ $MISMATCH -eq 0 && $RESTORED -eq $EXPECTED && $CHECK == clean ]] || FAILED=1
# the next backup after the kill must have completed
[[ ${ROWS[$KILL_ROUND]} == *"| completed |"* ]] || FAILED=1

mkdir -p "$REPO_ROOT/bench/results"
[[ -n $RESULTS ]] || RESULTS=$REPO_ROOT/bench/results/s3soak-$(date +%Y-%m-%d).md
[[ -e $RESULTS ]] && RESULTS=${RESULTS%.md}-$(date +%H%M%S).md
CMDLINE="bench/s3soak.sh --rounds $ROUNDS --kill-round $KILL_ROUND --kill-after $KILL_AFTER --down-for $DOWN_FOR --size $SIZE --files $FILES --big $BIG --percent $PERCENT"
{
	echo "## S3 soak: $(date +%Y-%m-%d) — $([[ $FAILED -eq 0 ]] && echo passed || echo FAILED)"
	echo
	echo "- command: \`$CMDLINE\`"
	echo "- stillpoint $SP_VERSION; SeaweedFS $(basename "$WEED"): 1 master (\`-defaultReplication=001\`, 64 MiB volumes), 3 volume servers (one rack), 1 filer, 1 S3 gateway with an identity file; $LISTEN_COUNT listening sockets, all on 127.0.0.1"
	echo "- data: bench/gen mixed set ($(head -n 1 "$W/logs/gen.log" | sed -E 's/^gen: //; s/ in [0-9.]+s .*$//')), \`gen mutate -percent $PERCENT\` before each later backup, a new ${BIG}-byte file (bench/gen big) before round $KILL_ROUND"
	echo "- started $START_TIME (load average $LOAD_START), finished $END_TIME (load average $LOAD_END)"
	echo
	echo "| round | backup | wall s | snapshot | requests | MiB stored | load | |"
	echo "|--:|---|--:|---|--:|--:|--:|---|"
	printf '%s\n' "${ROWS[@]}"
	echo
	echo "- the backup during the kill: **$KILL_RESULT**; ${KILL_NOTE:-}; its message: \`${KILL_MESSAGE}\`"
	echo "- meanwhile the S3 gateway logged $KILL_S3LOG warnings or errors${KILL_S3EX:+ (the first: \`$KILL_S3EX\`)}, and the master took $KILL_UNWRITABLE volumes out of writing (\"becomes unwritable\")"
	echo "- volumes (replicas) per volume server before the kill: ${VOLS_BEFORE:-unknown}; at the end: $VOLS_END"
	echo "- snapshots restored byte-exact (path, type, mode, size, SHA-256 against the manifest taken before each backup): **$RESTORED of $EXPECTED**; not matching or not restorable: $MISMATCH"
	echo "- \`check --read-data\`: **$CHECK**"
} >"$RESULTS"
cat "$RESULTS"
log "report written to ${RESULTS#"$REPO_ROOT"/}"
exit "$FAILED"
