package rechunk

import (
	"context"
	"sort"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/rechunker-dev/rechunker/ostree"
)

func TestIsVolatile(t *testing.T) {
	reg := func(mode uint32) *ostree.File {
		return &ostree.File{Header: &ostree.FileHeader{Mode: ostree.ModeRegular | mode}}
	}
	link := &ostree.File{Header: &ostree.FileHeader{Mode: ostree.ModeSymlink | 0o777, Target: "x"}}
	tests := []struct {
		dir, name string
		f         *ostree.File
		want      bool
	}{
		{"/usr/lib/python3.11/__pycache__/", "os.cpython-311.pyc", reg(0o644), true},
		{"/usr/lib/python3/dist-packages/", "old.pyc", reg(0o644), true},
		{"/usr/lib/python3.11/", "os.py", reg(0o644), false},
		{"/usr/bin/", "perl", reg(0o755), true},
		{"/usr/lib/x86_64-linux-gnu/", "libssl.so.3", reg(0o644), true},
		{"/usr/lib/x86_64-linux-gnu/", "libfoo.so.1.2.3", reg(0o644), true},
		{"/usr/lib/python3.11/lib-dynload/", "_ssl.cpython-311-x86_64-linux-gnu.so", reg(0o644), true},
		{"/usr/lib/x86_64-linux-gnu/", "libssl.so.3", link, false},
		{"/usr/share/doc/openssl/", "changelog.Debian.gz", reg(0o644), true},
		{"/usr/share/doc/openssl/", "copyright", reg(0o644), false},
		{"/var/lib/dpkg/info/", "openssl.md5sums", reg(0o644), true},
		{"/var/lib/dpkg/info/", "openssl.list", reg(0o644), false},
		{"/var/lib/dpkg/info/", "libssl3:amd64.shlibs", reg(0o644), true},
		{"/usr/share/man/man1/", "perl.1.gz", reg(0o644), true}, // pod2man puts the version in
		{"/usr/lib/x86_64-linux-gnu/perl-base/", "Config_heavy.pl", reg(0o644), true},
		{"/usr/lib/x86_64-linux-gnu/perl-base/", "Config.pm", reg(0o644), true},
		{"/usr/lib/x86_64-linux-gnu/perl-base/", "Carp.pm", reg(0o644), false},
		{"/usr/lib/python3.11/", "_sysconfigdata__x86_64-linux-gnu.py", reg(0o644), true},
		{"/usr/lib/python3.11/config-3.11-x86_64-linux-gnu/", "Makefile", reg(0o644), true},
		{"/usr/share/perl5/", "Foo.pm", reg(0o644), false},
		{"/usr/share/bash-completion/completions/", "apt", reg(0o755), false}, // scripts under /usr/share are data
		{"/usr/share/locale/de/LC_MESSAGES/", "apt.mo", reg(0o644), false},
		{"/usr/lib/", "notes.solid", reg(0o644), false}, // ".so" followed by letters is not a library
		{"/usr/include/openssl/", "ssl.h", reg(0o644), false},
	}
	for _, tc := range tests {
		t.Run(tc.dir+tc.name, func(t *testing.T) {
			assert.Equal(t, tc.want, isVolatile(tc.dir, tc.name, tc.f))
		})
	}
}

// splitRelease is a tree with one big package whose files differ in volatility, a tiny
// package, and a package without volatile files. rebuild rewrites the volatile files of
// "python3.11", as a security rebuild does.
func splitRelease(t *testing.T, store *ostree.Store, rebuild bool) *ostree.Tree {
	b := newTestTree(t, store)
	py := map[string]int{
		"/usr/lib/python3.11/os.py":                            300 << 10,
		"/usr/lib/python3.11/json/decoder.py":                  200 << 10,
		"/usr/share/locale/de/LC_MESSAGES/python.mo":           150 << 10,
		"/usr/lib/python3.11/__pycache__/os.cpython-311.pyc":   120 << 10,
		"/usr/lib/x86_64-linux-gnu/libpython3.11.so.1.0":       400 << 10,
		"/usr/share/doc/python3.11/changelog.Debian.gz":        10 << 10,
		"/usr/lib/python3.11/json/__pycache__/dec.cpython.pyc": 60 << 10,
	}
	b.addDpkg([]dpkgPkg{
		{name: "python3.11", version: "3.11.2-6", files: py},
		{name: "tiny", version: "1", files: map[string]int{"/usr/lib/libtiny.so.1": 2 << 10, "/usr/share/tiny/data": 4 << 10}},
		{name: "fonts", version: "1", files: map[string]int{"/usr/share/fonts/a.ttf": 500 << 10}},
	})
	if rebuild {
		for p := range py {
			if VolatileReason(p, &ostree.File{Header: &ostree.FileHeader{Mode: ostree.ModeRegular | 0o644}}) != "" {
				b.sized(p, py[p], "rebuilt"+p)
			}
		}
	}
	b.sized("/usr/lib/modules/6.1.0/vmlinuz", 1<<20, "kernel")
	return b.finalize()
}

