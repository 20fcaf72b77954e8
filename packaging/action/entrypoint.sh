#!/usr/bin/env bash
# Entry script of the rechunker GitHub Action (action.yml at the repository root).
#
# Reads its inputs from environment variables (INPUT_<NAME>, the input name upper-cased
# with '-' as '_', as action.yml passes them), runs `rechunker build --json` and, when a
# previous build is given, `rechunker diff --json PREVIOUS OUTPUT`, and appends
# name=value lines to $GITHUB_OUTPUT:
#   digest         manifest digest of the output image (build --json: manifest_digest)
#   layers         number of layers of the output image, the ostree commit layer included
#   bytes-fetched  what `bootc upgrade` from the (first) previous build downloads
#                  (diff --json: bytes_fetched); only when a previous build was used
#   binary         path of the rechunker binary used, for later steps (verify, diff, ...)
#
# Inputs:
#   INPUT_FROM             source image (TRANSPORT:REF)                      required
#   INPUT_OUTPUT           output image (TRANSPORT:REF)                       required
#   INPUT_PREVIOUS_BUILD   previous builds, one per line                     optional
#   INPUT_PREVIOUS_BUILD_OPTIONAL  true: skip (with a warning) a previous build that
#                          cannot be read, e.g. before the first release     default false
#   INPUT_MAX_LAYERS       positive integer                                  optional
#   INPUT_IMAGE_FORMAT     ostree | plain                                    optional
#   INPUT_LABELS           KEY=VALUE, one per line                           optional
#   INPUT_COMPRESSION      gzip | zstd | zstd:chunked | none                 optional
#   INPUT_BOOTC            true | false                                      default true
#   INPUT_STORE            object store directory                            optional
#   INPUT_BINARY           path of a rechunker binary to use                 optional
#   INPUT_VERSION          release to download when no binary is given: vX.Y.Z,
#                          X.Y.Z or latest                                   default latest
# Environment knobs (besides GitHub's GITHUB_OUTPUT, RUNNER_TEMP, RUNNER_TOOL_CACHE):
#   RECHUNKER_REPOSITORY   GitHub repository of the releases (default rechunker-dev/rechunker)
#   RECHUNKER_RELEASE_URL  base URL of the release downloads; the files are fetched from
#                          $RECHUNKER_RELEASE_URL/VERSION/FILE
#                          (default https://github.com/$RECHUNKER_REPOSITORY/releases/download)
set -euo pipefail

fail() {
	# ::error:: makes GitHub show the message as an annotation; it is plain text elsewhere.
	echo "::error title=rechunker action::$*" >&2
	exit 1
}

# trim removes leading and trailing whitespace (and CR, for inputs written on Windows).
trim() {
	local s=${1//$'\r'/}
	s=${s#"${s%%[![:space:]]*}"}
	s=${s%"${s##*[![:space:]]}"}
	printf '%s' "$s"
}

# lines prints the non-empty, trimmed lines of $1, one per line.
lines() {
	local line
	while IFS= read -r line || [[ -n $line ]]; do
		line=$(trim "$line")
		[[ -n $line ]] && printf '%s\n' "$line"
	done <<<"$1"
}

bool() { # bool NAME VALUE DEFAULT
	local v
	v=$(trim "${2:-}")
	v=${v,,}
	[[ -n $v ]] || v=$3
	case $v in
	true | false) printf '%s' "$v" ;;
	*) fail "input $1 must be true or false, not '$2'" ;;
	esac
}

from=$(trim "${INPUT_FROM:-}")
output=$(trim "${INPUT_OUTPUT:-}")
max_layers=$(trim "${INPUT_MAX_LAYERS:-}")
image_format=$(trim "${INPUT_IMAGE_FORMAT:-}")
compression=$(trim "${INPUT_COMPRESSION:-}")
store=$(trim "${INPUT_STORE:-}")
binary=$(trim "${INPUT_BINARY:-}")
version=$(trim "${INPUT_VERSION:-}")
bootc=$(bool bootc "${INPUT_BOOTC:-}" true)
prev_optional=$(bool previous-build-optional "${INPUT_PREVIOUS_BUILD_OPTIONAL:-}" false)
mapfile -t previous < <(lines "${INPUT_PREVIOUS_BUILD:-}")
mapfile -t labels < <(lines "${INPUT_LABELS:-}")

# ---- check the inputs ----

[[ -n ${GITHUB_OUTPUT:-} ]] || fail "GITHUB_OUTPUT is not set (run this as a GitHub Action step, or set it to a file)"
[[ -n $from ]] || fail "input 'from' is required: the source image, e.g. containers-storage:localhost/myos:build"
[[ -n $output ]] || fail "input 'output' is required: where to write the image, e.g. oci:/var/tmp/myos-out:new"
if [[ -n $max_layers && ! $max_layers =~ ^[1-9][0-9]{0,5}$ ]]; then
	fail "input max-layers must be a positive integer, not '$max_layers'"
fi
case $image_format in
'' | ostree | plain) ;;
*) fail "input image-format must be ostree or plain, not '$image_format'" ;;
esac
case $compression in
'' | gzip | zstd | zstd:chunked | none) ;;
*) fail "input compression must be gzip, zstd, zstd:chunked or none, not '$compression'" ;;
esac
for l in "${labels[@]}"; do
	[[ $l =~ ^[^=[:space:]][^=]*= ]] || fail "input labels: '$l' is not KEY=VALUE (one label per line)"
done
for p in "${previous[@]}" "$from" "$output"; do
	[[ $p != -* ]] || fail "image reference '$p' starts with '-'"
done
command -v jq >/dev/null || fail "jq is needed to read rechunker's JSON output (apt-get install jq)"

