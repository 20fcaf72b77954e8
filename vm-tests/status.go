package vmtests

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
)

// HostStatus is the part of `bootc status --json` (kind BootcHost, API
// versions org.containers.bootc/v1alpha1 and v1) the VM tests read. Unknown
// fields are ignored so newer bootc releases still parse.
type HostStatus struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	Spec       struct {
		Image *ImageReference `json:"image"`
	} `json:"spec"`
	Status struct {
		Staged         *BootEntry `json:"staged"`
		Booted         *BootEntry `json:"booted"`
		Rollback       *BootEntry `json:"rollback"`
		RollbackQueued bool       `json:"rollbackQueued"`
		Type           *string    `json:"type"`
	} `json:"status"`
}

// ImageReference names an image and how bootc fetches it.
type ImageReference struct {
	Image     string `json:"image"`
	Transport string `json:"transport"`
	Signature any    `json:"signature,omitempty"`
}

// ImageStatus is the image a deployment was made from.
type ImageStatus struct {
	Image        ImageReference `json:"image"`
	Version      *string        `json:"version"`
	Timestamp    *string        `json:"timestamp"`
	ImageDigest  string         `json:"imageDigest"`
	Architecture string         `json:"architecture"`
}

// BootEntry is one deployment: staged, booted or rollback.
type BootEntry struct {
	Image        *ImageStatus `json:"image"`
	CachedUpdate *ImageStatus `json:"cachedUpdate"`
	Incompatible bool         `json:"incompatible"`
	Pinned       bool         `json:"pinned"`
	Ostree       *struct {
		Checksum     string `json:"checksum"`
		DeploySerial int    `json:"deploySerial"`
		Stateroot    string `json:"stateroot"`
	} `json:"ostree"`
}

// ParseHostStatus decodes `bootc status --json` and checks it is a BootcHost
// document, so an error page or a different tool's JSON is not mistaken for it.
func ParseHostStatus(data []byte) (*HostStatus, error) {
	var hs HostStatus
	dec := json.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&hs); err != nil {
		return nil, fmt.Errorf("parse bootc status JSON: %w", err)
	}
	if hs.Kind != "BootcHost" {
		return nil, fmt.Errorf("parse bootc status JSON: kind %q, want BootcHost", hs.Kind)
	}
	if !strings.HasPrefix(hs.APIVersion, "org.containers.bootc/") {
		return nil, fmt.Errorf("parse bootc status JSON: apiVersion %q is not org.containers.bootc/*", hs.APIVersion)
	}
	return &hs, nil
}

// ErrNotBooted means the host is not booted from a bootc image (status.booted
// is null), as on a plain host or in a container.
var ErrNotBooted = errors.New("bootc status: no booted bootc deployment")

// Booted returns the booted deployment's image.
func (hs *HostStatus) Booted() (*ImageStatus, error) {
	if hs.Status.Booted == nil || hs.Status.Booted.Image == nil {
		return nil, ErrNotBooted
	}
	if hs.Status.Booted.Image.ImageDigest == "" {
		return nil, errors.New("bootc status: booted image has no imageDigest")
	}
	return hs.Status.Booted.Image, nil
}

// Version returns the image version or "" when bootc reports none.
func (is *ImageStatus) VersionString() string {
	if is == nil || is.Version == nil {
		return ""
	}
	return *is.Version
}

// SystemState is the word `systemctl is-system-running` prints.
type SystemState string

// ParseSystemState reads the state word and reports whether the system came
// up: "running", or "degraded" (some unit failed, which a fresh VM with no
// network services may well have). Every other state is a failed boot for
// the test, after --wait has let "starting" finish.
func ParseSystemState(out []byte) (SystemState, bool) {
	s := SystemState(strings.TrimSpace(string(out)))
	if i := strings.LastIndexByte(string(s), '\n'); i >= 0 {
		s = SystemState(strings.TrimSpace(string(s[i+1:])))
	}
	return s, s == "running" || s == "degraded"
}
