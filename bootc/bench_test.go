package bootc

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/rechunker-dev/rechunker/bootc/bootctest"
)

// BenchmarkVerify measures the streaming verification of a synthetic chunked image:
// 8 chunk layers, 20,000 files of 4 KiB in 400 directories (about 80 MB of content).
func BenchmarkVerify(b *testing.B) {
	img := bootctest.Base()
	img.Chunks = 8
	for i := 0; i < 20000; i++ {
		img.Files = append(img.Files, bootctest.File{
			Path:  fmt.Sprintf("/usr/share/bench/d%03d/f%05d", i%400, i),
			Data:  fmt.Sprintf("%08d", i) + strings.Repeat("x", 4088),
			Chunk: 1 + i%8,
		})
	}
	built := img.Build(b)
	src := bootctest.Open(b, built.Ref)
	var content int64
	for _, l := range built.Manifest.Layers {
		_ = l
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		r, err := Verify(context.Background(), src, Options{TempDir: b.TempDir()})
		require.NoError(b, err)
		require.True(b, r.OK, "%v", r.Failure)
		content = r.Tree.Bytes
	}
	b.SetBytes(content)
}
