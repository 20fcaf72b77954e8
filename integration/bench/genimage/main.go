// Command genimage writes a deterministic, realistic OS-like OCI image for benchmarks:
// a dpkg database that owns most files, compressible text, ELF-like binaries,
// incompressible blobs (firmware, models) and, at larger sizes, a few files over 500 MB.
// The same flags always give byte-identical layers, so runs are comparable across
// machines and commits. Layers are written uncompressed (media type tar) so that the
// generator itself is cheap and the benchmark measures the tool under test.
//
//	genimage -size 2G -out /tmp/bench/img2g -tag v1
//	genimage -size 2G -out /tmp/bench/img2g -tag v2 -change 5M   (same base, new top layer)
//	genimage -profile desktop -size 8G -out /tmp/bench/desk8g -tag v1
//
// The server profile (the default) is a Debian-like server; the desktop profile models a
// Fedora Atomic desktop (Universal Blue / Aurora) with its icon themes, translations,
// firmware, kernel modules and physically bound images (see desktop.go).
package main

import (
	"archive/tar"
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"hash"
	"io"
	"math/rand/v2"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"
)

func main() {
	var (
		sizeStr  = flag.String("size", "512M", "approximate uncompressed image size (e.g. 512M, 2G, 5G)")
		files    = flag.Int("files", 0, "number of files (default scales with size: server 20k at 0.5G .. 150k at 5G; desktop 40k per GiB)")
		profile  = flag.String("profile", "server", "kind of image: server or desktop")
		out      = flag.String("out", "", "OCI layout directory to write (created or extended)")
		tag      = flag.String("tag", "latest", "tag for the image in the layout's index")
		change   = flag.String("change", "0", "size of a changed file in the top layer (a rebuild scenario)")
		changeID = flag.Int("change-seed", 1, "seed of the changed content")
	)
	flag.Parse()
	if *out == "" {
		fmt.Fprintln(os.Stderr, "genimage: -out is required")
		os.Exit(2)
	}
	size, err := parseSize(*sizeStr)
	check(err)
	changeSize, err := parseSize(*change)
	check(err)
	n := *files
	switch *profile {
	case "server":
		if n == 0 {
			n = scaleFiles(size)
		}
		check(writeImage(*out, *tag, newSpec(size, n), changeSize, *changeID))
	case "desktop":
		if n == 0 {
			n = desktopFiles(size)
		}
		d := newDesktop(size, n)
		check(d.write(*out, *tag, changeSize, *changeID))
		d.report(os.Stderr)
	default:
		check(fmt.Errorf("unknown -profile %q (server or desktop)", *profile))
	}
}

func check(err error) {
	if err != nil {
		fmt.Fprintln(os.Stderr, "genimage:", err)
		os.Exit(1)
	}
}

