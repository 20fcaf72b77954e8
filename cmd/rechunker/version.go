package main

import (
	"encoding/json"
	"fmt"
	"runtime"
	"runtime/debug"

	"github.com/spf13/cobra"
)

// version, when set at link time (go build -ldflags "-X main.version=v1.2.3"), replaces
// the module version Go records: builds from a checkout record only "(devel)". It is
// never assigned at run time.
var version string

const unknown = "unknown"

// versionInfo is what `rechunker version` reports. hack/ scripts build with
// -buildvcs=false, so the revision and its time are often unknown.
type versionInfo struct {
	Version  string `json:"version"`
	Revision string `json:"revision"`
	Time     string `json:"time"`
	// Modified is whether the checkout had uncommitted changes; null when unknown.
	Modified  *bool  `json:"modified"`
	GoVersion string `json:"go_version"`
	Platform  string `json:"platform"`
}

// readVersion describes this binary from its build information (ok false when it has
// none) and the link-time override.
func readVersion(info *debug.BuildInfo, ok bool, override string) versionInfo {
	v := versionInfo{
		Version: unknown, Revision: unknown, Time: unknown,
		GoVersion: runtime.Version(), Platform: runtime.GOOS + "/" + runtime.GOARCH,
	}
	if ok {
		if m := info.Main.Version; m != "" && m != "(devel)" {
			v.Version = m
		}
		if info.GoVersion != "" {
			v.GoVersion = info.GoVersion
		}
		for _, s := range info.Settings {
			v.setVCS(s)
		}
	}
	if override != "" {
		v.Version = override
	}
	return v
}

func (v *versionInfo) setVCS(s debug.BuildSetting) {
	switch s.Key {
	case "vcs.revision":
		v.Revision = s.Value
	case "vcs.time":
		v.Time = s.Value
	case "vcs.modified":
		modified := s.Value == "true"
		v.Modified = &modified
	}
}

// String is the one line `rechunker version` and `rechunker --version` print.
func (v versionInfo) String() string {
	rev := v.Revision
	if v.Modified != nil && *v.Modified {
		rev += " (modified)"
	}
	return fmt.Sprintf("rechunker %s, revision %s, committed %s, %s %s",
		v.Version, rev, v.Time, v.GoVersion, v.Platform)
}

func currentVersion() versionInfo {
	info, ok := debug.ReadBuildInfo()
	return readVersion(info, ok, version)
}

func newVersionCmd() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "version [--json]",
		Short: "Print the version, VCS revision and Go version this binary was built with",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			v := currentVersion()
			if !asJSON {
				_, err := fmt.Fprintln(cmd.OutOrStdout(), v)
				return err
			}
			enc := json.NewEncoder(cmd.OutOrStdout())
			enc.SetIndent("", "  ")
			return enc.Encode(v)
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the version as a JSON object")
	return cmd
}

// setVersionFlag makes `rechunker --version` print the line `rechunker version` prints.
func setVersionFlag(root *cobra.Command) {
	root.Version = currentVersion().String()
	root.SetVersionTemplate("{{.Version}}\n")
}
