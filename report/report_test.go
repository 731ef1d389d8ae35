package report

import (
	"bytes"
	"compress/gzip"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/heapguard/heapguard/heap"
	"github.com/heapguard/heapguard/policy"
)

// TestReportFileOrder: rotated files given in any order make the same
// report (a middle file given last must not cut "last" short).
func TestReportFileOrder(t *testing.T) {
	dir := t.TempDir()
	start := time.Date(2014, 6, 10, 10, 0, 0, 0, time.UTC)
	var files []string
	for i, name := range []string{"vmkernel.1", "vmkernel.0", "vmkernel.log"} {
		var b strings.Builder
		for k := 0; k < 40; k++ {
			at := start.Add(time.Duration(i)*2*time.Minute + time.Duration(k)*3*time.Second)
			fmt.Fprintf(&b, "%s cpu1:2)NetPort: 1: disabled port 0x3000007\n", at.Format("2006-01-02T15:04:05.000Z"))
			fmt.Fprintf(&b, "%s cpu1:2)NetPort: 2: enabled port 0x3000007 with mac 00:50:56:84:5a:b4\n", at.Add(3*time.Millisecond).Format("2006-01-02T15:04:05.000Z"))
		}
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(b.String()), 0o644); err != nil {
			t.Fatal(err)
		}
		files = append(files, p)
	}
	want := Build(Options{Logs: files})
	for _, order := range [][]int{{0, 2, 1}, {2, 0, 1}, {2, 1, 0}, {1, 2, 0}} {
		var logs []string
		for _, i := range order {
			logs = append(logs, files[i])
		}
		got := Build(Options{Logs: logs})
		if len(got.Ports) != 1 || len(want.Ports) != 1 {
			t.Fatalf("ports %+v / %+v", got.Ports, want.Ports)
		}
		g, w := got.Ports[0], want.Ports[0]
		if !g.First.Equal(w.First) || !g.Last.Equal(w.Last) || g.Enabled != 120 || g.Enabled != w.Enabled || g.Flapping != w.Flapping {
			t.Errorf("order %v: port %+v, want %+v", order, g, w)
		}
	}
}

// --year with rotated 4.x copies that cross New Year: the year is the
// oldest copy's, and the newer copy's January lines fall in the next year,
// whatever order the files are given in.
func TestReportYearAcrossFiles(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string { return writeFile(t, dir, name, content) }
	older := write("messages.1", "Dec 31 23:59:50 vmkernel: 7:19:45:13.619 cpu5:45459)NetPort: 1165: disabled port 0x3000003\n")
	newer := write("messages", "Jan  1 00:00:10 vmkernel: 7:19:45:33.619 cpu5:45459)NetPort: 982: enabled port 0x3000003 with mac 00:50:56:84:5a:b1\n")
	// The copies' times say nothing (copied without them), or the opposite.
	now := time.Now()
	os.Chtimes(older, now, now)
	os.Chtimes(newer, now.Add(-time.Hour), now.Add(-time.Hour))
	for _, logs := range [][]string{{older, newer}, {newer, older}} {
		r := Build(Options{Logs: logs, Year: 2013})
		if len(r.Ports) != 1 {
			t.Fatalf("ports %+v", r.Ports)
		}
		p := r.Ports[0]
		if want := time.Date(2013, 12, 31, 23, 59, 50, 0, time.UTC); !p.First.Equal(want) {
			t.Errorf("logs %v: first %v, want %v", logs, p.First, want)
		}
		if want := time.Date(2014, 1, 1, 0, 0, 10, 0, time.UTC); !p.Last.Equal(want) {
			t.Errorf("logs %v: last %v, want %v", logs, p.Last, want)
		}
	}
}