func TestVolatileSplit(t *testing.T) {
	store, err := ostree.OpenStore(t.TempDir())
	require.NoError(t, err)
	ctx := context.Background()
	v1 := splitRelease(t, store, false)
	p1, err := NewPlan(ctx, v1, store, Options{MaxLayers: 16})
	require.NoError(t, err)
	checkPlan(t, v1, p1, 16)

	owners := []struct{ path, component string }{
		{"/usr/lib/python3.11/os.py", "python3.11"},
		{"/usr/share/locale/de/LC_MESSAGES/python.mo", "python3.11"},
		{"/usr/lib/python3.11/__pycache__/os.cpython-311.pyc", "python3.11" + VolatileSuffix},
		{"/usr/lib/x86_64-linux-gnu/libpython3.11.so.1.0", "python3.11" + VolatileSuffix},
		{"/usr/share/doc/python3.11/changelog.Debian.gz", "python3.11" + VolatileSuffix},
		{"/var/lib/dpkg/info/python3.11.md5sums", "python3.11" + VolatileSuffix},
		{"/usr/lib/libtiny.so.1", "tiny"}, // too small to split
		{"/usr/share/fonts/a.ttf", "fonts"},
	}
	for _, o := range owners {
		l, ok := ownerOf(p1, o.path)
		require.True(t, ok, o.path)
		assert.Contains(t, l.Components, o.component, "layer of %s", o.path)
	}
	vol, stable := componentOf(p1, "python3.11"+VolatileSuffix), componentOf(p1, "python3.11")
	require.NotNil(t, vol)
	require.NotNil(t, stable)
	assert.True(t, vol.Volatile)
	assert.False(t, stable.Volatile)
	assert.Less(t, stable.ChangeProbability, vol.ChangeProbability, "the stable part is assumed to change less often")
	assert.Nil(t, componentOf(p1, "tiny"+VolatileSuffix))
	assert.Nil(t, componentOf(p1, "fonts"+VolatileSuffix), "nothing volatile in fonts")

	prev := []Previous{asPrevious("v1", p1, true, true)}
	t.Run("identical rebuild changes no layer", func(t *testing.T) {
		p, err := NewPlan(ctx, splitRelease(t, store, false), store, Options{MaxLayers: 16, Previous: prev})
		require.NoError(t, err)
		assert.Empty(t, changedLayers(p1, p))
	})
	t.Run("security rebuild fetches the volatile part only", func(t *testing.T) {
		v2 := splitRelease(t, store, true)
		p, err := NewPlan(ctx, v2, store, Options{MaxLayers: 16, Previous: prev})
		require.NoError(t, err)
		checkPlan(t, v2, p, 16)
		var fetched int64
		for _, l := range changedLayers(p1, p) {
			assert.NotContains(t, l.Components, "python3.11", "the stable part's layer is kept: %s", l.Name)
			fetched += l.Size
		}
		// The whole package, for comparison: what a layout without the split fetches.
		whole, err := NewPlan(ctx, v1, store, Options{MaxLayers: 16, NoVolatileSplit: true})
		require.NoError(t, err)
		pw, err := NewPlan(ctx, v2, store, Options{MaxLayers: 16, NoVolatileSplit: true,
			Previous: []Previous{asPrevious("v1", whole, true, true)}})
		require.NoError(t, err)
		var fetchedWhole int64
		for _, l := range changedLayers(whole, pw) {
			fetchedWhole += l.Size
		}
		assert.Less(t, fetched, fetchedWhole*7/10, "split %d B against whole %d B", fetched, fetchedWhole)
	})
}

func TestSplitFiles(t *testing.T) {
	for _, c := range []struct {
		name, in, kept string
	}{
		{"empty", "", ""},
		{"all kept", "ABC", "ABC"},
		{"none kept", "abc", ""},
		{"mixed", "aBcDe", "BD"},
		{"kept at the end", "abCD", "CD"},
	} {
		t.Run(c.name, func(t *testing.T) {
			files := make([]FileRef, len(c.in))
			for i, r := range c.in {
				files[i] = FileRef{Name: string(r)}
			}
			upper := func(fe FileRef) bool { return fe.Name >= "A" && fe.Name <= "Z" }
			kept, rest := splitFiles(files, upper)
			names := func(fs []FileRef) []string {
				var out []string
				for _, fe := range fs {
					out = append(out, fe.Name)
				}
				sort.Strings(out)
				return out
			}
			var wantKept, wantRest []string
			for _, r := range c.in {
				if r >= 'A' && r <= 'Z' {
					wantKept = append(wantKept, string(r))
				} else {
					wantRest = append(wantRest, string(r))
				}
			}
			sort.Strings(wantKept)
			sort.Strings(wantRest)
			assert.Equal(t, wantKept, names(kept))
			assert.Equal(t, wantRest, names(rest))
			assert.Equal(t, len(kept), cap(kept), "kept must not grow into rest")
			assert.Equal(t, len(files), len(kept)+len(rest))
		})
	}
}