func parseSize(s string) (int64, error) {
	mult := int64(1)
	switch {
	case strings.HasSuffix(s, "G"):
		mult, s = 1<<30, strings.TrimSuffix(s, "G")
	case strings.HasSuffix(s, "M"):
		mult, s = 1<<20, strings.TrimSuffix(s, "M")
	case strings.HasSuffix(s, "K"):
		mult, s = 1<<10, strings.TrimSuffix(s, "K")
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || f < 0 {
		return 0, fmt.Errorf("bad size %q", s)
	}
	return int64(f * float64(mult)), nil
}

// scaleFiles interpolates 20k files at 0.5 GiB to 150k at 5 GiB.
func scaleFiles(size int64) int {
	g := float64(size) / (1 << 30)
	n := 20000 + (g-0.5)*(130000/4.5)
	if n < 2000 {
		n = 2000
	}
	return int(n)
}

type kind int

const (
	kindText kind = iota
	kindBinary
	kindRandom
)

type file struct {
	path  string
	size  int64
	kind  kind
	mode  int64
	seed  uint64
	layer int
}

type pkg struct {
	name, source, version string
	files                 []string
}

type spec struct {
	files []file
	pkgs  []pkg
}

var dirsByKind = map[kind][]string{
	kindText:   {"usr/share/doc", "usr/share/locale", "usr/share/man/man1", "usr/share/i18n", "usr/lib/python3/dist-packages", "usr/share/perl5"},
	kindBinary: {"usr/bin", "usr/sbin", "usr/lib/x86_64-linux-gnu", "usr/libexec", "usr/lib/modules/6.1.0-bench/kernel/drivers"},
	kindRandom: {"usr/lib/firmware", "usr/share/fonts", "usr/share/icons"},
}

// newSpec lays out the image: big files first, then small files whose sizes follow a
// long-tailed distribution until the byte budget is spent, grouped into packages.
func newSpec(total int64, n int) *spec {
	r := rand.New(rand.NewPCG(42, uint64(total)))
	s := &spec{}
	var big int
	switch {
	case total >= 4<<30:
		big = 3
	case total >= 2<<30:
		big = 1
	}
	remaining := total
	for i := 0; i < big; i++ {
		sz := int64(520<<20) + int64(i)*(7<<20)
		s.files = append(s.files, file{path: fmt.Sprintf("usr/share/models/model-%d.bin", i), size: sz, kind: kindRandom, mode: 0o644, seed: r.Uint64(), layer: 1})
		remaining -= sz
	}
	// kernel + initramfs, as a real bootable image has.
	s.files = append(s.files,
		file{path: "usr/lib/modules/6.1.0-bench/vmlinuz", size: 8 << 20, kind: kindBinary, mode: 0o644, seed: r.Uint64()},
		file{path: "usr/lib/modules/6.1.0-bench/initramfs.img", size: 40 << 20, kind: kindRandom, mode: 0o644, seed: r.Uint64()})
	remaining -= 48 << 20
	mean := float64(remaining) / float64(n)
	for i := 0; len(s.files) < n && remaining > 0; i++ {
		k := kind(r.IntN(100))
		switch {
		case k < 40:
			k = kindText
		case k < 85:
			k = kindBinary
		default:
			k = kindRandom
		}
		// Log-normal-ish sizes with the right mean.
		sz := int64(mean * r.ExpFloat64() * r.ExpFloat64())
		if sz > remaining {
			sz = remaining
		}
		dirs := dirsByKind[k]
		dir := dirs[r.IntN(len(dirs))]
		mode := int64(0o644)
		if k == kindBinary && !strings.Contains(dir, "lib") {
			mode = 0o755
		}
		layer := 0
		if r.IntN(10) == 0 {
			layer = 1
		}
		s.files = append(s.files, file{path: fmt.Sprintf("%s/p%d/f%06d", dir, i%997, i), size: sz, kind: k, mode: mode, seed: r.Uint64(), layer: layer})
		remaining -= sz
	}
	// Packages own ~60 files each, a source package builds ~3 binary packages.
	perPkg := 60
	for i := 0; i*perPkg < len(s.files); i++ {
		p := pkg{name: fmt.Sprintf("pkg%04d", i), source: fmt.Sprintf("src%04d", i/3), version: fmt.Sprintf("1.%d-1", i%7)}
		for j := i * perPkg; j < (i+1)*perPkg && j < len(s.files); j++ {
			// Leave ~2% unowned, as real images have.
			if (j*7919)%50 != 0 {
				p.files = append(p.files, "/"+s.files[j].path)
			}
		}
		s.pkgs = append(s.pkgs, p)
	}
	return s
}

// contentReader produces a file's deterministic bytes, chunk bytes at a time (textLen
// for text, which ends on a word).
type contentReader struct {
	r       *rand.Rand
	kind    kind
	left    int64
	buf     []byte
	pending []byte
	words   []string
	chunk   int
	textLen int
}

var vocabulary = func() []string {
	r := rand.New(rand.NewPCG(7, 7))
	letters := "etaoinshrdlucmfwypvbgkqjxz"
	w := make([]string, 4096)
	for i := range w {
		n := 2 + r.IntN(9)
		b := make([]byte, n)
		for j := range b {
			b[j] = letters[int(float64(len(letters))*r.Float64()*r.Float64())]
		}
		w[i] = string(b)
	}
	return w
}()

// newContent streams f in 64 KiB chunks; the chunk size is part of the bytes produced,
// so the server profile keeps it fixed.
func newContent(f file) *contentReader { return newChunkedContent(f, 64<<10) }

// newChunkedContent streams f in chunks of chunk bytes (a multiple of 8). Small files
// use small chunks so that they do not each generate, and throw away, 64 KiB.
func newChunkedContent(f file, chunk int) *contentReader {
	return &contentReader{r: rand.New(rand.NewPCG(f.seed, uint64(f.size))), kind: f.kind, left: f.size,
		buf: make([]byte, chunk, chunk+16), words: vocabulary, chunk: chunk, textLen: chunk - chunk/16}
}

func (c *contentReader) Read(p []byte) (int, error) {
	if c.left <= 0 {
		return 0, io.EOF
	}
	if len(c.pending) == 0 {
		c.fill()
	}
	n := copy(p, c.pending)
	if int64(n) > c.left {
		n = int(c.left)
	}
	c.pending = c.pending[n:]
	c.left -= int64(n)
	return n, nil
}

func (c *contentReader) fill() {
	b := c.buf[:0]
	switch c.kind {
	case kindText:
		for len(b) < c.textLen {
			b = append(b, c.words[int(float64(len(c.words))*c.r.Float64()*c.r.Float64())]...)
			if c.r.IntN(12) == 0 {
				b = append(b, '\n')
			} else {
				b = append(b, ' ')
			}
		}
	case kindBinary:
		// ELF-like: runs of random bytes mixed with repeats of earlier runs and zero
		// padding, which compresses about 2x with gzip -6 like real executables.
		b = b[:c.chunk]
		for i := 0; i < len(b); {
			run := 16 + c.r.IntN(112)
			if i+run > len(b) {
				run = len(b) - i
			}
			switch m := c.r.IntN(10); {
			case m < 4:
				for j := 0; j < run; j += 8 {
					v := c.r.Uint64()
					for k := 0; k < 8 && j+k < run; k++ {
						b[i+j+k] = byte(v >> (8 * k))
					}
				}
			case m < 9 && i > 256:
				src := c.r.IntN(i - run)
				copy(b[i:i+run], b[src:src+run])
			default:
				clear(b[i : i+run])
			}
			i += run
		}
	default:
		b = b[:c.chunk]
		for i := 0; i < len(b); i += 8 {
			v := c.r.Uint64()
			for k := 0; k < 8; k++ {
				b[i+k] = byte(v >> (8 * k))
			}
		}
	}
	c.pending = b
}

type blobWriter struct {
	f    *os.File
	h    hash.Hash
	n    int64
	root string
}

func newBlob(root string) (*blobWriter, error) {
	f, err := os.CreateTemp(filepath.Join(root, "blobs", "sha256"), ".tmp-*")
	if err != nil {
		return nil, err
	}
	return &blobWriter{f: f, h: sha256.New(), root: root}, nil
}

func (b *blobWriter) Write(p []byte) (int, error) {
	b.h.Write(p)
	n, err := b.f.Write(p)
	b.n += int64(n)
	return n, err
}

// finish renames the blob into place and returns its digest and size.
func (b *blobWriter) finish() (string, int64, error) {
	if err := b.f.Close(); err != nil {
		return "", 0, err
	}
	hexd := hex.EncodeToString(b.h.Sum(nil))
	if err := os.Chmod(b.f.Name(), 0o644); err != nil {
		return "", 0, err
	}
	if err := os.Rename(b.f.Name(), filepath.Join(b.root, "blobs", "sha256", hexd)); err != nil {
		return "", 0, err
	}
	return "sha256:" + hexd, b.n, nil
}

func writeBytesBlob(root string, data []byte) (string, int64, error) {
	b, err := newBlob(root)
	if err != nil {
		return "", 0, err
	}
	if _, err := b.Write(data); err != nil {
		return "", 0, err
	}
	return b.finish()
}

var epoch = time.Unix(1735689600, 0).UTC() // fixed: 2025-01-01

func writeDirs(tw *tar.Writer, seen map[string]bool, p string) error {
	dir := path.Dir(p)
	if dir == "." || seen[dir] {
		return nil
	}
	if err := writeDirs(tw, seen, dir); err != nil {
		return err
	}
	seen[dir] = true
	return tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: dir + "/", Mode: 0o755, ModTime: epoch, Format: tar.FormatPAX})
}

