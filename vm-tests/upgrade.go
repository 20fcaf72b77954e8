package vmtests

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"regexp"
	"sort"
	"strconv"
	"strings"
)

// UpgradeOutput is what `bootc upgrade` (or switch) prints on stdout with the
// ostree backend. On a terminal the same text is interleaved with progress
// bars drawn with carriage returns and escape sequences; those are dropped.
type UpgradeOutput struct {
	// Layer counts from "layers already present: N; layers needed: M (SIZE)".
	// bootc prints the line only when at least one layer is needed.
	HaveLayerCounts bool
	LayersPresent   int
	LayersNeeded    int
	NeededSize      string // human size as bootc printed it, e.g. "117.6 MB"

	Fetched string // rest of "Fetched layers: ..." (bytes, time, rate)

	QueuedImage  string // "Queued for next boot: IMAGE"
	QueuedDigest string // its "  Digest: sha256:..."
	Version      string // its "  Version: ..."

	NoUpdate  bool // "No update available." / "No changes in ..."
	Unchanged bool // "Staged update present, not changed"

	// Manifest diff summary ("Total new layers:", "Removed layers:",
	// "Added layers:"), printed by some bootc versions after staging.
	HaveDiff      bool
	DiffTotal     int
	DiffRemoved   int
	DiffAdded     int
	DiffAddedSize string
}

var (
	ansiEscape     = regexp.MustCompile(`\x1b\[[0-9;?]*[A-Za-z]`)
	reLayerCounts  = regexp.MustCompile(`^layers already present: (\d+); layers needed: (\d+) \((.*)\)$`)
	reFetched      = regexp.MustCompile(`^Fetched layers: (.*)$`)
	reQueued       = regexp.MustCompile(`^Queued for next boot: (\S+)`)
	reQueuedDigest = regexp.MustCompile(`^\s+Digest: (sha256:[0-9a-f]{64})`)
	reQueuedVer    = regexp.MustCompile(`^\s+Version: (.+)$`)
	reDiffLine     = regexp.MustCompile(`^(Total new|Removed|Added) layers:\s+(\d+)\s+Size: (.+)$`)
)

// ParseUpgradeOutput reads bootc's human output. It fails when nothing in
// the text is recognised, so a changed output format is noticed rather than
// read as "no layers needed".
func ParseUpgradeOutput(text string) (UpgradeOutput, error) {
	var u UpgradeOutput
	text = ansiEscape.ReplaceAllString(text, "")
	recognised := false
	inQueued := false
	for _, line := range strings.FieldsFunc(text, func(r rune) bool { return r == '\n' || r == '\r' }) {
		line = strings.TrimRight(line, " \t")
		if m := reLayerCounts.FindStringSubmatch(line); m != nil {
			u.HaveLayerCounts = true
			u.LayersPresent, _ = strconv.Atoi(m[1])
			u.LayersNeeded, _ = strconv.Atoi(m[2])
			u.NeededSize = m[3]
			recognised = true
			continue
		}
		if m := reFetched.FindStringSubmatch(line); m != nil {
			u.Fetched = m[1]
			recognised = true
			continue
		}
		if m := reQueued.FindStringSubmatch(line); m != nil {
			u.QueuedImage = m[1]
			inQueued = true
			recognised = true
			continue
		}
		if inQueued {
			if m := reQueuedDigest.FindStringSubmatch(line); m != nil {
				u.QueuedDigest = m[1]
				continue
			}
			if m := reQueuedVer.FindStringSubmatch(line); m != nil {
				u.Version = m[1]
				continue
			}
			inQueued = false
		}
		if m := reDiffLine.FindStringSubmatch(line); m != nil {
			n, _ := strconv.Atoi(m[2])
			u.HaveDiff = true
			switch m[1] {
			case "Total new":
				u.DiffTotal = n
			case "Removed":
				u.DiffRemoved = n
			case "Added":
				u.DiffAdded = n
				u.DiffAddedSize = m[3]
			}
			recognised = true
			continue
		}
		switch {
		case line == "No update available.", strings.HasPrefix(line, "No changes in"):
			u.NoUpdate = true
			recognised = true
		case line == "Staged update present, not changed":
			u.Unchanged = true
			recognised = true
		}
	}
	if !recognised {
		return u, errors.New("parse bootc upgrade output: no line recognised (layer counts, Fetched layers, Queued for next boot, No update available)")
	}
	return u, nil
}

// ProgressLayer is one layer bootc reported fetching over --progress-fd.
type ProgressLayer struct {
	Kind    string // "ostree chunk" or "layer" (a derived, non-ostree layer)
	ShortID string // the first 21 hex digits of the layer's blob digest
	Bytes   uint64
}

// Progress summarises bootc's --progress-fd JSON lines (protocol v0, see
// bootc docs/src/progress-v0.schema.json).
type Progress struct {
	Version     string          // from the Start event
	Fetched     []ProgressLayer // completed layer subtasks of the "pulling" task, sorted by ShortID
	StepsCached uint64          // layers already present (from the last pulling event)
	StepsTotal  uint64          // layers to fetch (idem)
}

type progressEvent struct {
	Type        string `json:"type"`
	Version     string `json:"version"`
	Task        string `json:"task"`
	StepsCached uint64 `json:"stepsCached"`
	StepsTotal  uint64 `json:"stepsTotal"`
	Subtasks    []struct {
		Subtask    string `json:"subtask"`
		ID         string `json:"id"`
		Bytes      uint64 `json:"bytes"`
		BytesTotal uint64 `json:"bytesTotal"`
	} `json:"subtasks"`
}

// ParseProgress reads JSON lines. A layer counts as fetched once a pulling
// event lists it with bytes == bytesTotal; bootc repeats finished subtasks in
// every later event, so each layer is reported once.
func ParseProgress(r io.Reader) (Progress, error) {
	var p Progress
	done := map[string]ProgressLayer{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), 16*1024*1024)
	for n := 1; sc.Scan(); n++ {
		line := bytes.TrimSpace(sc.Bytes())
		if len(line) == 0 {
			continue
		}
		var ev progressEvent
		if err := json.Unmarshal(line, &ev); err != nil {
			return p, fmt.Errorf("parse bootc progress line %d: %w", n, err)
		}
		switch ev.Type {
		case "Start":
			p.Version = ev.Version
		case "ProgressBytes":
			if ev.Task != "pulling" {
				continue
			}
			p.StepsCached, p.StepsTotal = ev.StepsCached, ev.StepsTotal
			for _, st := range ev.Subtasks {
				if st.BytesTotal == 0 || st.Bytes != st.BytesTotal || st.ID == "" {
					continue
				}
				done[st.ID] = ProgressLayer{Kind: st.Subtask, ShortID: st.ID, Bytes: st.Bytes}
			}
		}
	}
	if err := sc.Err(); err != nil {
		return p, fmt.Errorf("read bootc progress: %w", err)
	}
	for _, l := range done {
		p.Fetched = append(p.Fetched, l)
	}
	sort.Slice(p.Fetched, func(i, j int) bool { return p.Fetched[i].ShortID < p.Fetched[j].ShortID })
	return p, nil
}

// ShortID is how bootc's progress names a layer: the first 21 hex digits of
// its digest.
func ShortID(digest string) string {
	hex := digest
	if i := strings.IndexByte(hex, ':'); i >= 0 {
		hex = hex[i+1:]
	}
	if len(hex) > 21 {
		hex = hex[:21]
	}
	return hex
}
