package main

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	digest "github.com/opencontainers/go-digest"
	imgspecs "github.com/opencontainers/image-spec/specs-go"
	imgspecv1 "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.podman.io/storage/pkg/reexec"

	"github.com/rechunker-dev/rechunker/internal/testbin"
)

// The tests in this file drive the real binary with hostile images: the process must
// exit 1 with a message naming the problem (never a Go panic, which exits 2 with a
// goroutine dump), leave no output behind when a build fails, keep an existing output
// intact, and write nothing outside the store and the output.

func TestMain(m *testing.M) {
	if reexec.Init() {
		return
	}
	code := m.Run()
	if err := cli.Close(); err != nil {
		fmt.Fprintln(os.Stderr, err)
	}
	os.Exit(code)
}

// cli is the command under test, built on first use with this test binary's build tags
// and shared by every test of the package.
var cli testbin.Binary

// rechunkerBin returns the built command.
func rechunkerBin(t *testing.T) string {
	t.Helper()
	return cli.Path(t)
}

type cliResult struct {
	stdout, stderr string
	code           int
}

func (r cliResult) String() string {
	return fmt.Sprintf("exit %d\nstdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
}

// runBin runs the binary; TMPDIR points into the test's directory so that stray temp
// files can be found.
func runBin(t *testing.T, tmp string, args ...string) cliResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, rechunkerBin(t), args...)
	cmd.Env = append(os.Environ(), "TMPDIR="+tmp, "XDG_CACHE_HOME="+filepath.Join(tmp, "cache"))
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	r := cliResult{stdout: stdout.String(), stderr: stderr.String()}
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee):
		r.code = ee.ExitCode()
	default:
		t.Fatalf("run %v: %v", args, err)
	}
	require.NotContains(t, r.stderr, "goroutine ", "%v panicked:\n%s", args, r)
	require.NotContains(t, r.stderr, "panic:", "%v panicked:\n%s", args, r)
	return r
}

// hent is one tar entry of a hostile layer.
type hent struct {
	name string
	typ  byte
	body string
	link string
	mode int64
}

func hdir(name string) hent { return hent{name: name, typ: tar.TypeDir, mode: 0o755} }
func hfile(name, body string) hent {
	return hent{name: name, typ: tar.TypeReg, body: body, mode: 0o644}
}
func hsymlink(name, target string) hent {
	return hent{name: name, typ: tar.TypeSymlink, link: target, mode: 0o777}
}
func hlink(name, target string) hent {
	return hent{name: name, typ: tar.TypeLink, link: target, mode: 0o644}
}

func htar(t testing.TB, es ...hent) []byte {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range es {
		h := &tar.Header{Name: e.name, Typeflag: e.typ, Linkname: e.link, Mode: e.mode, ModTime: time.Unix(1700000000, 0),
			Format: tar.FormatPAX}
		if e.typ == tar.TypeReg {
			h.Size = int64(len(e.body))
		}
		require.NoError(t, tw.WriteHeader(h), e.name)
		_, err := tw.Write([]byte(e.body))
		require.NoError(t, err)
	}
	require.NoError(t, tw.Close())
	return buf.Bytes()
}

// hlayer is one manifest layer: its blob as stored and its uncompressed digest.
type hlayer struct {
	blob      []byte
	mediaType string
	diffID    digest.Digest
}

func gzLayer(t testing.TB, raw []byte) hlayer {
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	_, err := zw.Write(raw)
	require.NoError(t, err)
	require.NoError(t, zw.Close())
	return hlayer{blob: buf.Bytes(), mediaType: imgspecv1.MediaTypeImageLayerGzip, diffID: digest.FromBytes(raw)}
}

func baseEntries() []hent {
	return append([]hent{
		hdir("usr/"), hdir("usr/bin/"), hdir("usr/lib/"), hdir("etc/"),
		hfile("usr/bin/tool", "#!/bin/sh\necho tool\n"), hfile("usr/lib/libx.so", "library"),
		hfile("etc/os-release", "ID=test\n"),
	}, bootcRootEntries()...)
}

// bootcRootEntries are what bootc's fatal lints require of a base image: /sysroot,
// /ostree -> sysroot/ostree and the API file system mount points.
func bootcRootEntries() []hent {
	return []hent{
		hdir("sysroot/"), hsymlink("ostree", "sysroot/ostree"),
		hdir("dev/"), hdir("proc/"), hdir("sys/"), hdir("run/"), hdir("tmp/"), hdir("var/"),
	}
}

