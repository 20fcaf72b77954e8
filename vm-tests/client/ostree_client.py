#!/usr/bin/python3
"""A test client that imports chunked ostree-ext images the way bootc does, with libostree.

rechunker's own reader (bootc/ in the repository) shares assumptions with its writer; this
client does not. It reads an OCI image layout, checks the layout rules of ostree-ext's
importer (commit object first, its detached metadata right after it, only content objects
in chunk layers, every content object preceded by its xattrs entry, no object twice in a
layer) and hands every object to libostree through GObject introspection. libostree
computes each checksum itself and refuses an object whose content does not match its
name, so a checksum rechunker got wrong cannot pass.

Commands (each prints one JSON object on success; errors go to stderr, exit status 1):
  import   --repo R --image DIR[:TAG] [--layers sha256:A,sha256:B] [--ref REF]
           chunk layers first, the commit layer last, one transaction per layer.
           --layers limits the import to those blobs (what an upgrade fetches).
  check    --repo R --commit C
           every object the commit reaches is present; names the path of each missing one.
  rollback [--sysroot /]
           make the second deployment the default, as `rpm-ostree rollback` does.

Run with Debian's /usr/bin/python3 (python3-gi, gir1.2-ostree-1.0).
"""

import argparse
import gzip
import hashlib
import json
import os
import re
import subprocess
import sys
import tarfile

import gi

gi.require_version("OSTree", "1.0")
from gi.repository import Gio, GLib, OSTree  # noqa: E402

REPO_PREFIX = "sysroot/ostree/repo/"
OBJECT_RE = re.compile(r"^objects/([0-9a-f]{2})/([0-9a-f]{62})\.([a-z-]+)$")
METADATA_TYPES = {
    "commit": (OSTree.ObjectType.COMMIT, "(a{sv}aya(say)sstayay)"),
    "dirtree": (OSTree.ObjectType.DIR_TREE, "(a(say)a(sayay))"),
    "dirmeta": (OSTree.ObjectType.DIR_META, "(uuua(ayay))"),
}


class ImportError_(Exception):
    """An image the client refuses; the message names the layer, object and path."""


class HashingReader:
    """Wraps a blob file and checks its sha256 once the whole blob has been read."""

    def __init__(self, path, want_hex):
        self.f = open(path, "rb")
        self.h = hashlib.sha256()
        self.want = want_hex

    def read(self, n=-1):
        b = self.f.read(n)
        self.h.update(b)
        return b

    def finish(self, what):
        while self.read(1 << 20):
            pass
        self.f.close()
        got = self.h.hexdigest()
        if got != self.want:
            raise ImportError_(f"{what}: blob digest is sha256:{got}, manifest says sha256:{self.want}")


def read_blob_json(layout, dgst):
    algo, hexd = dgst.split(":", 1)
    path = os.path.join(layout, "blobs", algo, hexd)
    with open(path, "rb") as f:
        data = f.read()
    if hashlib.sha256(data).hexdigest() != hexd:
        raise ImportError_(f"blob {dgst} in {layout} does not match its digest")
    return json.loads(data)


def open_image(spec):
    """Returns (layout, manifest, config) of an OCI layout DIR[:TAG]."""
    layout, _, tag = spec.partition(":")
    with open(os.path.join(layout, "index.json")) as f:
        index = json.load(f)
    manifests = index.get("manifests", [])
    if tag:
        manifests = [m for m in manifests
                     if m.get("annotations", {}).get("org.opencontainers.image.ref.name") == tag]
    if len(manifests) != 1:
        raise ImportError_(f"{spec}: want exactly one manifest, found {len(manifests)}")
    manifest = read_blob_json(layout, manifests[0]["digest"])
    config = read_blob_json(layout, manifest["config"]["digest"])
    return layout, manifests[0]["digest"], manifest, config


def classify_layers(manifest, config):
    """Splits the layers as ostree-ext's parse_manifest_layout does: (commit, chunks)."""
    labels = (config.get("config") or {}).get("Labels") or {}
    if "ostree.bootable" not in labels and "containers.bootc" not in labels:
        raise ImportError_("Target image does not have ostree.bootable label")
    final = labels.get("ostree.final-diffid")
    if not final:
        raise ImportError_("no ostree.final-diffid label: not a chunked ostree image")
    diffids = config["rootfs"]["diff_ids"]
    layers = manifest["layers"]
    if len(diffids) != len(layers):
        raise ImportError_(f"{len(layers)} layers but {len(diffids)} diff_ids")
    hits = [i for i, d in enumerate(diffids) if d == final]
    if len(hits) != 1:
        raise ImportError_(f"ostree.final-diffid {final} appears {len(hits)} times in diff_ids")
    if hits[0] != len(layers) - 1:
        raise ImportError_("derived (non-ostree) layers after the final chunk: this client imports only ostree layers")
    if len(config.get("history") or []) < len(layers):
        raise ImportError_("Truncated history: fewer history entries than layers")
    return layers[0], layers[1:hits[0] + 1], diffids


