package delta

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"
)

// FuzzParseArtifact feeds arbitrary archives to the parser: it may refuse them, but
// must neither panic nor allocate without bound, and blobs it hands out read safely.
func FuzzParseArtifact(f *testing.F) {
	// A small seed: the fuzzer mutates it byte by byte.
	dir := f.TempDir()
	base := []file{{"etc/os-release", "ID=test\n"}}
	old := writeImage(f, filepath.Join(dir, "old"), base, []file{{"usr/lib/a", words(1, 100)}})
	tgt := writeImage(f, filepath.Join(dir, "new"), base, []file{{"usr/lib/a", words(2, 100)}})
	df := filepath.Join(dir, "delta.tar")
	_, err := Create(context.Background(), old, tgt, df, Options{})
	if err != nil {
		f.Fatal(err)
	}
	seed, err := os.ReadFile(df)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(seed)
	f.Add(seed[:len(seed)/2])
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		a, err := ParseArtifact(bytes.NewReader(data), int64(len(data)))
		if err != nil {
			return
		}
		for _, d := range a.Layers {
			if r, err := a.Blob(d); err == nil {
				_, _ = bytes.NewBuffer(nil).ReadFrom(r)
			}
		}
	})
}
