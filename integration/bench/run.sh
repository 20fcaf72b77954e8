#!/usr/bin/env bash
# Benchmark kit: cold build, incremental rebuild and a parallel-gzip reference over the
# same bytes, on deterministic generated images (integration/bench/genimage).
#
#   integration/bench/run.sh [SIZE...]        e.g. integration/bench/run.sh 512M 2G 5G
#
# Env: BENCH_DIR (default /var/tmp/rechunker-bench), RECHUNKER (default ./bin/rechunker),
#      COMPRESSION (default gzip), LEVEL (default 6).
# Prints one markdown table row per size, ready for docs/benchmarks.md.
set -euo pipefail
cd "$(dirname "$0")/../.."
BENCH_DIR=${BENCH_DIR:-/var/tmp/rechunker-bench}
RECHUNKER=${RECHUNKER:-./bin/rechunker}
COMPRESSION=${COMPRESSION:-gzip}
LEVEL=${LEVEL:-6}
sizes=("$@")
[ ${#sizes[@]} -gt 0 ] || sizes=(512M 2G)

mkdir -p "$BENCH_DIR"
export CGO_ENABLED=0 GOFLAGS="-buildvcs=false -tags=containers_image_openpgp"
go build -o "$BENCH_DIR/genimage" ./integration/bench/genimage
[ -x "$RECHUNKER" ] || go build -o "$RECHUNKER" ./cmd/rechunker

# run_measured LABEL CMD...: wall s, cpu s, peak RSS MB, and bytes read/written MB (from
# /proc/$$/io of the wrapping shell, which includes its reaped child's counters).
run_measured() {
	local label=$1
	shift
	local tf
	tf=$(mktemp)
	/usr/bin/time -o "$tf" -f '%e %U %S %M' bash -c '"$@" >/dev/null || exit $?; awk "/^rchar|^wchar/{print \$2}" /proc/$$/io | tr "\n" " " >&3' _ "$@" 3>"$tf.io"
	local t io
	read -r -a t <"$tf"
	read -r -a io <"$tf.io" || true # no trailing newline: read returns 1 at EOF
	rm -f "$tf" "$tf.io"
	eval "${label}_wall=${t[0]}"
	eval "${label}_cpu=$(echo "${t[1]} + ${t[2]}" | bc)"
	eval "${label}_rss=$((t[3] / 1024))"
	eval "${label}_read=$(((io[0]) / 1048576))"
	eval "${label}_written=$(((io[1]) / 1048576))"
}

echo "| image | files | cold build (s) | cpu (s) | peak RSS (MB) | read/written (MB) | pigz -$LEVEL same bytes (s) | ratio | rebuild after 5 MB change (s) | rebuild/cold |"
echo "|---|---|---|---|---|---|---|---|---|---|"
for size in "${sizes[@]}"; do
	img="$BENCH_DIR/img-$size"
	if [ ! -f "$img/index.json" ]; then
		"$BENCH_DIR/genimage" -size "$size" -out "$img" -tag v1 >&2
		"$BENCH_DIR/genimage" -size "$size" -out "$img" -tag v2 -change 5M >&2
	fi
	store="$BENCH_DIR/store-$size"
	out="$BENCH_DIR/out-$size"
	rm -rf "$store" "$out"
	sync
	run_measured cold "$RECHUNKER" build --bootc --quiet --store "$store" --compression "$COMPRESSION" \
		--compression-level "$LEVEL" --from "oci:$img:v1" --output "oci:$out:v1"
	# Reference: the same uncompressed bytes through parallel gzip at the same level.
	layers=$(jq -r '.layers[].digest' "$img/blobs/sha256/$(jq -r '.manifests[] | select(.annotations["org.opencontainers.image.ref.name"]=="v1") | .digest' "$img/index.json" | cut -d: -f2)" | cut -d: -f2 | sed "s|^|$img/blobs/sha256/|")
	# shellcheck disable=SC2086
	run_measured ref bash -c "cat $(echo $layers) | pigz -$LEVEL -p $(nproc) >/dev/null"
	run_measured rebuild "$RECHUNKER" build --bootc --quiet --store "$store" --compression "$COMPRESSION" \
		--compression-level "$LEVEL" --from "oci:$img:v2" --output "oci:$out:v2" --previous-build "oci:$out:v1"
	files=$(tar -tf "$img/blobs/sha256/$(echo "$layers" | head -n1 | xargs basename)" | grep -vc '/$' || true)
	ratio=$(echo "scale=2; $cold_wall / $ref_wall" | bc)
	rratio=$(echo "scale=3; $rebuild_wall / $cold_wall" | bc)
	echo "| $size | $files | $cold_wall | $cold_cpu | $cold_rss | $cold_read/$cold_written | $ref_wall | $ratio | $rebuild_wall (RSS $rebuild_rss MB) | $rratio |"
done
