package vmtests

import (
	"context"
	"errors"
	"os/exec"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// machine describes a host for CheckHost: which programs and paths exist,
// what probe commands print or fail with, and free space per path.
type machine struct {
	path    map[string]bool   // programs in PATH
	files   map[string]bool   // existing paths
	outputs map[string]string // "name args..." -> stdout
	fail    map[string]string // "name args..." -> error text
	noKVM   string            // OpenRW error for /dev/kvm
	freeGiB uint64
}

func (m machine) LookPath(name string) (string, error) {
	if m.path[name] {
		return "/usr/bin/" + name, nil
	}
	return "", exec.ErrNotFound
}

func (m machine) Output(_ context.Context, name string, args ...string) ([]byte, error) {
	key := strings.Join(append([]string{name}, args...), " ")
	if e, ok := m.fail[key]; ok {
		return nil, errors.New(e)
	}
	if o, ok := m.outputs[key]; ok {
		return []byte(o), nil
	}
	return nil, errors.New("unexpected command " + key)
}

func (m machine) OpenRW(string) error {
	if m.noKVM != "" {
		return errors.New(m.noKVM)
	}
	return nil
}

func (m machine) Exists(p string) bool { return m.files[p] }

func (m machine) FreeBytes(string) (uint64, error) { return m.freeGiB << 30, nil }

// fedoraHost is a fully equipped Fedora workstation.
func fedoraHost() machine {
	return machine{
		path:    map[string]bool{"podman": true, "skopeo": true, "bcvk": true, "virsh": true},
		files:   map[string]bool{"/dev/kvm": true, "/usr/libexec/qemu-kvm": true, "/usr/libexec/virtiofsd": true},
		outputs: map[string]string{"bcvk --version": "bcvk 0.18.0\n", "virsh uri": "qemu:///system\n"},
		freeGiB: 100,
	}
}

func TestCheckHost(t *testing.T) {
	cfg := Config{MinFreeGiB: 25}
	tests := []struct {
		name   string
		edit   func(*machine, *Config)
		want   []string // Missing.What in order
		reason string   // substring of the first reason
	}{
		{name: "complete host", edit: func(*machine, *Config) {}},
		{name: "no bcvk", edit: func(m *machine, _ *Config) { delete(m.path, "bcvk") }, want: []string{"bcvk"}, reason: "not in PATH; need >= 0.7.0"},
		{name: "old bcvk", edit: func(m *machine, _ *Config) { m.outputs["bcvk --version"] = "bcvk 0.6.0\n" }, want: []string{"bcvk"}, reason: "version 0.6.0, need >= 0.7.0"},
		{name: "bcvk unreadable version", edit: func(m *machine, _ *Config) { m.outputs["bcvk --version"] = "bcvk\n" }, want: []string{"bcvk"}, reason: "cannot read version"},
		{name: "libvirt down", edit: func(m *machine, _ *Config) {
			m.fail["virsh uri"] = "exit status 1: error: failed to connect to the hypervisor\nerror: Failed to connect socket"
		}, want: []string{"libvirt"}, reason: "virsh uri: exit status 1: error: failed to connect to the hypervisor error: Failed"},
		{name: "libvirt URI is probed", edit: func(m *machine, c *Config) {
			c.LibvirtURI = "qemu:///session"
			m.fail["virsh --connect qemu:///session uri"] = "exit status 1"
		}, want: []string{"libvirt"}, reason: "virsh --connect qemu:///session uri"},
		{name: "no virsh", edit: func(m *machine, _ *Config) { delete(m.path, "virsh") }, want: []string{"libvirt"}, reason: "virsh not in PATH"},
		{name: "no /dev/kvm", edit: func(m *machine, _ *Config) { delete(m.files, "/dev/kvm") }, want: []string{"KVM"}, reason: "/dev/kvm does not exist"},
		{name: "kvm denied", edit: func(m *machine, _ *Config) { m.noKVM = "permission denied" }, want: []string{"KVM"}, reason: "not usable: permission denied"},
		{name: "debian qemu", edit: func(m *machine, _ *Config) {
			delete(m.files, "/usr/libexec/qemu-kvm")
			m.path[qemuCandidates()[len(qemuCandidates())-1]] = true
		}},
		{name: "no qemu no virtiofsd", edit: func(m *machine, _ *Config) {
			delete(m.files, "/usr/libexec/qemu-kvm")
			delete(m.files, "/usr/libexec/virtiofsd")
		}, want: []string{"qemu", "virtiofsd"}, reason: "no qemu-kvm"},
		{name: "low disk", edit: func(m *machine, _ *Config) { m.freeGiB = 3 }, want: []string{"disk space"}, reason: "has 3 GiB free, need 25"},
		{name: "disk check off", edit: func(m *machine, c *Config) { m.freeGiB = 3; c.MinFreeGiB = 0 }},
		{name: "bare CI runner", edit: func(m *machine, _ *Config) {
			*m = machine{path: map[string]bool{"podman": true, "skopeo": true}, freeGiB: 50}
		}, want: []string{"bcvk", "libvirt", "KVM", "qemu", "virtiofsd"}, reason: "not in PATH"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m, c := fedoraHost(), cfg
			m.fail = map[string]string{}
			tc.edit(&m, &c)
			miss := CheckHost(context.Background(), m, c)
			var whats []string
			for _, x := range miss {
				whats = append(whats, x.What)
				assert.NotContains(t, x.Reason, "\n", "reasons are one line")
			}
			assert.Equal(t, tc.want, whats)
			if tc.reason != "" {
				require.NotEmpty(t, miss)
				assert.Contains(t, miss[0].Reason, tc.reason)
			}
		})
	}
}

