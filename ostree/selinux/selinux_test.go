package selinux

import (
	"bytes"
	"context"
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"github.com/rechunker-dev/rechunker/ostree"
	"github.com/rechunker-dev/rechunker/ostree/rootfs"
)

const testContexts = `# comment
/.*			system_u:object_r:default_t:s0
/usr(/.*)?		system_u:object_r:usr_t:s0
/usr/bin(/.*)?		system_u:object_r:bin_t:s0
/usr/bin/special	--	system_u:object_r:special_t:s0
/usr/bin/special	-d	system_u:object_r:specialdir_t:s0
/usr/lib(/.*)?		system_u:object_r:lib_t:s0
/usr/lib/link		-l	system_u:object_r:link_t:s0
/usr/share/a\.b		system_u:object_r:escaped_t:s0
/var/x			-d	<<none>>
/var/x/.*		<<none>>
/opt/a|/opt/b		system_u:object_r:alt_t:s0
/etc(/.*)?		system_u:object_r:etc_t:s0
/usr/bin/[a-c]		system_u:object_r:later_regex_t:s0
`

func policyFiles() map[string]string {
	const base = "etc/selinux/tp/contexts/files/file_contexts"
	return map[string]string{
		"etc/selinux/config":              "# test\nSELINUX=enforcing\nSELINUXTYPE=tp\n",
		"etc/selinux/tp/policy/policy.33": "not a real policy",
		base:                              testContexts,
		base + ".homedirs":                "/home/[^/]+(/.*)?	system_u:object_r:home_t:s0\n",
		base + ".local":                   "/usr/bin/a	system_u:object_r:local_t:s0\n",
		base + ".subs_dist":               "/usr/lib64 /usr/lib\n/usr/lib64/x /usr/bin\n",
		base + ".subs":                    "/srv /var\n/opt/alias /\n",
	}
}

func TestLabelLookup(t *testing.T) {
	files := policyFiles()
	const base = "etc/selinux/tp/contexts/files/file_contexts"
	src := func(n string) Source { return Source{Name: n, R: strings.NewReader(files[n])} }
	dist, subs := src(base+".subs_dist"), src(base+".subs")
	p, err := Parse([]Source{src(base), src(base + ".homedirs"), src(base + ".local")}, &dist, &subs)
	require.NoError(t, err)
	tests := []struct {
		path string
		mode uint32
		want string
	}{
		{"/", modeDir, "system_u:object_r:default_t:s0"},
		{"/usr/bin/special", modeRegular, "system_u:object_r:special_t:s0"}, // exact spec after the regexes
		{"/usr/bin/special", modeDir, "system_u:object_r:specialdir_t:s0"},
		{"/usr/bin/special", modeSymlink, "system_u:object_r:bin_t:s0"}, // no exact spec for symlinks
		{"/usr/bin/a", modeRegular, "system_u:object_r:local_t:s0"},     // .local is read last
		{"/usr/bin/b", modeRegular, "system_u:object_r:later_regex_t:s0"},
		{"/usr/bin/d", modeRegular, "system_u:object_r:bin_t:s0"},
		{"/usr/lib/link", modeSymlink, "system_u:object_r:link_t:s0"},
		{"/usr/lib/link", modeRegular, "system_u:object_r:lib_t:s0"},
		{"/usr/lib64/c", modeRegular, "system_u:object_r:lib_t:s0"},         // subs_dist
		{"/usr/lib64/x/y", modeRegular, "system_u:object_r:bin_t:s0"},       // the last line is tried first
		{"/usr/lib64x/c", modeRegular, "system_u:object_r:usr_t:s0"},        // only whole components
		{"/srv/x/f", modeRegular, ""},                                       // subs -> /var/x/f: <<none>>
		{"/opt/alias/usr/bin/q", modeRegular, "system_u:object_r:bin_t:s0"}, // substituted by "/"
		{"/usr/share/a.b", modeRegular, "system_u:object_r:escaped_t:s0"},
		{"/usr/share/aXb", modeRegular, "system_u:object_r:usr_t:s0"},
		{"/opt/a/anything", modeRegular, "system_u:object_r:alt_t:s0"}, // "^/opt/a|/opt/b$", as libselinux anchors it
		{"/x/opt/b", modeRegular, "system_u:object_r:alt_t:s0"},
		{"/var/x", modeDir, ""},
		{"/var/x", modeRegular, "system_u:object_r:default_t:s0"},
		{"/home/u/f", modeRegular, "system_u:object_r:home_t:s0"},
	}
	for _, tc := range tests {
		assert.Equal(t, tc.want, p.Label(tc.path, tc.mode), "%s mode %o", tc.path, tc.mode)
	}
}

