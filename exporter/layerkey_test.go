package exporter

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"path"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// referenceLayerKey is the layer key as first written, its objects hashed with fmt: keys are recorded in
// stores and in output annotations, so any faster form must give the same bytes.
func referenceLayerKey(e *export, i int) string {
	h := sha256.New()
	spec := e.layers[i].spec
	e.layerKeyHeader(h, spec)
	dirs := map[string]bool{}
	for k := range spec.numObjects() {
		o := spec.object(k)
		fmt.Fprintf(h, "object %s\n", o.sum())
		for _, i := range o.idx {
			p := o.refs[i].Path()
			fmt.Fprintf(h, "path %q\n", p)
			if e.o.FormatVersion < 2 {
				continue
			}
			for d := path.Dir(p); d != "/" && !dirs[d]; d = path.Dir(d) {
				dirs[d] = true
				if dm := e.in.Tree.LookupDir(d); dm != nil {
					fmt.Fprintf(h, "dir %q %s\n", d, dm.MetaSum)
				}
			}
		}
	}
	return hex.EncodeToString(h.Sum(nil))
}

func TestLayerKeyMatchesReference(t *testing.T) {
	nodes := append(sampleNodes(),
		node{path: "/usr/share/odd \"name\"\ttab", kind: 'f', mode: 0o644, data: "q"},
		node{path: "/usr/share/caf\u00e9", kind: 'd', mode: 0o755},
		node{path: "/usr/share/caf\u00e9/\u00fcml\u00e4ut", kind: 'f', mode: 0o644, data: "u"},
	)
	for _, version := range []int{1, 2} {
		t.Run(fmt.Sprintf("format%d", version), func(t *testing.T) {
			store := newStore(t)
			in := buildInput(t, store, nodes)
			e, err := newExport(in, store, topLevelPlan(in), Options{FormatVersion: version, Output: "oci:" + t.TempDir() + ":x"})
			require.NoError(t, err)
			require.NotEmpty(t, e.layers)
			for i := range e.layers {
				assert.Equal(t, referenceLayerKey(e, i), e.layerKey(i), "layer %d", i)
			}
		})
	}
}