// addBootcRoot writes bootcRootEntries into the root file system at root.
func addBootcRoot(t *testing.T, root string) {
	for _, e := range bootcRootEntries() {
		p := filepath.Join(root, e.name)
		if e.typ == tar.TypeSymlink {
			require.NoError(t, os.Symlink(e.link, p))
		} else {
			require.NoError(t, os.MkdirAll(p, 0o755))
		}
	}
}

// writeOCI writes an OCI layout with the layers and returns its oci: reference.
func writeOCI(t testing.TB, dir string, layers []hlayer, edit func(*imgspecv1.Manifest, *imgspecv1.Image)) string {
	blobs := filepath.Join(dir, "blobs", "sha256")
	require.NoError(t, os.MkdirAll(blobs, 0o755))
	put := func(b []byte) digest.Digest {
		d := digest.FromBytes(b)
		require.NoError(t, os.WriteFile(filepath.Join(blobs, d.Encoded()), b, 0o644))
		return d
	}
	created := time.Unix(1700000000, 0).UTC()
	cfg := imgspecv1.Image{
		Created:  &created,
		Platform: imgspecv1.Platform{Architecture: runtime.GOARCH, OS: "linux"},
		Config:   imgspecv1.ImageConfig{Labels: map[string]string{"containers.bootc": "1"}, Cmd: []string{"/usr/bin/tool"}},
		RootFS:   imgspecv1.RootFS{Type: "layers"},
	}
	m := imgspecv1.Manifest{Versioned: imgspecs.Versioned{SchemaVersion: 2}, MediaType: imgspecv1.MediaTypeImageManifest}
	for i, l := range layers {
		m.Layers = append(m.Layers, imgspecv1.Descriptor{MediaType: l.mediaType, Digest: put(l.blob), Size: int64(len(l.blob))})
		cfg.RootFS.DiffIDs = append(cfg.RootFS.DiffIDs, l.diffID)
		cfg.History = append(cfg.History, imgspecv1.History{Created: &created, CreatedBy: fmt.Sprintf("layer %d", i)})
	}
	if edit != nil {
		edit(&m, &cfg)
	}
	cb, err := json.Marshal(cfg)
	require.NoError(t, err)
	m.Config = imgspecv1.Descriptor{MediaType: imgspecv1.MediaTypeImageConfig, Digest: put(cb), Size: int64(len(cb))}
	mb, err := json.Marshal(m)
	require.NoError(t, err)
	idx := imgspecv1.Index{Versioned: imgspecs.Versioned{SchemaVersion: 2}, MediaType: imgspecv1.MediaTypeImageIndex,
		Manifests: []imgspecv1.Descriptor{{MediaType: imgspecv1.MediaTypeImageManifest, Digest: put(mb), Size: int64(len(mb)),
			Annotations: map[string]string{imgspecv1.AnnotationRefName: "latest"}}}}
	ib, err := json.Marshal(idx)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(dir, "index.json"), ib, 0o644))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "oci-layout"), []byte(`{"imageLayoutVersion":"1.0.0"}`), 0o644))
	return "oci:" + dir + ":latest"
}

func randomName(t testing.TB) string {
	b := make([]byte, 6)
	_, err := rand.Read(b)
	require.NoError(t, err)
	return "rechunker-hostile-" + hex.EncodeToString(b)
}

// hostileCase is one hostile source image.
type hostileCase struct {
	name   string
	layers func(t *testing.T, marker string) []hlayer
	edit   func(m *imgspecv1.Manifest, c *imgspecv1.Image)
	// buildErr is a substring of the error build, import and plan must fail with; empty
	// means they succeed.
	buildErr []string
	// warn is a substring of a warning a successful build prints.
	warn string
	// tamper rewrites the first layer's blob file after the layout is written.
	tamper func(t *testing.T, blob string)
	// check runs after a successful build on the output reference.
	check func(t *testing.T, tmp, src, out string)
}

