#!/usr/bin/env bash
# bench/stages.sh: how fast each stage of the backup pipeline is on one core
# (Go benchmarks over a 256 MiB sample of the big data set, cut into the
# repository's chunks), what that allows on this machine's cores, what the
# disk allows, and how close the whole pipeline comes.
#
#   bench/stages.sh [--throughput MBPS] [--count N]
#
# --throughput is a measured end-to-end figure (e.g. stillpoint's initial
# backup of the big data set from bench/compare.sh) to set against the
# bounds. Prints a markdown table. See docs/benchmarks.md.
set -euo pipefail
cd "$(dirname "$0")/.."

THROUGHPUT=
COUNT=5
while [[ $# -gt 0 ]]; do
	case $1 in
	--throughput) THROUGHPUT=${2:?}; shift 2 ;;
	--count) COUNT=${2:?}; shift 2 ;;
	-h | --help) sed -n '2,11p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
	*) echo "stages.sh: unknown option $1" >&2; exit 2 ;;
	esac
done

cores=$(nproc)
work=$(mktemp -d "${TMPDIR:-/var/tmp}/stages.XXXXXX")
trap 'rm -rf "$work"' EXIT
go run ./bench/gen create -set big -out "$work/data" -size $((256 << 20)) >/dev/null
sample=$(find "$work/data" -type f | head -1)
stage_out=$(STILLPOINT_STAGE_DATA=$sample go test -run '^$' -bench '^BenchmarkStagesOnData$' -benchtime 5x -count "$COUNT" ./internal/repo/)
pipe_out=$(go test -run '^$' -bench '^BenchmarkPipeline$/^big$' -benchtime 2x -count 3 ./internal/archiver/)

# median MB/s of the benchmark lines whose name starts with $1
median() {
	awk -v name="$1" '$1 ~ "^"name"-[0-9]+$" { for (i = 1; i <= NF; i++) if ($(i+1) == "MB/s") print $i }' |
		sort -n | awk '{ v[NR] = $1 } END { if (NR == 0) { print "nan"; exit } print (NR % 2) ? v[(NR+1)/2] : (v[NR/2] + v[NR/2+1]) / 2 }'
}

chunk=$(median BenchmarkStagesOnData/chunk <<<"$stage_out")
hash=$(median BenchmarkStagesOnData/hash <<<"$stage_out")
comp=$(median BenchmarkStagesOnData/compress <<<"$stage_out")
enc=$(median BenchmarkStagesOnData/encrypt <<<"$stage_out")
pipe=$(median BenchmarkPipeline/big <<<"$pipe_out")

# the disk under the work directory: 1 GiB written with fsync, then read
# back with a cold page cache (root only: dropping the cache needs it)
disk_write= disk_read=
if [[ $(id -u) -eq 0 ]]; then
	ddrate() { tail -1 | awk '{ v = $(NF-1); u = $NF; if (u == "GB/s") v *= 1000; if (u == "kB/s") v /= 1000; print v }'; }
	disk_write=$(dd if=/dev/zero of="$work/disk" bs=8M count=128 conv=fsync 2>&1 | ddrate)
	sync
	echo 3 >/proc/sys/vm/drop_caches
	disk_read=$(dd if="$work/disk" of=/dev/null bs=8M 2>&1 | ddrate)
fi

awk -v cores="$cores" -v chunk="$chunk" -v hash="$hash" -v comp="$comp" -v enc="$enc" \
	-v pipe="$pipe" -v measured="$THROUGHPUT" -v dread="$disk_read" -v dwrite="$disk_write" 'BEGIN {
	n = split("chunking (JC)|hashing (keyed BLAKE3)|compressing (zstd, the default level; sampled)|encrypting (AES-256-GCM)", name, "|")
	s[1] = chunk; s[2] = hash; s[3] = comp; s[4] = enc
	printf "| stage | MB/s, one core | MB/s, %d cores |\n|---|--:|--:|\n", cores
	slow = 1; inv = 0
	for (i = 1; i <= n; i++) {
		printf "| %s | %.0f | %.0f |\n", name[i], s[i], s[i] * cores
		if (s[i] < s[slow]) slow = i
		inv += 1 / s[i]
	}
	bound = s[slow] * cores
	shared = cores / inv
	printf "\n- slowest stage: %s, %.0f MB/s on %d cores; 60%% of it: %.0f MB/s\n", name[slow], bound, cores, 0.6 * bound
	printf "- all four stages sharing %d cores (sum of their costs per byte): at most %.0f MB/s\n", cores, shared
	printf "- whole pipeline on in-memory data (BenchmarkPipeline/big, includes packing and storing to memory): %.0f MB/s = %.0f%% of the slowest stage, %.0f%% of the shared bound\n", pipe, 100 * pipe / bound, 100 * pipe / shared
	if (dread != "" && dwrite != "")
		printf "- the disk: reading %.0f MB/s (cold cache), writing %.0f MB/s (with fsync); a backup that reads every byte from it and writes about as many to it goes no faster than the slower of the two, %.0f MB/s\n", dread, dwrite, (dread < dwrite ? dread : dwrite)
	if (measured != "")
		printf "- measured end to end (big data set, from disk): %.0f MB/s = %.0f%% of the slowest stage, %.0f%% of the shared bound\n", measured, 100 * measured / bound, 100 * measured / shared
}'