// Two hosts' logs given together with --year do not share a year chain.
func TestReportYearPerLog(t *testing.T) {
	dir := t.TempDir()
	write := func(p, content string) string {
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	line := func(mon string, port int) string {
		return fmt.Sprintf("%s 10 10:00:00 vmkernel: 7:19:45:13.619 cpu5:45459)NetPort: 1165: disabled port 0x300000%d\n", mon, port)
	}
	// Host a's copies sort first and end in December: were b's March
	// copies to follow in one chain, they would be dated 2014.
	logs := []string{
		write(filepath.Join(dir, "b", "messages.1"), line("Mar", 3)),
		write(filepath.Join(dir, "b", "messages"), line("Mar", 4)),
		write(filepath.Join(dir, "a", "messages.1"), line("Dec", 1)),
		write(filepath.Join(dir, "a", "messages"), line("Dec", 2)),
	}
	r := Build(Options{Logs: logs, Year: 2013})
	if len(r.Ports) != 4 {
		t.Fatalf("ports %+v", r.Ports)
	}
	for _, p := range r.Ports {
		if p.First.Year() != 2013 {
			t.Errorf("port %s first %v: want 2013", p.Port, p.First)
		}
	}
}

// A file given twice is read once; two copies with one rotation number are
// dated each on its own; an unreadable copy in a chain is warned about.
func TestReportYearDuplicates(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string { return writeFile(t, dir, name, content) }
	newYear := "Dec 31 23:59:50 vmkernel: 7:19:45:13.619 cpu5:45459)NetPort: 1165: disabled port 0x3000003\n" +
		"Jan  1 00:00:10 vmkernel: 7:19:45:33.619 cpu5:45459)NetPort: 982: enabled port 0x3000003 with mac 00:50:56:84:5a:b1\n"
	one := write("messages.1", newYear)
	r := Build(Options{Logs: []string{one, filepath.Join(dir, ".", "messages.1")}, Year: 2013})
	if len(r.Ports) != 1 || r.Ports[0].Disabled != 1 || !r.Ports[0].Last.Equal(time.Date(2014, 1, 1, 0, 0, 10, 0, time.UTC)) {
		t.Errorf("given twice: ports %+v", r.Ports)
	}
	if !slices.ContainsFunc(r.Warnings, func(w string) bool { return strings.Contains(w, "given twice") }) {
		t.Errorf("given twice: warnings %q", r.Warnings)
	}

	// messages.1 and messages.1.gz: one copy, plain and compressed.
	gz := filepath.Join(dir, "messages.1.gz")
	writeGzip(t, gz, newYear)
	r = Build(Options{Logs: []string{one, gz}, Year: 2013})
	if len(r.Ports) != 1 || !r.Ports[0].Last.Equal(time.Date(2014, 1, 1, 0, 0, 10, 0, time.UTC)) || !r.Ports[0].First.Equal(time.Date(2013, 12, 31, 23, 59, 50, 0, time.UTC)) {
		t.Errorf("one copy twice: ports %+v", r.Ports)
	}
	if !slices.ContainsFunc(r.Warnings, func(w string) bool { return strings.Contains(w, "look like one copy") }) {
		t.Errorf("one copy twice: warnings %q", r.Warnings)
	}

	// messages.1 unreadable, messages.1.gz readable: the chain goes on
	// through the readable one, and newer copies follow it.
	dir2 := t.TempDir()
	if err := os.Mkdir(filepath.Join(dir2, "messages.1"), 0o755); err != nil {
		t.Fatal(err)
	}
	writeGzip(t, filepath.Join(dir2, "messages.1.gz"), "Dec 31 23:59:50 vmkernel: 7:19:45:13.619 cpu5:45459)NetPort: 1165: disabled port 0x3000006\n")
	if err := os.WriteFile(filepath.Join(dir2, "messages"), []byte("Jan  1 00:00:10 vmkernel: 7:19:45:13.619 cpu5:45459)NetPort: 1165: disabled port 0x3000007\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	r = Build(Options{Logs: []string{filepath.Join(dir2, "messages"), filepath.Join(dir2, "messages.1"), filepath.Join(dir2, "messages.1.gz")}, Year: 2013})
	if len(r.Ports) != 2 {
		t.Fatalf("unreadable .1, readable .1.gz: ports %+v", r.Ports)
	}
	for _, p := range r.Ports {
		if want := map[string]int{"0x3000006": 2013, "0x3000007": 2014}[p.Port]; p.First.Year() != want {
			t.Errorf("unreadable .1, readable .1.gz: port %s dated %v, want %d", p.Port, p.First, want)
		}
	}
	if slices.ContainsFunc(r.Warnings, func(w string) bool { return strings.Contains(w, "look like one copy") }) {
		t.Errorf("an unreadable copy is no repeat: warnings %q", r.Warnings)
	}

	// An unreadable copy between two readable ones.
	older := write("messages.2", "Dec 30 10:00:00 vmkernel: 7:19:45:13.619 cpu5:45459)NetPort: 1165: disabled port 0x3000004\n")
	bad := write("messages.1", "")
	os.Remove(bad)
	if err := os.Mkdir(bad, 0o755); err != nil {
		t.Fatal(err)
	}
	newer := write("messages", "Jan  2 10:00:00 vmkernel: 7:19:45:13.619 cpu5:45459)NetPort: 1165: disabled port 0x3000005\n")
	r = Build(Options{Logs: []string{newer, bad, older}, Year: 2013})
	if !slices.ContainsFunc(r.Warnings, func(w string) bool { return strings.Contains(w, "may be a year off") }) {
		t.Errorf("unreadable copy: warnings %q", r.Warnings)
	}
}

func writeGzip(t *testing.T, path, content string) {
	t.Helper()
	var b bytes.Buffer
	zw := gzip.NewWriter(&b)
	if _, err := zw.Write([]byte(content)); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

// liveSample is a heap sample as vsish gives it, pct percent free of max.
func liveSample(t *testing.T, name string, pct float64) heap.Sample {
	t.Helper()
	const max = 100_000_000
	in := fmt.Sprintf("Heap stats {\nName:%s\nmaximum heap size:%d\nmaximum bytes available:%d\n}\n", name, max, int64(pct*max/100))
	s, err := heap.ParseStats(strings.NewReader(in))
	if err != nil || len(s) != 1 {
		t.Fatalf("ParseStats: %v", err)
	}
	s[0].FullName = name + "-0x4100"
	return s[0]
}

// TestReportLiveSamples: live samples are judged like --heap-stats ones
// and say they are live; a sampling error makes the verdict UNKNOWN but
// does not hide the samples read, nor lose to a lower level.
func TestReportLiveSamples(t *testing.T) {
	tests := []struct {
		name    string
		live    []heap.Sample
		errs    []string
		want    policy.Level
		reasons []string
	}{
		{"all well", []heap.Sample{liveSample(t, "netGPHeap", 60)}, nil, policy.OK, nil},
		{"below 20", []heap.Sample{liveSample(t, "netGPHeap", 19.5)}, nil, policy.Warn,
			[]string{"netGPHeap 19.5% free of max (below 20%, sampled live)"}},
		{"below 10", []heap.Sample{liveSample(t, "netGPHeap", 9.9), liveSample(t, "vmfs3", 15)}, nil, policy.Crit,
			[]string{"netGPHeap 9.9% free of max (below 10%, sampled live)", "vmfs3 15.0% free of max (below 20%, sampled live)"}},
		{"one heap unreadable", []heap.Sample{liveSample(t, "netGPHeap", 50)}, []string{"live heap sample: read heap stats vmfs3-0x1: exit status 1"}, policy.Unknown,
			[]string{"live heap sample: read heap stats vmfs3-0x1: exit status 1"}},
		{"CRITICAL beats an unreadable heap", []heap.Sample{liveSample(t, "netGPHeap", 5)}, []string{"live heap sample: x"}, policy.Crit,
			[]string{"netGPHeap 5.0% free of max (below 10%, sampled live)", "live heap sample: x"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := Build(Options{Live: tt.live, LiveErrors: tt.errs})
			if r.Status != tt.want || r.Verdict != tt.want.String() {
				t.Errorf("status %v (%s), want %v", r.Status, r.Verdict, tt.want)
			}
			if diff := cmp.Diff(append([]string{}, tt.reasons...), r.Reasons); diff != "" {
				t.Errorf("reasons (-want +got):\n%s", diff)
			}
			if len(r.Heaps) != len(tt.live) {
				t.Fatalf("heaps %+v", r.Heaps)
			}
			for _, h := range r.Heaps {
				if h.Source != LiveSource || !h.Live || h.PercentFreeOfMax == nil {
					t.Errorf("heap %+v: want source %q and a figure", h, LiveSource)
				}
			}
		})
	}
}

// TestReportLiveText: a real host lists a hundred heaps or more; the text
// report shows the low ones, netGPHeap and a few lowest, and counts the
// rest, which --json lists.
func TestReportLiveText(t *testing.T) {
	var live []heap.Sample
	for i := range 30 {
		live = append(live, liveSample(t, fmt.Sprintf("heap%02d", i), 90))
	}
	live = append(live, liveSample(t, "netGPHeap", 80), liveSample(t, "lowHeap", 30), liveSample(t, "vmfs3", 45))
	nameless := liveSample(t, "noFigures", 0)
	nameless.Fields = nameless.Fields[:1] // a name, no figures
	live = append(live, nameless)
	r := Build(Options{Live: live})
	if len(r.Heaps) != 34 {
		t.Fatalf("%d heaps in the report, want all 34", len(r.Heaps))
	}
	var b strings.Builder
	if err := r.WriteText(&b); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	// Shown: no figures first, then by free: lowHeap 30, vmfs3 45, netGPHeap 80, two of the 90s.
	for _, want := range []string{"noFigures-0x4100", "lowHeap-0x4100", "vmfs3-0x4100", "netGPHeap-0x4100", "heap00-0x4100", "(live, vsish)",
		"… and 29 more heaps sampled live, each at least 50% free of max (--json lists every heap)"} {
		if !strings.Contains(out, want) {
			t.Errorf("text lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "heap01-0x4100") || strings.Index(out, "lowHeap") > strings.Index(out, "vmfs3") {
		t.Errorf("want the five lowest only, lowest first:\n%s", out)
	}
}

// TestReportFileInput: what a log file held decides whether it can be
// judged (Build, as the CLI test does through the command).
func TestReportFileInput(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string { return writeFile(t, dir, name, content) }
	good := write("good.log", "2013-08-20T12:00:00.123Z cpu3:33421)Net: nothing\n")
	junk := write("junk.log", "one\ntwo\n")
	one := write("one.log", "junk\n")
	empty := write("empty.log", "")
	tests := []struct {
		logs     []string
		want     policy.Level
		errs     []string
		warnings []string
	}{
		{[]string{good}, policy.OK, nil, nil},
		{[]string{junk}, policy.Unknown, []string{junk + ": all 2 lines are in no known vmkernel log format: nothing to judge (is it a vmkernel log?)"}, nil},
		{[]string{one}, policy.Unknown, []string{one + ": its only line is in no known vmkernel log format: nothing to judge (is it a vmkernel log?)"}, nil},
		{[]string{empty}, policy.Unknown, []string{empty + " is empty: no log line to judge"}, nil},
		{[]string{good, junk}, policy.Unknown, []string{junk + ": all 2 lines are in no known vmkernel log format: nothing to judge (is it a vmkernel log?)"}, nil},
		{[]string{empty, good}, policy.OK, nil, []string{empty + " is empty"}},
		{[]string{empty, junk}, policy.Unknown, []string{empty + " is empty: no log line to judge", junk + ": all 2 lines are in no known vmkernel log format: nothing to judge (is it a vmkernel log?)"}, nil},
	}
	for _, tt := range tests {
		r := Build(Options{Logs: tt.logs})
		if r.Status != tt.want || !slices.Equal(r.Errors, append([]string{}, tt.errs...)) || !slices.Equal(r.Warnings, append([]string{}, tt.warnings...)) {
			t.Errorf("%v: status %v, errors %q, warnings %q; want %v, %q, %q", tt.logs, r.Status, r.Errors, r.Warnings, tt.want, tt.errs, tt.warnings)
		}
	}
}

// writeFile writes content to dir/name and returns the path.
func writeFile(t *testing.T, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}
