#!/usr/bin/env bash
# Benchmark kit: cold build, incremental rebuilds and a parallel-gzip reference over the
# same bytes, on deterministic generated images (integration/bench/genimage).
#
#   integration/bench/run.sh [[PROFILE:]SIZE...]   e.g. integration/bench/run.sh 512M 2G desktop:8G
#
# PROFILE is genimage's -profile (server, the default, or desktop).
# Per size it measures, each with wall time, CPU time (user+sys), peak RSS and bytes
# read/written (rchar/wchar of the process tree):
#   cold     build v1 into an empty store (nothing to reuse)
#   ref      cat <the image's layer tars> | pigz -LEVEL -p NPROC  (the same uncompressed bytes)
#   rebuild  build v2 (v1 plus a 5 MB file in the top layer) with v1's store and v1 as
#            --previous-build
#   ci       the same v2 build with an EMPTY store, only v1 (pulled) as --previous-build
#   gzcopy   the cold build from a gzip-compressed copy of v1 (skopeo copy to an oci:
#            layout), whose layers cannot be read in place: the store keeps a copy
#   transient  that build with --transient-store (nothing of the input kept)
#   rootfs   build v1 from its tree unpacked into a directory (--rootfs, read in place)
# genimage writes uncompressed layers, so cold, rebuild and ci read the files' payloads
# from the layer blobs in place.
# and prints markdown table rows for docs/benchmarks.md, plus the raw figures as
# key=value lines on stderr. A second table gives each build's peak extra disk: the most
# space the store, the output and temporary files took at once, sampled from the file
# systems' free space (so run it on an otherwise idle machine).
#
# Env: BENCH_DIR (default /var/tmp/rechunker-bench), COMPRESSION (gzip), LEVEL (6),
#      KEEP=1 keeps stores and outputs, PROFILE=1 writes cold/rebuild CPU profiles.
#
# Note: on an ext4 filesystem without a journal, inodes freed in the last 1-6 minutes
# make creating files in the same block group slow (ext4 skips "recently deleted"
# inodes). Every run therefore uses fresh directories and deletes them only at the end;
# wait a few minutes between runs, or use a filesystem with a journal, for stable numbers.
set -euo pipefail
cd "$(dirname "$0")/../.."
BENCH_DIR=${BENCH_DIR:-/var/tmp/rechunker-bench}
COMPRESSION=${COMPRESSION:-gzip}
LEVEL=${LEVEL:-6}
NPROC=$(nproc)
sizes=("$@")
[ ${#sizes[@]} -gt 0 ] || sizes=(512M 2G)

for tool in jq pigz bc skopeo /usr/bin/time; do
	command -v "$tool" >/dev/null || { echo "run.sh: $tool is required" >&2; exit 1; }
done
mkdir -p "$BENCH_DIR"
export CGO_ENABLED=0 GOFLAGS="-buildvcs=false -tags=containers_image_openpgp"
go build -o "$BENCH_DIR/genimage" ./integration/bench/genimage
RECHUNKER=$BENCH_DIR/rechunker
go build -o "$RECHUNKER" ./cmd/rechunker

# Let inodes freed by the previous run age out (see the note above): 6 minutes after its
# cleanup. SETTLE=0 skips the wait.
last=$BENCH_DIR/.last-cleanup
if [ -f "$last" ] && [ "${SETTLE:-360}" -gt 0 ]; then
	wait=$((${SETTLE:-360} - $(date +%s) + $(stat -c %Y "$last")))
	if [ "$wait" -gt 0 ]; then
		echo "run.sh: waiting ${wait}s for the previous run's deleted inodes to age out (SETTLE=0 skips)" >&2
		sleep "$wait"
	fi
fi
RUN=$BENCH_DIR/run-$$
mkdir -p "$RUN"
[ -n "${KEEP:-}" ] || trap 'rm -rf "$RUN"; sync; touch "$last"' EXIT

# disk_used: bytes in use on the file systems holding $RUN and $TMPDIR, each counted once.
disk_used() {
	stat -f -c '%i %b %f %S' "$RUN" "${TMPDIR:-/tmp}" | sort -u -k1,1 | awk '{u += ($2 - $3) * $4} END {printf "%.0f", u}'
}

# sample_disk BASE OUT: until $OUT.stop exists, samples disk_used every 0.2 s and writes
# the peak above BASE (bytes) to OUT. Sampling the file systems' free space, not du of
# the directories, costs nothing per file however many the store holds; it also counts
# unlinked files still open and anything else writing there, so run on an idle machine.
sample_disk() {
	local base=$1 out=$2 peak=0 cur
	while [ ! -e "$out.stop" ]; do
		cur=$(($(disk_used) - base))
		[ "$cur" -le "$peak" ] || peak=$cur
		sleep 0.2
	done
	echo "$peak" >"$out"
}

# run_measured LABEL CMD...: sets LABEL_wall (s), LABEL_cpu (s), LABEL_rss (MB),
# LABEL_read and LABEL_written (MB), and LABEL_disk (MB): the peak of disk space used
# beyond what was used when the command started (store, output and temporary files).
# The I/O counters come from /proc/PID/io of a wrapping shell, which includes the
# counters of the children it has reaped.
run_measured() {
	local label=$1
	shift
	local tf="$RUN/time.$label" io="$RUN/io.$label" dk="$RUN/disk.$label"
	sync
	rm -f "$dk.stop"
	sample_disk "$(disk_used)" "$dk" &
	local sampler=$!
	/usr/bin/time -o "$tf" -f '%e %U %S %M' bash -c '"$@" >/dev/null || exit $?; awk "/^rchar|^wchar/{print \$2}" /proc/$$/io | tr "\n" " " >"$0"' "$io" "$@"
	touch "$dk.stop"
	wait "$sampler"
	local t i
	read -r -a t <"$tf"
	read -r -a i <"$io" || true # no trailing newline
	printf -v "${label}_wall" '%s' "${t[0]}"
	printf -v "${label}_cpu" '%s' "$(echo "${t[1]} + ${t[2]}" | bc)"
	printf -v "${label}_rss" '%s' "$((t[3] / 1024))"
	printf -v "${label}_read" '%s' "$((i[0] / 1048576))"
	printf -v "${label}_written" '%s' "$((i[1] / 1048576))"
	printf -v "${label}_disk" '%s' "$(($(cat "$dk") / 1048576))"
	echo "$label: wall=${t[0]}s user=${t[1]}s sys=${t[2]}s maxrss=$((t[3] / 1024))MB rchar=$((i[0] / 1048576))MB wchar=$((i[1] / 1048576))MB peakdisk=$(($(cat "$dk") / 1048576))MB load=$(cut -d' ' -f1 /proc/loadavg)" >&2
}

# blob_mb LAYOUT TAG: compressed size of the image's layer and config blobs, MB.
blob_mb() {
	local m
	m=$(manifest_of "$1" "$2")
	jq '[.layers[].size, .config.size] | add / 1048576 | floor' "$m"
}

# ratio A B: A / B to two decimals.
ratio() { echo "scale=2; $1 / $2" | bc; }

manifest_of() { # LAYOUT TAG -> path of the manifest blob
	local d
	d=$(jq -r --arg t "$2" '.manifests[] | select(.annotations["org.opencontainers.image.ref.name"]==$t) | .digest' "$1/index.json")
	echo "$1/blobs/sha256/${d#sha256:}"
}

build() { # LABEL STORE FROM OUT [extra flags...]; FROM is an image or --rootfs=DIR
	local label=$1 store=$2 from=$3 out=$4
	shift 4
	local prof=()
	[ -z "${PROFILE:-}" ] || prof=(--cpuprofile "$BENCH_DIR/$label-$size.prof")
	case $from in
	--rootfs=*) ;;
	*) from=--from=$from ;;
	esac
	run_measured "$label" "$RECHUNKER" build "${prof[@]}" --bootc --quiet --store "$store" \
		--compression "$COMPRESSION" --compression-level "$LEVEL" "$from" --output "$out" "$@"
}