def open_tar(layout, desc):
    algo, hexd = desc["digest"].split(":", 1)
    path = os.path.join(layout, "blobs", algo, hexd)
    raw = HashingReader(path, hexd)
    mt = desc["mediaType"]
    if mt.endswith("+gzip") or mt.endswith(".gzip"):
        stream = gzip.GzipFile(fileobj=raw, mode="rb")
    elif mt.endswith("+zstd") or mt.endswith(".zstd"):
        proc = subprocess.Popen(["zstd", "-dc", path], stdout=subprocess.PIPE)
        stream = proc.stdout
    elif mt.endswith(".tar") or mt.endswith("tar"):
        stream = raw
    else:
        raise ImportError_(f"layer {desc['digest']}: unsupported media type {mt}")
    return raw, stream


def file_info_for(member):
    fi = Gio.FileInfo()
    fi.set_attribute_uint32("unix::uid", member.uid)
    fi.set_attribute_uint32("unix::gid", member.gid)
    if member.issym():
        fi.set_file_type(Gio.FileType.SYMBOLIC_LINK)
        fi.set_symlink_target(member.linkname)
        fi.set_attribute_uint32("unix::mode", 0o120000 | (member.mode & 0o7777))
        fi.set_size(0)
    else:
        fi.set_file_type(Gio.FileType.REGULAR)
        fi.set_attribute_uint32("unix::mode", 0o100000 | (member.mode & 0o7777))
        fi.set_size(member.size)
    return fi


