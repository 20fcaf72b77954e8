package rechunk

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/base64"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/rechunker-dev/rechunker/ostree"
)

// The fuzz targets below feed hostile bytes to every package-database and label
// parser. Run one with e.g.
// `go test ./rechunk -run '^$' -fuzz '^FuzzRPMHeader$' -fuzztime 60s -fuzzminimizetime 3s`
// (the default minutes-long minimization of every new input stalls slow targets);
// without -fuzz they replay their seeds (and testdata/fuzz regressions) as unit tests.

func gz(t testing.TB, data []byte) []byte {
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	_, err := zw.Write(data)
	require.NoError(t, err)
	require.NoError(t, zw.Close())
	return buf.Bytes()
}

func FuzzDpkgStatus(f *testing.F) {
	f.Add([]byte("Package: libc6\nStatus: install ok installed\nArchitecture: amd64\nSource: glibc (2.36-9)\nDescription: x\n more\n\nPackage: gone\nStatus: deinstall ok config-files\n"))
	f.Add([]byte("Package:\n\n:\n \t\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		pkgs, err := parseDpkgStatus(bytes.NewReader(data))
		if err != nil {
			return
		}
		for _, p := range pkgs {
			require.NotEmpty(t, p.name)
			require.NotContains(t, p.source, " ")
			p.installed()
		}
	})
}

// FuzzDpkgList feeds hostile file lists through the resolver: symlink loops, "..",
// missing parents. Every claimed entry must be a file of the tree.
func FuzzDpkgList(f *testing.F) {
	f.Add([]byte("/.\n/usr\n/usr/bin/tool\n"))
	f.Add([]byte("\n\n/x\r\n/y"))
	f.Add([]byte("/bin/tool\n/loop/x\n/usr/../bin/../etc/conf\n/etc/../../usr/bin\nusr/bin/tool\n"))
	b := newTestTree(f, nil)
	b.file("/usr/bin/tool", []byte("x"))
	b.file("/usr/etc/conf", []byte("y"))
	b.symlink("/bin", "usr/bin")
	b.symlink("/loop", "/loop")
	b.symlink("/usr/bin/up", "../../bin")
	tree := b.finalize()
	inTree := map[*ostree.File]bool{}
	require.NoError(f, tree.Walk(func(_ string, _ *ostree.Dir, fl *ostree.File) error {
		if fl != nil {
			inTree[fl] = true
		}
		return nil
	}))
	f.Fuzz(func(t *testing.T, data []byte) {
		r := newResolver(tree)
		pb := newPkgSourceBuilder("dpkg", r)
		pb.pkg("p", "g", nil)
		forEachDpkgListPath(data, func(p string) {
			require.NotContains(t, p, "\n")
			require.NotEqual(t, "/.", p)
			pb.own("g", p)
		})
		s := pb.finish(time.Time{})
		for i, g := range s.owners {
			if g >= 0 {
				require.True(t, inTree[r.files[i].File], "claimed a file that is not in the tree")
			}
		}
		for d := range s.dirs {
			require.NotNil(t, tree.LookupDir(d), "claimed directory %q is not in the tree", d)
		}
	})
}

func FuzzDebianChangelog(f *testing.F) {
	f.Add([]byte("pkg (1.0-1) unstable; urgency=low\n\n  * x\n\n -- A <a@b>  Tue, 05 Mar 2024 10:00:00 +0100\n"), true)
	f.Add([]byte(" -- >  Mon,  1 Jan 0001 00:00:00 +9999\n -- <\n"), true)
	f.Add([]byte("\x1f\x8b\x08\x00\x00\x00\x00\x00"), false)
	f.Fuzz(func(t *testing.T, data []byte, compress bool) {
		if compress {
			data = gz(t, data)
		}
		dates, err := parseDebianChangelog(bytes.NewReader(data))
		if err == nil && len(dates) > 0 {
			for _, d := range dates[1:] {
				require.False(t, d.Before(dates[0].Add(-debianChangelogHorizon)), "entries past the horizon are dropped")
			}
		}
	})
}

