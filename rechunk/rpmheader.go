package rechunk

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"path"
	"strings"
	"time"
)

// rpm header tags the planner reads (rpm's lib/rpmtag.h).
const (
	rpmTagName          = 1000
	rpmTagVersion       = 1001
	rpmTagRelease       = 1002
	rpmTagEpoch         = 1003
	rpmTagBuildTime     = 1006
	rpmTagArch          = 1022
	rpmTagOldFilenames  = 1027
	rpmTagFileStates    = 1029
	rpmTagSourceRPM     = 1044
	rpmTagChangelogTime = 1080
	rpmTagDirIndexes    = 1116
	rpmTagBasenames     = 1117
	rpmTagDirnames      = 1118
)

// rpm header data types.
const (
	rpmTypeChar        = 1
	rpmTypeInt8        = 2
	rpmTypeInt32       = 4
	rpmTypeString      = 6
	rpmTypeStringArray = 8
	rpmTypeI18NString  = 9
)

// rpm file states (RPMFILE_STATE_*) that mean the path is not this package's file.
const (
	rpmFileStateNotInstalled = 2
	rpmFileStateWrongColor   = 4
)

// maxRPMHeader bounds a header blob, as rpm itself does (256 MiB).
const maxRPMHeader = 256 << 20

// rpmHeader is the subset of an installed package header the planner needs.
type rpmHeader struct {
	Name, Version, Release, Arch, SourceRPM string
	Epoch                                   int
	HasEpoch                                bool
	BuildTime                               time.Time
	ChangelogTimes                          []time.Time
	Files                                   []string // installed paths only
	// AllFiles counts the header's paths before dropping those rpm did not install
	// (excluded languages, docs, other colors).
	AllFiles int
}

// NEVRA formats the package like rpm-ostree's identifiers.
func (h *rpmHeader) NEVRA() string {
	return h.Name + "-" + h.EVR() + "." + h.Arch
}

// EVR is the package's [epoch:]version-release, the epoch only when it is set and not 0.
func (h *rpmHeader) EVR() string {
	if h.HasEpoch && h.Epoch != 0 {
		return fmt.Sprintf("%d:%s-%s", h.Epoch, h.Version, h.Release)
	}
	return h.Version + "-" + h.Release
}

// sourceName returns the source package name from the SOURCERPM tag
// ("bash-5.3.0-2.fc43.src.rpm" -> "bash"), or the package name without one.
func (h *rpmHeader) sourceName() string {
	s := strings.TrimSuffix(strings.TrimSuffix(h.SourceRPM, ".src.rpm"), ".nosrc.rpm")
	if s == h.SourceRPM || s == "" {
		return h.Name
	}
	for range 2 { // drop -release and -version
		i := strings.LastIndexByte(s, '-')
		if i <= 0 {
			return h.Name
		}
		s = s[:i]
	}
	return s
}

type rpmEntry struct {
	tag, typ, offset, count uint32
}

// parseRPMHeader decodes a header blob as stored in the rpm database: be32 index
// count, be32 data length, 16-byte index entries, then the data store.
func parseRPMHeader(blob []byte) (*rpmHeader, error) {
	if len(blob) < 8 {
		return nil, errors.New("rpm header: too short")
	}
	il := binary.BigEndian.Uint32(blob[0:4])
	dl := binary.BigEndian.Uint32(blob[4:8])
	if il == 0 || il > maxRPMHeader/16 || dl > maxRPMHeader {
		return nil, fmt.Errorf("rpm header: %d entries, %d data bytes out of range", il, dl)
	}
	need := 8 + uint64(il)*16 + uint64(dl)
	if uint64(len(blob)) < need {
		return nil, fmt.Errorf("rpm header: %d bytes, need %d", len(blob), need)
	}
	data := blob[8+il*16 : need]
	entries := map[uint32]rpmEntry{}
	for i := uint32(0); i < il; i++ {
		b := blob[8+i*16:]
		e := rpmEntry{
			tag: binary.BigEndian.Uint32(b[0:4]), typ: binary.BigEndian.Uint32(b[4:8]),
			offset: binary.BigEndian.Uint32(b[8:12]), count: binary.BigEndian.Uint32(b[12:16]),
		}
		if e.offset >= uint32(len(data)) && e.count > 0 {
			return nil, fmt.Errorf("rpm header: tag %d data offset %d out of range", e.tag, e.offset)
		}
		entries[e.tag] = e
	}
	r := rpmReader{data: data, entries: entries}
	h := &rpmHeader{}
	h.Name = r.str(rpmTagName)
	h.Version = r.str(rpmTagVersion)
	h.Release = r.str(rpmTagRelease)
	h.Arch = r.str(rpmTagArch)
	h.SourceRPM = r.str(rpmTagSourceRPM)
	if v := r.int32s(rpmTagEpoch); len(v) > 0 {
		h.Epoch, h.HasEpoch = int(v[0]), true
	}
	if v := r.int32s(rpmTagBuildTime); len(v) > 0 {
		h.BuildTime = time.Unix(int64(uint32(v[0])), 0).UTC()
	}
	for _, t := range r.int32s(rpmTagChangelogTime) {
		h.ChangelogTimes = append(h.ChangelogTimes, time.Unix(int64(uint32(t)), 0).UTC())
	}
	if r.err != nil {
		return nil, fmt.Errorf("rpm header: %w", r.err)
	}
	if h.Name == "" {
		return nil, errors.New("rpm header: no package name")
	}
	files, all, err := r.files()
	if err != nil {
		return nil, fmt.Errorf("rpm header of %s: %w", h.Name, err)
	}
	h.Files, h.AllFiles = files, all
	return h, nil
}

