package bootc

import (
	"bytes"
	"compress/gzip"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strings"

	digest "github.com/opencontainers/go-digest"
)

// maxPlanLabel bounds the decoded plan label we are willing to parse. Decoding JSON
// into generic values costs several times its size, so a label that gunzips to much
// more (a gzip bomb) is refused; rechunker's own records are about 25 KiB per 1,000
// components.
const maxPlanLabel = 4 << 20

// PlanInfo is what can be read from the dev.rechunker.plan label. The label is decoded
// as JSON (plain, or base64 of gzip or plain JSON). Version 1 of rechunker's record
// ({"v":1,"n":layers,"r":[reserved],"c":[{"n":name,"l":index,"p":{path:index},"h":bits,"s":seen}]})
// is read by its documented fields (rechunk/history.go); anything else is searched
// generically for objects with a "components" list and a digest or diff_id. Package
// bootc reads it independently on purpose, like every other part of the image.
type PlanInfo struct {
	RawBytes int    `json:"raw_bytes"`
	Parsed   bool   `json:"parsed"`
	Summary  string `json:"summary"`
	// ChangedThisBuild lists components the record marks as changed against the
	// previous build (bit 0 of their history).
	ChangedThisBuild []string `json:"changed_this_build,omitempty"`
	// Components by layer digest or diff_id, or by manifest index (version 1).
	byDigest map[digest.Digest][]string
	byIndex  map[int][]string
}

// ComponentsAt returns the plan's components for manifest layer index i, or nil.
func (p *PlanInfo) ComponentsAt(i int) []string {
	if p == nil {
		return nil
	}
	return p.byIndex[i]
}

// ComponentsFor returns the plan's components for a layer, or nil.
func (p *PlanInfo) ComponentsFor(d, diffID digest.Digest) []string {
	if p == nil {
		return nil
	}
	if c, ok := p.byDigest[d]; ok {
		return c
	}
	if c, ok := p.byDigest[diffID]; ok {
		return c
	}
	return nil
}

// ParsePlanLabel reads the plan label; nil when the label is empty.
func ParsePlanLabel(raw string) *PlanInfo {
	if raw == "" {
		return nil
	}
	p := &PlanInfo{RawBytes: len(raw), byDigest: map[digest.Digest][]string{}}
	v, how, err := decodePlan(raw)
	if err != nil {
		p.Summary = "not parseable: " + err.Error()
		return p
	}
	p.Parsed = true
	if p.readRecordV1(v) {
		p.Summary = how + ", " + p.Summary
		return p
	}
	p.Summary = how + ", " + describeJSON(v)
	collectComponents(v, p.byDigest)
	return p
}

// readRecordV1 reads rechunker's version 1 plan record.
func (p *PlanInfo) readRecordV1(v any) bool {
	m, ok := v.(map[string]any)
	if !ok || m["v"] != float64(1) {
		return false
	}
	comps, ok := m["c"].([]any)
	if !ok {
		return false
	}
	p.byIndex = map[int][]string{}
	add := func(idx any, name string) {
		if f, ok := idx.(float64); ok && f >= 0 && f == float64(int(f)) {
			p.byIndex[int(f)] = append(p.byIndex[int(f)], name)
		}
	}
	withHistory := 0
	for _, c := range comps {
		cm, ok := c.(map[string]any)
		if !ok {
			return false
		}
		name, _ := cm["n"].(string)
		add(cm["l"], name)
		if parts, ok := cm["p"].(map[string]any); ok {
			for _, idx := range parts {
				add(idx, name)
			}
		}
		if s, ok := cm["s"].(float64); ok && s > 0 {
			withHistory++
			if h, ok := cm["h"].(float64); ok && uint64(h)&1 == 1 {
				p.ChangedThisBuild = append(p.ChangedThisBuild, name)
			}
		}
	}
	for i := range p.byIndex {
		sort.Strings(p.byIndex[i])
		p.byIndex[i] = dedupSorted(p.byIndex[i])
	}
	sort.Strings(p.ChangedThisBuild)
	layers, _ := m["n"].(float64)
	reserved, _ := m["r"].([]any)
	p.Summary = fmt.Sprintf("rechunker plan v1: %d chunk layers (%d reserved), %d components, %d with change history, %d changed in this build",
		int(layers), len(reserved), len(comps), withHistory, len(p.ChangedThisBuild))
	return true
}

func dedupSorted(s []string) []string {
	out := s[:0]
	for i, v := range s {
		if i == 0 || v != s[i-1] {
			out = append(out, v)
		}
	}
	return out
}

func decodePlan(raw string) (any, string, error) {
	var v any
	if err := json.Unmarshal([]byte(raw), &v); err == nil {
		return v, "JSON", nil
	}
	b, err := base64.StdEncoding.DecodeString(strings.TrimSpace(raw))
	if err != nil {
		return nil, "", fmt.Errorf("neither JSON nor base64")
	}
	how := "base64 JSON"
	if zr, err := gzip.NewReader(bytes.NewReader(b)); err == nil {
		b, err = io.ReadAll(io.LimitReader(zr, maxPlanLabel+1))
		if err != nil {
			return nil, "", fmt.Errorf("gunzip: %w", err)
		}
		if len(b) > maxPlanLabel {
			return nil, "", fmt.Errorf("decompresses to more than %d bytes", maxPlanLabel)
		}
		how = "base64 gzip JSON"
	}
	if err := json.Unmarshal(b, &v); err != nil {
		return nil, "", fmt.Errorf("decoded label is not JSON: %w", err)
	}
	return v, how, nil
}

// describeJSON summarizes the top level: keys, with array lengths.
func describeJSON(v any) string {
	switch t := v.(type) {
	case map[string]any:
		keys := make([]string, 0, len(t))
		for k := range t {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		parts := make([]string, 0, len(keys))
		for _, k := range keys {
			switch e := t[k].(type) {
			case []any:
				parts = append(parts, fmt.Sprintf("%s[%d]", k, len(e)))
			case string, float64, bool:
				s := fmt.Sprint(e)
				if len(s) > 40 {
					s = s[:40] + "…"
				}
				parts = append(parts, k+"="+s)
			default:
				parts = append(parts, k)
			}
		}
		return "object {" + strings.Join(parts, ", ") + "}"
	case []any:
		return fmt.Sprintf("array of %d", len(t))
	default:
		return fmt.Sprintf("%T", v)
	}
}

func collectComponents(v any, out map[digest.Digest][]string) {
	switch t := v.(type) {
	case map[string]any:
		if comps, ok := stringList(t["components"]); ok {
			for _, k := range []string{"digest", "diff_id", "diffid", "blob", "layer_digest"} {
				if s, ok := t[k].(string); ok && digest.Digest(s).Validate() == nil {
					out[digest.Digest(s)] = comps
				}
			}
		}
		for _, e := range t {
			collectComponents(e, out)
		}
	case []any:
		for _, e := range t {
			collectComponents(e, out)
		}
	}
}

func stringList(v any) ([]string, bool) {
	switch t := v.(type) {
	case string:
		return splitComma(t), true
	case []any:
		out := make([]string, 0, len(t))
		for _, e := range t {
			s, ok := e.(string)
			if !ok {
				return nil, false
			}
			out = append(out, s)
		}
		return out, true
	}
	return nil, false
}
