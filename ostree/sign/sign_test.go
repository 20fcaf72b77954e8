package sign

import (
	"crypto/ed25519"
	"encoding/base64"
	"encoding/hex"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/rechunker-dev/rechunker/ostree/gvariant"
)

func testKey(seed byte) ed25519.PrivateKey {
	s := make([]byte, ed25519.SeedSize)
	for i := range s {
		s[i] = seed + byte(i)
	}
	return ed25519.NewKeyFromSeed(s)
}

func TestAppendEd25519(t *testing.T) {
	commit := []byte("commit object bytes")
	k1, k2 := testKey(1), testKey(2)
	m1, err := AppendEd25519(nil, commit, k1)
	require.NoError(t, err)
	m2, err := AppendEd25519(m1, commit, k2)
	require.NoError(t, err)
	sigs, err := Ed25519Signatures(m2)
	require.NoError(t, err)
	require.Len(t, sigs, 2, "a second key appends, as ostree sign does")
	assert.True(t, ed25519.Verify(k1.Public().(ed25519.PublicKey), commit, sigs[0]))
	assert.True(t, ed25519.Verify(k2.Public().(ed25519.PublicKey), commit, sigs[1]))
	assert.False(t, ed25519.Verify(k1.Public().(ed25519.PublicKey), []byte("other"), sigs[0]))

	// Other keys of existing metadata stay.
	other, err := gvariant.Encode("a{sv}", []any{[]any{"x.other", gvariant.Variant{Type: "s", Value: "kept"}}})
	require.NoError(t, err)
	m3, err := AppendEd25519(other, commit, k1)
	require.NoError(t, err)
	v, err := gvariant.Decode("a{sv}", m3)
	require.NoError(t, err)
	require.Len(t, v.([]any), 2)
	assert.Equal(t, "x.other", v.([]any)[0].([]any)[0])

	_, err = AppendEd25519([]byte{1, 2, 3}, commit, k1)
	assert.Error(t, err)
	bad, err := gvariant.Encode("a{sv}", []any{[]any{Ed25519MetadataKey, gvariant.Variant{Type: "s", Value: "x"}}})
	require.NoError(t, err)
	_, err = AppendEd25519(bad, commit, k1)
	assert.ErrorContains(t, err, "want aay")
}

// TestDetachedMetadataMatchesGLib encodes the detached metadata with GLib itself (the
// GVariant implementation libostree uses) and compares the bytes.
func TestDetachedMetadataMatchesGLib(t *testing.T) {
	py := "/usr/bin/python3"
	if err := exec.Command(py, "-c", "from gi.repository import GLib").Run(); err != nil {
		t.Skip("python3-gi not installed: GLib is the oracle for the encoding")
	}
	commit := []byte("commit object bytes")
	k := testKey(7)
	ours, err := AppendEd25519(nil, commit, k)
	require.NoError(t, err)
	sig := ed25519.Sign(k, commit)
	script := `import sys; from gi.repository import GLib
sig = bytes.fromhex(sys.argv[1])
v = GLib.Variant('a{sv}', {'ostree.sign.ed25519': GLib.Variant('aay', [sig])})
sys.stdout.write(v.get_data_as_bytes().get_data().hex())`
	out, err := exec.Command(py, "-c", script, hex.EncodeToString(sig)).Output()
	require.NoError(t, err)
	assert.Equal(t, strings.TrimSpace(string(out)), hex.EncodeToString(ours))
}

func TestLoadEd25519(t *testing.T) {
	k := testKey(3)
	dir := t.TempDir()
	write := func(name string, data []byte) string {
		p := filepath.Join(dir, name)
		require.NoError(t, os.WriteFile(p, data, 0o600))
		return p
	}
	tests := []struct {
		name string
		data []byte
		want string // error substring; "" means k
	}{
		{"base64 secret key with newline", []byte(base64.StdEncoding.EncodeToString(k) + "\n"), ""},
		{"base64 seed", []byte(base64.StdEncoding.EncodeToString(k.Seed())), ""},
		{"raw secret key", k, ""},
		{"raw seed", k.Seed(), ""},
		{"not base64", []byte("not a key!"), "not base64"},
		{"wrong length", []byte(base64.StdEncoding.EncodeToString([]byte("short"))), "5 bytes"},
		{"mismatched public half", append(append([]byte{}, k.Seed()...), make([]byte, 32)...), "public half"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := LoadEd25519(write(strings.ReplaceAll(tc.name, " ", "-"), tc.data))
			if tc.want != "" {
				require.Error(t, err)
				assert.Contains(t, err.Error(), tc.want)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, k, got)
		})
	}
	_, err := LoadEd25519(filepath.Join(dir, "missing"))
	assert.Error(t, err)
}

func TestLoadEd25519Public(t *testing.T) {
	k1, k2 := testKey(1), testKey(2)
	dir := t.TempDir()
	good := filepath.Join(dir, "good")
	content := "# keys\n" + base64.StdEncoding.EncodeToString(k1.Public().(ed25519.PublicKey)) + "\n\n" +
		base64.StdEncoding.EncodeToString(k2.Public().(ed25519.PublicKey)) + "\n"
	require.NoError(t, os.WriteFile(good, []byte(content), 0o644))
	keys, err := LoadEd25519Public(good)
	require.NoError(t, err)
	assert.Equal(t, []ed25519.PublicKey{k1.Public().(ed25519.PublicKey), k2.Public().(ed25519.PublicKey)}, keys)

	for name, data := range map[string]string{
		"secret key, not public": base64.StdEncoding.EncodeToString(k1),
		"not base64":             "!!!",
		"empty":                  "# nothing\n",
	} {
		p := filepath.Join(dir, strings.ReplaceAll(name, " ", "-"))
		require.NoError(t, os.WriteFile(p, []byte(data), 0o644))
		_, err := LoadEd25519Public(p)
		assert.Error(t, err, name)
	}
}
