package main

import (
	"github.com/spf13/pflag"

	"github.com/rechunker-dev/rechunker/internal/imageio"
)

// platformFlag is --platform OS/ARCH[/VARIANT], the one way every command that opens
// images is told which instance of a multi-platform image to use. Commands that had
// --arch ARCH keep it as a shorter spelling.
type platformFlag struct {
	platform string
	arch     string
}

const platformUsage = "OS/ARCH[/VARIANT] to use, e.g. linux/arm64: the instance picked from image indexes (multi-arch images), and what a single image must be (default: the host's, and any single image)"

func (f *platformFlag) register(fs *pflag.FlagSet, withArch bool) {
	fs.StringVar(&f.platform, "platform", "", platformUsage)
	if withArch {
		fs.StringVar(&f.arch, "arch", "", "architecture only (OCI naming, e.g. arm64): --platform with the host's OS")
	}
}

// resolve returns the platform asked for; the zero value asks for the host's.
func (f *platformFlag) resolve() (imageio.Platform, error) {
	var p imageio.Platform
	if f.platform != "" {
		var err error
		if p, err = imageio.ParsePlatform(f.platform); err != nil {
			return p, usageErr("--platform: %v", err)
		}
	}
	switch {
	case f.arch == "":
	case f.platform == "":
		p.Architecture = f.arch
	case f.arch != p.Architecture:
		return p, usageErr("--arch %s contradicts --platform %s", f.arch, f.platform)
	}
	return p, nil
}