type rpmReader struct {
	data    []byte
	entries map[uint32]rpmEntry
	err     error
}

func (r *rpmReader) strings(tag uint32) []string {
	e, ok := r.entries[tag]
	if !ok || r.err != nil {
		return nil
	}
	switch e.typ {
	case rpmTypeString, rpmTypeStringArray, rpmTypeI18NString:
	default:
		r.err = fmt.Errorf("tag %d has type %d, want a string", tag, e.typ)
		return nil
	}
	n := e.count
	if e.typ == rpmTypeString {
		n = 1
	}
	// A STRING tag has one value whatever its count says, so the offset check in
	// parseRPMHeader (which skips empty tags) does not cover it.
	if n > uint32(len(r.data)) || (n > 0 && e.offset >= uint32(len(r.data))) {
		r.err = fmt.Errorf("tag %d: count %d at offset %d out of range", tag, n, e.offset)
		return nil
	}
	out := make([]string, 0, n)
	rest := r.data[e.offset:]
	for i := uint32(0); i < n; i++ {
		j := bytes.IndexByte(rest, 0)
		if j < 0 {
			r.err = fmt.Errorf("tag %d: unterminated string", tag)
			return nil
		}
		out = append(out, string(rest[:j]))
		rest = rest[j+1:]
	}
	return out
}

func (r *rpmReader) str(tag uint32) string {
	if v := r.strings(tag); len(v) > 0 {
		return v[0] // the first of an i18n string table is the C locale
	}
	return ""
}

func (r *rpmReader) int32s(tag uint32) []int32 {
	e, ok := r.entries[tag]
	if !ok || r.err != nil {
		return nil
	}
	if e.typ != rpmTypeInt32 {
		r.err = fmt.Errorf("tag %d has type %d, want int32", tag, e.typ)
		return nil
	}
	end := uint64(e.offset) + uint64(e.count)*4
	if end > uint64(len(r.data)) {
		r.err = fmt.Errorf("tag %d: %d int32 values out of range", tag, e.count)
		return nil
	}
	out := make([]int32, e.count)
	for i := range out {
		out[i] = int32(binary.BigEndian.Uint32(r.data[int(e.offset)+4*i:]))
	}
	return out
}

func (r *rpmReader) bytes(tag uint32) []byte {
	e, ok := r.entries[tag]
	if !ok || r.err != nil {
		return nil
	}
	if e.typ != rpmTypeChar && e.typ != rpmTypeInt8 {
		r.err = fmt.Errorf("tag %d has type %d, want char", tag, e.typ)
		return nil
	}
	end := uint64(e.offset) + uint64(e.count)
	if end > uint64(len(r.data)) {
		r.err = fmt.Errorf("tag %d: %d bytes out of range", tag, e.count)
		return nil
	}
	return r.data[e.offset:end]
}

// files returns the installed file paths (dirnames[dirindexes[i]] + basenames[i], or
// the old flat file name list), skipping files rpm did not install.
func (r *rpmReader) files() ([]string, int, error) {
	var paths []string
	if base := r.strings(rpmTagBasenames); base != nil {
		dirs := r.strings(rpmTagDirnames)
		idx := r.int32s(rpmTagDirIndexes)
		if r.err != nil {
			return nil, 0, r.err
		}
		if len(idx) != len(base) {
			return nil, 0, fmt.Errorf("%d dir indexes for %d base names", len(idx), len(base))
		}
		paths = make([]string, len(base))
		for i, b := range base {
			if idx[i] < 0 || int(idx[i]) >= len(dirs) {
				return nil, 0, fmt.Errorf("dir index %d out of range (%d dirs)", idx[i], len(dirs))
			}
			paths[i] = dirs[idx[i]] + b
		}
	} else {
		paths = r.strings(rpmTagOldFilenames)
	}
	states := r.bytes(rpmTagFileStates)
	if r.err != nil {
		return nil, 0, r.err
	}
	all := len(paths)
	out := paths[:0]
	for i, p := range paths {
		if i < len(states) && (states[i] == rpmFileStateNotInstalled || states[i] == rpmFileStateWrongColor) {
			continue
		}
		out = append(out, path.Clean("/"+p))
	}
	return out, all, nil
}
