package main

import (
	"fmt"

	"github.com/spf13/pflag"

	"github.com/rechunker-dev/rechunker/internal/imageio"
	"github.com/rechunker-dev/rechunker/rechunk"
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

// prevBuild is a previous build as loadPrevious read it.
type prevBuild struct {
	rechunk.Previous
	platform imageio.Platform
	chunked  bool
}

// checkPreviousPlatforms refuses previous builds made for another platform than the
// input: their layout and blobs describe other binaries, and reusing them would mix
// architectures in one image.
func checkPreviousPlatforms(input imageio.Platform, prev []prevBuild) error {
	for _, p := range prev {
		if !p.platform.Matches(input) {
			return fmt.Errorf("previous build %s is %s, but the input is %s; give a previous build of the same platform", p.Ref, p.platform, input)
		}
	}
	return nil
}

// previousOf returns what the planner needs of the previous builds.
func previousOf(prev []prevBuild) []rechunk.Previous {
	out := make([]rechunk.Previous, 0, len(prev))
	for _, p := range prev {
		out = append(out, p.Previous)
	}
	return out
}
