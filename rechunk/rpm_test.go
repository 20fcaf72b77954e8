package rechunk

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"testing"

	rpmdb "github.com/knqyf263/go-rpmdb/pkg"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/rechunker-dev/rechunker/internal/source"
	"github.com/rechunker-dev/rechunker/ostree"
)

const fixtures = "/work/shared/fixtures"

// TestRPMFixtureDatabases opens real rpm databases of every backend from inside a tree
// and cross-checks our header reader against go-rpmdb's own package list.
func TestRPMFixtureDatabases(t *testing.T) {
	tests := []struct {
		file, treePath string
		packages       int // rpm -qa, from the fixtures README
		pubkeys        int // gpg-pubkey pseudo packages among them
	}{
		{"chunkah/rpmdb.sqlite", "/usr/lib/sysimage/rpm/rpmdb.sqlite", 5, 0},
		{"go-rpmdb/amazonlinux2023-plain/rpmdb.sqlite", "/usr/share/rpm/rpmdb.sqlite", 103, 1},
		{"go-rpmdb/cbl-mariner-2.0/rpmdb.sqlite", "/var/lib/rpm/rpmdb.sqlite", 129, 0},
		{"go-rpmdb/sle15-bci/Packages.db", "/usr/lib/sysimage/rpm/Packages.db", 36, 0},
		{"go-rpmdb/libuuid/Packages", "/var/lib/rpm/Packages", 1, 0},
	}
	for _, tc := range tests {
		t.Run(tc.file, func(t *testing.T) {
			data, err := os.ReadFile(filepath.Join(fixtures, tc.file))
			if err != nil {
				t.Skipf("fixture missing: %v", err)
			}
			b := newTestTree(t, nil)
			b.file(tc.treePath, data)
			tree := b.finalize()
			r := newResolver(tree)
			db := findRPMDB(r)
			require.NotNil(t, db)
			var hdrs []*rpmHeader
			err = readRPMDB(context.Background(), b.store, tree, db, func(h *rpmHeader) { hdrs = append(hdrs, h) })
			require.NoError(t, err)
			require.Len(t, hdrs, tc.packages-tc.pubkeys, "packages without imported keys")

			// Oracle: go-rpmdb's own parser on the same file.
			ref, err := rpmdb.Open(filepath.Join(fixtures, tc.file))
			require.NoError(t, err)
			defer ref.Close()
			pkgs, err := ref.ListPackages()
			require.NoError(t, err)
			want := map[string]int{}
			require.Len(t, pkgs, tc.packages)
			for _, p := range pkgs {
				if p.Name == "gpg-pubkey" {
					continue
				}
				files, err := p.InstalledFileNames()
				require.NoError(t, err)
				want[p.Name+"-"+p.Version+"-"+p.Release+"."+p.Arch] = len(files)
			}
			got := map[string]int{}
			changelogs := 0
			for _, h := range hdrs {
				got[h.Name+"-"+h.Version+"-"+h.Release+"."+h.Arch] = h.AllFiles
				assert.LessOrEqual(t, len(h.Files), h.AllFiles)
				changelogs += len(h.ChangelogTimes)
				assert.False(t, h.BuildTime.IsZero(), "%s has a build time", h.Name)
				assert.NotEqual(t, "", h.sourceName())
			}
			assert.Equal(t, want, got, "packages and file counts match go-rpmdb")
			assert.Positive(t, changelogs, "changelog times read")

			// The planner turns it into components and the database component.
			p, err := NewPlan(context.Background(), tree, b.store, Options{})
			require.NoError(t, err)
			checkPlan(t, tree, p, DefaultMaxLayers)
			l, _ := ownerOf(p, tc.treePath)
			assert.Equal(t, []string{PackageDBComponent}, l.Components)
		})
	}
}

func TestRPMHeaderBlob(t *testing.T) {
	data, err := os.ReadFile(filepath.Join(fixtures, "go-rpmdb/blob.bin"))
	if err != nil {
		t.Skip("fixture missing")
	}
	_, err = parseRPMHeader(data)
	require.ErrorContains(t, err, "dir index", "the fixture's dir indexes are out of range")
	for _, bad := range [][]byte{nil, {0, 0, 0, 1}, {0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0}, data[:100]} {
		_, err := parseRPMHeader(bad)
		require.Error(t, err)
	}
}