func TestHostileImages(t *testing.T) {
	one := func(es ...hent) func(t *testing.T, _ string) []hlayer {
		return func(t *testing.T, _ string) []hlayer {
			return []hlayer{gzLayer(t, htar(t, append(baseEntries(), es...)...))}
		}
	}
	deep := []hent{}
	p := "usr/share/deep"
	for i := 0; i < 100; i++ {
		p += fmt.Sprintf("/d%d", i)
		deep = append(deep, hdir(p+"/"))
	}
	deep = append(deep, hfile(p+"/leaf", "deep"))
	wide := []hent{hdir("usr/share/"), hdir("usr/share/wide/")}
	for i := 0; i < 50000; i++ {
		wide = append(wide, hfile(fmt.Sprintf("usr/share/wide/f%05d", i), fmt.Sprint(i%7)))
	}

	cases := []hostileCase{
		{
			name: "corrupt gzip",
			layers: func(t *testing.T, _ string) []hlayer {
				l := gzLayer(t, htar(t, baseEntries()...))
				l.blob[len(l.blob)/2] ^= 0xff // the manifest digest is of the corrupted blob
				return []hlayer{l}
			},
			buildErr: []string{"layer", "sha256:"},
		},
		{
			name: "truncated tar",
			layers: func(t *testing.T, _ string) []hlayer {
				raw := htar(t, append(baseEntries(), hfile("usr/share/big", strings.Repeat("x", 10000)))...)
				raw = raw[:len(raw)/2]
				return []hlayer{{blob: raw, mediaType: imgspecv1.MediaTypeImageLayer, diffID: digest.FromBytes(raw)}}
			},
			buildErr: []string{"layer", "unexpected EOF"},
		},
		{
			name: "dot-dot path",
			layers: func(t *testing.T, marker string) []hlayer {
				return one(hfile("../../../../../../../tmp/"+marker, "escaped"))(t, marker)
			},
			buildErr: []string{"layer 0", "path escapes the layer root"},
		},
		{
			name: "dot-dot inside a path",
			layers: func(t *testing.T, marker string) []hlayer {
				return one(hfile("usr/../../"+marker, "escaped"))(t, marker)
			},
			buildErr: []string{"layer 0", "path escapes the layer root"},
		},
		{
			// Unpacked below the image root, as container engines do.
			name: "absolute path",
			layers: func(t *testing.T, marker string) []hlayer {
				return one(hdir("/tmp/"), hfile("/tmp/"+marker, "abs"))(t, marker)
			},
			check: func(t *testing.T, tmp, src, out string) {
				r := runBin(t, tmp, "ls", "--store", filepath.Join(tmp, "store"), out, "/tmp")
				require.Equal(t, 0, r.code, r)
				assert.Contains(t, r.stdout, "/tmp/rechunker-hostile-", r)
			},
		},
		{
			name: "symlinked parent escaping",
			layers: func(t *testing.T, marker string) []hlayer {
				return []hlayer{
					gzLayer(t, htar(t, append(bootcRootEntries(), hdir("usr/"), hsymlink("usr/lib", "../../../../tmp"), hfile("usr/lib/"+marker, "evil"),
						hsymlink("usr/abs", "/tmp"), hfile("usr/abs/"+marker+"-abs", "evil"))...)),
					gzLayer(t, htar(t, hfile("usr/lib/"+marker+"-2", "evil in the next layer"))),
				}
			},
		},
		{
			name: "SELinux policy with a regex Go cannot compile",
			layers: one(hdir("etc/selinux/bad/contexts/files/"), hfile("etc/selinux/config", "SELINUXTYPE=bad\n"),
				hfile("etc/selinux/bad/contexts/files/file_contexts", "/usr(/.*)?\tsystem_u:object_r:usr_t:s0\n/x(?<=y)\tctx\n")),
			buildErr: []string{`SELinux policy "bad"`, "file_contexts:2: regex", "--no-selinux"},
		},
		{
			name:     "SELinux config is a symlink loop",
			layers:   one(hdir("etc/selinux/"), hsymlink("etc/selinux/config", "config")),
			buildErr: []string{"/etc/selinux/config", "too many levels of symbolic links"},
		},
		{
			name:     "SELinux type escaping the policy directory",
			layers:   one(hdir("etc/selinux/"), hfile("etc/selinux/config", "SELINUXTYPE=../../tmp\n")),
			buildErr: []string{"invalid SELINUXTYPE"},
		},
		{
			name:     "hardlink to missing target",
			layers:   func(t *testing.T, m string) []hlayer { return one(hlink("usr/bin/link", "usr/bin/missing"))(t, m) },
			buildErr: []string{"usr/bin/link", "usr/bin/missing"},
		},
		{
			name: "duplicate entries",
			layers: one(hfile("usr/bin/dup", "first"), hfile("usr/bin/dup", "second"), hdir("usr/bin/dup2/"), hfile("usr/bin/dup2", "file replaces dir"),
				hfile("usr/bin/dup3", "file"), hdir("usr/bin/dup3/"), hfile("usr/bin/dup3/x", "dir replaces file")),
			check: func(t *testing.T, tmp, src, out string) {
				r := runBin(t, tmp, "ls", "--store", filepath.Join(tmp, "store"), out, "/usr/bin")
				require.Equal(t, 0, r.code, r)
			},
		},
		{
			name: "unknown layer media type",
			layers: func(t *testing.T, _ string) []hlayer {
				l := gzLayer(t, htar(t, baseEntries()...))
				l.mediaType = "application/vnd.example.unknown+gzip"
				return []hlayer{l}
			},
			buildErr: []string{"application/vnd.example.unknown+gzip"},
		},
		{
			name:   "manifest names a missing blob",
			layers: one(),
			edit: func(m *imgspecv1.Manifest, _ *imgspecv1.Image) {
				m.Layers[0].Digest = digest.FromString("something else")
			},
			buildErr: []string{digest.FromString("something else").Encoded(), "no such file"},
		},
		{
			// The replacement has another size than the manifest says: that is seen first.
			name:   "blob content does not match its digest",
			layers: one(),
			tamper: func(t *testing.T, blob string) {
				require.NoError(t, os.WriteFile(blob, gzLayer(t, htar(t, append(baseEntries(), hfile("usr/bin/trojan", "x"))...)).blob, 0o644))
			},
			buildErr: []string{"layer 0", "blob is longer than"},
		},
		{
			// Same size, same uncompressed content: only the blob digest can tell.
			name:   "blob differs from its digest in the gzip header only",
			layers: one(),
			tamper: func(t *testing.T, blob string) {
				b, err := os.ReadFile(blob)
				require.NoError(t, err)
				b[4] ^= 1 // MTIME, which decompression ignores
				require.NoError(t, os.WriteFile(blob, b, 0o644))
			},
			buildErr: []string{"layer 0", "digest mismatch"},
		},
		{
			// The image spec requires one diff_id per layer; bootc refuses images without.
			name:     "config without diff_ids",
			layers:   one(),
			edit:     func(_ *imgspecv1.Manifest, c *imgspecv1.Image) { c.RootFS.DiffIDs = nil },
			buildErr: []string{"lists 0 diff_ids for 1 manifest layers"},
		},
		{
			name:     "manifest without layers",
			layers:   one(),
			edit:     func(m *imgspecv1.Manifest, c *imgspecv1.Image) { m.Layers, c.RootFS.DiffIDs = nil, nil },
			buildErr: []string{"no layers: nothing to boot"},
		},
		{
			name:     "layer size 0 in the manifest",
			layers:   one(),
			edit:     func(m *imgspecv1.Manifest, _ *imgspecv1.Image) { m.Layers[0].Size = 0 },
			buildErr: []string{"layer 0 (sha256:", "says it has 0 bytes"},
		},
		{
			name:     "manifest declares a layer larger than its blob",
			layers:   one(),
			edit:     func(m *imgspecv1.Manifest, _ *imgspecv1.Image) { m.Layers[0].Size += 100 },
			buildErr: []string{"layer 0 (sha256:", "blob ends after"},
		},
		{
			name:     "manifest declares a layer smaller than its blob",
			layers:   one(),
			edit:     func(m *imgspecv1.Manifest, _ *imgspecv1.Image) { m.Layers[0].Size-- },
			buildErr: []string{"layer 0 (sha256:", "blob is longer than"},
		},
		{
			name:   "config without history and labels",
			layers: one(),
			edit:   func(_ *imgspecv1.Manifest, c *imgspecv1.Image) { c.History = nil; c.Config.Labels = nil },
			check: func(t *testing.T, tmp, src, out string) {
				r := runBin(t, tmp, "verify", out)
				require.Equal(t, 1, r.code, r)
				require.Contains(t, r.stdout+r.stderr, "containers.bootc")
				require.Contains(t, r.stdout+r.stderr, "bootc refuses it")
				// With --bootc the same source builds a bootable image.
				out2 := "oci:" + filepath.Join(tmp, "out-bootc") + ":latest"
				r = runBin(t, tmp, "build", "--from", src, "--output", out2, "--store", filepath.Join(tmp, "store"), "--bootc")
				require.Equal(t, 0, r.code, r)
				r = runBin(t, tmp, "verify", out2)
				require.Equal(t, 0, r.code, r)
			},
		},
		{
			name:   "broken rpm database",
			layers: one(hdir("usr/lib/sysimage/"), hdir("usr/lib/sysimage/rpm/"), hfile("usr/lib/sysimage/rpm/rpmdb.sqlite", randomBytes(4096))),
			warn:   "rpm database /usr/lib/sysimage/rpm is unreadable",
		},
		{
			name: "broken dpkg status",
			layers: one(hdir("var/"), hdir("var/lib/"), hdir("var/lib/dpkg/"), hfile("var/lib/dpkg/status", "Package: x\nthis line has no colon\n"),
				hdir("var/lib/dpkg/info/"), hfile("var/lib/dpkg/info/x.list", "/usr/bin/tool\n")),
			warn: "dpkg database /var/lib/dpkg is unreadable",
		},
		{name: "100-level deep directory", layers: one(deep...)},
		{name: "directory with 50k entries", layers: one(wide...)},
		{
			name: "odd file names",
			layers: one(hdir("usr/share/"), hfile("usr/share/new\nline", "n"), hfile("usr/share/tab\there", "t"),
				hfile("usr/share/ünïcødé-☃", "u"), hfile("usr/share/-dash", "d"), hfile("usr/share/ .space", "s")),
		},
		{
			name:     "non-UTF-8 file name",
			layers:   one(hdir("usr/share/"), hfile("usr/share/caf\xe9", "latin1")),
			buildErr: []string{"UTF-8"},
		},
		{
			name: "symlink loop in /usr/lib/modules",
			layers: one(hdir("usr/lib/modules/"), hdir("usr/lib/modules/6.1.0/"), hfile("usr/lib/modules/6.1.0/vmlinuz", "kernel"),
				hsymlink("usr/lib/modules/a", "b"), hsymlink("usr/lib/modules/b", "a"), hsymlink("usr/lib/modules/self", "self"),
				hsymlink("usr/lib/modules/6.1.0/build", "../6.1.0/build/x")),
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if testing.Short() && tc.name == "directory with 50k entries" {
				t.Skip("slow")
			}
			tmp := t.TempDir()
			marker := randomName(t)
			t.Cleanup(func() { os.RemoveAll(filepath.Join("/tmp", marker)) })
			layers := tc.layers(t, marker)
			src := writeOCI(t, filepath.Join(tmp, "src"), layers, tc.edit)
			if tc.tamper != nil {
				tc.tamper(t, filepath.Join(tmp, "src", "blobs", "sha256", digest.FromBytes(layers[0].blob).Encoded()))
			}
			good := writeOCI(t, filepath.Join(tmp, "good"), []hlayer{gzLayer(t, htar(t, baseEntries()...))}, nil)
			store := filepath.Join(tmp, "store")
			outDir := filepath.Join(tmp, "out")
			out := "oci:" + outDir + ":latest"

			for _, args := range [][]string{
				{"build", "--from", src, "--output", out, "--store", store},
				{"import", "--store", store, src},
				{"plan", "--store", store, src},
			} {
				r := runBin(t, tmp, args...)
				t.Logf("%s: exit %d: %s", args[0], r.code, strings.TrimSpace(r.stderr))
				if tc.buildErr == nil {
					require.Equal(t, 0, r.code, "%s: %s", args[0], r)
					if tc.warn != "" && args[0] != "import" {
						assert.Contains(t, r.stderr, tc.warn, args[0])
					}
					continue
				}
				require.Equal(t, 1, r.code, "%s: %s", args[0], r)
				for _, s := range tc.buildErr {
					assert.Contains(t, r.stderr, s, "%s names the problem", args[0])
				}
				assert.NotContains(t, strings.TrimSpace(r.stderr), "\n\n", "one clear message")
			}
			if tc.buildErr != nil {
				_, err := os.Stat(outDir)
				assert.True(t, errors.Is(err, os.ErrNotExist), "a failed build leaves no output: %v", err)
			} else {
				r := runBin(t, tmp, "verify", out)
				if tc.check == nil || !strings.Contains(tc.name, "labels") {
					require.Equal(t, 0, r.code, "verify of the build: %s", r)
				}
				if tc.check != nil {
					tc.check(t, tmp, src, out)
				}
			}
			// The readers: verify reports the problem (exit 1) or passes; diff and inspect
			// read manifests and configs only.
			for _, args := range [][]string{
				{"verify", src}, {"verify", "--json", src}, {"diff", good, src}, {"diff", "--json", src, good},
				{"inspect", src}, {"inspect", "--json", "--bound-images", src},
			} {
				r := runBin(t, tmp, args...)
				if !strings.Contains(args[1], "json") {
					t.Logf("%v: exit %d: %s", args[:len(args)-1], r.code, lastLines(r.stdout+r.stderr, 3))
				}
				assert.Contains(t, []int{0, 1}, r.code, "%v: %s", args, r)
				if args[0] == "diff" && args[1] == good {
					assert.NotContains(t, r.stdout, "(ostree commit)", "a plain image has no commit layer")
				}
				if r.code == 1 && !strings.Contains(args[1], "json") {
					assert.NotEmpty(t, strings.TrimSpace(r.stdout+r.stderr), "%v says why", args)
				}
			}
			// Nothing escaped into /tmp or next to the test directory.
			for _, dir := range []string{"/tmp", filepath.Dir(tmp), filepath.Dir(filepath.Dir(tmp))} {
				ents, err := os.ReadDir(dir)
				require.NoError(t, err)
				for _, e := range ents {
					assert.False(t, strings.HasPrefix(e.Name(), marker), "%s/%s was written outside the output", dir, e.Name())
				}
			}
			checkNoStrayTemp(t, tmp)
		})
	}
}

