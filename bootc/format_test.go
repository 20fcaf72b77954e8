package bootc

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestComponentList(t *testing.T) {
	assert.Equal(t, "(ostree commit)", ComponentList(RoleCommit, nil, false, 40))
	assert.Equal(t, "(reserved for new content)", ComponentList(RoleChunk, []string{}, true, 40))
	assert.Equal(t, "a, b", ComponentList(RoleChunk, []string{"a", "b"}, true, 40))
	assert.Equal(t, "file:/var/cache/apt/archives/…", ComponentList(RoleChunk, []string{"file:/var/cache/apt/archives/util-linux.deb"}, true, 30))
	assert.Equal(t, "glibc, bash (+2 more)", ComponentList(RoleChunk, []string{"glibc", "bash", "coreutils", "systemd"}, true, 24))
}
