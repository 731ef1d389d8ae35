package esxsim

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// tarMembers lists a bundle's members: name -> body, or "->target" for a
// link.
func tarMembers(t *testing.T, data []byte) ([]string, map[string]string) {
	t.Helper()
	zr, err := gzip.NewReader(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(zr)
	var names []string
	m := map[string]string{}
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return names, m
		}
		if err != nil {
			t.Fatal(err)
		}
		names = append(names, h.Name)
		switch h.Typeflag {
		case tar.TypeSymlink:
			m[h.Name] = "->" + h.Linkname
		case tar.TypeReg:
			b, _ := io.ReadAll(tr)
			m[h.Name] = string(b)
		}
	}
}

// TestVMSupportLayout: the bundle has vm-support's top folder, the logs
// where the version keeps them (var/run/log and var/log links on 6.5 and
// later, var/log before), commands/vmware_-vl.txt and the .vmx files,
// and large files in .FRAG-NNNNN pieces that join back to the file.
func TestVMSupportLayout(t *testing.T) {
	for _, tc := range []struct {
		ver, logDir string
		links       bool
	}{{"5.5", "var/log", false}, {"6.5", "var/run/log", true}, {"8.0", "var/run/log", true}} {
		t.Run(tc.ver, func(t *testing.T) {
			h := New(t, Incident(), WithVersion(tc.ver))
			h.Advance(20 * time.Minute)
			var buf bytes.Buffer
			if err := VMSupport(h.Root(), &buf, VMSupportOptions{Fragment: 32 << 10}); err != nil {
				t.Fatal(err)
			}
			names, m := tarMembers(t, buf.Bytes())
			top, _, _ := strings.Cut(names[0], "/")
			if !regexp.MustCompile(`^esx-esx01\.lab\.local-\d{4}-\d\d-\d\d--\d\d\.\d\d-\d+$`).MatchString(top) {
				t.Errorf("top folder %q", top)
			}
			live, err := os.ReadFile(h.Path("/var/log/vmkernel.log"))
			if err != nil {
				t.Fatal(err)
			}
			var joined strings.Builder
			for i := 0; ; i++ {
				piece, ok := m[top+"/"+tc.logDir+fmt.Sprintf("/vmkernel.log.FRAG-%05d", i)]
				if !ok {
					break
				}
				joined.WriteString(piece)
			}
			if joined.Len() == 0 || joined.String() != string(live) {
				t.Errorf("%s/vmkernel.log pieces join to %d bytes, the host's log has %d", tc.logDir, joined.Len(), len(live))
			}
			first, inVarLog := m[top+"/var/log/vmkernel.log.FRAG-00000"]
			if tc.links {
				if got := m[top+"/var/log/vmkernel.log"]; got != "->/var/run/log/vmkernel.log" {
					t.Errorf("var/log/vmkernel.log = %q, want a link to /var/run/log/vmkernel.log", got)
				}
			} else if !inVarLog || strings.HasPrefix(first, "->") {
				t.Errorf("5.5: var/log/vmkernel.log is not the file")
			}
			if got, want := m[top+"/commands/vmware_-vl.txt"], RenderVmware(h.State().Ver(), true, true); got != want {
				t.Errorf("vmware_-vl.txt %q, want %q", got, want)
			}
			for _, f := range []string{"action.log", "error.log", "etc/vmware/esx.conf"} {
				if _, ok := m[top+"/"+f]; !ok {
					t.Errorf("no %s: bundle loaders look for it", f)
				}
			}
			vmx := 0
			for n := range m {
				if strings.HasPrefix(n, top+"/vmfs/volumes/") && strings.HasSuffix(n, ".vmx") {
					vmx++
				}
			}
			if vmx != len(h.State().VMs) {
				t.Errorf("%d .vmx files, want %d", vmx, len(h.State().VMs))
			}
			for n := range m {
				if strings.Contains(n, "esxsim") {
					t.Errorf("the simulator's own file %s is in the bundle", n)
				}
			}
		})
	}
}

// TestVMSupportCommand: `esxsim vm-support` needs --root and --out, and
// writes the bundle under its name only when it is whole.
func TestVMSupportCommand(t *testing.T) {
	h := New(t, Incident())
	out := filepath.Join(t.TempDir(), "b.tgz")
	var stdout, stderr bytes.Buffer
	if code := Main([]string{"esxsim", "vm-support", "--root", h.Root()}, nil, &stdout, &stderr); code != 2 {
		t.Errorf("without --out: exit %d, want 2 (usage)", code)
	}
	if code := Main([]string{"esxsim", "vm-support", "--root", h.Root(), "--out", out}, nil, &stdout, &stderr); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if names, _ := tarMembers(t, b); len(names) < 5 {
		t.Errorf("bundle members %q", names)
	}
	if _, err := os.Stat(out + ".tmp"); err == nil {
		t.Error("the temporary file is left behind")
	}
	bad := filepath.Join(t.TempDir(), "c.tgz")
	if code := Main([]string{"esxsim", "vm-support", "--root", t.TempDir(), "--out", bad}, nil, &stdout, &stderr); code != 1 {
		t.Errorf("on a folder with no simulated host: exit %d, want 1", code)
	}
	if left, _ := filepath.Glob(bad + "*"); len(left) > 0 {
		t.Errorf("a failed bundle left %q", left)
	}
}
