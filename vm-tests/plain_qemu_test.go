//go:build qemuvm

package vmtests

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestQEMUPlainBootUpgrade boots a plain image (--image-format plain: the tree's
// files in the chunk layers, no ostree commit): v1 and v2 are built as in
// TestQEMUBootUpgradeRollback, each committed by ostree from its layers as bootc's
// ostree backend takes an image without ostree.final-diffid (ImportPlain), v1
// deployed and booted; it changes /etc locally and deploys v2, which the second
// boot runs with v1 kept as its rollback.
func TestQEMUPlainBootUpgrade(t *testing.T) {
	s := newQEMUSuite(t)
	v1, v2 := s.buildReleases("--image-format", "plain")
	repo := filepath.Join(s.work, "task", "repo")
	require.NoError(t, os.MkdirAll(filepath.Dir(repo), 0o755))
	s.run("ostree", "init", "--repo="+repo, "--mode=bare")

	s.step("commit plain v1 and v2 with ostree from their layers")
	c1, err := ImportPlain(s.ctx, repo, v1, s.work)
	require.NoError(t, err)
	c2, err := ImportPlain(s.ctx, repo, v2, s.work)
	require.NoError(t, err)
	require.NoError(t, s.client.CheckComplete(s.ctx, repo, c2))
	d := s.layerDiff("oci:"+v1, "oci:"+v2)
	t.Logf("upgrade fetches %d of %d layers, %d B", len(d.Fetched), len(d.Fetched)+len(d.Reused), d.BytesFetched)
	s.requireSeedNotFetched(v2, Digests(d.Fetched))

	s.step("deploy plain v1 into a new sysroot, make its disk")
	sysroot := filepath.Join(s.work, "sysroot")
	require.NoError(t, NewSysroot(s.ctx, sysroot, repo, c1))
	disk := filepath.Join(s.work, "disk.img")
	require.NoError(t, MakeDisk(s.ctx, sysroot, disk, 4<<30))
	require.NoError(t, RemoveSysroot(s.ctx, sysroot))

	seedSums := s.seedChecksums()
	s.step("boot 1: plain v1; change /etc locally; pull v2 from the task disk and deploy it")
	r1 := s.boot("1-plain-v1", disk, s.taskDisk("1", true, s.upgradeTask(c2)))
	s.requireBooted(r1, c1, 1)
	assert.True(t, r1.Absent[v2EtcFile], "v1 must not have %s", v2EtcFile)
	s.requireSeedIntact(r1, seedSums)

	s.step("boot 2: plain v2 (the default after the upgrade)")
	r2 := s.boot("2-plain-v2", disk, s.taskDisk("2", false, s.checkTask()))
	s.requireBooted(r2, c2, 2)
	assert.Equal(t, []string{c1}, r2.OtherCommits, "v1 stays deployed as the rollback")
	assert.Contains(t, r2.FileChecksums, v2EtcFile, "v2's new /etc file is there")
	assert.Contains(t, r2.FileChecksums, localEtc, "the /etc change made while v1 ran survived the upgrade (3-way merge)")
	assert.Equal(t, s.hostSum(usrFile), r2.FileChecksums[usrFile], "%s in the booted v2 is the one built", usrFile)
	s.requireSeedIntact(r2, seedSums)
}
