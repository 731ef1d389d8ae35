package main

import (
	"archive/tar"
	"compress/gzip"
	"encoding/json"
	"io"
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
	if code, _, stderr := runCLI(t, "report", "--root", h.Root(), p); code != exitUnknown || !strings.Contains(stderr, "goes without --root") {
		t.Errorf("bundle with --root: exit %d, %s", code, stderr)
	}
}

// extract unpacks a bundle as `tar xzf` would (links kept, .FRAG pieces
// left as they are) and returns its top folder.
func extract(t *testing.T, bundle string) string {
	t.Helper()
	f, err := os.Open(bundle)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	tr := tar.NewReader(zr)
	top := ""
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return filepath.Join(dir, top)
		}
		if err != nil {
			t.Fatal(err)
		}
		if top == "" {
			top, _, _ = strings.Cut(h.Name, "/")
		}
		p := filepath.Join(dir, h.Name)
		switch h.Typeflag {
		case tar.TypeDir:
			err = os.MkdirAll(p, 0o755)
		case tar.TypeSymlink:
			err = os.Symlink(h.Linkname, p)
		case tar.TypeReg:
			var b []byte
			if b, err = io.ReadAll(tr); err == nil {
				err = os.WriteFile(p, b, 0o644)
			}
		}
		if err != nil {
			t.Fatal(err)
		}
	}
}

// TestReportExtractedBundle: `report --root` on an extracted bundle reads
// what `report BUNDLE.tgz` reads: logs left in .FRAG pieces joined in
// order, the version from commands/vmware_-vl.txt, the .vmx files.
func TestReportExtractedBundle(t *testing.T) {
	sc, err := esxsim.Preset("seed-incident")
	if err != nil {
		t.Fatal(err)
	}
	h := esxsim.New(t, sc, esxsim.WithVersion("6.7"))
	h.Advance(2 * time.Hour)
	bundle := writeSimBundle(t, h)
	dir := extract(t, bundle)
	if _, err := os.Stat(filepath.Join(dir, "var/run/log/vmkernel.log.FRAG-00001")); err != nil {
		t.Fatalf("the fixture should leave the log in pieces: %v", err)
	}
	type view struct {
		Lines   int64    `json:"lines"`
		Verdict string   `json:"verdict"`
		Reasons []string `json:"reasons"`
		Version string   `json:"host_version"`
		Files   []string `json:"files"`
	}
	var got [2]view
	for i, args := range [][]string{{bundle}, {"--root", dir, "--no-live"}} {
		_, out, stderr := runCLI(t, append([]string{"report", "--json"}, args...)...)
		if err := json.Unmarshal([]byte(out), &got[i]); err != nil {
			t.Fatalf("%v: %v\n%s", args, err, stderr)
		}
	}
	if len(got[1].Files) != len(got[0].Files) || !strings.HasSuffix(got[1].Files[len(got[1].Files)-1], "var/run/log/vmkernel.log") {
		t.Errorf("files from the bundle %q, from the folder %q", got[0].Files, got[1].Files)
	}
	got[0].Files, got[1].Files = nil, nil
	if d := cmp.Diff(got[0], got[1]); d != "" || got[0].Version == "" {
		t.Errorf("bundle and extracted folder differ (-bundle +folder):\n%s", d)
	}
}
