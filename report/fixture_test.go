package report

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"flag"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/heapguard/heapguard/esxsim"
	"github.com/heapguard/heapguard/policy"
)

var update = flag.Bool("update", false, "rewrite testdata/vm-support-esxi65.tgz")

const fixtureBundle = "testdata/vm-support-esxi65.tgz"

// buildFixture makes testdata/vm-support-esxi65.tgz: a simulated 6.5
// host's bundle (esxsim vm-support) with public real text put in where
// some exists (testdata/SOURCES.md says which member is what).
func buildFixture(t *testing.T) []byte {
	t.Helper()
	h := esxsim.New(t, esxsim.Incident(), esxsim.WithVersion("6.5"))
	h.Advance(20 * time.Minute)
	var sim bytes.Buffer
	if err := esxsim.VMSupport(h.Root(), &sim, esxsim.VMSupportOptions{Fragment: -1}); err != nil {
		t.Fatal(err)
	}
	read := func(p string) []byte {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	real65 := strings.SplitAfter(string(read("../collector/testdata/vmkernel-5x.log")), "\n")[17:48]
	var warnings strings.Builder
	for _, l := range real65 {
		if strings.Contains(l, ")WARNING: ") {
			warnings.WriteString(l)
		}
	}
	var rotated bytes.Buffer
	zw := gzip.NewWriter(&rotated)
	zw.Write(read(h.Path("/var/log/vmkernel.log")))
	zw.Close()
	const top = "esx-esxi65-lab-2018-02-20--10.15-68921/"
	replace := map[string][]byte{
		"var/run/log/vmkernel.log": []byte(strings.Join(real65, "")),
		"commands/vmware_-vl.txt":  read("../esxsim/testdata/vmware-vl-esxi65.txt"),
	}
	extra := []struct {
		name string
		body []byte
	}{
		{"var/run/log/vmkernel.0.gz", rotated.Bytes()},
		{"var/run/log/vmkwarning.log", []byte(warnings.String())},
		{"var/run/log/hostd.log", read("../collector/testdata/hostd-9x-continuation.log")},
		{"commands/vsi_traverse_-s.txt.FRAG-00000", []byte("unverified placeholder: the real file is a vsish cache (vsish -c), format unknown\n")},
		{"commands/vsi_traverse_-s.txt.FRAG-00001", []byte("unverified placeholder, piece 2\n")},
	}
	var out bytes.Buffer
	ozw := gzip.NewWriter(&out)
	tw := tar.NewWriter(ozw)
	zr, err := gzip.NewReader(&sim)
	if err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(zr)
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		_, rel, _ := strings.Cut(hdr.Name, "/")
		hdr.Name = top + rel
		body, _ := io.ReadAll(tr)
		if b, ok := replace[rel]; ok {
			body = b
		}
		if hdr.Typeflag == tar.TypeReg {
			hdr.Size = int64(len(body))
		}
		if err := tw.WriteHeader(hdr); err != nil {
			t.Fatal(err)
		}
		tw.Write(body)
		if rel == "var/run/log/vmkernel.log" {
			for _, e := range extra {
				h := &tar.Header{Typeflag: tar.TypeReg, Name: top + e.name, Mode: 0o644, Size: int64(len(e.body)), ModTime: hdr.ModTime}
				if err := tw.WriteHeader(h); err != nil {
					t.Fatal(err)
				}
				tw.Write(e.body)
			}
		}
	}
	tw.Close()
	ozw.Close()
	return out.Bytes()
}

// TestFixtureBundle reads the checked-in bundle: real 6.5 vmkernel lines
// next to a simulated rotated copy, vmkwarning lines that repeat vmkernel
// ones (not read), a hostd log (read as the hostd log), the VSI dump (not
// read), the real `vmware -vl` text, and .vmx files that map the MACs.
func TestFixtureBundle(t *testing.T) {
	if *update {
		if err := os.WriteFile(fixtureBundle, buildFixture(t), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	r := Build(Options{Bundle: fixtureBundle})
	pre := fixtureBundle + ":"
	want := []string{pre + "var/run/log/vmkernel.log", pre + "var/run/log/vmkernel.0.gz", pre + "var/run/log/hostd.log"}
	if d := cmp.Diff(want, r.Files); d != "" {
		t.Errorf("files (-want +got):\n%s", d)
	}
	if d := cmp.Diff([]AgentLog{{File: pre + "var/run/log/hostd.log", Log: "hostd"}}, r.AgentLogs); d != "" {
		t.Errorf("agent logs (-want +got):\n%s", d)
	}
	var notRead []string
	for _, n := range r.NotRead {
		name, _, _ := strings.Cut(strings.TrimPrefix(n, pre), ":")
		notRead = append(notRead, filepath.Base(strings.Fields(name)[0]))
	}
	if d := cmp.Diff([]string{"vmkwarning.log", "vsi_traverse_-s.txt"}, notRead); d != "" {
		t.Errorf("not read (-want +got):\n%s\n%q", d, r.NotRead)
	}
	if r.HostVersion != "VMware ESXi 6.5.0 build-5969303" {
		t.Errorf("version %q", r.HostVersion)
	}
	if r.Status != policy.Warn || len(r.Errors) != 0 {
		t.Errorf("verdict %s %q, errors %q", r.Verdict, r.Reasons, r.Errors)
	}
	flapping := 0
	for _, p := range r.Ports {
		if p.Flapping && strings.HasPrefix(p.VM, "DSVA") {
			flapping++
		}
	}
	if flapping != 3 {
		t.Errorf("%d flapping ports mapped to DSVA VMs, want 3: %+v", flapping, r.Ports)
	}
	if r.Unparsed > 5 {
		t.Errorf("%d unparsed lines: the real 6.5 lines should parse (5 are a multi-line record)", r.Unparsed)
	}
}