// entry is one tar member. A zero typeflag is a regular file; directories are written
// implicitly before their contents unless an entry of type tar.TypeDir names them
// (to carry xattrs in pax).
type entry struct {
	path     string
	size     int64
	mode     int64
	body     func() io.Reader
	typeflag byte
	linkname string
	pax      map[string]string
}

func writeLayer(root string, entries []entry) (string, int64, error) {
	sort.Slice(entries, func(i, j int) bool { return entries[i].path < entries[j].path })
	b, err := newBlob(root)
	if err != nil {
		return "", 0, err
	}
	// Buffered: a desktop layer has hundreds of thousands of small entries, each a few
	// writes, and unbuffered each would be a system call.
	bw := bufio.NewWriterSize(b, 1<<20)
	tw := tar.NewWriter(bw)
	seen := map[string]bool{}
	for _, e := range entries {
		if err := writeDirs(tw, seen, e.path); err != nil {
			return "", 0, err
		}
		if e.typeflag != 0 {
			if err := writeSpecial(tw, seen, e); err != nil {
				return "", 0, err
			}
			continue
		}
		hdr := &tar.Header{Typeflag: tar.TypeReg, Name: e.path, Size: e.size, Mode: e.mode, ModTime: epoch, Format: tar.FormatPAX}
		if err := tw.WriteHeader(hdr); err != nil {
			return "", 0, err
		}
		if _, err := io.Copy(tw, e.body()); err != nil {
			return "", 0, fmt.Errorf("write %s: %w", e.path, err)
		}
	}
	if err := tw.Close(); err != nil {
		return "", 0, err
	}
	if err := bw.Flush(); err != nil {
		return "", 0, err
	}
	return b.finish()
}

