package bundle

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// member is one tar entry of a test bundle.
type member struct {
	name, body string
	link       string // a symlink's target
	size       int64  // a header size that lies (0: len(body))
}

const top = "esx-esx01.lab.local-2026-04-10--08.27-2099421/"

// makeTGZ builds a gzipped tar; with cut > 0 it keeps only that many
// bytes, as a transfer cut short would.
func makeTGZ(t testing.TB, ms []member, cut int) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	tw := tar.NewWriter(zw)
	for _, m := range ms {
		h := &tar.Header{Name: m.name, Mode: 0o644, Size: int64(len(m.body)), Typeflag: tar.TypeReg}
		if m.link != "" {
			h.Typeflag, h.Linkname, h.Size = tar.TypeSymlink, m.link, 0
		}
		if m.size != 0 {
			h.Size = m.size
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if m.link == "" && m.size == 0 {
			if _, err := tw.Write([]byte(m.body)); err != nil {
				t.Fatal(err)
			}
		}
	}
	if cut == 0 {
		tw.Close()
	} else {
		tw.Flush()
	}
	zw.Close()
	b := buf.Bytes()
	if cut > 0 && cut < len(b) {
		b = b[:cut]
	}
	return b
}

// collect reads a bundle and returns each log handed over with its text.
func collect(t testing.TB, data []byte) (map[string]string, *Result, error) {
	t.Helper()
	got := map[string]string{}
	res, err := Read(bytes.NewReader(data), func(l Log, r io.Reader) error {
		b, err := io.ReadAll(r)
		got[l.Name] += string(b)
		return err
	})
	return got, res, err
}

func TestReadLogsVersionAndVMX(t *testing.T) {
	vmx := top + "vmfs/volumes/5f1e-uuid/DSVA01/DSVA01.vmx"
	data := makeTGZ(t, []member{
		{name: top + "var/run/log/vmkernel.log", body: "line 1\n"},
		{name: top + "var/log/vmkernel.log", link: "/var/run/log/vmkernel.log"},
		{name: top + "var/run/log/vmkernel.0.gz", body: "gz bytes"},
		{name: top + "var/run/log/hostd.log", body: "hostd\n"},
		{name: top + "var/run/log/shell.log", body: "not ours\n"},
		{name: top + "commands/vmware_-vl.txt", body: "VMware ESXi 6.5.0 build-5969303\nVMware ESXi 6.5.0 Update 1\n"},
		{name: vmx, body: "displayName = \"DSVA01\"\n"},
		{name: top + "commands/vsi_traverse_-s.txt.FRAG-00000", body: "\x00\x01cache"},
	}, 0)
	got, res, err := collect(t, data)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"var/run/log/vmkernel.log":  "line 1\n",
		"var/run/log/vmkernel.0.gz": "gz bytes",
		"var/run/log/hostd.log":     "hostd\n",
	}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("logs (-want +got):\n%s", d)
	}
	if res.Version != "VMware ESXi 6.5.0 build-5969303" {
		t.Errorf("version %q", res.Version)
	}
	if _, ok := res.VMX["vmfs/volumes/5f1e-uuid/DSVA01/DSVA01.vmx"]; !ok {
		t.Errorf("vmx not kept: %v", res.VMX)
	}
	if len(res.VSIDump) != 1 || len(res.Problems) != 0 {
		t.Errorf("VSI dump %v, problems %v", res.VSIDump, res.Problems)
	}
}

// TestReadJoinsFragments: vm-support splits files over 1 MB into
// .FRAG-NNNNN pieces; a line cut between two pieces is one line.
func TestReadJoinsFragments(t *testing.T) {
	p := top + "var/run/log/vmkernel.log.FRAG-"
	data := makeTGZ(t, []member{
		{name: p + "00000", body: "first line\nsecond "},
		{name: p + "00001", body: "half\nthird"},
		{name: p + "00002", body: " line\n"},
		{name: top + "var/run/log/vobd.log", body: "vobd\n"},
	}, 0)
	got, res, err := collect(t, data)
	if err != nil || len(res.Problems) > 0 {
		t.Fatal(err, res.Problems)
	}
	if want := "first line\nsecond half\nthird line\n"; got["var/run/log/vmkernel.log"] != want {
		t.Errorf("joined %q, want %q", got["var/run/log/vmkernel.log"], want)
	}
	if got["var/run/log/vobd.log"] != "vobd\n" {
		t.Errorf("the member after the pieces: %q", got["var/run/log/vobd.log"])
	}
}