func TestParseErrors(t *testing.T) {
	tests := []struct{ name, contexts, want string }{
		{"unknown type", "/a -x ctx\n", `fc:1: unknown file type "-x"`},
		{"too many fields", "/a -- ctx extra\n", "fc:1: want REGEX [TYPE] CONTEXT"},
		{"too few fields", "\n/a\n", "fc:2: want REGEX [TYPE] CONTEXT"},
		{"bad regex", "/a(b ctx\n", "fc:1: regex"},
		{"unsupported regex", `/a(?<=b) ctx` + "\n", "fc:1: regex"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]Source{{Name: "fc", R: strings.NewReader(tc.contexts)}}, nil, nil)
			require.Error(t, err)
			assert.Contains(t, err.Error(), tc.want)
		})
	}
	huge := strings.Repeat("/a(/.*)? ctx\n", maxSpecs+1)
	_, err := Parse([]Source{{Name: "fc", R: strings.NewReader(huge)}}, nil, nil)
	assert.ErrorContains(t, err, "more than 50000 specifications")
	_, err = Parse(nil, &Source{Name: "subs", R: strings.NewReader("relative /x\n")}, nil)
	assert.ErrorContains(t, err, "subs:1: substitution paths must be absolute")
}

func FuzzParseAndLabel(f *testing.F) {
	f.Add(testContexts, "/usr/lib64 /usr/lib\n/ /x\n", "/usr/bin/special")
	f.Add("/a(/.*)? -d x\n", "", "/a/b")
	f.Fuzz(func(t *testing.T, contexts, subs, p string) {
		pol, err := Parse([]Source{{Name: "fc", R: strings.NewReader(contexts)}}, &Source{Name: "subs", R: strings.NewReader(subs)}, nil)
		if err != nil {
			return
		}
		for _, m := range []uint32{0, modeRegular, modeDir, modeSymlink} {
			l := pol.Label(p, m)
			// The candidate index must never change an answer.
			key := pol.Key(p)
			dir := filepath.Dir(key)
			if strings.HasPrefix(key, "/") && dir != key {
				require.Equal(t, l, pol.lookup(key, m, pol.candidates(dir)), "path %q", p)
			}
		}
	})
}

// TestApplyMatchesOstree labels a directory tree with a test policy and compares every
// entry, xattrs and checksums, with `ostree commit --selinux-policy` of the same tree.
func TestApplyMatchesOstree(t *testing.T) {
	if _, err := exec.LookPath("ostree"); err != nil {
		t.Skip("ostree not installed: it is the oracle for labels")
	}
	dir := filepath.Join(t.TempDir(), "root")
	files := policyFiles()
	for p, c := range map[string]string{
		"usr/bin/special": "s", "usr/bin/a": "a", "usr/bin/b": "b", "usr/bin/d": "d",
		"usr/lib/c": "c", "usr/lib64/c": "c64", "usr/lib64/x/y": "y", "usr/lib64x/c": "c",
		"srv/x/f": "f", "opt/alias/usr/bin/q": "q", "usr/share/a.b": "ab", "usr/share/aXb": "aXb",
		"opt/a1": "a1", "opt/zz/opt/b": "b", "home/u/f": "h", "var/x/y": "y", "var/z": "z",
		"usr/bin/xattrs": "x", "usr/bin/relabel": "r",
	} {
		files[p] = c
	}
	for p, c := range files {
		full := filepath.Join(dir, p)
		require.NoError(t, os.MkdirAll(filepath.Dir(full), 0o755))
		require.NoError(t, os.WriteFile(full, []byte(c), 0o644))
	}
	require.NoError(t, os.MkdirAll(filepath.Join(dir, "usr/bin/special.d"), 0o755))
	require.NoError(t, os.Symlink("c", filepath.Join(dir, "usr/lib/link")))
	require.NoError(t, os.Symlink("a", filepath.Join(dir, "usr/bin/sym")))
	require.NoError(t, os.Link(filepath.Join(dir, "usr/bin/a"), filepath.Join(dir, "usr/lib/hardlink")))
	if err := unix.Lsetxattr(filepath.Join(dir, "usr/bin/xattrs"), "user.keep", []byte("v"), 0); err != nil {
		t.Skipf("user xattrs unsupported here: %v", err)
	}
	// An image may carry a label of its own (a container's); the policy's replaces it.
	require.NoError(t, unix.Lsetxattr(filepath.Join(dir, "usr/bin/relabel"), "security.selinux", []byte("system_u:object_r:container_file_t:s0\x00"), 0))
	require.NoError(t, unix.Lsetxattr(filepath.Join(dir, "var/x/y"), "security.selinux", []byte("kept_because_none\x00"), 0))

	for _, copyFiles := range []bool{true, false} {
		t.Run(map[bool]string{true: "copy", false: "in-place"}[copyFiles], func(t *testing.T) {
			checkLabelled(t, dir, copyFiles)
		})
	}
}

