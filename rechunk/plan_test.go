package rechunk

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestComparePathsMatchesJoinedPaths(t *testing.T) {
	refs := []FileRef{
		{Dir: "/", Name: "a"},
		{Dir: "/", Name: "a-b"},
		{Dir: "/a/", Name: "b"},
		{Dir: "/a-b/", Name: "c"},
		{Dir: "/a/b/", Name: "c"},
		{Dir: "/a/b-x/", Name: "d"},
		{Dir: "/a/", Name: "b-x"},
		{Dir: "/usr/", Name: "bin"},
		{Dir: "/usr/bin/", Name: ""},
		{Dir: "/usr/bin/", Name: "sh"},
		{Dir: "/usr/", Name: "bin/sh"},
		{Dir: "/", Name: ""},
		{Dir: "/\xff/", Name: "x"},
	}
	for _, a := range refs {
		for _, b := range refs {
			require.Equal(t, strings.Compare(a.Path(), b.Path()), ComparePaths(a, b), "%q vs %q", a.Path(), b.Path())
		}
	}
}

func FuzzComparePaths(f *testing.F) {
	f.Add("/a/", "b", "/a-", "x")
	f.Add("/", "", "/", "")
	f.Fuzz(func(t *testing.T, d1, n1, d2, n2 string) {
		a, b := FileRef{Dir: d1, Name: n1}, FileRef{Dir: d2, Name: n2}
		require.Equal(t, strings.Compare(a.Path(), b.Path()), ComparePaths(a, b))
	})
}
