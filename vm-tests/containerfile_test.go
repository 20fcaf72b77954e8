package vmtests

import (
	"os/exec"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestContainerfileVersions(t *testing.T) {
	v1, v2 := Containerfile(1), Containerfile(2)

	for _, cf := range []string{v1, v2} {
		assert.True(t, strings.HasPrefix(cf, "ARG BASE\nFROM ${BASE}\n"), "base image comes from the BASE build arg")
		assert.Contains(t, cf, "LABEL containers.bootc=1\n")
		assert.Contains(t, cf, `skopeo copy --preserve-digests "docker://${SMALL_IMAGE}"`)
		assert.Contains(t, cf, `setfattr -n user.component -v containers "${cache}"`)
		assert.Contains(t, cf, "cache="+ImageCacheDir+";")
	}
	assert.True(t, strings.HasSuffix(v1, "LABEL org.opencontainers.image.version=v1\n"))
	assert.True(t, strings.HasSuffix(v2, "LABEL org.opencontainers.image.version=v2\n"))
	assert.NotContains(t, v1, SSHDropIn)
	assert.Contains(t, v2, SSHDropIn)

	// v2 repeats v1's build steps verbatim so podman's layer cache reuses them.
	shared := strings.TrimSuffix(v1, "LABEL org.opencontainers.image.version=v1\n")
	assert.True(t, strings.HasPrefix(v2, shared))
}

// TestContainerfileShellSyntax checks every RUN script with the shell that
// will run it (sh -n parses without executing).
func TestContainerfileShellSyntax(t *testing.T) {
	if _, err := exec.LookPath("sh"); err != nil {
		t.Skip("no sh")
	}
	run := regexp.MustCompile(`(?m)^RUN ((?:.*\\\n)*.*)$`)
	for _, v := range []int{1, 2} {
		scripts := run.FindAllStringSubmatch(Containerfile(v), -1)
		require.Len(t, scripts, v, "version %d RUN steps", v)
		for _, s := range scripts {
			script := strings.ReplaceAll(s[1], "\\\n", "\n")
			out, err := exec.Command("sh", "-n", "-c", script).CombinedOutput()
			assert.NoError(t, err, "version %d script:\n%s\n%s", v, script, out)
		}
	}
}