func FuzzPacmanDesc(f *testing.F) {
	f.Add([]byte("%NAME%\nbash\n\n%BASE%\nbash\n\n%FILES%\nusr/\nusr/bin/bash\n"))
	f.Add([]byte("%%\n%\n%X%\n\n\n%Y%"))
	f.Fuzz(func(t *testing.T, data []byte) {
		for k, vs := range parsePacmanText(data) {
			require.True(t, len(k) > 2 && k[0] == '%' && k[len(k)-1] == '%', "section %q", k)
			for _, v := range vs {
				require.NotEqual(t, "", v)
			}
		}
	})
}

func FuzzAPKInstalled(f *testing.F) {
	f.Add([]byte("C:Q1x\nP:musl\no:musl\nF:lib\nR:ld-musl.so\n\nP:busybox\nF:bin\nR:busybox\n"))
	f.Add([]byte("R:../../etc/x\nP:\nF:\n\nP:p\nR:/abs\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, r := range parseAPKInstalled(data) {
			require.NotEmpty(t, r.name)
			require.NotEmpty(t, r.group)
		}
	})
}

func FuzzRPMHeader(f *testing.F) {
	if blob, err := os.ReadFile(filepath.Join(fixtures, "go-rpmdb/blob.bin")); err == nil {
		f.Add(blob)
	}
	// A string tag with count 0 at an offset past the data store (made parseRPMHeader
	// slice out of range before the fix).
	f.Add([]byte("\x00\x00\x00\x01\x00\x00\x00\x01\x00\x00\x03\xe8\x00\x00\x00\x06\x00\x00\x00\x09\x00\x00\x00\x00\x00"))
	f.Fuzz(func(t *testing.T, data []byte) {
		h, err := parseRPMHeader(data)
		if err != nil {
			return
		}
		require.NotEmpty(t, h.Name)
		require.LessOrEqual(t, len(h.Files), h.AllFiles)
		for _, p := range h.Files {
			require.True(t, strings.HasPrefix(p, "/"), p)
		}
		h.NEVRA()
		h.sourceName()
	})
}

// fuzzPlanTree is a small tree with dpkg packages and an exclusive component, planned
// against hostile previous-build labels.
func fuzzPlanTree(t testing.TB) (*ostree.Tree, *ostree.Store) {
	b := newTestTree(t, nil)
	b.addDpkg([]dpkgPkg{
		{name: "bash", version: "1", files: map[string]int{"/usr/bin/bash": 100}},
		{name: "libc6", source: "glibc", version: "1", files: map[string]int{"/usr/lib/libc.so.6": 200, "/etc/ld.so.conf": 10}},
		{name: "big", version: "1", files: map[string]int{"/usr/share/big/a": 40 << 20, "/usr/share/big/b": 40 << 10}},
	})
	b.file("/opt/app/bin", []byte("app"), ostree.Xattr{Name: XattrComponent, Value: []byte("app")})
	b.file("/usr/local/unowned", []byte("u"))
	return b.finalize(), b.store
}

// FuzzPlanLabel feeds hostile dev.rechunker.plan labels (raw, or as base64 of gzip of
// the fuzzed bytes) of a previous build to the planner: it must warn and plan, never
// panic, and the plan must still hold every file exactly once.
func FuzzPlanLabel(f *testing.F) {
	tree, store := fuzzPlanTree(f)
	p, err := NewPlan(context.Background(), tree, store, Options{MaxLayers: 8})
	require.NoError(f, err)
	raw, err := base64.StdEncoding.DecodeString(p.Labels[PlanLabel])
	require.NoError(f, err)
	zr, err := gzip.NewReader(bytes.NewReader(raw))
	require.NoError(f, err)
	var js bytes.Buffer
	_, err = js.ReadFrom(zr)
	require.NoError(f, err)
	f.Add(js.Bytes(), true, uint8(len(p.Layers)))
	f.Add([]byte(`{"v":1,"n":3,"r":[0,-1,99],"c":[{"n":"bash","l":2,"d":"x","h":18446744073709551615,"s":-4},{"n":"big","l":1,"p":{"/usr/share/big/a":3,"/x":-1}},{"n":"big","l":99}]}`), true, uint8(3))
	f.Add([]byte(`{"v":1,"n":10000,"c":[]}`), true, uint8(2))
	f.Add([]byte(p.Labels[PlanLabel]), false, uint8(0))
	f.Fuzz(func(t *testing.T, data []byte, wrap bool, chunks uint8) {
		label := string(data)
		if wrap {
			label = base64.StdEncoding.EncodeToString(gz(t, data))
		}
		prev := Previous{Ref: "oci:prev", Labels: map[string]string{PlanLabel: label}}
		for i := 0; i <= int(chunks); i++ {
			prev.Layers = append(prev.Layers, PreviousLayer{Digest: "sha256:x", Annotations: map[string]string{ComponentsAnnotation: "bash,glibc"}})
		}
		got, err := NewPlan(context.Background(), tree, store, Options{MaxLayers: 8, Previous: []Previous{prev}})
		require.NoError(t, err)
		checkPlan(t, tree, got, 8)
	})
}

