#!/usr/bin/env bash
# bench/stages.sh: how fast each stage of the backup pipeline is on one core
# (Go benchmarks on incompressible data, like the big data set), what that
# allows on this machine's cores, and how close the whole pipeline comes.
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
	-h | --help) sed -n '2,10p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
	*) echo "stages.sh: unknown option $1" >&2; exit 2 ;;
	esac
done

cores=$(nproc)
stage_out=$(go test -run '^$' -bench '^Benchmark(Chunker|Hash|Compress|Encrypt)$' -benchtime 20x -count "$COUNT" ./internal/repo/)
pipe_out=$(go test -run '^$' -bench '^BenchmarkPipeline$/^big$' -benchtime 2x -count 3 ./internal/archiver/)

# median MB/s of the benchmark lines whose name starts with $1
median() {
	awk -v name="$1" '$1 ~ "^"name"-[0-9]+$" { for (i = 1; i <= NF; i++) if ($(i+1) == "MB/s") print $i }' |
		sort -n | awk '{ v[NR] = $1 } END { if (NR == 0) { print "nan"; exit } print (NR % 2) ? v[(NR+1)/2] : (v[NR/2] + v[NR/2+1]) / 2 }'
}

chunk=$(median BenchmarkChunker/random <<<"$stage_out")
hash=$(median BenchmarkHash <<<"$stage_out")
comp=$(median BenchmarkCompress/random/fastest <<<"$stage_out")
enc=$(median BenchmarkEncrypt <<<"$stage_out")
pipe=$(median BenchmarkPipeline/big <<<"$pipe_out")

awk -v cores="$cores" -v chunk="$chunk" -v hash="$hash" -v comp="$comp" -v enc="$enc" \
	-v pipe="$pipe" -v measured="$THROUGHPUT" 'BEGIN {
	n = split("chunking (JC)|hashing (keyed BLAKE3)|compressing (zstd fastest, incompressible input)|encrypting (AES-256-GCM)", name, "|")
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
	if (measured != "")
		printf "- measured end to end (big data set, from disk): %.0f MB/s = %.0f%% of the slowest stage, %.0f%% of the shared bound\n", measured, 100 * measured / bound, 100 * measured / shared
}'
