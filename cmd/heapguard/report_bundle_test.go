package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/heapguard/heapguard/esxsim"
)

// writeSimBundle writes `esxsim vm-support` of h, its files cut into
// 64 KiB .FRAG pieces so that joining them is part of every run.
func writeSimBundle(t *testing.T, h *esxsim.Host) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "esx-esx01.tgz")
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	if err := esxsim.VMSupport(h.Root(), f, esxsim.VMSupportOptions{Fragment: 64 << 10}); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestReportBundleMatchesRoot: the vm-support bundle of a simulated host
// and the host's root read with --no-live give one verdict, one set of
// ports (mapped to the same VMs), heap events, dumps and line counts, on
// a 5.5 host (logs in /var/log) and an 8.0 one (/var/run/log, /var/log
// links, vmkwarning.log).
func TestReportBundleMatchesRoot(t *testing.T) {
	type view struct {
		Ports      json.RawMessage `json:"ports"`
		HeapEvents json.RawMessage `json:"heap_events"`
		Dumps      json.RawMessage `json:"dumps"`
		Lines      int64           `json:"lines"`
		Verdict    string          `json:"verdict"`
		Reasons    []string        `json:"reasons"`
		Files      []string        `json:"files"`
		NotRead    []string        `json:"not_read"`
		Version    string          `json:"host_version"`
	}
	for _, ver := range []string{"5.5", "8.0"} {
		t.Run(ver, func(t *testing.T) {
			sc, err := esxsim.Preset("seed-incident")
			if err != nil {
				t.Fatal(err)
			}
			h := esxsim.New(t, sc, esxsim.WithVersion(ver))
			// Past vpxa's crash: flaps, heap events and a dump to compare.
			h.Advance(2 * time.Hour)
			bundle := writeSimBundle(t, h)
			var got [2]view
			var codes [2]int
			for i, args := range [][]string{{"--root", h.Root(), "--no-live"}, {bundle}} {
				code, out, stderr := runCLI(t, append([]string{"report", "--json"}, args...)...)
				if err := json.Unmarshal([]byte(out), &got[i]); err != nil {
					t.Fatalf("%v: %v\n%s", args, err, stderr)
				}
				codes[i] = code
			}
			root, bun := got[0], got[1]
			if codes[0] != codes[1] || codes[0] != exitCritical {
				t.Errorf("exit %d from the root, %d from the bundle; want %d", codes[0], codes[1], exitCritical)
			}
			if root.Lines == 0 || len(bun.Files) != len(root.Files) || len(bun.NotRead) != len(root.NotRead) {
				t.Errorf("root read %q (not %q), bundle %q (not %q)", root.Files, root.NotRead, bun.Files, bun.NotRead)
			}
			if !strings.Contains(bun.Version, "VMware ESXi") {
				t.Errorf("bundle's version %q", bun.Version)
			}
			root.Files, bun.Files, root.NotRead, bun.NotRead, bun.Version = nil, nil, nil, nil, ""
			if d := cmp.Diff(root, bun); d != "" {
				t.Errorf("root and bundle differ (-root +bundle):\n%s", d)
			}
			if !strings.Contains(string(bun.Ports), `"vm": "DSVA01"`) {
				t.Errorf("the bundle's ports are not mapped to VMs: %s", bun.Ports)
			}
		})
	}
}

// TestReportBundleTruncated: a bundle cut short is UNKNOWN (exit 3) with
// a clear error, and the text report still shows what was read.
func TestReportBundleTruncated(t *testing.T) {
	sc, err := esxsim.Preset("seed-incident")
	if err != nil {
		t.Fatal(err)
	}
	h := esxsim.New(t, sc, esxsim.WithVersion("6.5"))
	h.Advance(30 * time.Minute)
	p := writeSimBundle(t, h)
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, b[:len(b)*3/4], 0o644); err != nil {
		t.Fatal(err)
	}
	code, out, stderr := runCLI(t, "report", p)
	if code != exitUnknown {
		t.Errorf("exit %d, want %d", code, exitUnknown)
	}
	if !strings.Contains(stderr, "not a readable vm-support bundle") || !strings.Contains(out, "  read "+p+":var/run/log/vmkernel.log") {
		t.Errorf("stdout:\n%s\nstderr:\n%s", out, stderr)
	}
	if code, _, stderr := runCLI(t, "report", p, p); code != exitUnknown || !strings.Contains(stderr, "one vm-support bundle") {
		t.Errorf("two bundles: exit %d, %s", code, stderr)
	}
}
