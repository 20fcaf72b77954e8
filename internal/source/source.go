// Package source loads a build input (a container image or a root filesystem directory)
// into the object store and an in-memory tree, and turns it into the ostree commit
// rpm-ostree would make of it (`rpm-ostree compose build-chunked-oci`): /sysroot emptied,
// /etc moved to /usr/etc, root directory owned by root, no parent, empty subject and body,
// the image's creation time as timestamp.
//
// Image layers are applied with ostree/layer. Each layer's effect is cached in the store
// (layers/<digest>) so that importing an image again, or a new image sharing layers with an
// old one, skips reading those layers.
package source

import (
	"context"
	"errors"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"time"

	digest "github.com/opencontainers/go-digest"
	imgspecv1 "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/rechunker-dev/rechunker/internal/imageio"
	"github.com/rechunker-dev/rechunker/ostree"
	"github.com/rechunker-dev/rechunker/ostree/layer"
	"github.com/rechunker-dev/rechunker/ostree/rootfs"
	"github.com/rechunker-dev/rechunker/ostree/selinux"
)

// Options configure Load.
type Options struct {
	Store *ostree.Store
	Image imageio.Options
	// Warn receives non-fatal messages (skipped special files, fallbacks); nil discards them.
	Warn func(string)
	// NoCache neither replays nor writes layer records.
	NoCache bool
	// NoSELinux keeps the xattrs of the input as they are. By default a tree that
	// configures an SELinux policy (etc/selinux/config) is labelled from it, as
	// rpm-ostree does.
	NoSELinux bool
	// Progress, when set, is called after each layer is applied.
	Progress func(LayerResult)
	// CopyRootfs stores a copy of every file of a root filesystem directory, and reads a
	// containers-storage image through its layers. By default both are read where they
	// are (ostree.Store.AddInPlace; storage.go mounts the image until Input.Close): no
	// second copy of the tree on disk, but the input must not change while the Store
	// value is in use, and the commit's files are not in the store's directory once it
	// is gone.
	CopyRootfs bool
}

// LayerResult describes how one image layer was applied.
type LayerResult struct {
	Index  int
	Digest digest.Digest // blob digest as the transport serves it
	DiffID digest.Digest // from the config; may be empty
	Cached bool          // replayed from the store's layer record, the blob was not read
	Stats  layer.Stats
}

// Input is a loaded build input.
type Input struct {
	Tree      *ostree.Tree // finalized, after rpm-ostree-style postprocessing
	Commit    ostree.Commit
	CommitSum ostree.Checksum
	Config    imgspecv1.Image // source config; synthesized for a rootfs directory
	Created   time.Time       // commit timestamp (seconds precision, UTC)
	Ref       string          // what was loaded
	Layers    []LayerResult   // image layers in order; empty for a rootfs directory
	SELinux   *SELinuxResult  // nil when the tree was not labelled
	// BaseMarks counts the directories that got user.component or user.update-interval
	// back from the dirmeta objects of a chunked base image (basemarks.go).
	BaseMarks int

	release func() error // see Close
}

// SELinuxResult describes the labelling of a tree from its own policy.
type SELinuxResult struct {
	Policy string // SELINUXTYPE
	selinux.Stats
}

// sourceDateEpoch is the reproducible-builds variable used when an image has no created time.
const sourceDateEpoch = "SOURCE_DATE_EPOCH"

// Load reads exactly one of from (an image reference, TRANSPORT:REF) or rootfs (a
// directory) into o.Store, postprocesses the tree, and writes its dirtree, dirmeta and
// commit objects.
func Load(ctx context.Context, from, rootfsDir string, o Options) (*Input, error) {
	if (from == "") == (rootfsDir == "") {
		return nil, errors.New("load source: give exactly one of an image reference and a rootfs directory")
	}
	if o.Store == nil {
		return nil, errors.New("load source: no store")
	}
	if o.Warn == nil {
		o.Warn = func(string) {}
	}
	var in *Input
	var err error
	inPlace := false
	switch {
	case rootfsDir != "":
		in, err = loadRootfs(ctx, rootfsDir, o)
	case !o.CopyRootfs:
		in, inPlace, err = loadStorageInPlace(ctx, from, o)
	}
	if err == nil && in == nil && !inPlace {
		in, err = loadImage(ctx, from, o)
	}
	if err != nil {
		return nil, err
	}
	if err := finish(ctx, in, o); err != nil {
		in.Close()
		return nil, err
	}
	return in, nil
}

