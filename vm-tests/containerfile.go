package vmtests

import (
	"strconv"
	"strings"
)

// Paths the test image versions create and the guest checks.
const (
	// ImageCacheDir holds physically bound images: one `skopeo copy
	// --preserve-digests ... dir:` copy per image, named by the sha256 of its
	// manifest, plus mapping.txt ("<sha> <image reference>" per line). The
	// user.component xattr makes rechunker give it its own component.
	ImageCacheDir = "/usr/lib/containers-image-cache"
	// SSHDropIn is the one file version 2 adds.
	SSHDropIn = "/etc/ssh/sshd_config.d/10-disable-password-auth.conf"
)

// containerfileV1 builds version 1 of the test OS: the base image plus one
// embedded, physically bound container image. Build args: BASE, SMALL_IMAGE.
// The copy goes to a scratch directory first so the final directory name is
// the digest of exactly the manifest that was stored.
const containerfileV1 = `ARG BASE
FROM ${BASE}
ARG SMALL_IMAGE
RUN set -eux; \
    command -v setfattr >/dev/null || dnf -y install attr; \
    cache=` + ImageCacheDir + `; \
    mkdir -p "$cache"; \
    tmp=$(mktemp -d /var/tmp/bound.XXXXXX); \
    skopeo copy --preserve-digests "docker://${SMALL_IMAGE}" "dir:${tmp}/img"; \
    sha=$(sha256sum "${tmp}/img/manifest.json" | cut -d' ' -f1); \
    mv "${tmp}/img" "${cache}/${sha}"; \
    rm -rf "${tmp}"; \
    printf '%s %s\n' "${sha}" "${SMALL_IMAGE}" > "${cache}/mapping.txt"; \
    setfattr -n user.component -v containers "${cache}"; \
    dnf clean all; rm -rf /var/cache/* /var/log/dnf*
LABEL containers.bootc=1
`

// containerfileV2Extra is what version 2 adds on top of version 1.
const containerfileV2Extra = `RUN mkdir -p /etc/ssh/sshd_config.d && \
    printf 'PasswordAuthentication no\n' > ` + SSHDropIn + `
`

// Containerfile returns the Containerfile of test image version 1 or 2.
// Version 2 starts with version 1's text, so podman reuses its cached build
// steps and the two versions differ only by the added file (and the version
// label, which bootc reports as the image version).
func Containerfile(version int) string {
	var b strings.Builder
	b.WriteString(containerfileV1)
	if version >= 2 {
		b.WriteString(containerfileV2Extra)
	}
	b.WriteString("LABEL org.opencontainers.image.version=v" + strconv.Itoa(version) + "\n")
	return b.String()
}
