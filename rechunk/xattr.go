package rechunk

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/rechunker-dev/rechunker/ostree"
)

// Extended attributes that steer the planner, compatible with rpm-ostree and chunkah.
const (
	// XattrComponent puts a file, or every file below a directory, into an exclusive
	// component named by its value. A deeper value overrides an inherited one.
	XattrComponent = "user.component"
	// XattrUpdateInterval hints how often a component changes: daily, weekly, biweekly,
	// monthly, quarterly, yearly, or a number of days.
	XattrUpdateInterval = "user.update-interval"
)

// xattrSource claims the files that carry (or inherit) user.component.
type xattrSource struct {
	owner map[string]string          // path -> component
	comps map[string]*xattrComponent // component -> what we know
}

type xattrComponent struct {
	changesPerYear float64 // largest rate hinted by any of its files; -1 unknown
}

func (*xattrSource) kind() string { return "xattr" }

func (s *xattrSource) claim(_ int, p string, _ *ostree.File) string { return s.owner[p] }

func (s *xattrSource) info(c string) sourceInfo {
	rate := -1.0
	if xc := s.comps[c]; xc != nil {
		rate = xc.changesPerYear
	}
	return sourceInfo{exclusive: true, changesPerYear: rate}
}

// newXattrSource walks the tree once, carrying the inherited values down.
func newXattrSource(t *ostree.Tree, warn func(string)) *xattrSource {
	s := &xattrSource{owner: map[string]string{}, comps: map[string]*xattrComponent{}}
	badInterval := map[string]bool{}
	var walk func(p string, d *ostree.Dir, comp, interval string)
	effective := func(x ostree.Xattrs, comp, interval string) (string, string) {
		if v, ok := x.Get(XattrComponent); ok {
			comp = strings.TrimRight(string(v), "\x00")
		}
		if v, ok := x.Get(XattrUpdateInterval); ok {
			interval = strings.TrimRight(string(v), "\x00")
		}
		return comp, interval
	}
	record := func(p, comp, interval string) {
		comp = sanitizeName(strings.TrimSpace(comp))
		if comp == "" {
			return
		}
		s.owner[p] = comp
		xc := s.comps[comp]
		if xc == nil {
			xc = &xattrComponent{changesPerYear: -1}
			s.comps[comp] = xc
		}
		if interval == "" {
			return
		}
		rate, err := parseUpdateInterval(interval)
		if err != nil {
			if !badInterval[interval] {
				badInterval[interval] = true
				warn(fmt.Sprintf("%s: ignoring %s: %v", p, XattrUpdateInterval, err))
			}
			return
		}
		if rate > xc.changesPerYear {
			xc.changesPerYear = rate
		}
	}
	walk = func(p string, d *ostree.Dir, comp, interval string) {
		comp, interval = effective(d.Meta.Xattrs, comp, interval)
		for _, n := range d.FileNames() {
			f := d.Files[n]
			fc, fi := effective(f.Header.Xattrs, comp, interval)
			record(joinPath(p, n), fc, fi)
		}
		for _, n := range d.DirNames() {
			walk(joinPath(p, n), d.Dirs[n], comp, interval)
		}
	}
	walk("/", t.Root, "", "")
	return s
}

// parseUpdateInterval turns a user.update-interval value into changes per year.
func parseUpdateInterval(v string) (float64, error) {
	v = strings.ToLower(strings.TrimSpace(v))
	named := map[string]float64{
		"hourly": 365 * 24, "daily": 365, "weekly": 52, "biweekly": 26, "fortnightly": 26,
		"monthly": 12, "quarterly": 4, "yearly": 1, "annually": 1, "never": 0,
	}
	if r, ok := named[v]; ok {
		return r, nil
	}
	days, err := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSuffix(v, "days"), "d"), 64)
	if err != nil || !(days > 0 && days < 1e6) {
		return 0, fmt.Errorf("%q is not daily, weekly, biweekly, monthly, quarterly, yearly or a number of days", v)
	}
	return 365 / days, nil
}