// finish turns a loaded tree into the commit rpm-ostree would make of it.
func finish(ctx context.Context, in *Input, o Options) error {
	// Before /sysroot is emptied: the base image's commit is read from there.
	in.BaseMarks = restoreBaseMarks(in.Tree, o.Store, o.Warn)
	// Label before /etc moves: the policy names /etc paths.
	if !o.NoSELinux {
		if err := relabel(ctx, in, o); err != nil {
			return err
		}
	}
	if err := Postprocess(in.Tree); err != nil {
		return fmt.Errorf("load %s: %w", in.Ref, err)
	}
	// Thousands of dirtree objects: write them in the background while hashing goes on.
	mw := o.Store.NewAsyncWriter(ctx, ostree.AsyncOptions{})
	rootTree, rootMeta, err := in.Tree.Finalize(mw)
	if cerr := mw.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("load %s: write tree: %w", in.Ref, err)
	}
	in.Commit = ostree.Commit{Timestamp: uint64(in.Created.Unix()), RootTree: rootTree, RootMeta: rootMeta}
	raw, err := in.Commit.Marshal()
	if err != nil {
		return fmt.Errorf("load %s: encode commit: %w", in.Ref, err)
	}
	if in.CommitSum, err = o.Store.WriteMetadata(ostree.ObjCommit, raw); err != nil {
		return fmt.Errorf("load %s: %w", in.Ref, err)
	}
	return nil
}

// relabel gives the tree the SELinux labels of the policy it configures, if any.
func relabel(ctx context.Context, in *Input, o Options) error {
	p, typ, err := selinux.Load(ctx, o.Store, in.Tree)
	if errors.Is(err, selinux.ErrPolicyMissing) {
		o.Warn(fmt.Sprintf("not labelling: etc/selinux/config names SELinux policy %q, but %v", typ, err))
		return nil
	}
	if errors.Is(err, selinux.ErrNoPolicy) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("load %s: %w (--no-selinux skips labelling)", in.Ref, err)
	}
	st, err := selinux.Apply(ctx, o.Store, in.Tree, p)
	if err != nil {
		return fmt.Errorf("load %s: SELinux labels from policy %q: %w", in.Ref, typ, err)
	}
	in.SELinux = &SELinuxResult{Policy: typ, Stats: st}
	return nil
}

// filesystemLayerTypes are the layer media types that hold a (possibly compressed) tar
// of filesystem changes. Anything else (artifacts, encrypted layers, a typo) is refused
// rather than guessed at from its bytes. Schema 1 manifests carry no layer types ("").
var filesystemLayerTypes = map[string]bool{
	"":                                       true,
	"application/vnd.oci.image.layer.v1.tar": true,
	"application/vnd.oci.image.layer.v1.tar+gzip":                  true,
	"application/vnd.oci.image.layer.v1.tar+zstd":                  true,
	"application/vnd.oci.image.layer.nondistributable.v1.tar":      true,
	"application/vnd.oci.image.layer.nondistributable.v1.tar+gzip": true,
	"application/vnd.oci.image.layer.nondistributable.v1.tar+zstd": true,
	"application/vnd.docker.image.rootfs.diff.tar":                 true,
	"application/vnd.docker.image.rootfs.diff.tar.gzip":            true,
	"application/vnd.docker.image.rootfs.diff.tar.zstd":            true,
	"application/vnd.docker.image.rootfs.foreign.diff.tar.gzip":    true,
}

