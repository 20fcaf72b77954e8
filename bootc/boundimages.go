package bootc

import (
	"bytes"
	"fmt"
	"path"
	"sort"
	"strings"

	"github.com/coreos/go-systemd/v22/unit"

	"github.com/rechunker-dev/rechunker/ostree"
	"github.com/rechunker-dev/rechunker/ostree/selinux"
)

// BoundImagesDir holds bootc's logically bound images: symlinks to (or copies of)
// quadlet .image and .container units whose Image= bootc pulls with the host.
const BoundImagesDir = "/usr/lib/bootc/bound-images.d"

// captureLimit bounds the bytes kept of one unit file; policyCaptureLimit of one
// SELinux policy file (Fedora's file_contexts is about 1 MB).
const (
	captureLimit       = 64 << 10
	policyCaptureLimit = 16 << 20
)

// capture keeps the content of the few files lints need: quadlet units anywhere in the
// tree and the entries of BoundImagesDir (with units set), the SELinux policy's
// configuration and file contexts, and the files of KargsDir.
type capture struct {
	units bool
	want  map[ostree.Checksum]int // the object's byte limit
	data  map[ostree.Checksum][]byte
}

func newCapture(units bool) *capture {
	return &capture{units: units, want: map[ostree.Checksum]int{}, data: map[ostree.Checksum][]byte{}}
}

func wantUnitPath(p string) bool {
	return strings.HasSuffix(p, ".image") || strings.HasSuffix(p, ".container") ||
		strings.HasPrefix(p, BoundImagesDir+"/")
}

func (c *capture) wantPath(p string) bool { return c.units && wantUnitPath(p) || wantKargsPath(p) }

// wantLimit returns how many bytes of object sum to keep (0: none).
func (c *capture) wantLimit(sum ostree.Checksum) int {
	if c == nil {
		return 0
	}
	return c.want[sum]
}

// addWanted walks the commit's dirtrees (all read once layer 0 is done) and marks
// the content objects of the paths it keeps.
func (c *capture) addWanted(s *metaStore, p string, tree ostree.Checksum) {
	b, err := s.get(ostree.ObjDirTree, tree)
	if err != nil {
		return // completeness is reported by the tree check
	}
	dt, err := ostree.ParseDirTree(b)
	if err != nil {
		return
	}
	for _, f := range dt.Files {
		fp := path.Join(p, f.Name)
		switch {
		case selinux.PolicyFiles(fp):
			c.want[f.Checksum] = policyCaptureLimit
		case c.units && wantUnitPath(fp), wantKargsPath(fp):
			c.want[f.Checksum] = max(c.want[f.Checksum], captureLimit)
		}
	}
	for _, d := range dt.Dirs {
		c.addWanted(s, path.Join(p, d.Name), d.Tree)
	}
}

// BoundImage is one logically bound image.
type BoundImage struct {
	Unit  string `json:"unit"`            // entry name in bound-images.d
	Path  string `json:"path"`            // resolved unit file in the tree
	Image string `json:"image,omitempty"` // Image= value
	Error string `json:"error,omitempty"`
}

// resolve follows symlinks inside the tree (etc lives at usr/etc) up to 40 hops.
func resolve(t *ostree.Tree, p string) (string, *ostree.File, error) {
	for hops := 0; hops < 40; hops++ {
		cp := path.Clean(p)
		if cp == "/etc" || strings.HasPrefix(cp, "/etc/") {
			cp = "/usr" + cp
		}
		f := t.LookupFile(cp)
		if f == nil {
			return cp, nil, fmt.Errorf("%s does not exist in the image", p)
		}
		if !f.Header.IsSymlink() {
			return cp, f, nil
		}
		tgt := f.Header.Target
		if !strings.HasPrefix(tgt, "/") {
			tgt = path.Join(path.Dir(cp), tgt)
		}
		p = tgt
	}
	return p, nil, fmt.Errorf("too many symlinks")
}

// boundImages lists the bound images of t, reading unit contents from c.
func boundImages(t *ostree.Tree, c *capture) []BoundImage {
	d := t.LookupDir(BoundImagesDir)
	if d == nil {
		return nil
	}
	var out []BoundImage
	for _, name := range d.FileNames() {
		b := BoundImage{Unit: name}
		p, f, err := resolve(t, path.Join(BoundImagesDir, name))
		b.Path = p
		switch {
		case err != nil:
			b.Error = err.Error()
		case !strings.HasSuffix(p, ".image") && !strings.HasSuffix(p, ".container"):
			b.Error = "not a quadlet .image or .container unit"
		default:
			data, ok := c.data[f.Checksum]
			if !ok {
				b.Error = fmt.Sprintf("unit content not read (over %d bytes?)", captureLimit)
				break
			}
			b.Image, err = unitImage(data, strings.HasSuffix(p, ".image"))
			if err != nil {
				b.Error = err.Error()
			}
		}
		out = append(out, b)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Unit < out[j].Unit })
	return out
}

// unitImage returns the Image= of a quadlet unit: [Image] for .image, [Container] for
// .container files. The last assignment wins, as in systemd.
func unitImage(data []byte, isImage bool) (string, error) {
	opts, err := unit.DeserializeOptions(bytes.NewReader(data))
	if err != nil {
		return "", fmt.Errorf("parse unit: %w", err)
	}
	section := "Container"
	if isImage {
		section = "Image"
	}
	img := ""
	for _, o := range opts {
		if o.Section == section && o.Name == "Image" {
			img = o.Value
		}
	}
	if img == "" {
		return "", fmt.Errorf("no Image= in [%s]", section)
	}
	return img, nil
}