func TestReadFragmentsOutOfOrder(t *testing.T) {
	p := top + "var/run/log/vmkernel.log.FRAG-"
	data := makeTGZ(t, []member{
		{name: p + "00000", body: "a\n"},
		{name: p + "00002", body: "c\n"},
		{name: p + "00001", body: "b\n"},
	}, 0)
	got, res, err := collect(t, data)
	if err != nil {
		t.Fatal(err)
	}
	if got["var/run/log/vmkernel.log"] != "a\n" {
		t.Errorf("read %q, want only the piece before the gap", got["var/run/log/vmkernel.log"])
	}
	if len(res.Problems) != 2 || !strings.Contains(res.Problems[0], "piece 2 where 1 was due") {
		t.Errorf("problems %q", res.Problems)
	}
}

// TestReadTruncated: a bundle cut short gives what came before and an
// error wrapping ErrBundle, never a panic or silence.
func TestReadTruncated(t *testing.T) {
	big := strings.Repeat("2026-04-10T08:27:13.470Z cpu2:2097999)noise line of a log\n", 4000)
	whole := makeTGZ(t, []member{
		{name: top + "var/run/log/vmkernel.1.gz", body: "older\n"},
		{name: top + "var/run/log/vmkernel.log", body: big},
	}, 0)
	for _, cut := range []int{len(whole) / 2, len(whole) - 30, 5} {
		got, _, err := collect(t, whole[:cut])
		if !errors.Is(err, ErrBundle) {
			t.Errorf("cut at %d of %d: err %v, want ErrBundle", cut, len(whole), err)
		}
		if cut > 100 && got["var/run/log/vmkernel.1.gz"] != "older\n" {
			t.Errorf("cut at %d: the member before the damage was lost: %q", cut, got)
		}
	}
}

// TestReadCaps: a small file over its cap and a log whose header claims
// more than MaxLogSize are refused with a problem naming them.
func TestReadCaps(t *testing.T) {
	data := makeTGZ(t, []member{
		{name: top + "vmfs/volumes/u/vm/vm.vmx", body: strings.Repeat("x", int(MaxSmallFile)+1)},
		{name: top + "var/run/log/vmkernel.log", size: MaxLogSize + 1},
	}, 1<<30)
	_, res, err := collect(t, data)
	if !errors.Is(err, ErrBundle) {
		t.Errorf("err %v: the claimed bytes are missing", err)
	}
	if len(res.Problems) != 2 || !strings.Contains(res.Problems[0], "over the") || !strings.Contains(res.Problems[1], "over the") {
		t.Errorf("problems %q", res.Problems)
	}
	if len(res.VMX) != 0 {
		t.Errorf("oversized vmx kept")
	}
}

func TestReadNotABundle(t *testing.T) {
	for name, data := range map[string][]byte{
		"empty":     nil,
		"plain log": []byte("2026-04-10T08:27:13.470Z cpu2:2097999)x\n"),
		"empty tar": makeTGZ(t, nil, 0),
	} {
		if _, _, err := collect(t, data); !errors.Is(err, ErrBundle) {
			t.Errorf("%s: err %v, want ErrBundle", name, err)
		}
	}
}

func TestClassifyLog(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want Log
		ok   bool
	}{
		{"var/run/log/vmkernel.log", Log{Name: "var/run/log/vmkernel.log", Kind: Kernel, Family: "vmkernel", Gen: -1}, true},
		{"var/log/vmkernel.12.gz", Log{Name: "var/log/vmkernel.12.gz", Kind: Kernel, Family: "vmkernel", Gen: 12}, true},
		{"scratch/log/vmkwarning.0.gz", Log{Name: "scratch/log/vmkwarning.0.gz", Kind: Warning, Family: "vmkwarning", Gen: 0}, true},
		{"var/log/messages", Log{Name: "var/log/messages", Kind: Kernel, Family: "messages", Gen: -1}, true},
		{"var/log/messages.3", Log{Name: "var/log/messages.3", Kind: Kernel, Family: "messages", Gen: 3}, true},
		{"var/run/log/vpxa.log", Log{Name: "var/run/log/vpxa.log", Kind: Agent, Family: "vpxa", Gen: -1}, true},
		{"var/run/log/shell.log", Log{}, false},
		{"var/run/log/vmkernel.log.gz", Log{}, false},
		{"var/run/log/vmkernel.01.gz", Log{}, false},
		{"etc/vmkernel.log", Log{}, false},
		{"var/run/log/sub/vmkernel.log", Log{}, false},
	} {
		got, ok := ClassifyLog(tc.in)
		if ok != tc.ok || got != tc.want {
			t.Errorf("ClassifyLog(%q) = %+v, %v; want %+v, %v", tc.in, got, ok, tc.want, tc.ok)
		}
	}
}

