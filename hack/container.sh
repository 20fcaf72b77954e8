#!/usr/bin/env bash
# Builds the rechunker container image (packaging/container/Containerfile): a static
# binary, then `podman build --timestamp 0`, so the same checkout gives the same image ID.
# Prints the image ID, its size and the build time.
#
# Usage: hack/container.sh [--tag TAG] [--version V] [--revision R] [--binary FILE]
#                          [--context DIR] [-- PODMAN-BUILD-ARGS...]
#   --tag      image name (default localhost/rechunker:VERSION)
#   --version  main.version and the org.opencontainers.image.version label
#              (default: git describe --tags --always --dirty, else "dev")
#   --revision the org.opencontainers.image.revision label (default: git rev-parse HEAD)
#   --binary   use this static rechunker binary instead of building one
#   --context  keep the build context in DIR (default: a temporary directory, removed)
# Environment:
#   PODMAN     the podman command, word-split (default "podman"), e.g.
#              PODMAN="podman --root /tmp/s --runroot /tmp/r" for private storage
#   CONTAINERS_CONF  as podman reads it (sandboxes here need /etc/rechunker-test/containers.conf)
set -euo pipefail

die() { echo "container.sh: $*" >&2; exit 2; }

cd "$(dirname "${BASH_SOURCE[0]}")/.."
repo=$(pwd)

tag= version= revision= binary= context=
while (($#)); do
	case $1 in
	--tag) tag=${2:?--tag needs a value}; shift 2 ;;
	--tag=*) tag=${1#*=}; shift ;;
	--version) version=${2:?--version needs a value}; shift 2 ;;
	--version=*) version=${1#*=}; shift ;;
	--revision) revision=${2:?--revision needs a value}; shift 2 ;;
	--revision=*) revision=${1#*=}; shift ;;
	--binary) binary=${2:?--binary needs a value}; shift 2 ;;
	--binary=*) binary=${1#*=}; shift ;;
	--context) context=${2:?--context needs a value}; shift 2 ;;
	--context=*) context=${1#*=}; shift ;;
	--) shift; break ;;
	-h|--help) sed -n '2,19p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
	*) die "unknown argument $1 (see --help)" ;;
	esac
done

[[ -n $revision ]] || revision=$(git -C "$repo" rev-parse HEAD 2>/dev/null || echo unknown)
[[ -n $version ]] || version=$(git -C "$repo" describe --tags --always --dirty 2>/dev/null || echo dev)
[[ -n $tag ]] || tag=localhost/rechunker:${version//[^A-Za-z0-9_.-]/_}
read -r -a podman <<<"${PODMAN:-podman}"

PATH=$PATH:/usr/local/go/bin
[[ -n $binary ]] || command -v go >/dev/null || die "go is not on PATH"
command -v "${podman[0]}" >/dev/null || die "${podman[0]} is not on PATH"
certs=/etc/ssl/certs/ca-certificates.crt
[[ -r $certs ]] || die "$certs is missing (apt-get install ca-certificates)"

if [[ -z $context ]]; then
	context=$(mktemp -d "${TMPDIR:-/tmp}/rechunker-image.XXXXXX")
	trap 'rm -rf "$context"' EXIT
fi
mkdir -p "$context"

start=$(date +%s.%N)
# The binary: static, no VCS stamp, paths trimmed, so it depends only on the sources,
# the Go version and VERSION.
if [[ -n $binary ]]; then
	cp "$binary" "$context/rechunker"
else
	CGO_ENABLED=0 go build -buildvcs=false -tags containers_image_openpgp -trimpath \
		-ldflags "-X main.version=$version" -o "$context/rechunker" ./cmd/rechunker
fi
cp packaging/container/Containerfile packaging/container/policy.json \
	packaging/container/registries.conf "$context/"
cp "$certs" "$context/ca-certificates.crt"
mkdir -p "$context/rootfs/tmp" "$context/rootfs/var/tmp" "$context/rootfs/var/cache/rechunker/store"
# --timestamp 0 sets every file's mtime and the config's created date to the epoch;
# modes are fixed here, as the build host's umask would otherwise leak into the layers.
chmod 0644 "$context/ca-certificates.crt" "$context/policy.json" "$context/registries.conf"
chmod 0755 "$context/rootfs" "$context/rootfs/var" "$context/rootfs/var/cache" "$context/rootfs/var/cache/rechunker"
chmod 1777 "$context/rootfs/tmp" "$context/rootfs/var/tmp" "$context/rootfs/var/cache/rechunker/store"

"${podman[@]}" build --quiet --timestamp 0 --network=none \
	--build-arg VERSION="$version" --build-arg REVISION="$revision" \
	-t "$tag" -f "$context/Containerfile" "$@" "$context" >/dev/null
end=$(date +%s.%N)

id=$("${podman[@]}" image inspect --format '{{.Id}}' "$tag")
size=$("${podman[@]}" image inspect --format '{{.Size}}' "$tag")
echo "image:   $tag"
echo "id:      $id"
echo "size:    $size bytes ($((size / 1024 / 1024)) MiB)"
printf 'time:    %.1fs (go build + podman build)\n' "$(echo "$end - $start" | bc)"
