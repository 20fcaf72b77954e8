#!/usr/bin/env python3
"""Append an uncompressed layer tar to an image of an OCI layout under a new tag.

    add-layer.py LAYOUT SRC_TAG DST_TAG LAYER.tar

Used to measure SELinux labelling on the bench images: LAYER.tar holds
etc/selinux/config (SELINUXTYPE=default) and the file contexts and policy.33 of
Debian's selinux-policy-default (see docs/benchmarks.md).
"""
import hashlib, json, os, shutil, sys
layout, src_tag, dst_tag, tarpath = sys.argv[1:5]
def blob(d): return os.path.join(layout, 'blobs', 'sha256', d.split(':')[1])
def put(data):
    d = 'sha256:' + hashlib.sha256(data).hexdigest()
    p = blob(d)
    if not os.path.exists(p):
        open(p, 'wb').write(data)
    return d
idx = json.load(open(os.path.join(layout, 'index.json')))
m = [x for x in idx['manifests'] if x.get('annotations', {}).get('org.opencontainers.image.ref.name') == src_tag][0]
man = json.load(open(blob(m['digest'])))
cfg = json.load(open(blob(man['config']['digest'])))
data = open(tarpath, 'rb').read()
ld = put(data)
man['layers'].append({'mediaType': 'application/vnd.oci.image.layer.v1.tar', 'digest': ld, 'size': len(data)})
cfg['rootfs']['diff_ids'].append(ld)
cfg.setdefault('history', []).append({'created_by': 'add selinux policy'})
cb = json.dumps(cfg).encode(); cd = put(cb)
man['config'] = {'mediaType': man['config']['mediaType'], 'digest': cd, 'size': len(cb)}
mb = json.dumps(man).encode(); md = put(mb)
idx['manifests'] = [x for x in idx['manifests'] if x.get('annotations', {}).get('org.opencontainers.image.ref.name') != dst_tag]
idx['manifests'].append({'mediaType': m['mediaType'], 'digest': md, 'size': len(mb), 'annotations': {'org.opencontainers.image.ref.name': dst_tag}})
json.dump(idx, open(os.path.join(layout, 'index.json'), 'w'))
print(dst_tag, md)