func TestMemFSServesScanVMX(t *testing.T) {
	m := MemFS{"vmfs/volumes/u/a/a.vmx": []byte("x"), "vmfs/volumes/u/b/b.vmx": []byte("yy")}
	es, err := m.ReadDir("vmfs/volumes/u")
	if err != nil || len(es) != 2 || es[0].Name() != "a" || !es[0].IsDir() {
		t.Fatalf("ReadDir: %v %v", es, err)
	}
	f, err := m.Open("vmfs/volumes/u/b/b.vmx")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(f)
	if string(b) != "yy" {
		t.Errorf("read %q", b)
	}
	if _, err := m.Open("vmfs/volumes/u/c.vmx"); err == nil {
		t.Error("opened a missing file")
	}
}

// FuzzRead feeds small (often broken) archives to Read: it must never
// panic, never hang, and keep no more than its caps in memory.
func FuzzRead(f *testing.F) {
	f.Add(makeTGZ(f, []member{{name: top + "var/run/log/vmkernel.log", body: "a\nb\n"}}, 0))
	f.Add(makeTGZ(f, []member{
		{name: top + "var/run/log/vmkernel.log.FRAG-00000", body: "a\n"},
		{name: top + "var/run/log/vmkernel.log.FRAG-00001", body: "b\n"},
		{name: top + "commands/vmware_-vl.txt", body: "VMware ESXi 8.0.3 build-24022510\n"},
		{name: top + "vmfs/volumes/u/vm/vm.vmx", body: "displayName = \"vm\"\n"},
	}, 0))
	f.Add(makeTGZ(f, []member{{name: top + "var/log/vmkernel.log", link: "/var/run/log/vmkernel.log"}}, 40))
	f.Add([]byte{0x1f, 0x8b})
	f.Fuzz(func(t *testing.T, data []byte) {
		res, _ := Read(bytes.NewReader(data), func(l Log, r io.Reader) error {
			_, err := io.Copy(io.Discard, r)
			return err
		})
		var held int64
		for _, b := range res.VMX {
			held += int64(len(b))
		}
		if held > MaxSmallSum {
			t.Errorf("%d bytes of small files held, cap %d", held, MaxSmallSum)
		}
	})
}

// TestReadTruncatedPiece: an archive cut inside a .FRAG piece gives the
// handler the archive's error, not a clean end that would pass a cut log
// as whole.
func TestReadTruncatedPiece(t *testing.T) {
	p := top + "var/run/log/vmkernel.log.FRAG-"
	whole := makeTGZ(t, []member{
		{name: p + "00000", body: "a\n"},
		{name: p + "00001", body: strings.Repeat("2026-04-10T08:27:13.470Z cpu2:2097999)x\n", 5000)},
	}, 0)
	var herr error
	_, err := Read(bytes.NewReader(whole[:len(whole)/2]), func(l Log, r io.Reader) error {
		_, herr = io.Copy(io.Discard, r)
		return herr
	})
	if !errors.Is(err, ErrBundle) || herr == nil {
		t.Errorf("Read: %v; handler's read: %v; want both to fail", err, herr)
	}
}

// TestReadVersion51: a 5.1 bundle as elatov.github.io showed it (2013,
// index id 10977985705): top folder esx-HOST-DATE--HH.MM without a pid,
// commands/vmware_-vl.txt verbatim.
func TestReadVersion51(t *testing.T) {
	data := makeTGZ(t, []member{
		{name: "esx-prod-vmware01-2013-08-12--14.06/commands/vmware_-vl.txt", body: "VMware ESXi 5.1.0 build-799733\nVMware ESXi 5.1.0 GA\n"},
		{name: "esx-prod-vmware01-2013-08-12--14.06/var/log/vmkernel.log", body: "x\n"},
	}, 0)
	got, res, err := collect(t, data)
	if err != nil {
		t.Fatal(err)
	}
	if res.Version != "VMware ESXi 5.1.0 build-799733" || got["var/log/vmkernel.log"] != "x\n" {
		t.Errorf("version %q, logs %q", res.Version, got)
	}
}