func TestSkipMessage(t *testing.T) {
	msg := SkipMessage([]Missing{{"bcvk", "not in PATH; need >= 0.7.0"}, {"libvirt", "virsh not in PATH"}})
	assert.Equal(t, "vm-tests need a host with podman, bcvk, libvirt and KVM; missing: bcvk (not in PATH; need >= 0.7.0); libvirt (virsh not in PATH)", msg)
	assert.NotContains(t, msg, "\n")
}

// TestCheckThisHost runs the real detection here. Wherever bcvk is absent
// (as on the project's build machines), it must be named in the skip line.
func TestCheckThisHost(t *testing.T) {
	miss := CheckHost(context.Background(), OSHost{}, Config{MinFreeGiB: 1})
	t.Logf("this host: %s", SkipMessage(miss))
	if _, err := exec.LookPath("bcvk"); err == nil {
		t.Skip("bcvk is installed here; nothing to assert about its absence")
	}
	require.NotEmpty(t, miss)
	assert.Contains(t, SkipMessage(miss), "bcvk (not in PATH")
}

func TestVersionAtLeast(t *testing.T) {
	tests := []struct {
		v, min string
		want   bool
	}{
		{"0.18.0", "0.7.0", true},
		{"0.7.0", "0.7.0", true},
		{"0.6.9", "0.7.0", false},
		{"1.0.0", "0.7.0", true},
		{"0.10.0", "0.9.1", true},
	}
	for _, tc := range tests {
		assert.Equal(t, tc.want, VersionAtLeast(tc.v, tc.min), "%s >= %s", tc.v, tc.min)
	}
	v, ok := ParseVersion([]byte("bcvk 0.18.0\n"))
	assert.True(t, ok)
	assert.Equal(t, "0.18.0", v)
	v, ok = ParseVersion([]byte("bootc 1.15.2\n"))
	assert.True(t, ok)
	assert.True(t, VersionAtLeast(v, BootcDiffIDReuse))
	_, ok = ParseVersion([]byte("bootc\n"))
	assert.False(t, ok)
}

func TestConfigFromEnv(t *testing.T) {
	env := map[string]string{}
	get := func(k string) string { return env[k] }
	c, err := ConfigFromEnv(get)
	require.NoError(t, err)
	assert.Equal(t, Config{Base: DefaultBase, SmallImage: DefaultSmall, Filesystem: "ext4", Memory: "4G", MinFreeGiB: 25}, c)

	env = map[string]string{EnvBase: "quay.io/centos-bootc/centos-bootc:stream10", EnvKeep: "1", EnvRequire: "1", EnvMinFreeGiB: "0", EnvLibvirtURI: "qemu:///session"}
	c, err = ConfigFromEnv(get)
	require.NoError(t, err)
	assert.Equal(t, "quay.io/centos-bootc/centos-bootc:stream10", c.Base)
	assert.True(t, c.Keep)
	assert.True(t, c.Require)
	assert.Zero(t, c.MinFreeGiB)
	assert.Equal(t, "qemu:///session", c.LibvirtURI)

	env = map[string]string{EnvMinFreeGiB: "lots"}
	_, err = ConfigFromEnv(get)
	assert.ErrorContains(t, err, EnvMinFreeGiB)
}