# ---- the binary ----

# download_release VERSION: fetch rechunker-VERSION-linux-ARCH and SHA256SUMS of the
# release, check the binary against SHA256SUMS, and set $binary.
download_release() {
	local v=$1 repo=${RECHUNKER_REPOSITORY:-rechunker-dev/rechunker} arch
	local base=${RECHUNKER_RELEASE_URL:-https://github.com/$repo/releases/download}
	command -v curl >/dev/null || fail "curl is needed to download rechunker (or give input 'binary')"
	command -v sha256sum >/dev/null || fail "sha256sum is needed to check the download (or give input 'binary')"
	case $(uname -m) in
	x86_64 | amd64) arch=amd64 ;;
	aarch64 | arm64) arch=arm64 ;;
	*) fail "no rechunker release for machine $(uname -m); build it and give input 'binary'" ;;
	esac
	if [[ $v == latest ]]; then
		# github.com/OWNER/REPO/releases/latest redirects to .../releases/tag/TAG (no API token needed).
		local url
		url=$(curl -fsSL -o /dev/null -w '%{url_effective}' "https://github.com/$repo/releases/latest") ||
			fail "cannot find the latest release of $repo; set input 'version'"
		v=${url##*/}
		[[ $v =~ ^v[0-9] ]] || fail "cannot find the latest release of $repo (got '$url'); set input 'version'"
	fi
	[[ $v == v* ]] || v=v$v
	[[ $v =~ ^v[0-9]+\.[0-9]+\.[0-9]+([-+][0-9A-Za-z.+-]+)?$ ]] ||
		fail "input version must be vX.Y.Z, X.Y.Z or latest, not '$1'"
	local name=rechunker-$v-linux-$arch
	local dir=${RUNNER_TOOL_CACHE:-${RUNNER_TEMP:-${TMPDIR:-/tmp}}}/rechunker/$v
	mkdir -p "$dir"
	echo "rechunker action: downloading $name from $base/$v/" >&2
	curl -fsSL --retry 3 -o "$dir/SHA256SUMS" "$base/$v/SHA256SUMS" ||
		fail "download $base/$v/SHA256SUMS failed (is $v a release of $repo?)"
	curl -fsSL --retry 3 -o "$dir/$name.part" "$base/$v/$name" ||
		fail "download $base/$v/$name failed"
	local want got
	want=$(awk -v n="$name" '$2 == n || $2 == "*" n { print $1 }' "$dir/SHA256SUMS")
	[[ $want =~ ^[0-9a-f]{64}$ ]] || fail "SHA256SUMS of $v has no checksum for $name"
	got=$(sha256sum "$dir/$name.part" | awk '{ print $1 }')
	if [[ $got != "$want" ]]; then
		rm -f "$dir/$name.part"
		fail "checksum mismatch for $name: SHA256SUMS says $want, the download is $got"
	fi
	chmod 0755 "$dir/$name.part"
	mv -f "$dir/$name.part" "$dir/rechunker"
	binary=$dir/rechunker
}

if [[ -n $binary ]]; then
	[[ -f $binary && -x $binary ]] || fail "input binary: '$binary' is not an executable file"
else
	download_release "${version:-latest}"
fi
binary=$(cd "$(dirname "$binary")" && pwd)/$(basename "$binary")
echo "rechunker action: $("$binary" --version)" >&2

# ---- previous builds ----

use_previous=()
for p in "${previous[@]}"; do
	if [[ $prev_optional == true ]] && ! err=$("$binary" inspect --json "$p" 2>&1 >/dev/null); then
		echo "::warning title=rechunker action::previous build $p cannot be read, building without it: ${err##*$'\n'}" >&2
		continue
	fi
	use_previous+=("$p")
done

# ---- build ----

args=(build --json --quiet --from "$from" --output "$output")
[[ $bootc == true ]] && args+=(--bootc)
[[ -n $max_layers ]] && args+=(--max-layers "$max_layers")
[[ -n $image_format ]] && args+=(--image-format "$image_format")
[[ -n $compression ]] && args+=(--compression "$compression")
[[ -n $store ]] && args+=(--store "$store")
for p in "${use_previous[@]}"; do args+=(--previous-build "$p"); done
for l in "${labels[@]}"; do args+=(--label "$l"); done

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
printf 'rechunker action: rechunker' >&2
printf ' %q' "${args[@]}" >&2
echo >&2
"$binary" "${args[@]}" >"$tmp/build.json" || fail "rechunker build failed (its message is above)"
digest=$(jq -er '.manifest_digest' "$tmp/build.json") || fail "rechunker build --json gave no manifest_digest"
layers=$(jq -er '.layers | length' "$tmp/build.json") || fail "rechunker build --json gave no layers"
{
	echo "digest=$digest"
	echo "layers=$layers"
	echo "binary=$binary"
} >>"$GITHUB_OUTPUT"
echo "rechunker action: built $output, $digest, $layers layers" >&2

# ---- what an upgrade from the previous build downloads ----

if ((${#use_previous[@]} > 0)); then
	prev=${use_previous[0]}
	"$binary" diff --json "$prev" "$output" >"$tmp/diff.json" ||
		fail "rechunker diff $prev $output failed (its message is above)"
	fetched=$(jq -er '.bytes_fetched' "$tmp/diff.json") || fail "rechunker diff --json gave no bytes_fetched"
	echo "bytes-fetched=$fetched" >>"$GITHUB_OUTPUT"
	echo "rechunker action: an upgrade from $prev downloads $fetched bytes" \
		"($(jq -r '.layers_fetched' "$tmp/diff.json") of $(jq -r '.layers_total' "$tmp/diff.json") layers)" >&2
fi
