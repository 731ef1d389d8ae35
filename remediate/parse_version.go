package remediate

import (
	"fmt"
	"io"
	"regexp"
	"strconv"
	"strings"
)

// Version is the host's product version.
type Version struct {
	Product string `json:"product"`         // "VMware ESXi"
	Version string `json:"version"`         // "6.7.0"
	Major   int    `json:"major"`           // 6
	Minor   int    `json:"minor"`           // 7
	Build   string `json:"build,omitempty"` // digits only: "8169922" (esxcli prints "Releasebuild-8169922")
	// Update is the update level as digits ("1"); "0" for GA; "" when the
	// output does not say (`vmware -v`).
	Update string `json:"update,omitempty"`
	Patch  string `json:"patch,omitempty"`
}

var (
	versionNum  = regexp.MustCompile(`^(\d+)\.(\d+)(?:\.\d+)*$`)
	buildDigits = regexp.MustCompile(`(\d+)$`)
	// "VMware ESXi 5.5.0 build-1623387", "VMware ESXi 5.5.0 Update 1", "VMware ESXi 5.0.0 GA".
	vmwareLine = regexp.MustCompile(`^(.*?)\s+(\d+\.\d+(?:\.\d+)*)(?:\s+(.*))?$`)
	updateWord = regexp.MustCompile(`(?i)\bupdate\s+(\d+)\b`)
	buildWord  = regexp.MustCompile(`(?i)\bbuild-(\d+)\b`)
)

func (v *Version) setVersion(s string) bool {
	m := versionNum.FindStringSubmatch(s)
	if m == nil {
		return false
	}
	major, err1 := strconv.Atoi(m[1])
	minor, err2 := strconv.Atoi(m[2])
	if err1 != nil || err2 != nil {
		return false
	}
	v.Version, v.Major, v.Minor = s, major, minor
	return true
}

// ParseVersion parses `esxcli system version get` ("   Product: VMware
// ESXi", "   Version: 6.7.0", "   Build: Releasebuild-8169922", "   Update:
// 0", "   Patch: 0"; 9.0 adds "Maintenance:"). Unknown keys are ignored;
// no usable Version is an error wrapping ErrBadOutput.
func ParseVersion(r io.Reader) (Version, error) {
	var v Version
	badVersion := ""
	err := scanLines(r, func(line string) {
		k, val, ok := strings.Cut(line, ":")
		if !ok {
			return
		}
		val = strings.TrimSpace(val)
		switch strings.ToLower(strings.TrimSpace(k)) {
		case "product":
			v.Product = val
		case "version":
			if !v.setVersion(val) {
				badVersion = val
			}
		case "build":
			if m := buildDigits.FindStringSubmatch(val); m != nil {
				v.Build = m[1]
			}
		case "update":
			v.Update = val
		case "patch":
			v.Patch = val
		}
	})
	if err != nil {
		return v, fmt.Errorf("parse esxcli version: %w", err)
	}
	if v.Version == "" {
		return v, fmt.Errorf("parse esxcli version: no version (saw %s): %w", quoteClip(badVersion), ErrBadOutput)
	}
	return v, nil
}

// ParseVmwareV parses `vmware -v` ("VMware ESXi 4.1.0 build-702113"),
// `vmware -l` ("VMware ESXi 5.0.0 GA") and `vmware -vl` (both lines). "GA"
// is update "0".
func ParseVmwareV(r io.Reader) (Version, error) {
	var (
		v     Version
		first string
	)
	err := scanLines(r, func(line string) {
		t := strings.TrimSpace(line)
		if t == "" {
			return
		}
		m := vmwareLine.FindStringSubmatch(t)
		if m == nil {
			if first == "" {
				first = t
			}
			return
		}
		if v.Version == "" {
			if !v.setVersion(m[2]) {
				return
			}
			v.Product = m[1]
		}
		tail := m[3]
		if b := buildWord.FindStringSubmatch(tail); b != nil {
			v.Build = b[1]
		}
		if u := updateWord.FindStringSubmatch(tail); u != nil {
			v.Update = u[1]
		} else if strings.EqualFold(strings.TrimSpace(tail), "GA") {
			v.Update = "0"
		}
	})
	if err != nil {
		return v, fmt.Errorf("parse vmware -v: %w", err)
	}
	if v.Version == "" {
		return v, fmt.Errorf("parse vmware -v: no version in %s: %w", quoteClip(first), ErrBadOutput)
	}
	return v, nil
}
