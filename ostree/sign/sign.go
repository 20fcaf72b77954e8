// Package sign signs ostree commits the way libostree's "ed25519" signer does
// (`ostree sign`, rpm-ostree's --sign-commit ed25519=PATH): a detached ed25519
// signature of the commit object's bytes, appended to the aay stored under
// ostree.sign.ed25519 in the commit's detached metadata (the .commitmeta object).
package sign

import (
	"bytes"
	"crypto/ed25519"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/rechunker-dev/rechunker/ostree/gvariant"
)

// Ed25519MetadataKey is the detached-metadata key of ed25519 signatures (type aay).
const Ed25519MetadataKey = "ostree.sign.ed25519"

// maxKeyFile bounds a key file.
const maxKeyFile = 64 << 10

// LoadEd25519 reads an ed25519 secret key as libostree takes it: base64 of the 64-byte
// libsodium secret key (seed followed by public key). Base64 of a 32-byte seed, and
// the raw 64 or 32 bytes, are accepted too.
func LoadEd25519(path string) (ed25519.PrivateKey, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("ed25519 key: %w", err)
	}
	if fi.Size() > maxKeyFile {
		return nil, fmt.Errorf("ed25519 key %s: %d bytes, not a key file", path, fi.Size())
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("ed25519 key: %w", err)
	}
	raw := data
	if len(data) != ed25519.PrivateKeySize && len(data) != ed25519.SeedSize {
		text := strings.Join(strings.Fields(string(data)), "")
		if raw, err = base64.StdEncoding.DecodeString(text); err != nil {
			return nil, fmt.Errorf("ed25519 key %s: not base64: %w", path, err)
		}
	}
	switch len(raw) {
	case ed25519.SeedSize:
		return ed25519.NewKeyFromSeed(raw), nil
	case ed25519.PrivateKeySize:
		k := ed25519.NewKeyFromSeed(raw[:ed25519.SeedSize])
		if !bytes.Equal(k[ed25519.SeedSize:], raw[ed25519.SeedSize:]) {
			return nil, fmt.Errorf("ed25519 key %s: its public half does not match its seed", path)
		}
		return k, nil
	}
	return nil, fmt.Errorf("ed25519 key %s: %d bytes, want a 64-byte secret key (or a 32-byte seed)", path, len(raw))
}

// AppendEd25519 signs commit (the commit object's bytes) with key and returns the
// detached metadata meta (nil for none) with the signature appended to the
// ostree.sign.ed25519 array, other keys kept in their order.
func AppendEd25519(meta, commit []byte, key ed25519.PrivateKey) ([]byte, error) {
	if len(key) != ed25519.PrivateKeySize {
		return nil, errors.New("sign: not an ed25519 secret key")
	}
	var entries []any
	if len(meta) > 0 {
		v, err := gvariant.Decode("a{sv}", meta)
		if err != nil {
			return nil, fmt.Errorf("sign: detached metadata: %w", err)
		}
		entries = v.([]any)
	}
	sig := ed25519.Sign(key, commit)
	found := false
	for i, e := range entries {
		kv := e.([]any)
		if kv[0].(string) != Ed25519MetadataKey {
			continue
		}
		v := kv[1].(gvariant.Variant)
		sigs, ok := v.Value.([]any)
		if v.Type != "aay" || !ok {
			return nil, fmt.Errorf("sign: detached metadata %s has type %s, want aay", Ed25519MetadataKey, v.Type)
		}
		entries[i] = []any{Ed25519MetadataKey, gvariant.Variant{Type: "aay", Value: append(sigs, sig)}}
		found = true
	}
	if !found {
		entries = append(entries, []any{Ed25519MetadataKey, gvariant.Variant{Type: "aay", Value: []any{sig}}})
	}
	out, err := gvariant.Encode("a{sv}", entries)
	if err != nil {
		return nil, fmt.Errorf("sign: encode detached metadata: %w", err)
	}
	return out, nil
}

// Ed25519Signatures returns the ed25519 signatures of detached metadata.
func Ed25519Signatures(meta []byte) ([][]byte, error) {
	v, err := gvariant.Decode("a{sv}", meta)
	if err != nil {
		return nil, err
	}
	var out [][]byte
	for _, e := range v.([]any) {
		kv := e.([]any)
		if kv[0].(string) != Ed25519MetadataKey {
			continue
		}
		vv := kv[1].(gvariant.Variant)
		sigs, ok := vv.Value.([]any)
		if vv.Type != "aay" || !ok {
			return nil, fmt.Errorf("%s has type %s, want aay", Ed25519MetadataKey, vv.Type)
		}
		for _, s := range sigs {
			out = append(out, s.([]byte))
		}
	}
	return out, nil
}

// LoadEd25519Public reads ed25519 public keys as ostree's keys files hold them: one
// base64-encoded 32-byte key per line (blank lines and # comments skipped).
func LoadEd25519Public(path string) ([]ed25519.PublicKey, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("ed25519 public key: %w", err)
	}
	if fi.Size() > maxKeyFile {
		return nil, fmt.Errorf("ed25519 public key %s: %d bytes, not a key file", path, fi.Size())
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("ed25519 public key: %w", err)
	}
	var keys []ed25519.PublicKey
	for n, line := range strings.Split(string(data), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		raw, err := base64.StdEncoding.DecodeString(line)
		if err != nil || len(raw) != ed25519.PublicKeySize {
			return nil, fmt.Errorf("ed25519 public key %s:%d: want base64 of %d bytes", path, n+1, ed25519.PublicKeySize)
		}
		keys = append(keys, ed25519.PublicKey(raw))
	}
	if len(keys) == 0 {
		return nil, fmt.Errorf("ed25519 public key %s: no key", path)
	}
	return keys, nil
}