// checkLabelled compares our labels of dir with ostree's, with the tree's files copied
// into the store or read in place.
func checkLabelled(t *testing.T, dir string, copyFiles bool) {
	l := labelBoth(t, dir, copyFiles)
	store, tree, p, st, want := l.store, l.tree, l.policy, l.st, l.want
	assert.Equal(t, "tp", l.typ)
	assert.Positive(t, st.Rewritten)
	assert.Equal(t, want, l.got)
	assert.Contains(t, want, "system_u:object_r:special_t:s0", "the oracle labelled the tree")

	// Relabelled objects share their original's payload, and read back as what they hash to.
	require.NoError(t, tree.Walk(func(p string, _ *ostree.Dir, f *ostree.File) error {
		if f != nil {
			assert.NoError(t, store.VerifyContent(f.Checksum), p)
		}
		return nil
	}))
	derived := 0
	err := filepath.WalkDir(store.Path("derived"), func(_ string, d os.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			derived++
		}
		return err
	})
	if !copyFiles {
		// In-place objects stay in memory: nothing on disk may name a payload the
		// store does not keep.
		assert.ErrorIs(t, err, fs.ErrNotExist)
		assert.Zero(t, derived)
		return
	}
	require.NoError(t, err)
	assert.Equal(t, st.Rewritten, derived, "every relabelled regular file is a derived object")

	// A second run finds every rewritten object in the relabel index.
	ctx := context.Background()
	tree2, err := rootfs.Import(ctx, dir, store, rootfs.Options{Copy: true})
	require.NoError(t, err)
	st2, err := Apply(ctx, store, tree2, p)
	require.NoError(t, err)
	assert.Zero(t, st2.Rewritten)
	assert.Equal(t, st.Rewritten, st2.Reused)
}

func TestLoadWithoutPolicy(t *testing.T) {
	tests := []struct {
		name   string
		config string
	}{
		{"no config", ""},
		{"disabled", "SELINUX=disabled\nSELINUXTYPE=tp\n"},
		{"no type", "SELINUX=enforcing\n"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			if tc.config != "" {
				require.NoError(t, os.MkdirAll(filepath.Join(dir, "etc/selinux"), 0o755))
				require.NoError(t, os.WriteFile(filepath.Join(dir, "etc/selinux/config"), []byte(tc.config), 0o644))
			}
			store, err := ostree.OpenStore(filepath.Join(t.TempDir(), "store"))
			require.NoError(t, err)
			tree, err := rootfs.Import(context.Background(), dir, store, rootfs.Options{})
			require.NoError(t, err)
			_, _, err = Load(context.Background(), store, tree)
			require.ErrorIs(t, err, ErrNoPolicy)
		})
	}
	t.Run("missing file_contexts", func(t *testing.T) {
		dir := t.TempDir()
		require.NoError(t, os.MkdirAll(filepath.Join(dir, "etc/selinux"), 0o755))
		require.NoError(t, os.WriteFile(filepath.Join(dir, "etc/selinux/config"), []byte("SELINUXTYPE=gone\n"), 0o644))
		store, err := ostree.OpenStore(filepath.Join(t.TempDir(), "store"))
		require.NoError(t, err)
		tree, err := rootfs.Import(context.Background(), dir, store, rootfs.Options{})
		require.NoError(t, err)
		_, typ, err := Load(context.Background(), store, tree)
		require.ErrorIs(t, err, ErrPolicyMissing)
		require.ErrorIs(t, err, ErrNoPolicy, "callers that only know ErrNoPolicy skip labelling")
		assert.Equal(t, "gone", typ)
		assert.Contains(t, err.Error(), "/etc/selinux/gone/contexts/files/file_contexts")
	})
}

// labelled is a tree labelled both ways: by ostree (the oracle) and by us.
type labelled struct {
	want, got string // ostree ls -RCX of the oracle's commit, and our tree in that format
	store     *ostree.Store
	tree      *ostree.Tree
	policy    *Policy
	typ       string
	st        Stats
}

// labelBoth commits dir with ostree commit --selinux-policy and imports, labels and
// finalizes it ourselves.
func labelBoth(t *testing.T, dir string, copyFiles bool) labelled {
	t.Helper()
	repo := filepath.Join(t.TempDir(), "repo")
	ostreeCmd(t, "init", "--repo="+repo, "--mode=bare-user")
	ostreeCmd(t, "commit", "--repo="+repo, "--selinux-policy="+dir, "--tree=dir="+dir, "-b", "t", "--timestamp=2024-01-01T00:00:00Z")
	l := labelled{want: ostreeCmd(t, "ls", "--repo="+repo, "-RCX", "t")}

	ctx := context.Background()
	var err error
	l.store, err = ostree.OpenStore(filepath.Join(t.TempDir(), "store"))
	require.NoError(t, err)
	l.tree, err = rootfs.Import(ctx, dir, l.store, rootfs.Options{Copy: copyFiles})
	require.NoError(t, err)
	l.policy, l.typ, err = Load(ctx, l.store, l.tree)
	require.NoError(t, err)
	l.st, err = Apply(ctx, l.store, l.tree, l.policy)
	require.NoError(t, err)
	_, _, err = l.tree.Finalize(l.store)
	require.NoError(t, err)
	var got bytes.Buffer
	require.NoError(t, ostree.FormatLsOptions(&got, l.tree, "/", ostree.LsOptions{Recursive: true, Checksums: true, Xattrs: true}))
	l.got = got.String()
	return l
}