// writeSpecial writes a directory (marking it written) or a symlink entry.
func writeSpecial(tw *tar.Writer, seen map[string]bool, e entry) error {
	hdr := &tar.Header{Typeflag: e.typeflag, Name: e.path, Linkname: e.linkname, Mode: e.mode, ModTime: epoch, Format: tar.FormatPAX, PAXRecords: e.pax}
	if e.typeflag == tar.TypeDir {
		if seen[e.path] {
			return fmt.Errorf("directory %s written before its entry", e.path)
		}
		seen[e.path] = true
		hdr.Name += "/"
	}
	return tw.WriteHeader(hdr)
}

func (s *spec) dpkgEntries() []entry {
	out := make([]entry, 0, len(s.pkgs)+1)
	for _, p := range s.pkgs {
		out = append(out, dpkgList(p))
	}
	return append(out, dpkgStatus(s.pkgs))
}

// dpkgStatus is the status file that lists pkgs as installed.
func dpkgStatus(pkgs []pkg) entry {
	var status strings.Builder
	for _, p := range pkgs {
		fmt.Fprintf(&status, "Package: %s\nStatus: install ok installed\nPriority: optional\nArchitecture: amd64\nSource: %s\nVersion: %s\nDescription: benchmark package %s\n\n", p.name, p.source, p.version, p.name)
	}
	return textEntry("var/lib/dpkg/status", status.String())
}

// dpkgList is p's info/NAME.list: its directories, then its files.
func dpkgList(p pkg) entry {
	dirs := map[string]bool{}
	var list strings.Builder
	for _, f := range p.files {
		for d := path.Dir(f); d != "/" && !dirs[d]; d = path.Dir(d) {
			dirs[d] = true
		}
	}
	ds := make([]string, 0, len(dirs))
	for d := range dirs {
		ds = append(ds, d)
	}
	sort.Strings(ds)
	for _, d := range ds {
		list.WriteString(d + "\n")
	}
	for _, f := range p.files {
		list.WriteString(f + "\n")
	}
	return textEntry("var/lib/dpkg/info/"+p.name+".list", list.String())
}

func textEntry(p, content string) entry {
	return entry{path: p, size: int64(len(content)), mode: 0o644, body: func() io.Reader { return strings.NewReader(content) }}
}

func writeImage(root, tag string, s *spec, changeSize int64, changeSeed int) error {
	layers := make([][]entry, 3)
	for _, f := range s.files {
		f := f
		layers[f.layer] = append(layers[f.layer], entry{path: f.path, size: f.size, mode: f.mode, body: func() io.Reader { return newContent(f) }})
	}
	layers[0] = append(layers[0], s.dpkgEntries()...)
	layers[0] = append(layers[0],
		textEntry("etc/os-release", "ID=benchos\nVERSION_ID=1\n"),
		textEntry("etc/hostname", "bench\n"),
		textEntry("usr/lib/os-release", "ID=benchos\nVERSION_ID=1\n"))
	layers[2] = topLayer(changeSize, changeSeed)
	return writeLayout(root, tag, layers)
}

