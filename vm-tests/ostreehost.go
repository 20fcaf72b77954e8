package vmtests

// Host-side steps of the QEMU flow, each driving a real tool: the libostree
// client (client/ostree_client.py) imports images, the ostree CLI checks and
// deploys them, mkfs.ext4 -d makes disks from directories and debugfs reads
// files back out of a disk a guest has changed, so nothing needs a loop mount.

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
)

// OSName is the stateroot the QEMU flow deploys into.
const OSName = "debian"

// Client runs the libostree test client.
type Client struct {
	Python string // an interpreter with PyGObject and OSTree-1.0 typelibs: /usr/bin/python3 on Debian
	Script string // path of client/ostree_client.py
}

// Imported is the client's summary of one import.
type Imported struct {
	Commit         string   `json:"commit"`
	LabelCommit    string   `json:"label_commit"`
	ManifestDigest string   `json:"manifest_digest"`
	LayersImported []string `json:"layers_imported"`
	LayersTotal    int      `json:"layers_total"`
	ObjectsWritten int      `json:"objects_written"`
}

// Import imports the OCI layout image (DIR:TAG) into repo; with layers set,
// only those blobs (the commit layer must be among them).
func (c Client) Import(ctx context.Context, repo, image string, layers []string, ref string) (Imported, error) {
	args := []string{c.Script, "import", "--repo", repo, "--image", image}
	if len(layers) > 0 {
		args = append(args, "--layers", strings.Join(layers, ","))
	}
	if ref != "" {
		args = append(args, "--ref", ref)
	}
	var out Imported
	res, err := Run(ctx, Cmd{Name: c.Python, Args: args}, nil)
	if err != nil {
		return out, fmt.Errorf("import %s into %s with libostree: %w", image, repo, err)
	}
	if err := json.Unmarshal(res.Stdout, &out); err != nil {
		return out, fmt.Errorf("import %s: client output %q: %w", image, res.Stdout, err)
	}
	return out, nil
}

// CheckComplete fails, naming each missing object and its path, when commit
// reaches an object repo does not have; then runs `ostree fsck`, whose own
// words end the error if it finds anything.
func (c Client) CheckComplete(ctx context.Context, repo, commit string) error {
	if _, err := Run(ctx, Cmd{Name: c.Python, Args: []string{c.Script, "check", "--repo", repo, "--commit", commit}}, nil); err != nil {
		fsck, _ := Run(ctx, Cmd{Name: "ostree", Args: []string{"fsck", "--repo=" + repo}}, nil)
		return fmt.Errorf("%w\nostree fsck says:%s", err, tail(append(fsck.Stdout, fsck.Stderr...), 8))
	}
	if _, err := Run(ctx, Cmd{Name: "ostree", Args: []string{"fsck", "--repo=" + repo}}, nil); err != nil {
		return fmt.Errorf("ostree fsck of %s after importing %s: %w", repo, commit, err)
	}
	return nil
}

// DeployArgs are the kernel arguments of the first deployment; later
// deployments inherit them, as on a real host.
var DeployArgs = []string{"root=/dev/vda", "rw", "console=ttyS0,115200", "panic=-1"}

// NewSysroot creates an ostree sysroot in dir holding one deployment of commit,
// pulled from repo with every object re-verified (--untrusted).
func NewSysroot(ctx context.Context, dir, repo, commit string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	steps := []Cmd{
		{Name: "ostree", Args: []string{"admin", "init-fs", "--modern", dir}},
		{Name: "ostree", Args: []string{"admin", "os-init", "--sysroot=" + dir, OSName}},
		{Name: "ostree", Args: []string{"pull-local", "--repo=" + filepath.Join(dir, "ostree/repo"), "--untrusted", repo, commit}},
	}
	deploy := []string{"admin", "deploy", "--sysroot=" + dir, "--os=" + OSName}
	for _, k := range DeployArgs {
		deploy = append(deploy, "--karg="+k)
	}
	steps = append(steps, Cmd{Name: "ostree", Args: append(deploy, commit)})
	for _, s := range steps {
		if _, err := Run(ctx, s, nil); err != nil {
			return fmt.Errorf("set up a sysroot for %s: %w", commit, err)
		}
	}
	return nil
}

// MakeDisk writes a raw ext4 image of size bytes holding dir's tree.
func MakeDisk(ctx context.Context, dir, image string, size int64) error {
	f, err := os.Create(image) // empties an older image of the same name
	if err != nil {
		return err
	}
	_ = f.Close()
	if err := os.Truncate(image, size); err != nil {
		return err
	}
	_, err = Run(ctx, Cmd{Name: "mkfs.ext4", Args: []string{"-q", "-F", "-E", "lazy_itable_init=1", "-d", dir, image}}, nil)
	if err != nil {
		return fmt.Errorf("make ext4 image of %s: %w", dir, err)
	}
	return nil
}

// DiskFS reads an ext4 image with debugfs.
type DiskFS struct{ Image string }

func (d DiskFS) debugfs(ctx context.Context, request string) (string, error) {
	res, err := Run(ctx, Cmd{Name: "debugfs", Args: []string{"-R", request, d.Image}}, nil)
	if err != nil {
		return "", fmt.Errorf("debugfs %q on %s: %w", request, d.Image, err)
	}
	// debugfs reports a missing path on stderr and still exits 0.
	if s := string(res.Stderr); strings.Contains(s, "File not found") || strings.Contains(s, "not found by ext2_lookup") {
		return "", fmt.Errorf("debugfs %q on %s: %s", request, d.Image, strings.TrimSpace(s))
	}
	return string(res.Stdout), nil
}