func randomBytes(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return string(b)
}

// checkNoStrayTemp fails when the commands left temporary files in TMPDIR or temp
// files in the store or the output.
func checkNoStrayTemp(t *testing.T, tmp string) {
	t.Helper()
	err := filepath.WalkDir(tmp, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(tmp, p)
		name := d.Name()
		switch {
		case strings.HasPrefix(rel, "src") || strings.HasPrefix(rel, "good") || strings.HasPrefix(rel, "cache"):
			return nil
		case rel == "rechunker-blobinfo" || strings.HasPrefix(rel, "rechunker-blobinfo/"):
			return nil // containers/image's blob-info cache, kept on purpose
		case strings.HasPrefix(name, ".tmp") || strings.HasPrefix(name, "rechunker-") && rel == name:
			t.Errorf("stray temporary file %s", rel)
		case strings.HasPrefix(rel, "store/tmp/") && !d.IsDir():
			t.Errorf("stray temporary file %s", rel)
		}
		return nil
	})
	require.NoError(t, err)
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, " | ")
}

// snapshot lists every file under dir with its content digest.
func snapshot(t *testing.T, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	require.NoError(t, filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		out[rel] = digest.FromBytes(b).String()
		return nil
	}))
	return out
}

// TestHostileRebuildKeepsOutput: a rebuild from a broken source fails without touching
// the image already at --output.
func TestHostileRebuildKeepsOutput(t *testing.T) {
	tmp := t.TempDir()
	store := filepath.Join(tmp, "store")
	good := writeOCI(t, filepath.Join(tmp, "good"), []hlayer{gzLayer(t, htar(t, baseEntries()...))}, nil)
	outDir := filepath.Join(tmp, "out")
	out := "oci:" + outDir + ":latest"
	r := runBin(t, tmp, "build", "--from", good, "--output", out, "--store", store)
	require.Equal(t, 0, r.code, r)
	before := snapshot(t, outDir)

	// A layer whose diff_id the store knows is replayed from its record without reading
	// the blob (content addressing), so the corrupt layer has content of its own.
	corrupt := gzLayer(t, htar(t, append(baseEntries(), hfile("usr/bin/new", strings.Repeat("n", 5000)))...))
	corrupt.blob[len(corrupt.blob)/2] ^= 0xff
	unknown := gzLayer(t, htar(t, baseEntries()...))
	unknown.mediaType = "application/octet-stream"
	for name, layers := range map[string][]hlayer{
		"corrupt gzip":     {corrupt},
		"unknown type":     {unknown},
		"missing hardlink": {gzLayer(t, htar(t, append(baseEntries(), hlink("usr/bin/x", "nowhere"))...))},
	} {
		t.Run(name, func(t *testing.T) {
			src := writeOCI(t, filepath.Join(t.TempDir(), "src"), layers, nil)
			for _, extra := range [][]string{nil, {"--previous-build", out}, {"--no-layer-cache", "--no-blob-cache"}} {
				r := runBin(t, tmp, append([]string{"build", "--from", src, "--output", out, "--store", store}, extra...)...)
				require.Equal(t, 1, r.code, r)
				require.Equal(t, before, snapshot(t, outDir), "the existing output is untouched")
			}
		})
	}
	r = runBin(t, tmp, "verify", out)
	require.Equal(t, 0, r.code, r)
	checkNoStrayTemp(t, tmp)
}