// TestPlanLabelBomb: a label that decompresses to far more than maxPlanLabel is refused
// after reading at most maxPlanLabel+1 bytes of it.
func TestPlanLabelBomb(t *testing.T) {
	var buf bytes.Buffer
	zw, err := gzip.NewWriterLevel(&buf, gzip.BestCompression)
	require.NoError(t, err)
	zero := make([]byte, 1<<20)
	_, err = zw.Write([]byte(`{"v":1,"n":1,"c":[{"n":"`))
	require.NoError(t, err)
	for i := 0; i < 256; i++ { // 256 MiB of JSON string
		_, err = zw.Write(zero)
		require.NoError(t, err)
	}
	require.NoError(t, zw.Close())
	label := base64.StdEncoding.EncodeToString(buf.Bytes())
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	_, err = decodePlanRecord(label)
	runtime.ReadMemStats(&after)
	require.Less(t, after.TotalAlloc-before.TotalAlloc, uint64(32<<20), "memory spent on the bomb")
	require.ErrorContains(t, err, "larger than")

	var warnings []string
	prior := readPrior(Previous{Ref: "bomb", Labels: map[string]string{PlanLabel: label}, Layers: make([]PreviousLayer, 3)},
		func(s string) { warnings = append(warnings, s) })
	require.Nil(t, prior, "no annotations either")
	require.Len(t, warnings, 1)
	require.Contains(t, warnings[0], "larger than")
}

// FuzzPackageDatabases plants hostile bytes as every package database the planner
// reads (dpkg status, file list and changelog, pacman desc/files, apk installed, an rpm
// sqlite/ndb/bdb database): NewPlan must succeed with warnings and cover every file.
func FuzzPackageDatabases(f *testing.F) {
	f.Add([]byte("Package: a\nStatus: install ok installed\nArchitecture: all\n"), []byte("/usr/bin/a\n/usr/../../etc\n"), []byte("%NAME%\na\n%FILES%\nusr/bin/a\n"), []byte("P:a\nF:usr/bin\nR:a\n"), []byte{}, uint8(0))
	f.Add([]byte("Package: a\n"), []byte{}, []byte{}, []byte{}, []byte("SQLite format 3\x00"), uint8(1))
	f.Add([]byte{}, []byte{}, []byte{}, []byte{}, []byte("\x00\x06\x15\x61\x00\x00\x00\x00"), uint8(2))
	f.Fuzz(func(t *testing.T, status, list, pacman, apk, rpmdb []byte, backend uint8) {
		b := newTestTree(t, nil)
		b.file("/usr/bin/a", []byte("a"))
		b.file("/var/lib/dpkg/status", status)
		b.file("/var/lib/dpkg/info/a.list", list)
		b.file("/usr/share/doc/a/changelog.Debian.gz", list)
		b.file("/var/lib/pacman/local/a-1/desc", pacman)
		b.file("/var/lib/pacman/local/a-1/files", pacman)
		b.file("/lib/apk/db/installed", apk)
		b.file("/usr/lib/sysimage/rpm/"+[]string{"rpmdb.sqlite", "Packages.db", "Packages"}[backend%3], rpmdb)
		tree := b.finalize()
		p, err := NewPlan(context.Background(), tree, b.store, Options{MaxLayers: 8})
		require.NoError(t, err)
		checkPlan(t, tree, p, 8)
	})
}
