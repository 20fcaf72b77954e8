package rechunk

import (
	"bytes"
	"compress/gzip"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strings"
	"time"
)

// Previous is one previous build, read from its manifest and config only.
type Previous struct {
	Ref     string
	Created time.Time       // config created time; orders several previous builds
	Layers  []PreviousLayer // manifest order, the commit layer (ostree-ext format) included
	Labels  map[string]string
}

// PreviousLayer is one manifest layer of a previous build.
type PreviousLayer struct {
	Digest, DiffID string
	Size           int64
	Annotations    map[string]string
}

// ComponentsAnnotation lists a chunk layer's component names, sorted and comma-joined,
// as rpm-ostree writes it.
const ComponentsAnnotation = "ostree.components"

// PlanLabel is the config label that records a plan for the next build.
//
// Its value is base64 (standard alphabet, padded) of gzip of this JSON document:
//
//	{
//	  "v": 1,                  // format version
//	  "n": 64,                 // number of chunk layers (manifest layers 1..n)
//	  "r": [64],               // manifest indexes of reserved (empty) layers
//	  "c": [                   // one entry per component, sorted by name
//	    {"n": "bash",          // component name, as in ostree.components
//	     "d": "0123abcd...",   // 16 hex: first 8 bytes of sha256 over the component's
//	                           // sorted "path NUL checksum-bytes" list
//	     "l": 12,              // manifest index of the layer holding the component
//	                           // (its small files when its big files are split out)
//	     "p": {"/usr/big": 13},// big files with layers of their own: path -> index
//	     "h": 5, "s": 9}       // change history: bit i of h = changed i+1 builds ago
//	                           // (bit 0: this build vs. the previous one), s = how
//	                           // many of those bits were observed (at most 64)
//	  ]
//	}
//
// Layer annotations alone also describe the layout, but `podman push` may drop them
// and they carry no digests; the label lets the next build see what really changed.
// A 1,000-component image needs about 25 KiB.
const PlanLabel = "dev.rechunker.plan"

// planRecordVersion is the current "v" of PlanLabel.
const planRecordVersion = 1

// maxPlanLabel bounds the decoded label we accept.
const maxPlanLabel = 4 << 20

type planRecord struct {
	Version    int               `json:"v"`
	Layers     int               `json:"n"`
	Reserved   []int             `json:"r,omitempty"`
	Components []componentRecord `json:"c"`
}

type componentRecord struct {
	Name    string         `json:"n"`
	Digest  string         `json:"d"`
	Layer   int            `json:"l"`
	Parts   map[string]int `json:"p,omitempty"`
	History uint64         `json:"h,omitempty"`
	Seen    int            `json:"s,omitempty"`
}

func encodePlanRecord(r *planRecord) (string, error) {
	sort.Slice(r.Components, func(i, j int) bool { return r.Components[i].Name < r.Components[j].Name })
	js, err := json.Marshal(r)
	if err != nil {
		return "", err
	}
	var buf bytes.Buffer
	zw, err := gzip.NewWriterLevel(&buf, gzip.BestCompression)
	if err != nil {
		return "", err
	}
	if _, err := zw.Write(js); err != nil {
		return "", err
	}
	if err := zw.Close(); err != nil {
		return "", err
	}
	return base64.StdEncoding.EncodeToString(buf.Bytes()), nil
}

// ComponentDigests reads a plan label (PlanLabel) and returns each component's content
// digest (ComponentInfo.Digest): two images' components with equal digests have the
// same files.
func ComponentDigests(label string) (map[string]string, error) {
	r, err := decodePlanRecord(label)
	if err != nil {
		return nil, err
	}
	out := make(map[string]string, len(r.Components))
	for _, c := range r.Components {
		out[c.Name] = c.Digest
	}
	return out, nil
}

func decodePlanRecord(s string) (*planRecord, error) {
	raw, err := base64.StdEncoding.DecodeString(strings.TrimSpace(s))
	if err != nil {
		return nil, fmt.Errorf("decode %s label: %w", PlanLabel, err)
	}
	zr, err := gzip.NewReader(bytes.NewReader(raw))
	if err != nil {
		return nil, fmt.Errorf("decode %s label: %w", PlanLabel, err)
	}
	js, err := io.ReadAll(io.LimitReader(zr, maxPlanLabel+1))
	if err != nil {
		return nil, fmt.Errorf("decode %s label: %w", PlanLabel, err)
	}
	if len(js) > maxPlanLabel {
		return nil, fmt.Errorf("decode %s label: larger than %d bytes", PlanLabel, maxPlanLabel)
	}
	var r planRecord
	if err := json.Unmarshal(js, &r); err != nil {
		return nil, fmt.Errorf("decode %s label: %w", PlanLabel, err)
	}
	if r.Version != planRecordVersion {
		return nil, fmt.Errorf("decode %s label: version %d, this rechunker reads version %d", PlanLabel, r.Version, planRecordVersion)
	}
	if r.Layers < 0 || r.Layers > 10000 {
		return nil, fmt.Errorf("decode %s label: %d layers", PlanLabel, r.Layers)
	}
	return &r, nil
}

// priorLayout is a previous build's layout as the packer needs it.
type priorLayout struct {
	ref      string
	layers   int                       // chunk layers, manifest indexes 1..layers
	names    map[string]int            // component (or binary package) name -> manifest index
	parts    map[string]map[string]int // component -> big file path -> manifest index
	reserved map[int]bool
	digests  map[string]string // from the label only
	history  map[string]componentRecord
	// fromLabel is set when the layout came from PlanLabel (else from annotations).
	fromLabel bool
	// family is set for a sibling image's layout (Options.Family).
	family bool
}