// topLayer is the last layer, the only one a rebuild with -change alters.
func topLayer(changeSize int64, changeSeed int) []entry {
	top := []entry{textEntry("etc/motd", "welcome to benchos\n")}
	if changeSize > 0 {
		cf := file{path: "usr/share/bench/changed.bin", size: changeSize, kind: kindBinary, mode: 0o644, seed: uint64(changeSeed)}
		top = append(top, entry{path: cf.path, size: cf.size, mode: cf.mode, body: func() io.Reader { return newContent(cf) }})
	}
	return top
}

// writeLayout writes layers, a config and a manifest into the OCI layout root and
// tags the manifest in its index.
func writeLayout(root, tag string, layers [][]entry) error {
	if err := os.MkdirAll(filepath.Join(root, "blobs", "sha256"), 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(root, "oci-layout"), []byte(`{"imageLayoutVersion":"1.0.0"}`), 0o644); err != nil {
		return err
	}
	type desc struct {
		MediaType string `json:"mediaType"`
		Digest    string `json:"digest"`
		Size      int64  `json:"size"`
	}
	var descs []desc
	var diffIDs []string
	for i, l := range layers {
		d, n, err := writeLayer(root, l)
		if err != nil {
			return fmt.Errorf("layer %d: %w", i, err)
		}
		descs = append(descs, desc{MediaType: "application/vnd.oci.image.layer.v1.tar", Digest: d, Size: n})
		diffIDs = append(diffIDs, d)
	}
	history := []map[string]any{}
	for i := range layers {
		history = append(history, map[string]any{"created": epoch.Format(time.RFC3339), "created_by": fmt.Sprintf("genimage layer %d", i)})
	}
	cfg, err := json.Marshal(map[string]any{
		"created":      epoch.Format(time.RFC3339),
		"architecture": "amd64",
		"os":           "linux",
		"config":       map[string]any{"Labels": map[string]string{"containers.bootc": "1"}, "Cmd": []string{"/sbin/init"}},
		"rootfs":       map[string]any{"type": "layers", "diff_ids": diffIDs},
		"history":      history,
	})
	if err != nil {
		return err
	}
	cd, cn, err := writeBytesBlob(root, cfg)
	if err != nil {
		return err
	}
	man, err := json.Marshal(map[string]any{
		"schemaVersion": 2,
		"mediaType":     "application/vnd.oci.image.manifest.v1+json",
		"config":        desc{MediaType: "application/vnd.oci.image.config.v1+json", Digest: cd, Size: cn},
		"layers":        descs,
	})
	if err != nil {
		return err
	}
	md, mn, err := writeBytesBlob(root, man)
	if err != nil {
		return err
	}
	return updateIndex(root, tag, md, mn)
}

func updateIndex(root, tag, digest string, size int64) error {
	type mdesc struct {
		MediaType   string            `json:"mediaType"`
		Digest      string            `json:"digest"`
		Size        int64             `json:"size"`
		Annotations map[string]string `json:"annotations,omitempty"`
	}
	idx := struct {
		SchemaVersion int     `json:"schemaVersion"`
		Manifests     []mdesc `json:"manifests"`
	}{SchemaVersion: 2}
	p := filepath.Join(root, "index.json")
	if b, err := os.ReadFile(p); err == nil {
		if err := json.Unmarshal(b, &idx); err != nil {
			return fmt.Errorf("parse %s: %w", p, err)
		}
	}
	var kept []mdesc
	for _, m := range idx.Manifests {
		if m.Annotations["org.opencontainers.image.ref.name"] != tag {
			kept = append(kept, m)
		}
	}
	idx.Manifests = append(kept, mdesc{MediaType: "application/vnd.oci.image.manifest.v1+json", Digest: digest, Size: size,
		Annotations: map[string]string{"org.opencontainers.image.ref.name": tag}})
	b, err := json.Marshal(idx)
	if err != nil {
		return err
	}
	tmp := p + ".tmp"
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, p)
}
