package vmtests

import (
	"fmt"
	"strconv"
)

// Environment variables that configure the VM suite (documented in README.md).
const (
	EnvBase        = "RECHUNKER_VM_BASE"        // base bootc image
	EnvSmallImage  = "RECHUNKER_VM_SMALL_IMAGE" // image embedded as physically bound
	EnvBin         = "RECHUNKER_BIN"            // rechunker binary; built from ./cmd/rechunker when unset
	EnvLibvirtURI  = "RECHUNKER_VM_LIBVIRT_URI" // passed to bcvk as --connect
	EnvFilesystem  = "RECHUNKER_VM_FILESYSTEM"  // root filesystem of the VM disk
	EnvMemory      = "RECHUNKER_VM_MEMORY"      // VM memory, bcvk syntax
	EnvMinFreeGiB  = "RECHUNKER_VM_MIN_FREE_GIB"
	EnvKeep        = "RECHUNKER_VM_KEEP"    // 1: keep the VM and images after the run
	EnvRequire     = "RECHUNKER_VM_REQUIRE" // 1: missing prerequisites fail instead of skip
	DefaultBase    = "quay.io/fedora/fedora-bootc:42"
	DefaultSmall   = "quay.io/libpod/busybox:latest"
	DefaultFS      = "ext4"
	DefaultMemory  = "4G"
	DefaultFreeGiB = 25
	// MinBcvk is the first bcvk release with `libvirt run --update-from-host`
	// and `--ssh-wait` (v0.7.0, 2025-11-21).
	MinBcvk = "0.7.0"
	// BootcDiffIDReuse is the first bootc release that also reuses a stored
	// layer whose diff_id matches (bootc-dev/bootc PR #2081, in v1.15.0);
	// older releases match compressed blob digests only.
	BootcDiffIDReuse = "1.15.0"
)

// Config is the suite's settings, from the environment.
type Config struct {
	Base       string
	SmallImage string
	Bin        string
	LibvirtURI string
	Filesystem string
	Memory     string
	MinFreeGiB uint64
	Keep       bool
	Require    bool
}

// ConfigFromEnv reads the settings through getenv (os.Getenv in the suite).
func ConfigFromEnv(getenv func(string) string) (Config, error) {
	c := Config{
		Base:       orDefault(getenv(EnvBase), DefaultBase),
		SmallImage: orDefault(getenv(EnvSmallImage), DefaultSmall),
		Bin:        getenv(EnvBin),
		LibvirtURI: getenv(EnvLibvirtURI),
		Filesystem: orDefault(getenv(EnvFilesystem), DefaultFS),
		Memory:     orDefault(getenv(EnvMemory), DefaultMemory),
		MinFreeGiB: DefaultFreeGiB,
		Keep:       getenv(EnvKeep) == "1",
		Require:    getenv(EnvRequire) == "1",
	}
	if v := getenv(EnvMinFreeGiB); v != "" {
		n, err := strconv.ParseUint(v, 10, 32)
		if err != nil {
			return c, fmt.Errorf("%s=%q: want a whole number of GiB", EnvMinFreeGiB, v)
		}
		c.MinFreeGiB = n
	}
	return c, nil
}

func orDefault(v, d string) string {
	if v == "" {
		return d
	}
	return v
}
