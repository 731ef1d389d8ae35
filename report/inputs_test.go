package report

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/heapguard/heapguard/policy"
)

// flapLines are n disable/enable pairs of port 0x3000007, 3 s apart,
// from start: a flapping port in the 5.1-7.x format.
func flapLines(start time.Time, n int) string {
	var b strings.Builder
	for k := range n {
		at := start.Add(time.Duration(k) * 3 * time.Second)
		fmt.Fprintf(&b, "%s cpu1:2)NetPort: 1: disabled port 0x3000007\n", at.Format("2006-01-02T15:04:05.000Z"))
		fmt.Fprintf(&b, "%s cpu1:2)NetPort: 2: enabled port 0x3000007 with mac 00:50:56:84:5a:b4\n", at.Add(3*time.Millisecond).Format("2006-01-02T15:04:05.000Z"))
	}
	return b.String()
}

func gz(t *testing.T, s string) string {
	t.Helper()
	var b bytes.Buffer
	zw := gzip.NewWriter(&b)
	zw.Write([]byte(s))
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

// writeBundle writes a .tgz of the members (path -> body; a body "->X"
// is a symlink to X) under a vm-support top folder, in the order given.
func writeBundle(t *testing.T, members [][2]string) string {
	t.Helper()
	return writeBundleAt(t, members, time.Time{})
}

// writeBundleAt is writeBundle with every member's modification time mod.
func writeBundleAt(t *testing.T, members [][2]string, mod time.Time) string {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	tw := tar.NewWriter(zw)
	for _, m := range members {
		h := &tar.Header{Name: "esx-esx01-2026-04-10--08.27-2099421/" + m[0], Mode: 0o644, Typeflag: tar.TypeReg, Size: int64(len(m[1])), ModTime: mod}
		if target, ok := strings.CutPrefix(m[1], "->"); ok {
			h.Typeflag, h.Linkname, h.Size = tar.TypeSymlink, target, 0
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if h.Typeflag == tar.TypeReg {
			tw.Write([]byte(m[1]))
		}
	}
	tw.Close()
	zw.Close()
	p := filepath.Join(t.TempDir(), "esx-esx01-2026-04-10--08.27-2099421.tgz")
	if err := os.WriteFile(p, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

var t0 = time.Date(2026, 4, 10, 8, 0, 0, 0, time.UTC)

// TestBundleWarningsCountedOnce: vmkwarning.log repeats vmkernel.log's
// warning lines; next to a vmkernel log it is not read, so every line and
// every cycle counts once. Without a vmkernel log it is read.
func TestBundleWarningsCountedOnce(t *testing.T) {
	kernel := flapLines(t0, 30)
	p := writeBundle(t, [][2]string{
		{"var/run/log/vmkwarning.log", kernel}, // before the vmkernel log in the stream
		{"var/run/log/vmkernel.log", kernel},
		{"var/log/vmkernel.log", "->/var/run/log/vmkernel.log"},
	})
	r := Build(Options{Bundle: p})
	if r.Lines != 60 || r.Ports[0].Enabled != 30 {
		t.Errorf("lines %d, cycles %d; want 60 and 30 (each line once)", r.Lines, r.Ports[0].Enabled)
	}
	if want := []string{p + ":var/run/log/vmkernel.log"}; !cmp.Equal(want, r.Files) {
		t.Errorf("files %q", r.Files)
	}
	if len(r.NotRead) != 1 || !strings.Contains(r.NotRead[0], "vmkwarning.log: its lines repeat") {
		t.Errorf("not read %q", r.NotRead)
	}

	only := writeBundle(t, [][2]string{{"var/run/log/vmkwarning.log", kernel}})
	r = Build(Options{Bundle: only})
	if r.Lines != 60 || len(r.Files) != 1 || len(r.Errors) != 0 {
		t.Errorf("vmkwarning alone: lines %d, files %q, errors %q", r.Lines, r.Files, r.Errors)
	}
}

// TestBundleSameFileTwoPaths: a bundle that holds one log as a regular
// file under var/log and var/run/log (not as a link) counts it once.
func TestBundleSameFileTwoPaths(t *testing.T) {
	log := flapLines(t0, 20)
	p := writeBundle(t, [][2]string{{"var/log/vmkernel.log", log}, {"var/run/log/vmkernel.log", log}})
	r := Build(Options{Bundle: p})
	if r.Lines != 40 || len(r.Files) != 1 {
		t.Errorf("lines %d, files %q; want 40 lines from one file", r.Lines, r.Files)
	}
	if len(r.NotRead) != 1 || !strings.Contains(r.NotRead[0], "the same file as") {
		t.Errorf("not read %q", r.NotRead)
	}
}

// TestBundleRotatedGz: the rotated .gz copies inside the tar are read, the
// hostd log is read as the hostd log, and the version comes from
// commands/vmware_-vl.txt.
func TestBundleRotatedGz(t *testing.T) {
	p := writeBundle(t, [][2]string{
		{"commands/vmware_-vl.txt", "VMware ESXi 6.7.0 build-8169922\nVMware ESXi 6.7.0 GA\n"},
		{"var/run/log/vmkernel.1.gz", gz(t, flapLines(t0, 10))},
		{"var/run/log/vmkernel.0.gz", gz(t, flapLines(t0.Add(time.Minute), 10))},
		{"var/run/log/vmkernel.log", flapLines(t0.Add(2*time.Minute), 10)},
		{"var/run/log/hostd.log", "2026-04-10T08:00:00.000Z info hostd[2099421] [Originator@6876 sub=Default] hello\n"},
	})
	r := Build(Options{Bundle: p})
	if r.Lines != 61 || len(r.Files) != 4 || r.Ports[0].Enabled != 30 {
		t.Errorf("lines %d, files %q, cycles %d; want 61, four files, 30", r.Lines, r.Files, r.Ports[0].Enabled)
	}
	if len(r.AgentLogs) != 1 || r.AgentLogs[0].Log != "hostd" || !strings.HasSuffix(r.AgentLogs[0].File, "var/run/log/hostd.log") {
		t.Errorf("agent logs %+v, want the hostd log", r.AgentLogs)
	}
	if r.HostVersion != "VMware ESXi 6.7.0 build-8169922" {
		t.Errorf("version %q", r.HostVersion)
	}
	if len(r.NotRead) != 0 {
		t.Errorf("not read %q", r.NotRead)
	}
	if r.Status != policy.Warn {
		t.Errorf("verdict %s, errors %q", r.Verdict, r.Errors)
	}
}

// TestBundleTruncated: a bundle cut short is UNKNOWN with the reason, and
// what was read before the damage is still reported.
func TestBundleTruncated(t *testing.T) {
	p := writeBundle(t, [][2]string{
		{"var/run/log/vmkernel.0.gz", gz(t, flapLines(t0, 20))},
		{"var/run/log/vmkernel.log", strings.Repeat(flapLines(t0.Add(time.Hour), 2000), 3)},
	})
	b, _ := os.ReadFile(p)
	if err := os.WriteFile(p, b[:len(b)*2/3], 0o644); err != nil {
		t.Fatal(err)
	}
	r := Build(Options{Bundle: p})
	if r.Status != policy.Unknown || r.Lines < 40 {
		t.Errorf("verdict %s, lines %d; want UNKNOWN with the first member's 40 lines", r.Verdict, r.Lines)
	}
	if !strings.Contains(strings.Join(r.Errors, "\n"), "not a readable vm-support bundle") {
		t.Errorf("errors %q", r.Errors)
	}
	if r := Build(Options{Bundle: filepath.Join(t.TempDir(), "missing.tgz")}); r.Status != policy.Unknown {
		t.Errorf("missing bundle: %s", r.Verdict)
	}
}

// layout writes files (host path -> body; "->X" a symlink to X) under a
// new root.
func layout(t *testing.T, files map[string]string) string {
	t.Helper()
	root := t.TempDir()
	for p, body := range files {
		hp := filepath.Join(root, p)
		if err := os.MkdirAll(filepath.Dir(hp), 0o755); err != nil {
			t.Fatal(err)
		}
		var err error
		if target, ok := strings.CutPrefix(body, "->"); ok {
			err = os.Symlink(target, hp)
		} else {
			err = os.WriteFile(hp, []byte(body), 0o644)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	return root
}

// TestFindHostLogs: each version keeps its logs elsewhere; every file is
// found once, under its real path, links resolved inside the root (an
// absolute link names a path on the host, not on this machine).
func TestFindHostLogs(t *testing.T) {
	for _, tc := range []struct {
		name  string
		files map[string]string
		want  HostFiles
	}{
		{"5.5 /var/log", map[string]string{
			"var/log/vmkernel.log": "x", "var/log/vmkernel.0.gz": "x", "var/log/vmkernel.1.gz": "x",
			"var/log/hostd.log": "x", "var/log/vmkwarning.log": "x", "var/log/shell.log": "x",
		}, HostFiles{
			Kernel:  []string{"var/log/vmkernel.1.gz", "var/log/vmkernel.0.gz", "var/log/vmkernel.log"},
			Warning: []string{"var/log/vmkwarning.log"},
			Agent:   []string{"var/log/hostd.log"},
		}},
		{"6.5+ /var/run/log, /var/log links", map[string]string{
			"var/run/log/vmkernel.log": "x", "var/run/log/vmkernel.0.gz": "x", "var/run/log/vpxa.log": "x", "var/run/log/vobd.log": "x",
			"var/log/vmkernel.log": "->/var/run/log/vmkernel.log", "var/log/vmkernel.0.gz": "->/var/run/log/vmkernel.0.gz",
			"var/log/vpxa.log": "->../run/log/vpxa.log",
		}, HostFiles{
			Kernel: []string{"var/run/log/vmkernel.0.gz", "var/run/log/vmkernel.log"},
			Agent:  []string{"var/run/log/vobd.log", "var/run/log/vpxa.log"},
		}},
		{"/scratch/log, /var/log a link to it", map[string]string{
			"scratch/log/vmkernel.log": "x", "scratch/log/vmkernel.2.gz": "x",
			"var/log": "->/scratch/log", "var/run/log": "->/scratch/log",
		}, HostFiles{Kernel: []string{"scratch/log/vmkernel.2.gz", "scratch/log/vmkernel.log"}}},
		{"4.x messages", map[string]string{"var/log/messages": "x", "var/log/messages.1.gz": "x", "var/log/messages.0": "x"},
			HostFiles{Kernel: []string{"var/log/messages.1.gz", "var/log/messages.0", "var/log/messages"}}},
		{"scratch on a datastore", map[string]string{
			"scratch": "->/vmfs/volumes/5f1e-uuid/.locker", "vmfs/volumes/5f1e-uuid/.locker/log/vmkernel.log": "x",
			"var/log/vmkernel.log": "->/scratch/log/vmkernel.log",
		}, HostFiles{Kernel: []string{"vmfs/volumes/5f1e-uuid/.locker/log/vmkernel.log"}}},
		{"a link out of the root stays in it", map[string]string{
			"var/log/vmkernel.log": "x", "var/log/vmkernel.0.gz": "->/../../../../../../../etc/hostname",
			"var/log/vmkernel.1.gz": "->../../../../../../../../etc/hostname",
		}, HostFiles{Kernel: []string{"var/log/vmkernel.log"}}},
		{"dangling and looping links", map[string]string{
			"var/log/vmkernel.log": "->/var/run/log/vmkernel.log", "var/run/log/vmkernel.0.gz": "->/var/run/log/vmkernel.0.gz",
			"scratch/log/vmkernel.log": "x",
		}, HostFiles{Kernel: []string{"scratch/log/vmkernel.log"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root := layout(t, tc.files)
			got := FindHostLogs(root)
			rel := func(ps []string) []string {
				var out []string
				for _, p := range ps {
					r, err := filepath.Rel(root, p)
					if err != nil {
						t.Fatal(err)
					}
					out = append(out, filepath.ToSlash(r))
				}
				return out
			}
			got = HostFiles{Kernel: rel(got.Kernel), Warning: rel(got.Warning), Agent: rel(got.Agent)}
			if d := cmp.Diff(tc.want, got); d != "" {
				t.Errorf("(-want +got):\n%s", d)
			}
		})
	}
}

// TestRootWarningsReadOnlyAlone: under --root, vmkwarning is read only
// when there is no vmkernel log, and listed as not read otherwise.
func TestRootWarningsReadOnlyAlone(t *testing.T) {
	log := flapLines(t0, 15)
	root := layout(t, map[string]string{"var/run/log/vmkernel.log": log, "var/run/log/vmkwarning.log": log})
	hf := FindHostLogs(root)
	r := Build(Options{Logs: hf.Kernel, WarningLogs: hf.Warning})
	if r.Lines != 30 || len(r.NotRead) != 1 {
		t.Errorf("lines %d, not read %q; want 30 and vmkwarning.log", r.Lines, r.NotRead)
	}
	r = Build(Options{WarningLogs: hf.Warning})
	if r.Lines != 30 || len(r.Files) != 1 {
		t.Errorf("vmkwarning alone: lines %d, files %q", r.Lines, r.Files)
	}
}

func TestByLog(t *testing.T) {
	got := byLog([]string{
		"/r/var/run/log/hostd.2.gz", "/r/var/run/log/hostd.0.gz", "/r/var/run/log/hostd.log",
		"/r/var/run/log/vpxa.0.gz", "/r/var/run/log/vpxa.1.gz",
		"b.tgz:var/log/vobd.log", "b.tgz:var/run/log/vobd.log",
	}, "why")
	want := []string{
		"/r/var/run/log/hostd.log and 2 older copies: why",
		"/r/var/run/log/vpxa.0.gz and 1 older copy: why",
		"b.tgz:var/log/vobd.log: why",
		"b.tgz:var/run/log/vobd.log: why",
	}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("(-want +got):\n%s", d)
	}
}

// TestBundle4xYear: 4.x dates carry no year; a bundle member's time gives
// it, as a file's modification time does, not the year of the reading.
func TestBundle4xYear(t *testing.T) {
	b, err := os.ReadFile("../collector/testdata/incident-messages.log")
	if err != nil {
		t.Fatal(err)
	}
	p := writeBundleAt(t, [][2]string{{"var/log/messages", string(b)}}, time.Date(2012, 7, 26, 2, 0, 0, 0, time.UTC))
	r := Build(Options{Bundle: p})
	if len(r.HeapEvents) == 0 || r.HeapEvents[0].Last.Year() != 2012 {
		t.Fatalf("heap events %+v, want them in 2012", r.HeapEvents)
	}
	if !strings.Contains(strings.Join(r.Warnings, "\n"), "took 2012") {
		t.Errorf("warnings %q", r.Warnings)
	}
	// A tar without times (mtime 0) is not a 1970 log.
	p = writeBundleAt(t, [][2]string{{"var/log/messages", string(b)}}, time.Unix(0, 0))
	if r := Build(Options{Bundle: p}); len(r.HeapEvents) == 0 || r.HeapEvents[0].Last.Year() < 2000 {
		t.Errorf("mtime 0: heap events %+v", r.HeapEvents)
	}
}

// TestBundleAgentCrashOnlyInVobd: a vpxa crash that only vobd.log records
// (real 5.5/6.0 lines, collector/testdata/SOURCES.md) is found in a
// bundle, told apart by its lines, counted once, and makes it CRITICAL.
func TestBundleAgentCrashOnlyInVobd(t *testing.T) {
	vobd, err := os.ReadFile("../collector/testdata/vobd-6x-vpxa-crash-syslog.log")
	if err != nil {
		t.Fatal(err)
	}
	p := writeBundle(t, [][2]string{
		{"var/run/log/vmkernel.log", flapLines(t0, 5)},
		{"var/run/log/vobd.log", string(vobd)},
	})
	r := Build(Options{Bundle: p})
	if r.Status != policy.Crit || len(r.Crashes) != 1 || r.Crashes[0].Agent != "vpxa" {
		t.Errorf("status %v, crashes %+v, reasons %q; want CRITICAL with one vpxa crash", r.Status, r.Crashes, r.Reasons)
	}
	if len(r.AgentLogs) != 1 || r.AgentLogs[0].Log != "vobd" {
		t.Errorf("agent logs %+v, want the vobd log", r.AgentLogs)
	}
}
