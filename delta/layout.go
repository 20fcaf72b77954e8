package delta

import (
	"archive/tar"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"

	digest "github.com/opencontainers/go-digest"
	imgspecs "github.com/opencontainers/image-spec/specs-go"
	imgspecv1 "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/rechunker-dev/rechunker/internal/fsutil"
)

// writeLayout writes the rebuilt image's config, manifest (the target's, with the
// rebuilt layer descriptors) and index.json into the layout.
func (ap *applier) writeLayout(layers []imgspecv1.Descriptor) error {
	blobs := filepath.Join(ap.layout, "blobs", "sha256")
	put := func(b []byte) (digest.Digest, error) {
		d := digest.FromBytes(b)
		return d, os.WriteFile(filepath.Join(blobs, d.Encoded()), b, 0o644)
	}
	cfgD, err := put(ap.a.TargetConfig)
	if err != nil {
		return err
	}
	m := imgspecv1.Manifest{
		Versioned:   imgspecs.Versioned{SchemaVersion: 2},
		MediaType:   imgspecv1.MediaTypeImageManifest,
		Config:      imgspecv1.Descriptor{MediaType: imgspecv1.MediaTypeImageConfig, Digest: cfgD, Size: int64(len(ap.a.TargetConfig))},
		Layers:      layers,
		Annotations: ap.a.Target.Annotations,
	}
	mb, err := json.Marshal(m)
	if err != nil {
		return err
	}
	md, err := put(mb)
	if err != nil {
		return err
	}
	idx := imgspecv1.Index{Versioned: imgspecs.Versioned{SchemaVersion: 2}, MediaType: imgspecv1.MediaTypeImageIndex,
		Manifests: []imgspecv1.Descriptor{{MediaType: imgspecv1.MediaTypeImageManifest, Digest: md, Size: int64(len(mb))}}}
	ib, err := json.Marshal(idx)
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(ap.layout, "index.json"), ib, 0o644); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(ap.layout, "oci-layout"), []byte(ociLayout), 0o644)
}

// tarDir writes the regular files under dir (sorted, so the archive is reproducible)
// as a tar in a temporary file in destDir, and returns its name; on error it is removed.
func tarDir(ctx context.Context, dir, destDir string) (string, error) {
	var names []string
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			names = append(names, p)
		}
		return err
	})
	if err != nil {
		return "", err
	}
	sort.Strings(names)
	f, err := os.CreateTemp(destDir, ".oci-archive-*.tmp")
	if err != nil {
		return "", err
	}
	if err := writeTar(ctx, f, dir, names); err != nil {
		f.Close()
		os.Remove(f.Name())
		return "", err
	}
	return f.Name(), nil
}

func writeTar(ctx context.Context, f *os.File, dir string, names []string) error {
	tw := tar.NewWriter(f)
	for _, p := range names {
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			return err
		}
		if err := tarFile(ctx, tw, p, filepath.ToSlash(rel)); err != nil {
			return fmt.Errorf("adding %s: %w", rel, err)
		}
	}
	if err := tw.Close(); err != nil {
		return err
	}
	return f.Close()
}

func tarFile(ctx context.Context, tw *tar.Writer, path, name string) error {
	in, err := os.Open(path)
	if err != nil {
		return err
	}
	defer in.Close()
	fi, err := in.Stat()
	if err != nil {
		return err
	}
	h := &tar.Header{Name: name, Typeflag: tar.TypeReg, Mode: 0o644, Size: fi.Size(), ModTime: fixedTime, Format: tar.FormatPAX}
	if err := tw.WriteHeader(h); err != nil {
		return err
	}
	_, err = io.Copy(tw, fsutil.ContextReader(ctx, in))
	return err
}