func loadImage(ctx context.Context, ref string, o Options) (*Input, error) {
	src, err := imageio.Open(ctx, ref, o.Image)
	if err != nil {
		return nil, err
	}
	defer src.Close()
	in := &Input{Tree: ostree.NewTree(), Config: src.Config, Ref: ref}
	for i, l := range src.Layers {
		if !filesystemLayerTypes[l.MediaType] {
			return nil, fmt.Errorf("load %s: layer %d (%s) has media type %q, which is not a filesystem layer", ref, i, l.Digest, l.MediaType)
		}
	}
	for i := range src.Layers {
		res, err := applyLayer(ctx, src, i, in.Tree, o)
		if err != nil {
			return nil, err
		}
		in.Layers = append(in.Layers, res)
		if o.Progress != nil {
			o.Progress(res)
		}
	}
	in.Created, err = imageCreated(src.Config, o.Warn)
	if err != nil {
		return nil, fmt.Errorf("load %s: %w", ref, err)
	}
	return in, nil
}

// imageCreated picks the commit timestamp: the config's created time, else
// SOURCE_DATE_EPOCH, else now (with a warning: the commit is then not reproducible).
func imageCreated(cfg imgspecv1.Image, warn func(string)) (time.Time, error) {
	if cfg.Created != nil && !cfg.Created.IsZero() {
		return cfg.Created.UTC().Truncate(time.Second), nil
	}
	if v, ok := os.LookupEnv(sourceDateEpoch); ok {
		sec, err := strconv.ParseInt(v, 10, 64)
		if err != nil || sec < 0 {
			return time.Time{}, fmt.Errorf("%s=%q is not a number of seconds", sourceDateEpoch, v)
		}
		return time.Unix(sec, 0).UTC(), nil
	}
	warn("the image config has no created time and " + sourceDateEpoch + " is unset; using the current time")
	return time.Now().UTC().Truncate(time.Second), nil
}

func loadRootfs(ctx context.Context, dir string, o Options) (*Input, error) {
	st, err := os.Stat(dir)
	if err != nil {
		return nil, fmt.Errorf("load rootfs: %w", err)
	}
	if !st.IsDir() {
		return nil, fmt.Errorf("load rootfs: %s is not a directory", dir)
	}
	tree, err := rootfs.Import(ctx, dir, o.Store, rootfs.Options{SkipSpecial: true, Warn: o.Warn, Copy: o.CopyRootfs})
	if err != nil {
		return nil, fmt.Errorf("load rootfs %s: %w", dir, err)
	}
	// rpm-ostree's default config for --rootfs: created is the top directory's mtime.
	created := st.ModTime().UTC().Truncate(time.Second)
	cfg := imgspecv1.Image{
		Created:  &created,
		Platform: imgspecv1.Platform{Architecture: ociArch(runtime.GOARCH), OS: "linux"},
		RootFS:   imgspecv1.RootFS{Type: "layers"},
	}
	return &Input{Tree: tree, Config: cfg, Created: created, Ref: dir}, nil
}

// ociArch maps a Go architecture to the OCI platform name. The OCI image spec adopted
// GOARCH values, so this is the identity for every Linux architecture bootc supports.
func ociArch(goarch string) string { return goarch }

// Postprocess makes t what rpm-ostree commits from a root filesystem: the contents of
// /sysroot dropped (the directory stays), /etc moved to /usr/etc, and the root directory
// owned by root with no xattrs but its SELinux label.
func Postprocess(t *ostree.Tree) error {
	root := t.Root
	if d := root.Dirs["sysroot"]; d != nil {
		d.Files = map[string]*ostree.File{}
		d.Dirs = map[string]*ostree.Dir{}
	}
	if etc := root.Dirs["etc"]; etc != nil {
		usr := root.Dirs["usr"]
		if usr == nil {
			if root.Files["usr"] != nil {
				return errors.New("cannot move /etc to /usr/etc: /usr is not a directory")
			}
			usr = ostree.NewDir(ostree.DirMeta{Mode: ostree.ModeDir | 0o755})
			root.Dirs["usr"] = usr
		}
		if usr.Dirs["etc"] != nil || usr.Files["etc"] != nil {
			return errors.New("found both /etc and /usr/etc")
		}
		usr.Dirs["etc"] = etc
		delete(root.Dirs, "etc")
	}
	root.Meta.UID, root.Meta.GID = 0, 0
	var x ostree.Xattrs
	if v, ok := root.Meta.Xattrs.Get("security.selinux"); ok {
		x = ostree.Xattrs{{Name: "security.selinux", Value: v}}
	}
	root.Meta.Xattrs = x
	return nil
}
