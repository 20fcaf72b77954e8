package vmtests

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"sort"
	"strconv"
	"strings"
)

// blobRefPrefix is where ostree-ext records each imported layer, one ref per
// compressed blob digest. A layer whose ref exists is not downloaded again.
const blobRefPrefix = "ostree/container/blob/"

// UnescapeRef reverses ostree-ext's ref escaping: alphanumerics, '-' and '/'
// stand for themselves, "__" is '_', and "_XX_" is the character with hex
// code XX (so ':' is "_3A_").
func UnescapeRef(s string) (string, error) {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '/':
			b.WriteByte(c)
		case c == '_':
			if i+1 < len(s) && s[i+1] == '_' {
				b.WriteByte('_')
				i++
				continue
			}
			end := strings.IndexByte(s[i+1:], '_')
			if end <= 0 {
				return "", fmt.Errorf("unescape ref %q: unterminated escape at offset %d", s, i)
			}
			code, err := strconv.ParseUint(s[i+1:i+1+end], 16, 32)
			if err != nil {
				return "", fmt.Errorf("unescape ref %q: bad escape at offset %d: %w", s, i, err)
			}
			b.WriteRune(rune(code))
			i += end + 1
		default:
			return "", fmt.Errorf("unescape ref %q: invalid character %q", s, c)
		}
	}
	return b.String(), nil
}

// ParseBlobRefs reads `ostree refs` output and returns the layer blob
// digests ostree-ext holds, sorted. Other refs are ignored.
func ParseBlobRefs(out []byte) ([]string, error) {
	var digests []string
	for _, line := range strings.Split(string(out), "\n") {
		line = strings.TrimSpace(line)
		if !strings.HasPrefix(line, blobRefPrefix) {
			continue
		}
		d, err := UnescapeRef(strings.TrimPrefix(line, blobRefPrefix))
		if err != nil {
			return nil, err
		}
		digests = append(digests, d)
	}
	sort.Strings(digests)
	return digests, nil
}

// Manifest is the part of an OCI/Docker v2 image manifest the tests compare.
type Manifest struct {
	Digest string // sha256 of the raw manifest bytes
	Layers []LayerRef
}

// ParseManifest decodes a raw manifest and computes its digest.
func ParseManifest(raw []byte) (Manifest, error) {
	var m struct {
		SchemaVersion int        `json:"schemaVersion"`
		Layers        []LayerRef `json:"layers"`
		Manifests     []any      `json:"manifests"`
	}
	if err := json.Unmarshal(raw, &m); err != nil {
		return Manifest{}, fmt.Errorf("parse image manifest: %w", err)
	}
	if len(m.Manifests) > 0 {
		return Manifest{}, fmt.Errorf("parse image manifest: got an index of %d manifests, want one image", len(m.Manifests))
	}
	if m.SchemaVersion != 2 || len(m.Layers) == 0 {
		return Manifest{}, fmt.Errorf("parse image manifest: schemaVersion %d with %d layers, want a v2 image manifest", m.SchemaVersion, len(m.Layers))
	}
	sum := sha256.Sum256(raw)
	return Manifest{Digest: "sha256:" + hex.EncodeToString(sum[:]), Layers: m.Layers}, nil
}

// NewLayers returns the layers of next that prev does not have, by blob
// digest: what bootc must download when upgrading from prev to next.
func NewLayers(prev, next Manifest) []LayerRef {
	have := map[string]bool{}
	for _, l := range prev.Layers {
		have[l.Digest] = true
	}
	var out []LayerRef
	seen := map[string]bool{}
	for _, l := range next.Layers {
		if !have[l.Digest] && !seen[l.Digest] {
			seen[l.Digest] = true
			out = append(out, l)
		}
	}
	return out
}

// LayerRef is a layer by blob digest (and size when known).
type LayerRef struct {
	Digest   string `json:"digest"`
	DiffID   string `json:"diff_id,omitempty"` // rechunker diff names it when the config has one
	Size     int64  `json:"size,omitempty"`
	ReusedBy string `json:"reused_by,omitempty"` // rechunker diff: "digest" or "diff_id"
}

// LayerDiff is the part of `rechunker diff --json` (bootc.DiffReport) the
// tests use: the layers of the new image a client downloads when upgrading
// from the old one, and those it already has.
type LayerDiff struct {
	Fetched   []LayerRef
	Reused    []LayerRef
	Removed   []LayerRef
	SameImage bool
	// BytesFetched is the compressed size of the fetched layers (bytes_fetched).
	BytesFetched int64
}

// ParseLayerDiff decodes `rechunker diff --json`. The "fetched" list is
// required: without it the comparison with bootc would prove nothing.
func ParseLayerDiff(data []byte) (LayerDiff, error) {
	var raw struct {
		Fetched       *[]LayerRef `json:"fetched"`
		Reused        []LayerRef  `json:"reused"`
		Removed       []LayerRef  `json:"removed"`
		LayersFetched *int        `json:"layers_fetched"`
		BytesFetched  int64       `json:"bytes_fetched"`
		SameImage     bool        `json:"same_image"`
	}
	if err := json.Unmarshal(data, &raw); err != nil {
		return LayerDiff{}, fmt.Errorf("parse rechunker diff JSON: %w", err)
	}
	if raw.Fetched == nil {
		return LayerDiff{}, fmt.Errorf("parse rechunker diff JSON: no \"fetched\" layer list")
	}
	for i, l := range *raw.Fetched {
		if !strings.HasPrefix(l.Digest, "sha256:") {
			return LayerDiff{}, fmt.Errorf("parse rechunker diff JSON: fetched[%d] digest %q is not a sha256 digest", i, l.Digest)
		}
	}
	if raw.LayersFetched != nil && *raw.LayersFetched != len(*raw.Fetched) {
		return LayerDiff{}, fmt.Errorf("parse rechunker diff JSON: layers_fetched %d but %d fetched layers listed", *raw.LayersFetched, len(*raw.Fetched))
	}
	return LayerDiff{Fetched: *raw.Fetched, Reused: raw.Reused, Removed: raw.Removed, SameImage: raw.SameImage, BytesFetched: raw.BytesFetched}, nil
}

// Digests lists the layers' digests, sorted.
func Digests(ls []LayerRef) []string {
	out := make([]string, 0, len(ls))
	for _, l := range ls {
		out = append(out, l.Digest)
	}
	sort.Strings(out)
	return out
}

// Subtract returns the sorted elements of after that are not in before.
func Subtract(after, before []string) []string {
	in := map[string]bool{}
	for _, s := range before {
		in[s] = true
	}
	var out []string
	for _, s := range after {
		if !in[s] {
			out = append(out, s)
		}
	}
	sort.Strings(out)
	return out
}