func TestBrokenRPMDatabase(t *testing.T) {
	b := newTestTree(t, nil)
	b.file("/usr/lib/sysimage/rpm/rpmdb.sqlite", []byte("SQLite format 3\x00 but not really a database"))
	b.file("/usr/bin/tool", []byte("x"))
	tree := b.finalize()
	var warnings []string
	p, err := NewPlan(context.Background(), tree, b.store, Options{Warn: func(s string) { warnings = append(warnings, s) }})
	require.NoError(t, err)
	checkPlan(t, tree, p, DefaultMaxLayers)
	require.Len(t, warnings, 1)
	assert.Contains(t, warnings[0], "rpm database /usr/lib/sysimage/rpm is unreadable")
}

// TestRPMRoot installs freshly built rpms into a root with the real rpm and plans it.
func TestRPMRoot(t *testing.T) {
	for _, tool := range []string{"rpmbuild", "rpm"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s not installed", tool)
		}
	}
	if testing.Short() {
		t.Skip("builds rpms")
	}
	work := t.TempDir()
	spec := `Name: hello
Version: 1.0
Release: 1
Summary: test
License: MIT
BuildArch: noarch
%description
test
%package libs
Summary: libs
%description libs
libs
%install
mkdir -p %{buildroot}/usr/bin %{buildroot}/usr/lib/hello %{buildroot}/etc %{buildroot}/usr/share/hello
echo hello > %{buildroot}/usr/bin/hello
echo lib > %{buildroot}/usr/lib/hello/libhello.so
echo conf > %{buildroot}/etc/hello.conf
head -c 2000000 /dev/zero | tr '\0' 'h' > %{buildroot}/usr/share/hello/data
%files
/usr/bin/hello
/etc/hello.conf
/usr/share/hello
%files libs
/usr/lib/hello
%changelog
* Mon Jan 01 2024 T <t@example.com> - 1.0-1
- first
`
	other := `Name: other
Version: 2.0
Release: 1
Summary: test
License: MIT
BuildArch: noarch
%description
test
%install
mkdir -p %{buildroot}/usr/bin
echo other > %{buildroot}/usr/bin/other
%files
/usr/bin/other
`
	for name, s := range map[string]string{"hello": spec, "other": other} {
		specFile := filepath.Join(work, name+".spec")
		require.NoError(t, os.WriteFile(specFile, []byte(s), 0o644))
		out, err := exec.Command("rpmbuild", "--define", "_topdir "+filepath.Join(work, "top"), "--define", "_build_id_links none", "-bb", specFile).CombinedOutput()
		require.NoError(t, err, "%s", out)
	}
	rpms, err := filepath.Glob(filepath.Join(work, "top/RPMS/noarch/*.rpm"))
	require.NoError(t, err)
	require.Len(t, rpms, 3)
	root := filepath.Join(work, "root")
	require.NoError(t, os.MkdirAll(filepath.Join(root, "usr/bin"), 0o755))
	require.NoError(t, os.Symlink("usr/bin", filepath.Join(root, "bin")))
	args := append([]string{"--root", root, "--dbpath", "/usr/lib/sysimage/rpm", "-ivh", "--nodeps", "--noscripts"}, rpms...)
	out, err := exec.Command("rpm", args...).CombinedOutput()
	require.NoError(t, err, "%s", out)
	require.NoError(t, os.WriteFile(filepath.Join(root, "usr/bin/unowned"), []byte("u"), 0o755))

	store, err := ostree.OpenStore(filepath.Join(work, "store"))
	require.NoError(t, err)
	in, err := source.Load(context.Background(), "", root, source.Options{Store: store})
	require.NoError(t, err)
	p, err := NewPlan(context.Background(), in.Tree, store, Options{})
	require.NoError(t, err)
	checkPlan(t, in.Tree, p, DefaultMaxLayers)
	for path, want := range map[string]string{
		"/usr/bin/hello":                     "hello",
		"/usr/lib/hello/libhello.so":         "hello", // subpackage: same source rpm
		"/usr/etc/hello.conf":                "hello", // /etc is stored as /usr/etc
		"/usr/share/hello/data":              "hello",
		"/usr/bin/other":                     "other",
		"/usr/bin/unowned":                   UnclaimedComponent,
		"/usr/lib/sysimage/rpm/rpmdb.sqlite": PackageDBComponent,
	} {
		l, ok := ownerOf(p, path)
		require.True(t, ok, path)
		assert.Contains(t, l.Components, want, path)
	}
	hello := componentOf(p, "hello")
	require.NotNil(t, hello)
	assert.Equal(t, "rpm", hello.Source)
	var catchAll int64
	if c := componentOf(p, UnclaimedComponent); c != nil {
		catchAll = c.Size
	}
	assert.Less(t, catchAll, int64(5<<20))
	var names []string
	for _, c := range p.Components {
		names = append(names, fmt.Sprintf("%s(%s)", c.Name, c.Source))
	}
	sort.Strings(names)
	t.Logf("components: %v", names)
}
