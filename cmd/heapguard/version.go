package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"runtime"
	"runtime/debug"

	"github.com/heapguard/heapguard/doctor"
	"github.com/heapguard/heapguard/metrics"
)

// versionInfo is `heapguard version --json` (docs/json.md).
type versionInfo struct {
	Version string `json:"version"`
	// Commit is absent when the build embedded none (-ldflags or VCS info).
	Commit    string `json:"commit,omitempty"`
	GoVersion string `json:"go_version"`
	OS        string `json:"os"`
	Arch      string `json:"arch"`
	// Runtime: "esxi" (built with tools/rtpatch's ESXi-safe runtime),
	// "stock" (would die on ESXi), "unknown" (the binary could not be read).
	Runtime string `json:"runtime"`
}

// runVersion prints the version line, or with --json the versionInfo.
func runVersion(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("heapguard version", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	asJSON := fs.Bool("json", false, "print JSON")
	err := fs.Parse(args)
	if err == nil && fs.NArg() > 0 {
		err = fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	if err != nil {
		fmt.Fprintf(stderr, "heapguard version: %v\nUsage: heapguard version [--json]\n", err)
		return exitUnknown
	}
	if !*asJSON {
		fmt.Fprintf(stdout, "heapguard %s (commit %s, %s, %s/%s)\n", version, commit, runtime.Version(), runtime.GOOS, runtime.GOARCH)
		return exitOK
	}
	v := versionInfo{Version: version, Commit: commit, GoVersion: runtime.Version(), OS: runtime.GOOS, Arch: runtime.GOARCH, Runtime: "unknown"}
	if v.Commit == "unknown" {
		v.Commit = vcsRevision()
	}
	if exe, err := executablePath(); err == nil {
		if patched, err := doctor.PatchedRuntime(exe); err == nil {
			v.Runtime = map[bool]string{true: "esxi", false: "stock"}[patched]
		}
	}
	enc := json.NewEncoder(stdout)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		fmt.Fprintf(stderr, "heapguard version: %v\n", err)
		return exitUnknown
	}
	return exitOK
}

// buildInfo names this binary in the metrics (heapguard_build_info).
func buildInfo() metrics.BuildInfo {
	b := metrics.BuildInfo{Version: version, Commit: commit, GoVersion: runtime.Version()}
	if b.Commit == "unknown" {
		if rev := vcsRevision(); rev != "" {
			b.Commit = rev
		}
	}
	return b
}

// vcsRevision is the commit go build recorded, when it recorded one.
func vcsRevision() string {
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, s := range bi.Settings {
			if s.Key == "vcs.revision" {
				return s.Value
			}
		}
	}
	return ""
}