class LayerImporter:
    """Imports one layer's objects into repo inside one transaction."""

    def __init__(self, repo, name, commit_layer):
        self.repo = repo
        self.name = name
        self.commit_layer = commit_layer
        self.seen = set()
        self.pending_xattrs = None  # (checksum, bytes)
        self.xattr_blobs = {}  # older streams: <sha256>.file-xattrs, hardlinked
        self.first = True
        self.commit = None
        self.failures = {}  # object path -> message; paths are gathered to the end of the layer
        self.written = 0

    def fail(self, objpath, msg):
        self.failures.setdefault(objpath, [msg, []])

    def member(self, tf, m):
        if not m.name.startswith(REPO_PREFIX):
            if m.islnk() and m.linkname in self.failures:
                self.failures[m.linkname][1].append("/" + m.name)
            return
        rel = m.name[len(REPO_PREFIX):]
        if m.isdir() or rel == "config" or rel.startswith("refs/"):
            return
        match = OBJECT_RE.match(rel)
        if not match:
            raise ImportError_(f"{self.name}: unexpected entry {m.name} in the embedded repository")
        csum, kind = match.group(1) + match.group(2), match.group(3)
        if self.first and self.commit_layer and kind != "commit":
            raise ImportError_(f"{self.name}: first object is {kind} {csum}, the commit layer must start with the commit")
        self.first = False
        if kind == "file-xattrs":
            self.xattr_blobs[m.name] = tf.extractfile(m).read()
        elif kind == "file-xattrs-link":
            self.xattrs_link(tf, m, csum)
        elif kind == "file":
            self.content(tf, m, csum)
        elif kind in METADATA_TYPES or kind == "commitmeta":
            self.metadata(tf, m, csum, kind)
        else:
            raise ImportError_(f"{self.name}: unknown object kind .{kind} ({m.name})")

    def xattrs_link(self, tf, m, csum):
        if self.pending_xattrs is not None:
            raise ImportError_(f"{self.name}: dangling xattrs for {self.pending_xattrs[0]} (no .file follows it)")
        if m.islnk():
            if m.linkname not in self.xattr_blobs:
                raise ImportError_(f"{self.name}: xattrs link of {csum} points at missing {m.linkname}")
            data = self.xattr_blobs[m.linkname]
        elif m.isreg():
            data = tf.extractfile(m).read()
        else:
            raise ImportError_(f"{self.name}: xattrs entry of {csum} is neither a file nor a hardlink")
        self.pending_xattrs = (csum, data)

    def content(self, tf, m, csum):
        if self.pending_xattrs is None or self.pending_xattrs[0] != csum:
            raise ImportError_(f"{self.name}: Missing xattrs reference for content object {csum}")
        xattrs = GLib.Variant.new_from_bytes(GLib.VariantType.new("a(ayay)"),
                                             GLib.Bytes.new(self.pending_xattrs[1]), False)
        self.pending_xattrs = None
        if csum in self.seen:
            raise ImportError_(f"{self.name}: object {csum}.file appears twice in the layer")
        self.seen.add(csum)
        if not (m.isreg() or m.issym()):
            raise ImportError_(f"{self.name}: object {csum}.file is neither a regular file nor a symlink")
        data = tf.extractfile(m).read() if m.isreg() else b""
        if self.repo.has_object(OSTree.ObjectType.FILE, csum, None)[1]:
            return
        stream = Gio.MemoryInputStream.new_from_bytes(GLib.Bytes.new(data))
        _, content, length = OSTree.raw_file_to_content_stream(stream, file_info_for(m), xattrs, None)
        try:
            self.repo.write_content(csum, content, length, None)
            self.written += 1
        except GLib.Error as e:
            self.fail(m.name, f"libostree refused content object {csum}: {e.message}")

    def metadata(self, tf, m, csum, kind):
        if not self.commit_layer:
            raise ImportError_(f"{self.name}: metadata object {csum}.{kind} in a chunk layer")
        if (kind, csum) in self.seen:
            raise ImportError_(f"{self.name}: object {csum}.{kind} appears twice in the layer")
        self.seen.add((kind, csum))
        data = tf.extractfile(m).read()
        if kind == "commitmeta":
            if csum != self.commit:
                raise ImportError_(f"{self.name}: commitmeta {csum} does not follow its commit")
            v = GLib.Variant.new_from_bytes(GLib.VariantType.new("a{sv}"), GLib.Bytes.new(data), False)
            self.repo.write_commit_detached_metadata(csum, v, None)
            return
        if kind == "commit":
            if self.commit is not None:
                raise ImportError_(f"{self.name}: a second commit object {csum}")
            self.commit = csum
        objtype, vtype = METADATA_TYPES[kind]
        v = GLib.Variant.new_from_bytes(GLib.VariantType.new(vtype), GLib.Bytes.new(data), False)
        try:
            self.repo.write_metadata(objtype, csum, v, None)
            self.written += 1
        except GLib.Error as e:
            raise ImportError_(f"{self.name}: libostree refused {kind} object {csum}: {e.message}")

    def finish(self):
        if self.pending_xattrs is not None:
            raise ImportError_(f"{self.name}: dangling xattrs for {self.pending_xattrs[0]} at the end of the layer")
        if self.commit_layer and self.commit is None:
            raise ImportError_(f"{self.name}: no commit object")
        if self.failures:
            lines = []
            for objpath, (msg, paths) in sorted(self.failures.items()):
                lines.append(f"{msg} (paths: {', '.join(paths[:5]) or 'none in this layer'})")
            raise ImportError_(f"{self.name}: " + "; ".join(lines))


def import_layer(repo, layout, desc, name, commit_layer):
    raw, stream = open_tar(layout, desc)
    li = LayerImporter(repo, name, commit_layer)
    repo.prepare_transaction(None)
    try:
        with tarfile.open(fileobj=stream, mode="r|") as tf:
            for m in tf:
                li.member(tf, m)
        li.finish()
        raw.finish(name)
        repo.commit_transaction(None)
    except BaseException:
        repo.abort_transaction(None)
        raise
    return li


