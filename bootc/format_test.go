package bootc

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestHumanSize(t *testing.T) {
	for n, want := range map[int64]string{
		-1: "?", 0: "0 B", 999: "999 B", 1000: "1.0 kB", 12_345_678: "12.3 MB",
		999_960: "1.0 MB", 697_000_000: "697.0 MB", 1_500_000_000: "1.5 GB",
	} {
		assert.Equal(t, want, HumanSize(n), "%d", n)
	}
}

func TestComponentList(t *testing.T) {
	assert.Equal(t, "(ostree commit)", ComponentList(RoleCommit, nil, false, 40))
	assert.Equal(t, "(reserved for new content)", ComponentList(RoleChunk, []string{}, true, 40))
	assert.Equal(t, "a, b", ComponentList(RoleChunk, []string{"a", "b"}, true, 40))
	assert.Equal(t, "file:/var/cache/apt/archives/…", ComponentList(RoleChunk, []string{"file:/var/cache/apt/archives/util-linux.deb"}, true, 30))
	assert.Equal(t, "glibc, bash (+2 more)", ComponentList(RoleChunk, []string{"glibc", "bash", "coreutils", "systemd"}, true, 24))
}