// TestHostileOutputs: --output and --store pointing at things that are not what they
// should be.
func TestHostileOutputs(t *testing.T) {
	tmp := t.TempDir()
	good := writeOCI(t, filepath.Join(tmp, "good"), []hlayer{gzLayer(t, htar(t, baseEntries()...))}, nil)
	store := filepath.Join(tmp, "store")
	build := func(t *testing.T, output string, extra ...string) cliResult {
		return runBin(t, tmp, append([]string{"build", "--from", good, "--output", output, "--store", store}, extra...)...)
	}

	t.Run("index.json is not JSON", func(t *testing.T) {
		dir := filepath.Join(t.TempDir(), "out")
		require.NoError(t, os.MkdirAll(dir, 0o755))
		require.NoError(t, os.WriteFile(filepath.Join(dir, "oci-layout"), []byte(`{"imageLayoutVersion":"1.0.0"}`), 0o644))
		require.NoError(t, os.WriteFile(filepath.Join(dir, "index.json"), []byte("{not json"), 0o644))
		before := snapshot(t, dir)
		r := build(t, "oci:"+dir+":latest")
		t.Log(r)
		require.Equal(t, 1, r.code, r)
		assert.Contains(t, r.stderr, "index.json is not an OCI index")
		assert.Equal(t, before, snapshot(t, dir), "nothing written into it")
	})
	t.Run("non-empty directory without an OCI layout", func(t *testing.T) {
		dir := t.TempDir()
		require.NoError(t, os.WriteFile(filepath.Join(dir, "precious"), []byte("x"), 0o644))
		r := build(t, "oci:"+dir+":latest")
		require.Equal(t, 1, r.code, r)
		assert.Contains(t, r.stderr, "refusing to write into it")
		assert.Equal(t, map[string]string{"precious": digest.FromString("x").String()}, snapshot(t, dir))
	})
	t.Run("output is a regular file", func(t *testing.T) {
		file := filepath.Join(t.TempDir(), "file")
		require.NoError(t, os.WriteFile(file, []byte("x"), 0o644))
		r := build(t, "oci:"+file+":latest")
		t.Log(r)
		require.Equal(t, 1, r.code, r)
		assert.Contains(t, r.stderr, file)
		b, _ := os.ReadFile(file)
		assert.Equal(t, "x", string(b))
	})
	t.Run("output is a symlink to a directory", func(t *testing.T) {
		parent := t.TempDir()
		real := filepath.Join(parent, "real")
		require.NoError(t, os.Mkdir(real, 0o755))
		link := filepath.Join(parent, "link")
		require.NoError(t, os.Symlink(real, link))
		r := build(t, "oci:"+link+":latest")
		t.Log(r)
		require.Equal(t, 0, r.code, r)
		fi, err := os.Lstat(link)
		require.NoError(t, err)
		assert.Equal(t, os.ModeSymlink, fi.Mode()&os.ModeType, "the symlink is kept, the image written where it points")
		r = runBin(t, tmp, "verify", "oci:"+real+":latest")
		require.Equal(t, 0, r.code, r)
	})
	t.Run("output is a dangling symlink", func(t *testing.T) {
		parent := t.TempDir()
		link := filepath.Join(parent, "link")
		require.NoError(t, os.Symlink(filepath.Join(parent, "nowhere", "deeper"), link))
		r := build(t, "oci:"+link+":latest")
		t.Log(r)
		require.Equal(t, 1, r.code, r)
	})
	t.Run("store is a file", func(t *testing.T) {
		file := filepath.Join(t.TempDir(), "store")
		require.NoError(t, os.WriteFile(file, []byte("x"), 0o644))
		dir := filepath.Join(t.TempDir(), "out")
		for _, args := range [][]string{
			{"build", "--from", good, "--output", "oci:" + dir + ":latest", "--store", file},
			{"import", "--store", file, good},
			{"plan", "--store", file, good},
		} {
			r := runBin(t, tmp, args...)
			t.Log(r)
			require.Equal(t, 1, r.code, r)
			assert.Contains(t, r.stderr, file)
		}
		_, err := os.Stat(dir)
		assert.True(t, errors.Is(err, os.ErrNotExist), "no output: %v", err)
	})
}

