package source

import (
	"archive/tar"
	"context"
	"fmt"
	"io"
	"path"

	"go.podman.io/image/v5/storage"

	"github.com/rechunker-dev/rechunker/internal/imageio"
	"github.com/rechunker-dev/rechunker/ostree"
	"github.com/rechunker-dev/rechunker/ostree/rootfs"
)

// A containers-storage image is already on disk as files: its layers are directories of
// the storage's graph driver. Mounted read-only through containers/storage (what `podman
// image mount` does), the merged tree is read in place like a --rootfs directory (the
// kernel applies the layers' whiteouts and opaque directories), so a build keeps no
// copy of it. The mount lives until Input.Close. Mounting needs the privileges the
// graph driver needs (CAP_SYS_ADMIN for overlay); when it fails, or the image cannot be
// matched to the one containers/image opened, the image is read through its layers
// like any other.

// loadStorageInPlace loads a containers-storage image from its mounted tree; ok is false
// when ref is not such an image or it cannot be mounted (the caller reads its layers).
func loadStorageInPlace(ctx context.Context, ref string, o Options) (in *Input, ok bool, err error) {
	iref, err := imageio.ParseReference(ref)
	if err != nil || iref.Transport().Name() != storage.Transport.Name() {
		return nil, false, nil
	}
	st, isStore := iref.Transport().(storage.StoreTransport)
	if !isStore {
		return nil, false, nil
	}
	store := st.GetStoreIfSet() // parsing the reference opened it
	if store == nil {
		return nil, false, nil
	}
	src, err := imageio.Open(ctx, ref, o.Image)
	if err != nil {
		return nil, false, err
	}
	defer src.Close()
	_, img, err := storage.ResolveReference(iref)
	if err != nil || img.ID != src.ConfigDigest.Encoded() {
		return nil, false, nil // e.g. a manifest list: the layers path picks the instance
	}
	mnt, err := store.MountImage(img.ID, nil, "")
	if err != nil {
		o.Warn(fmt.Sprintf("reading %s through its layers: cannot mount it to read it in place: %v", ref, err))
		return nil, false, nil
	}
	in = &Input{Tree: ostree.NewTree(), Config: src.Config, Ref: ref, release: func() error {
		_, err := store.UnmountImage(img.ID, false)
		imageio.ReleaseStore(iref)
		return err
	}}
	defer func() {
		if err != nil {
			in.Close()
		}
	}()
	if in.Tree, err = rootfs.Import(ctx, mnt, o.Store, rootfs.Options{SkipSpecial: true, Warn: o.Warn}); err != nil {
		return nil, true, fmt.Errorf("load %s from its mount %s: %w", ref, mnt, err)
	}
	perm, err := rootPermFromLayers(ctx, src)
	if err != nil {
		return nil, true, fmt.Errorf("load %s: %w", ref, err)
	}
	in.Tree.Root.Meta.Mode = ostree.ModeDir | perm
	if in.Created, err = imageCreated(src.Config, o.Warn); err != nil {
		return nil, true, err
	}
	return in, true, nil
}

// Close releases what the input holds (the mount of a containers-storage image read in
// place). The input's in-place objects cannot be read after it.
func (in *Input) Close() error {
	if in == nil || in.release == nil {
		return nil
	}
	release := in.release
	in.release = nil
	if err := release(); err != nil {
		return fmt.Errorf("release %s: %w", in.Ref, err)
	}
	return nil
}

// rootPermFromLayers returns the root directory's permissions as applying the layers
// gives them: the mount point of a mounted image does not show them (containers/storage
// creates a layer's directory 0555 whatever its tar says). A layer sets them with a "."
// entry, which tar writers put first; only each layer's first entry is read, so this
// costs one header per layer, not a read of the image. No layer with one: 0755, as
// applying layers to an empty tree gives.
func rootPermFromLayers(ctx context.Context, src *imageio.Source) (uint32, error) {
	perm := uint32(0o755)
	for i := range src.Layers {
		ls, err := src.OpenLayerStream(ctx, i)
		if err != nil {
			return 0, err
		}
		hdr, err := tar.NewReader(ls).Next()
		ls.Close()
		if err != nil && err != io.EOF {
			return 0, fmt.Errorf("layer %d: first entry: %w", i, err)
		}
		if err == nil && hdr.Typeflag == tar.TypeDir && path.Clean("/"+hdr.Name) == "/" {
			perm = uint32(hdr.Mode) & 0o7777
		}
	}
	return perm, nil
}