// ReadFile returns the content of path (symlinks in the path are followed).
func (d DiskFS) ReadFile(ctx context.Context, path string) (string, error) {
	return d.debugfs(ctx, "cat "+path)
}

// CopyOut copies path to dst on the host.
func (d DiskFS) CopyOut(ctx context.Context, path, dst string) error {
	_ = os.Remove(dst)
	if _, err := d.debugfs(ctx, fmt.Sprintf("dump %s %s", path, dst)); err != nil {
		return err
	}
	if st, err := os.Stat(dst); err != nil || st.Size() == 0 {
		return fmt.Errorf("debugfs could not copy %s out of %s", path, d.Image)
	}
	return nil
}

var lsName = regexp.MustCompile(`^\s*\d+\s+\d+\s+\(\d+\)\s+\d+\s+\d+\s+\d+\s+\S+\s+\S+\s+(.+)$`)

// List names the entries of directory path.
func (d DiskFS) List(ctx context.Context, path string) ([]string, error) {
	out, err := d.debugfs(ctx, "ls -l "+path)
	if err != nil {
		return nil, err
	}
	var names []string
	for _, line := range strings.Split(out, "\n") {
		if m := lsName.FindStringSubmatch(line); m != nil && m[1] != "." && m[1] != ".." {
			names = append(names, m[1])
		}
	}
	return names, nil
}

// LoaderEntries reads ostree's loader entries off a disk image.
func LoaderEntries(ctx context.Context, fs DiskFS) ([]LoaderEntry, error) {
	names, err := fs.List(ctx, "/boot/loader/entries")
	if err != nil {
		return nil, err
	}
	var out []LoaderEntry
	for _, n := range names {
		if !strings.HasSuffix(n, ".conf") {
			continue
		}
		text, err := fs.ReadFile(ctx, "/boot/loader/entries/"+n)
		if err != nil {
			return nil, err
		}
		e, err := ParseLoaderEntry(n, text)
		if err != nil {
			return nil, err
		}
		out = append(out, e)
	}
	return out, nil
}

// RemoveSysroot deletes a sysroot made by NewSysroot: ostree marks each
// deployment's root immutable, so that flag is cleared first.
func RemoveSysroot(ctx context.Context, dir string) error {
	roots, _ := filepath.Glob(filepath.Join(dir, "ostree/deploy/*/deploy/*.[0-9]*"))
	for _, r := range roots {
		if st, err := os.Lstat(r); err != nil || !st.IsDir() {
			continue
		}
		if _, err := Run(ctx, Cmd{Name: "chattr", Args: []string{"-i", r}}, nil); err != nil {
			return fmt.Errorf("remove sysroot %s: %w", dir, err)
		}
	}
	return os.RemoveAll(dir)
}

// bootcDropsBelow are the top-level directories whose contents bootc's importer drops
// from file-system layers (it keeps the directories).
var bootcDropsBelow = []string{"run", "tmp", "proc", "sys", "dev"}

// ImportPlain commits a plain image (DIR:TAG, no ostree.final-diffid) into repo the way
// bootc's ostree backend takes such an image: every layer as file-system content,
// applied in order with its whiteouts (umoci unpack), /etc moved to /usr/etc, the
// contents of bootcDropsBelow dropped, then one `ostree commit` of the tree, which
// hashes every file itself. work is a scratch directory; it returns the commit.
func ImportPlain(ctx context.Context, repo, image, work string) (string, error) {
	bundle := filepath.Join(work, "plain-bundle")
	defer os.RemoveAll(bundle)
	if _, err := Run(ctx, Cmd{Name: "umoci", Args: []string{"unpack", "--image", image, bundle}}, nil); err != nil {
		return "", fmt.Errorf("unpack plain image %s: %w", image, err)
	}
	root := filepath.Join(bundle, "rootfs")
	if _, err := os.Lstat(filepath.Join(root, "usr/etc")); err == nil {
		return "", fmt.Errorf("plain image %s has /usr/etc: bootc refuses it (etc-usretc)", image)
	}
	if err := os.Rename(filepath.Join(root, "etc"), filepath.Join(root, "usr/etc")); err != nil {
		return "", fmt.Errorf("plain image %s: move /etc to /usr/etc: %w", image, err)
	}
	for _, d := range bootcDropsBelow {
		entries, _ := os.ReadDir(filepath.Join(root, d))
		for _, e := range entries {
			if err := os.RemoveAll(filepath.Join(root, d, e.Name())); err != nil {
				return "", err
			}
		}
	}
	res, err := Run(ctx, Cmd{Name: "ostree", Args: []string{"commit", "--repo=" + repo, "--orphan",
		"--tree=dir=" + root, "--subject=" + image}}, nil)
	if err != nil {
		return "", fmt.Errorf("commit plain image %s: %w", image, err)
	}
	commit := strings.TrimSpace(string(res.Stdout))
	if !regexp.MustCompile(`^[0-9a-f]{64}$`).MatchString(commit) {
		return "", fmt.Errorf("commit plain image %s: ostree printed %q", image, commit)
	}
	return commit, nil
}