// layerMembers lists the component names of each chunk layer (index 0 is manifest
// index 1), sorted. From annotations, the names are binary package names.
func (l *priorLayout) layerMembers() [][]string {
	out := make([][]string, l.layers)
	for n, idx := range l.names {
		out[idx-1] = append(out[idx-1], n)
	}
	for _, ns := range out {
		sort.Strings(ns)
	}
	return out
}

// firstChunk is the manifest index of a previous build's first chunk layer: 1 after
// the commit layer of the ostree-ext format, 0 in a plain image. A plain image says so
// by a first layer that lists its components, or, when a registry dropped the layer
// annotations, by a plan label without an ostree.commit label beside it (the ostree-ext
// format always has one). Layer numbers in plan labels count chunks from 1.
func (p Previous) firstChunk() int {
	if len(p.Layers) > 0 {
		if _, ok := layerComponents(p.Layers[0]); ok {
			return 0
		}
	}
	_, planned := p.Labels[PlanLabel]
	if _, ostree := p.Labels["ostree.commit"]; planned && !ostree {
		return 0
	}
	return 1
}

// readPrior interprets a previous build: the plan label when present and consistent
// with the manifest, else the ostree.components annotations. It returns nil when the
// build carries neither (not a chunked image).
func readPrior(p Previous, warn func(string)) *priorLayout {
	first := p.firstChunk()
	chunks := len(p.Layers) - first
	if v, ok := p.Labels[PlanLabel]; ok {
		r, err := decodePlanRecord(v)
		switch {
		case err != nil:
			warn(fmt.Sprintf("previous build %s: %v; using its layer annotations", p.Ref, err))
		case r.Layers > chunks:
			warn(fmt.Sprintf("previous build %s: %s describes %d chunk layers but the manifest has %d; using its layer annotations", p.Ref, PlanLabel, r.Layers, chunks))
		default:
			l := &priorLayout{ref: p.Ref, layers: r.Layers, names: map[string]int{}, parts: map[string]map[string]int{},
				reserved: map[int]bool{}, digests: map[string]string{}, history: map[string]componentRecord{}, fromLabel: true}
			for _, i := range r.Reserved {
				if i >= 1 && i <= r.Layers {
					l.reserved[i] = true
				}
			}
			for _, c := range r.Components {
				if c.Layer < 1 || c.Layer > r.Layers {
					continue
				}
				l.names[c.Name] = c.Layer
				l.digests[c.Name] = c.Digest
				l.history[c.Name] = c
				for path, idx := range c.Parts {
					if idx >= 1 && idx <= r.Layers {
						if l.parts[c.Name] == nil {
							l.parts[c.Name] = map[string]int{}
						}
						l.parts[c.Name][path] = idx
					}
				}
			}
			return l
		}
	}
	if chunks < 1 {
		return nil
	}
	l := &priorLayout{ref: p.Ref, layers: chunks, names: map[string]int{}, parts: map[string]map[string]int{},
		reserved: map[int]bool{}, digests: map[string]string{}, history: map[string]componentRecord{}}
	for i := 1; i <= chunks; i++ {
		names, ok := layerComponents(p.Layers[first+i-1])
		if !ok {
			// Layers past the chunked part (derived layers) have no annotation.
			l.layers = i - 1
			break
		}
		if len(names) == 0 {
			l.reserved[i] = true
			continue
		}
		for _, n := range names {
			if _, dup := l.names[n]; !dup { // multilib duplicates: the first layer wins
				l.names[n] = i
			}
		}
	}
	if l.layers < 1 {
		return nil
	}
	return l
}

// ChunkahComponentAnnotation lists the components of a layer chunkah wrote, separated
// by spaces, each prefixed by the repository that claimed it ("rpm/curl").
const ChunkahComponentAnnotation = "org.chunkah.component"

// layerComponents returns the component names a previous build's layer lists: ours and
// rpm-ostree's ostree.components, else chunkah's annotation with its package names
// taken as ours (rechunker groups packages by source package as chunkah does) and its
// catch-all as ours; big files and other kinds chunkah names differently keep chunkah's
// name, which no component of ours has. ok is false for a layer with neither
// annotation; an empty list is a reserved layer.
func layerComponents(l PreviousLayer) (names []string, ok bool) {
	if v, ok := l.Annotations[ComponentsAnnotation]; ok {
		if v == "" {
			return nil, true
		}
		return strings.Split(v, ","), true
	}
	v, ok := l.Annotations[ChunkahComponentAnnotation]
	if !ok {
		return nil, false
	}
	for _, f := range strings.Fields(v) {
		repo, name, found := strings.Cut(f, "/")
		switch {
		case !found || name == "":
			names = append(names, "chunkah:"+f)
		case f == "chunkah/unclaimed":
			names = append(names, UnclaimedComponent)
		case repo == "rpm" || repo == "alpm" || repo == "dpkg" || repo == "deb" || repo == "apk" || repo == "xattr":
			names = append(names, name)
		default:
			names = append(names, "chunkah:"+f)
		}
	}
	return names, true
}

// historyBits is how many builds the rolling change history keeps.
const historyBits = 64

// observedRate estimates a component's change probability per build from its history,
// pulling it towards prior (the changelog-based estimate) when few builds were seen.
func observedRate(changes, seen int, prior float64) float64 {
	const weight = 4 // pseudo-observations of the prior
	return (float64(changes) + prior*weight) / (float64(seen) + weight)
}

func popcount(x uint64, n int) int {
	if n < historyBits {
		x &= 1<<uint(n) - 1
	}
	c := 0
	for ; x != 0; x &= x - 1 {
		c++
	}
	return c
}
