package rechunk

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

// TestPacmanEntryFiles: a package's directory in the pacman local database belongs to
// its package's component (pkgbase); the database version file stays with the database.
func TestPacmanEntryFiles(t *testing.T) {
	b := newTestTree(t, nil)
	const dir = "/var/lib/pacman/local/"
	b.file(dir+"ALPM_DB_VERSION", []byte("9\n"))
	b.file(dir+"zlib-1:1.3.1-2/desc", []byte("%NAME%\nzlib\n\n%VERSION%\n1:1.3.1-2\n\n%BASE%\nzlib\n\n"))
	b.file(dir+"zlib-1:1.3.1-2/files", []byte("%FILES%\nusr/\nusr/lib/\nusr/lib/libz.so.1\n\n"))
	b.file(dir+"zlib-1:1.3.1-2/mtree", []byte("not parsed"))
	b.file(dir+"python-3.12.7-1/desc", []byte("%NAME%\npython\n\n%BASE%\npython\n\n"))
	b.file(dir+"python-3.12.7-1/files", []byte("%FILES%\nusr/bin/python3.12\n\n"))
	b.file(dir+"python-3.12.7-1/install", []byte("post_install() { :; }\n"))
	b.file(dir+"pyhelper-1-1/desc", []byte("%NAME%\npyhelper\n\n%BASE%\npython\n\n"))
	b.sized("/usr/lib/libz.so.1", 100, "zlib")
	b.sized("/usr/bin/python3.12", 100, "python")

	owners := componentsByPath(t, b)
	for p, want := range map[string]string{
		dir + "zlib-1:1.3.1-2/desc":     "zlib",
		dir + "zlib-1:1.3.1-2/files":    "zlib",
		dir + "zlib-1:1.3.1-2/mtree":    "zlib",
		"/usr/lib/libz.so.1":            "zlib",
		dir + "python-3.12.7-1/install": "python",
		dir + "pyhelper-1-1/desc":       "python", // grouped by pkgbase
		"/usr/bin/python3.12":           "python",
		dir + "ALPM_DB_VERSION":         PackageDBComponent,
	} {
		assert.Equal(t, want, owners[p], p)
	}
}