func ostreeCmd(t *testing.T, args ...string) string {
	t.Helper()
	out, err := exec.Command("ostree", args...).CombinedOutput()
	require.NoError(t, err, "ostree %v: %s", args, out)
	return string(out)
}

// TestApplyMatchesOstreeRealPolicy labels a copy of this machine's directory layout
// (names, types and symlinks of /usr, /etc and /var, with tiny contents) with a real
// policy, Debian's selinux-policy-default (5,000+ specifications), and compares it
// with ostree commit --selinux-policy. CI installs the policy; elsewhere it skips.
func TestApplyMatchesOstreeRealPolicy(t *testing.T) {
	if testing.Short() {
		t.Skip("slow: copies thousands of paths")
	}
	const policy = "/etc/selinux/default"
	if _, err := os.Stat(policy + "/contexts/files/file_contexts"); err != nil {
		t.Skip("selinux-policy-default not installed (apt-get install selinux-policy-default)")
	}
	if _, err := exec.LookPath("ostree"); err != nil {
		t.Skip("ostree not installed: it is the oracle for labels")
	}
	dir := filepath.Join(t.TempDir(), "root")
	copied := 0
	const maxEntries = 30000
	for _, top := range []string{"/usr/bin", "/usr/sbin", "/usr/lib", "/usr/libexec", "/usr/share/doc", "/etc", "/var/lib", "/var/log", "/var/spool", "/opt", "/srv", "/root", "/home"} {
		_ = filepath.WalkDir(top, func(p string, d os.DirEntry, err error) error {
			if err != nil || copied >= maxEntries {
				return filepath.SkipDir
			}
			if strings.HasPrefix(p, "/etc/selinux") || strings.ContainsAny(p, "\n\r") {
				return nil
			}
			dst := filepath.Join(dir, p)
			switch {
			case d.Type().IsDir():
				if err := os.MkdirAll(dst, 0o755); err != nil {
					return err
				}
			case d.Type()&os.ModeSymlink != 0:
				target, err := os.Readlink(p)
				if err != nil {
					return nil
				}
				_ = os.MkdirAll(filepath.Dir(dst), 0o755)
				if err := os.Symlink(target, dst); err != nil {
					return nil
				}
			case d.Type().IsRegular():
				_ = os.MkdirAll(filepath.Dir(dst), 0o755)
				if err := os.WriteFile(dst, []byte(filepath.Base(p)), 0o644); err != nil {
					return nil
				}
			default:
				return nil
			}
			copied++
			return nil
		})
	}
	require.Greater(t, copied, 1000, "too few paths copied from this machine")
	cfg := filepath.Join(dir, "etc/selinux")
	require.NoError(t, os.MkdirAll(filepath.Join(cfg, "default/contexts/files"), 0o755))
	require.NoError(t, os.MkdirAll(filepath.Join(cfg, "default/policy"), 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(cfg, "config"), []byte("SELINUX=enforcing\nSELINUXTYPE=default\n"), 0o644))
	for _, f := range []string{"contexts/files/file_contexts", "contexts/files/file_contexts.homedirs", "contexts/files/file_contexts.local", "contexts/files/file_contexts.subs_dist", "contexts/files/file_contexts.subs", "policy/policy.33"} {
		data, err := os.ReadFile(filepath.Join(policy, f))
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		require.NoError(t, err)
		require.NoError(t, os.WriteFile(filepath.Join(cfg, "default", f), data, 0o644))
	}

	l := labelBoth(t, dir, false)
	want := l.want
	t.Logf("%d paths, %d labelled, %d objects rewritten", copied, l.st.Labeled, l.st.Rewritten)
	wantLines, gotLines := strings.Split(want, "\n"), strings.Split(l.got, "\n")
	require.Equal(t, len(wantLines), len(gotLines))
	bad := 0
	for i := range wantLines {
		if wantLines[i] != gotLines[i] && !strings.HasPrefix(wantLines[i], "d") {
			bad++
			if bad <= 10 {
				t.Errorf("ostree: %s\nours:   %s", wantLines[i], gotLines[i])
			}
		}
	}
	assert.Zero(t, bad, "entries labelled differently")
	assert.Equal(t, want, l.got, "directory checksums")
}