// bigImage writes an image with n MiB of incompressible files, so that export takes a
// while.
func bigImage(t *testing.T, dir string, mib int) string {
	es := append(baseEntries(), hdir("usr/share/"), hdir("usr/share/data/"))
	for i := 0; i < mib; i++ {
		es = append(es, hfile(fmt.Sprintf("usr/share/data/f%03d", i), randomBytes(1<<20)))
	}
	raw := htar(t, es...)
	return writeOCI(t, dir, []hlayer{{blob: raw, mediaType: imgspecv1.MediaTypeImageLayer, diffID: digest.FromBytes(raw)}}, nil)
}

// waitFor polls cond until it holds or the process exits; it reports whether it held.
func waitFor(cond func() bool, done <-chan struct{}) bool {
	for {
		if cond() {
			return true
		}
		select {
		case <-done:
			return false
		case <-time.After(5 * time.Millisecond):
		}
	}
}

// TestInterruptedBuild sends SIGINT (and SIGKILL) to builds while they load and while
// they write layers: an interrupted build exits 1 without a panic, leaves no output
// directory and no temporary files, and the next build succeeds.
func TestInterruptedBuild(t *testing.T) {
	if testing.Short() {
		t.Skip("writes a 64 MiB image several times")
	}
	tmp := t.TempDir()
	src := bigImage(t, filepath.Join(tmp, "src"), 64)
	for _, tc := range []struct {
		name   string
		sig    os.Signal
		phase  string // "load": objects appear in the store; "export": blobs appear in the output
		crash  bool   // SIGKILL: no cleanup is possible, only the retry must work
		caches []string
	}{
		{name: "SIGINT while loading", sig: os.Interrupt, phase: "load", caches: []string{"--no-layer-cache"}},
		{name: "SIGINT while exporting", sig: os.Interrupt, phase: "export", caches: []string{"--no-blob-cache"}},
		{name: "SIGKILL while exporting", sig: os.Kill, phase: "export", crash: true, caches: []string{"--no-blob-cache"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			store := filepath.Join(t.TempDir(), "store")
			outDir := filepath.Join(t.TempDir(), "out")
			out := "oci:" + outDir + ":latest"
			args := append([]string{"build", "--from", src, "--output", out, "--store", store}, tc.caches...)
			cmd := exec.Command(rechunkerBin(t), args...)
			cmd.Env = append(os.Environ(), "TMPDIR="+tmp)
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			require.NoError(t, cmd.Start())
			done := make(chan struct{})
			go func() { cmd.Wait(); close(done) }()
			watch := filepath.Join(store, "objects")
			if tc.phase == "export" {
				watch = filepath.Join(outDir, "blobs", "sha256")
			}
			started := waitFor(func() bool { ents, _ := os.ReadDir(watch); return len(ents) > 0 }, done)
			if started {
				require.NoError(t, cmd.Process.Signal(tc.sig))
			}
			<-done
			code := cmd.ProcessState.ExitCode()
			t.Logf("signalled %v, exit %d: %s", started, code, lastLines(stderr.String(), 2))
			require.NotContains(t, stderr.String(), "goroutine ")
			if !started || code == 0 {
				t.Skip("the build finished before it could be interrupted")
			}
			if !tc.crash {
				require.Equal(t, 1, code)
				assert.Contains(t, stderr.String(), "context canceled")
				_, err := os.Stat(outDir)
				assert.True(t, errors.Is(err, os.ErrNotExist), "an interrupted build leaves no output: %v", err)
				ents, err := os.ReadDir(filepath.Join(store, "tmp"))
				require.NoError(t, err)
				assert.Empty(t, ents, "no temporary files in the store")
				checkNoStrayTemp(t, tmp)
			} else {
				_, err := os.Stat(filepath.Join(outDir, "index.json"))
				assert.True(t, errors.Is(err, os.ErrNotExist), "a crashed build publishes no image")
			}
			r := runBin(t, tmp, args...)
			require.Equal(t, 0, r.code, "the next build: %s", r)
			r = runBin(t, tmp, "verify", out)
			require.Equal(t, 0, r.code, r)
		})
	}
}
