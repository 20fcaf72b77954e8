package ostree

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestTransientObjects(t *testing.T) {
	h := FileHeader{Mode: ModeRegular | 0o644}
	h2 := FileHeader{Mode: ModeRegular | 0o644, Xattrs: Xattrs{{"security.selinux", []byte("b_t\x00")}}}
	for _, compress := range []bool{false, true} {
		s := newStore(t)
		s.SetCompressContent(compress)
		before, err := s.WriteContentBytes(h, payloadOf(20<<10)) // another build's object
		require.NoError(t, err)
		s.TrackWrites()
		_, err = s.WriteContentBytes(h, payloadOf(20<<10))
		require.NoError(t, err)
		mine, err := s.WriteContentBytes(h, payloadOf(30<<10))
		require.NoError(t, err)
		base, err := s.WriteContentBytes(h, payloadOf(40<<10))
		require.NoError(t, err)
		derived := ContentChecksum(h2, payloadOf(40<<10))
		require.NoError(t, s.AddDerived(derived, base, h2))

		tests := []struct {
			name    string
			sum     Checksum
			dropped bool
		}{
			{"written before tracking", before, false},
			{"written by this build", mine, true},
			{"dropped already", mine, false},
			{"base of a derived object", base, false},
		}
		for _, tc := range tests {
			got, err := s.Drop(tc.sum)
			require.NoError(t, err)
			assert.Equal(t, tc.dropped, got, "compress=%v: %s", compress, tc.name)
			assert.Equal(t, !tc.dropped && tc.sum != mine, s.Has(tc.sum, ObjFile), "compress=%v: %s", compress, tc.name)
		}
		require.NoError(t, s.VerifyContent(derived), "a pinned base stays readable")
		require.NoError(t, s.DropWritten())
		assert.False(t, s.Has(base, ObjFile), "the end drops pinned objects too")
		assert.True(t, s.Has(before, ObjFile), "never another build's object")
	}
}
