#!/usr/bin/env bash
# Build the release binaries of rechunker: static linux/amd64 and linux/arm64 binaries
# named rechunker-VERSION-linux-ARCH, and SHA256SUMS (sha256sum format) for them, in
# OUTDIR (default bin/release/VERSION, which git ignores). The build is reproducible:
# the same source and Go version give the same bytes (CGO_ENABLED=0, -trimpath,
# -buildvcs=false, no build ID).
#
#   ./hack/release.sh v1.2.3 [OUTDIR]
#
# Then attach OUTDIR's files to the GitHub release of tag VERSION (docs/github-actions.md):
#   gh release create v1.2.3 bin/release/v1.2.3/*
set -euo pipefail

usage() {
	echo "usage: $0 VERSION [OUTDIR]   (VERSION like v1.2.3 or v1.2.3-rc.1)" >&2
	exit 2
}
(($# >= 1 && $# <= 2)) || usage
version=$1
[[ $version =~ ^v[0-9]+\.[0-9]+\.[0-9]+([-+][0-9A-Za-z.+-]+)?$ ]] || {
	echo "$0: VERSION must look like v1.2.3 or v1.2.3-rc.1, not '$version'" >&2
	usage
}
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
outdir=${2:-$root/bin/release/$version}
mkdir -p "$outdir"
outdir=$(cd "$outdir" && pwd)

if ! command -v go >/dev/null && [[ -x /usr/local/go/bin/go ]]; then
	PATH=/usr/local/go/bin:$PATH
fi
command -v go >/dev/null || { echo "$0: go not found (PATH or /usr/local/go)" >&2; exit 1; }
command -v sha256sum >/dev/null || { echo "$0: sha256sum not found (coreutils)" >&2; exit 1; }

cd "$root"
names=()
for arch in amd64 arm64; do
	name=rechunker-$version-linux-$arch
	echo "building $name ($(go version | awk '{ print $3 }'))" >&2
	# -buildid= leaves out the build ID, the one part of a -trimpath build that can
	# depend on the machine; GOFLAGS from the environment must not change the binary.
	GOFLAGS='' CGO_ENABLED=0 GOOS=linux GOARCH=$arch GOAMD64=v1 GOARM64=v8.0 \
		go build -buildvcs=false -trimpath -tags containers_image_openpgp \
		-ldflags "-s -w -buildid= -X main.version=$version" \
		-o "$outdir/$name.tmp" ./cmd/rechunker
	mv -f "$outdir/$name.tmp" "$outdir/$name"
	names+=("$name")
done
(cd "$outdir" && sha256sum "${names[@]}" >SHA256SUMS.tmp && mv -f SHA256SUMS.tmp SHA256SUMS)
echo "wrote $outdir:" >&2
(cd "$outdir" && ls -l "${names[@]}" SHA256SUMS >&2 && cat SHA256SUMS >&2)