# unpack LAYOUT TAG DIR: the image's tree, its layers applied in order (genimage writes
# no whiteouts), with xattrs (user.component marks).
unpack() {
	local l
	mkdir -p "$3"
	for l in $(jq -r '.layers[].digest' "$(manifest_of "$1" "$2")"); do
		tar --xattrs --xattrs-include='*' --numeric-owner -xf "$1/blobs/sha256/${l#sha256:}" -C "$3"
	done
}

echo "| image | files | tar MB | cold build s (cpu s) | peak RSS MB | read/written MB | pigz -$LEVEL -p $NPROC s (cpu s) | cold/pigz | rebuild after 5 MB change s (cpu s, RSS MB) | rebuild/cold | empty-store rebuild s | empty/cold |"
echo "|---|---|---|---|---|---|---|---|---|---|---|---|"
disk=()
for size in "${sizes[@]}"; do
	profile=server
	case $size in
	*:*) profile=${size%%:*} size=${size#*:} ;;
	esac
	img=$BENCH_DIR/img-$size
	[ "$profile" = server ] || { img=$BENCH_DIR/img-$profile-$size; size=$profile-$size; }
	if [ ! -f "$img/index.json" ] || ! jq -e '.manifests | length == 2' "$img/index.json" >/dev/null; then
		"$BENCH_DIR/genimage" -profile "$profile" -size "${size#"$profile"-}" -out "$img" -tag v1 >&2
		"$BENCH_DIR/genimage" -profile "$profile" -size "${size#"$profile"-}" -out "$img" -tag v2 -change 5M >&2
	fi
	layers=()
	while read -r d; do layers+=("$img/blobs/sha256/${d#sha256:}"); done < <(jq -r '.layers[].digest' "$(manifest_of "$img" v1)")
	tarmb=$(($(cat "${layers[@]}" | wc -c) / 1048576))
	files=$(cat "${layers[@]}" | tar -ti 2>/dev/null | grep -vc '/$' || true)
	out=$RUN/out-$size
	sync

	build cold "$RUN/store-$size" "oci:$img:v1" "oci:$out:v1"
	# Reference: the same uncompressed bytes through parallel gzip at the same level.
	run_measured ref bash -c 'cat "$@" | pigz -'"$LEVEL"' -p '"$NPROC"' >/dev/null' _ "${layers[@]}"
	build rebuild "$RUN/store-$size" "oci:$img:v2" "oci:$out:v2" --previous-build "oci:$out:v1"
	# A CI machine with an empty store that pulled the previous image.
	build ci "$RUN/store-ci-$size" "oci:$img:v2" "oci:$RUN/out-ci-$size:v2" --previous-build "oci:$out:v1"

	# What a registry or a compressed layout gives: layers to decompress, not to read in place.
	gz=$RUN/img-gz-$size
	skopeo copy --quiet "oci:$img:v1" "oci:$gz:v1"
	sync
	build gzcopy "$RUN/store-gz-$size" "oci:$gz:v1" "oci:$RUN/out-gz-$size:v1"
	rm -rf "$RUN/store-gz-$size" "$RUN/out-gz-$size"
	# A CI runner's store: empty, thrown away after, so nothing of the input is kept.
	build transient "$RUN/store-transient-$size" "oci:$gz:v1" "oci:$RUN/out-transient-$size:v1" --transient-store
	rm -rf "$RUN/store-transient-$size" "$RUN/out-transient-$size" "$gz"
	# The same tree as a directory: --rootfs reads it in place.
	unpack "$img" v1 "$RUN/tree-$size"
	sync
	build rootfs "$RUN/store-rootfs-$size" "--rootfs=$RUN/tree-$size" "oci:$RUN/out-rootfs-$size:v1"
	outmb=$(blob_mb "$out" v1)
	disk+=("| $size | $outmb | $cold_disk ($(ratio "$cold_disk" "$outmb")x) | $gzcopy_wall ($gzcopy_cpu) | $gzcopy_disk ($(ratio "$gzcopy_disk" "$outmb")x) | $transient_wall ($transient_cpu) | $transient_disk ($(ratio "$transient_disk" "$outmb")x) | $rootfs_wall ($rootfs_cpu) | $rootfs_rss | $rootfs_disk ($(ratio "$rootfs_disk" "$outmb")x) | $rebuild_written | $ci_disk ($(ratio "$ci_disk" "$outmb")x) |")
	rm -rf "$RUN/tree-$size" "$RUN/store-rootfs-$size" "$RUN/out-rootfs-$size"

	ratio=$(echo "scale=2; $cold_wall / $ref_wall" | bc)
	rratio=$(echo "scale=3; $rebuild_wall / $cold_wall" | bc)
	cratio=$(echo "scale=3; $ci_wall / $cold_wall" | bc)
	echo "| $size | $files | $tarmb | $cold_wall ($cold_cpu) | $cold_rss | $cold_read/$cold_written | $ref_wall ($ref_cpu) | $ratio | $rebuild_wall ($rebuild_cpu, $rebuild_rss) | $rratio | $ci_wall | $cratio |"
done
echo
echo "| image | output MB | oci: cold (blobs read in place) peak extra disk MB (x output) | gzip oci: cold s (cpu s) | gzip oci: peak extra disk MB (x output) | gzip oci: --transient-store cold s (cpu s) | --transient-store peak extra disk MB (x output) | --rootfs cold s (cpu s) | --rootfs peak RSS MB | --rootfs peak extra disk MB (x output) | rebuild written MB | empty-store rebuild peak extra disk MB (x output) |"
echo "|---|---|---|---|---|---|---|---|---|---|---|---|"
printf '%s\n' "${disk[@]}"