def cmd_import(args):
    repo = OSTree.Repo.new(Gio.File.new_for_path(args.repo))
    repo.open(None)
    layout, mdigest, manifest, config = open_image(args.image)
    commit_desc, chunks, _ = classify_layers(manifest, config)
    wanted = set(filter(None, (args.layers or "").split(",")))
    known = {commit_desc["digest"]} | {c["digest"] for c in chunks}
    unknown = wanted - known
    if unknown:
        raise ImportError_(f"--layers names blobs the manifest does not have: {sorted(unknown)}")
    imported, written = [], 0
    # Chunks first, the commit layer last: the order of ostree-ext's importer.
    order = [(c, f"layer {i + 1} ({c['digest']})", False) for i, c in enumerate(chunks)]
    order.append((commit_desc, f"layer 0 ({commit_desc['digest']})", True))
    commit = None
    for desc, name, is_commit in order:
        if wanted and desc["digest"] not in wanted:
            continue
        li = import_layer(repo, layout, desc, name, is_commit)
        imported.append(desc["digest"])
        written += li.written
        if is_commit:
            commit = li.commit
    if commit is None:
        raise ImportError_("the commit layer was not imported (it changes in every build; --layers must name it)")
    if args.ref:
        repo.prepare_transaction(None)
        repo.transaction_set_ref(None, args.ref, commit)
        repo.commit_transaction(None)
    label = ((config.get("config") or {}).get("Labels") or {}).get("ostree.commit", "")
    json.dump({"commit": commit, "label_commit": label, "manifest_digest": mdigest, "layers_imported": imported,
               "layers_total": len(chunks) + 1, "objects_written": written}, sys.stdout)
    print()


def dirtree_walk(repo, tree, meta, path, missing):
    for csum, kind in ((meta, OSTree.ObjectType.DIR_META), (tree, OSTree.ObjectType.DIR_TREE)):
        if not repo.has_object(kind, csum, None)[1]:
            missing.append((csum + "." + ("dirmeta" if kind == OSTree.ObjectType.DIR_META else "dirtree"), path or "/"))
    if not repo.has_object(OSTree.ObjectType.DIR_TREE, tree, None)[1]:
        return
    _, v = repo.load_variant(OSTree.ObjectType.DIR_TREE, tree)
    files, dirs = v.get_child_value(0), v.get_child_value(1)
    for i in range(files.n_children()):
        name, csum = files.get_child_value(i).unpack()
        csum = bytes(csum).hex()
        if not repo.has_object(OSTree.ObjectType.FILE, csum, None)[1]:
            missing.append((csum + ".file", f"{path}/{name}"))
    for i in range(dirs.n_children()):
        name, t, m = dirs.get_child_value(i).unpack()
        dirtree_walk(repo, bytes(t).hex(), bytes(m).hex(), f"{path}/{name}", missing)


def cmd_check(args):
    repo = OSTree.Repo.new(Gio.File.new_for_path(args.repo))
    repo.open(None)
    if not repo.has_object(OSTree.ObjectType.COMMIT, args.commit, None)[1]:
        raise ImportError_(f"commit {args.commit} is not in {args.repo}")
    _, commit = repo.load_variant(OSTree.ObjectType.COMMIT, args.commit)
    tree = bytes(commit.get_child_value(6).unpack()).hex()
    meta = bytes(commit.get_child_value(7).unpack()).hex()
    missing = []
    dirtree_walk(repo, tree, meta, "", missing)
    if missing:
        shown = "; ".join(f"object {o} for path {p}" for o, p in missing[:20])
        raise ImportError_(f"commit {args.commit} is incomplete: {len(missing)} objects missing: {shown}")
    json.dump({"commit": args.commit, "complete": True}, sys.stdout)
    print()


def cmd_rollback(args):
    sysroot = OSTree.Sysroot.new(Gio.File.new_for_path(args.sysroot))
    sysroot.load(None)
    deps = sysroot.get_deployments()
    if len(deps) < 2:
        raise ImportError_(f"rollback needs two deployments, {args.sysroot} has {len(deps)}")
    order = [deps[1], deps[0]] + deps[2:]
    sysroot.write_deployments(order, None)
    json.dump({"default": deps[1].get_csum(), "rollback": deps[0].get_csum()}, sys.stdout)
    print()


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    imp = sub.add_parser("import")
    imp.add_argument("--repo", required=True)
    imp.add_argument("--image", required=True)
    imp.add_argument("--layers")
    imp.add_argument("--ref")
    chk = sub.add_parser("check")
    chk.add_argument("--repo", required=True)
    chk.add_argument("--commit", required=True)
    rb = sub.add_parser("rollback")
    rb.add_argument("--sysroot", default="/")
    args = p.parse_args()
    try:
        {"import": cmd_import, "check": cmd_check, "rollback": cmd_rollback}[args.cmd](args)
    except (ImportError_, GLib.Error, OSError, ValueError, KeyError, tarfile.TarError) as e:
        msg = e.message if isinstance(e, GLib.Error) else str(e)
        print(f"ostree_client {args.cmd}: {msg}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
