package collector

import (
	"bytes"
	"compress/gzip"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/heapguard/heapguard/internal/loggen"
)

var update = flag.Bool("update", false, "rewrite golden files")

// Summary's droppedTail is compared: every way of scanning keeps it alike.
var ignoreState = cmp.Options{cmpopts.IgnoreUnexported(PortSummary{}, Crash{}), cmp.AllowUnexported(Summary{})}

// refScan is the plain definition of a scan: every line through
// Parser.Parse, in order. The fast scanner must give the same summary.
func refScan(data []byte, opt ScanOptions, modTime time.Time, maxLine int) *Summary {
	s := NewSummary(opt.FlapCycles, opt.FlapWindow)
	p := NewParser(opt.Year, modTime)
	lines := bytes.Split(data, []byte("\n"))
	if len(lines[len(lines)-1]) == 0 {
		lines = lines[:len(lines)-1]
	}
	for _, l := range lines {
		s.Lines++
		if len(l) > maxLine {
			s.Oversized++
			p.breakChain()
			continue
		}
		ev, err := p.Parse(l)
		switch {
		case err != nil:
			s.Unparsed++
		case ev.Kind == KindOther:
			s.Other++
		case ev.Kind == KindContinuation:
			s.Other++
			s.Continuation++
		case !opt.Since.IsZero() && ev.Time.Before(opt.Since):
			s.BeforeSince++
		default:
			s.add(&ev)
		}
	}
	return s
}

// mixedLog is a generated 5.x log with the awkward lines a real one may
// hold: continuations, garbage, NULs, empty lines, CRLF, long lines.
func mixedLog(t testing.TB, lines int, seed uint64) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := loggen.Bench(&buf, lines, loggen.BenchOptions{Seed: seed, Ports: 3, NoiseGap: 200 * time.Millisecond}); err != nil {
		t.Fatal(err)
	}
	r := rand.New(rand.NewPCG(seed, 7))
	extra := []string{
		"  TDH                  <0>", "buffer_info[next_to_clean]:", "\x00\x00\x00", "", "\xff\xfe garbage",
		"2017-09-30T17:27:30.509Z cpu1:65597)Uplink: 9893: enabled port 0x2000009 with mac 70:5a:0f:XX:XX:XX\r",
		"2017-09-30T17:27:30.509Z cpu1:65597)NetPort: 1879: disabled port 0x2000009",
		strings.Repeat("long line Heap Dump abled port 0x1 ", 12),
	}
	var out []byte
	for i, l := range bytes.SplitAfter(buf.Bytes(), []byte("\n")) {
		out = append(out, l...)
		if i%7 == 3 {
			out = append(out, extra[r.IntN(len(extra))]...)
			out = append(out, '\n')
		}
	}
	return out
}

func TestScanMatchesParser(t *testing.T) {
	data := mixedLog(t, 3000, 1)
	opt := ScanOptions{Year: 2017}
	const maxLine = 300
	want := refScan(data, opt, time.Time{}, maxLine)
	if want.Oversized == 0 || want.Continuation == 0 || want.Unparsed == 0 || len(want.Ports) < 3 {
		t.Fatalf("test log lacks cases: %+v", want)
	}
	// Tiny buffers put every line across a buffer boundary somewhere.
	forEachImpl(t, func(t *testing.T) {
		for _, bufSize := range []int{maxLine + 1, maxLine + 7, 4096, 1 << 16} {
			st := newScanState(opt, time.Time{}, false)
			if err := st.read(bytes.NewReader(data), make([]byte, bufSize), maxLine); err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(want, st.sum, ignoreState); diff != "" {
				t.Errorf("buffer %d (-want +got):\n%s", bufSize, diff)
			}
		}
	})
}

// A parallel scan equals the sequential one wherever the chunks are cut.
func TestScanChunksEqualSequential(t *testing.T) {
	small := mixedLog(t, 60, 2)
	big := mixedLog(t, 4000, 3)
	const maxLine = 300
	opt := ScanOptions{}
	check := func(data []byte, nominal []int64) {
		t.Helper()
		ra := bytes.NewReader(data)
		size := int64(len(data))
		bounds := []int64{0}
		for _, off := range nominal {
			b, err := lineStart(ra, size, off)
			if err != nil {
				t.Fatal(err)
			}
			bounds = append(bounds, max(b, bounds[len(bounds)-1]))
		}
		bounds = append(bounds, size)
		got, err := scanChunks(ra, bounds, opt, time.Time{}, maxLine+64, maxLine)
		if err != nil {
			t.Fatal(err)
		}
		want := refScan(data, opt, time.Time{}, maxLine)
		if diff := cmp.Diff(want, got, ignoreState); diff != "" {
			t.Fatalf("bounds %v (-want +got):\n%s", bounds, diff)
		}
	}
	for off := int64(0); off <= int64(len(small)); off++ {
		check(small, []int64{off})
	}
	r := rand.New(rand.NewPCG(4, 4))
	for range 200 {
		n := 1 + r.IntN(6)
		nominal := make([]int64, n)
		for i := range nominal {
			nominal[i] = r.Int64N(int64(len(big)) + 1)
		}
		if r.IntN(4) == 0 {
			// Bunch the cuts so that chunks hold one line or none.
			for i := range nominal {
				nominal[i] = nominal[0] + int64(i*r.IntN(90))
			}
		}
		slicesSort(nominal)
		check(big, nominal)
	}
}

func slicesSort(a []int64) {
	for i := 1; i < len(a); i++ {
		for j := i; j > 0 && a[j] < a[j-1]; j-- {
			a[j], a[j-1] = a[j-1], a[j]
		}
	}
}

func TestScanChunksSyslogFallsBack(t *testing.T) {
	data, err := os.ReadFile(filepath.Join("testdata", "incident-messages.log"))
	if err != nil {
		t.Fatal(err)
	}
	s, err := scanChunks(bytes.NewReader(data), []int64{0, 1000, int64(len(data))}, ScanOptions{}, time.Now(), 4096, 1024)
	if err != nil || s != nil {
		t.Fatalf("scanChunks on a 4.x log = %v, %v; want nil, nil (read in order)", s, err)
	}
}

func writeFile(t *testing.T, name string, data []byte) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// A file big enough for the parallel path gives the sequential result.
func TestScanFileLargeParallel(t *testing.T) {
	var buf bytes.Buffer
	if err := loggen.Bench(&buf, 60000, loggen.BenchOptions{Seed: 9}); err != nil {
		t.Fatal(err)
	}
	if buf.Len() < parallelMin {
		t.Fatalf("log of %d bytes is too small for the parallel path", buf.Len())
	}
	p := writeFile(t, "vmkernel.log", buf.Bytes())
	got, err := ScanFile(p, ScanOptions{})
	if err != nil {
		t.Fatal(err)
	}
	want := refScan(buf.Bytes(), ScanOptions{}, time.Time{}, MaxLineLen)
	if diff := cmp.Diff(want, got, ignoreState); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	if got.Lines != 60000 || len(got.Ports) != 6 || len(got.Heaps) != 2 || len(got.Processes) != 1 {
		t.Errorf("got %d lines, %d ports, %d heaps, %d processes", got.Lines, len(got.Ports), len(got.Heaps), len(got.Processes))
	}
}

// The incident's counts, through the parser: `grep 'enabled port' messages |
// awk '{print $13}' | sort | uniq -c` gave 1618 b1, 1618 b4, 1617 ba.
func TestScanIncident(t *testing.T) {
	path := filepath.Join("testdata", "incident-messages.log")
	byMAC := map[string]int{}
	p := NewParser(2012, time.Time{})
	for i, l := range readLines(t, "incident-messages.log") {
		ev, err := p.Parse(l)
		if err != nil {
			t.Fatalf("line %d: %v", i+1, err)
		}
		if ev.Kind == KindPortEnabled {
			byMAC[ev.MAC.String()]++
		}
	}
	if diff := cmp.Diff(map[string]int{"00:50:56:84:5a:b1": 1618, "00:50:56:84:5a:b4": 1618, "00:50:56:84:5a:ba": 1617}, byMAC); diff != "" {
		t.Errorf("enabled lines per MAC (-want +got):\n%s", diff)
	}

	s, err := ScanFile(path, ScanOptions{Year: 2012})
	if err != nil {
		t.Fatal(err)
	}
	day := func(h, m, sec int) time.Time { return time.Date(2012, 7, 26, h, m, sec, 0, time.UTC) }
	wantHeaps := []HeapSummary{
		{Heap: "netGPHeap", Kind: KindHeapMaxed, Count: 2, First: day(1, 26, 46), Last: day(1, 26, 46), Minutes: []MinuteCount{{day(1, 26, 0).Unix() / 60, 2}}},
		{Heap: "netGPHeap", Kind: KindHeapAlignFailed, Count: 2, First: day(1, 26, 46), Last: day(1, 26, 46), Minutes: []MinuteCount{{day(1, 26, 0).Unix() / 60, 2}}},
	}
	if diff := cmp.Diff(wantHeaps, s.Heaps); diff != "" {
		t.Errorf("heaps (-want +got):\n%s", diff)
	}
	wantProcs := []ProcessSummary{{Process: "vpxa", UserDumps: 1, CoreDumps: 1, First: day(1, 26, 46), Last: day(1, 26, 46)}}
	if diff := cmp.Diff(wantProcs, s.Processes); diff != "" {
		t.Errorf("processes (-want +got):\n%s", diff)
	}
	ports := s.SortedPorts()
	var order []string
	for _, p := range ports {
		order = append(order, p.Port.String()+" "+p.MAC.String())
		if !p.Flapping || p.Enabled != p.Disabled || p.PeakCyclesPerMinute < 19 || p.PeakCyclesPerMinute > 21 {
			t.Errorf("port %v: %+v", p.Port, *p)
		}
	}
	// Ties (1618) by port id.
	if diff := cmp.Diff([]string{"0x3000003 00:50:56:84:5a:b1", "0x3000007 00:50:56:84:5a:b4", "0x3000005 00:50:56:84:5a:ba"}, order); diff != "" {
		t.Errorf("sorted ports (-want +got):\n%s", diff)
	}
	if s.Lines != 9712 || s.Events != s.Lines || s.Unparsed != 0 {
		t.Errorf("counts: %+v", s)
	}
}

func TestIncidentLogUpToDate(t *testing.T) {
	var buf bytes.Buffer
	if err := loggen.Incident(&buf, 1); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join("testdata", "incident-messages.log")
	if *update {
		if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(want, buf.Bytes()) {
		t.Errorf("%s differs from loggen.Incident(seed 1); run go test ./collector -run IncidentLog -update", path)
	}
}

// Merging the summaries of consecutive parts gives the whole file's, in
// either order.
func TestMerge(t *testing.T) {
	data := mixedLog(t, 5000, 5)
	opt := ScanOptions{}
	want := refScan(data, opt, time.Time{}, MaxLineLen)
	cut, _ := lineStart(bytes.NewReader(data), int64(len(data)), int64(len(data))/2)
	a := refScan(data[:cut], opt, time.Time{}, MaxLineLen)
	b := refScan(data[cut:], opt, time.Time{}, MaxLineLen)
	// The continuation state does not cross files; remove that case.
	if bytes.HasPrefix(data[cut:], []byte(" ")) || bytes.HasPrefix(data[cut:], []byte("b")) {
		t.Skip("cut at a continuation line")
	}
	ab := a.clone()
	ab.Merge(b)
	if diff := cmp.Diff(want, ab, ignoreState); diff != "" {
		t.Errorf("a.Merge(b) (-want +got):\n%s", diff)
	}
	ba := b.clone()
	ba.Merge(a)
	if diff := cmp.Diff(want, ba, ignoreState); diff != "" {
		t.Errorf("b.Merge(a) (-want +got):\n%s", diff)
	}
}

func TestMergeMACChangeAndMinute(t *testing.T) {
	ev := func(sec int, mac string) Event {
		m, _ := ParseMAC(mac)
		return Event{Kind: KindPortEnabled, Time: time.Date(2020, 1, 1, 0, 0, sec, 0, time.UTC), Port: 7, MAC: m, MACKnown: true}
	}
	whole, a, b := NewSummary(3, time.Minute), NewSummary(3, time.Minute), NewSummary(3, time.Minute)
	evs := []Event{ev(1, "00:00:00:00:00:01"), ev(20, "00:00:00:00:00:01"), ev(50, "00:00:00:00:00:02"), ev(55, "00:00:00:00:00:02"), ev(70, "00:00:00:00:00:03")}
	for i, e := range evs {
		whole.add(&e)
		if i < 2 {
			a.add(&e)
		} else {
			b.add(&e)
		}
	}
	a.Merge(b)
	if diff := cmp.Diff(whole, a, ignoreState); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	p := a.Ports[7]
	if p.MACChanges != 2 || p.PeakCyclesPerMinute != 4 || !p.Flapping || p.MAC.String() != "00:00:00:00:00:03" {
		t.Errorf("port: %+v", *p)
	}
	// The minute the two parts share is one bucket of 4 cycles.
	min0 := time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC).Unix() / 60
	if diff := cmp.Diff([]MinuteCount{{min0, 4}, {min0 + 1, 1}}, p.Minutes); diff != "" {
		t.Errorf("cycles per minute (-want +got):\n%s", diff)
	}
}

func TestScanFileGzip(t *testing.T) {
	plain, err := os.ReadFile(filepath.Join("testdata", "incident-messages.log"))
	if err != nil {
		t.Fatal(err)
	}
	var zb bytes.Buffer
	zw := gzip.NewWriter(&zb)
	zw.Write(plain)
	zw.Close()
	// Detected by content: the name has no .gz.
	p := writeFile(t, "messages.1", zb.Bytes())
	got, err := ScanFile(p, ScanOptions{Year: 2012})
	if err != nil {
		t.Fatal(err)
	}
	want, err := ScanFile(writeFile(t, "messages", plain), ScanOptions{Year: 2012})
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want, got, ignoreState); diff != "" {
		t.Errorf("gz (-want +got):\n%s", diff)
	}
	// Through Scan as well.
	got2, err := Scan(bytes.NewReader(zb.Bytes()), ScanOptions{Year: 2012})
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want, got2, ignoreState); diff != "" {
		t.Errorf("Scan gz (-want +got):\n%s", diff)
	}
	// A truncated archive is an error, not a panic.
	if _, err := ScanFile(writeFile(t, "vmkernel.0.gz", zb.Bytes()[:zb.Len()/2]), ScanOptions{}); err == nil {
		t.Error("truncated gzip: no error")
	}
}

func TestScanBadInput(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	random := make([]byte, 3<<20)
	for i := range random {
		random[i] = byte(r.Uint32())
	}
	nuls := bytes.Repeat([]byte("\x00\x00\x00\x00\n"), 1000)
	tests := []struct {
		name string
		data []byte
		want func(*Summary) bool
	}{
		{"empty", nil, func(s *Summary) bool { return s.Lines == 0 && s.Events == 0 && len(s.Ports) == 0 }},
		{"random bytes", random, func(s *Summary) bool {
			return s.Lines == int64(bytes.Count(random, []byte("\n"))+1) && s.Unparsed > 0 && s.Events == 0
		}},
		{"NULs", nuls, func(s *Summary) bool { return s.Lines == 1000 && s.Unparsed == 1000 }},
		{"no final newline", []byte("2017-09-30T17:27:30.509Z cpu1:65597)NetPort: 1879: disabled port 0x2000002"),
			func(s *Summary) bool { return s.Lines == 1 && s.Ports[0x2000002] != nil }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := ScanFile(writeFile(t, "vmkernel.log", tt.data), ScanOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if !tt.want(s) {
				t.Errorf("summary: %+v", s)
			}
		})
	}
	if _, err := ScanFile(t.TempDir(), ScanOptions{}); !errors.Is(err, ErrNotRegular) {
		t.Errorf("directory: error %v, want ErrNotRegular", err)
	}
	if _, err := ScanFile(filepath.Join(t.TempDir(), "missing.log"), ScanOptions{}); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("missing file: error %v, want fs.ErrNotExist", err)
	}
}

// A 10 MB line is counted and skipped without being held whole.
func TestScanHugeLine(t *testing.T) {
	var data []byte
	data = append(data, "2017-09-30T17:27:30.509Z cpu1:65597)NetPort: 1879: disabled port 0x2000002 "...)
	data = append(data, bytes.Repeat([]byte("enabled port 0x1 Heap Dump "), 10<<20/27)...)
	data = append(data, "\n2017-09-30T17:27:31.509Z cpu1:65597)Uplink: 9893: enabled port 0x2000002 with mac 00:50:56:84:5a:b4\n"...)
	for _, name := range []string{"file", "reader"} {
		t.Run(name, func(t *testing.T) {
			p := writeFile(t, "vmkernel.log", data)
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			var s *Summary
			var err error
			if name == "file" {
				s, err = ScanFile(p, ScanOptions{})
			} else {
				f, ferr := os.Open(p)
				if ferr != nil {
					t.Fatal(ferr)
				}
				defer f.Close()
				s, err = Scan(f, ScanOptions{})
			}
			runtime.ReadMemStats(&after)
			if err != nil {
				t.Fatal(err)
			}
			if s.Lines != 2 || s.Oversized != 1 || s.Ports[0x2000002] == nil || s.Ports[0x2000002].Enabled != 1 || s.Ports[0x2000002].Disabled != 0 {
				t.Errorf("summary: %+v", s)
			}
			if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 8<<20 {
				t.Errorf("allocated %d bytes for a %d-byte line", alloc, len(data))
			}
		})
	}
}

func BenchmarkScan(b *testing.B) {
	var buf bytes.Buffer
	if err := loggen.Bench(&buf, 200000, loggen.BenchOptions{Seed: 1}); err != nil {
		b.Fatal(err)
	}
	p := filepath.Join(b.TempDir(), "vmkernel.log")
	if err := os.WriteFile(p, buf.Bytes(), 0o644); err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(buf.Len()))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ScanFile(p, ScanOptions{}); err != nil {
			b.Fatal(err)
		}
	}
}

// FuzzScan checks the fast scanner (buffers, markers, chunks) against the
// plain line-by-line definition on any input.
func FuzzScan(f *testing.F) {
	for _, name := range []string{"vmkernel-5x.log", "vmkernel-8x.log", "vmkernel-9x.log", "vmkernel-heap-maxed-kb.txt", "hostd-9x-continuation.log", "vmkernel-4x-messages.log",
		"vmkernel-41-messages-day-unpadded.log", "vmkernel-4x-messages-hostd-dump-day-unpadded.log", "hostd-6x-vpxa-crash-syslog.log", "vobd-6x-vpxa-crash-syslog.log"} {
		data, err := os.ReadFile(filepath.Join("testdata", name))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data, uint16(len(data)/2))
	}
	f.Fuzz(func(t *testing.T, data []byte, cut uint16) {
		const maxLine = 200
		opt := ScanOptions{Year: 2020}
		want := NewSummary(0, 0)
		if len(data) > 0 {
			want = refScan(data, opt, time.Time{}, maxLine)
		}
		// Every block implementation: the SIMD ones and the fallbacks.
		for _, impl := range markImpls() {
			withImpl(t, impl)
			fuzzScanImpl(t, data, cut, opt, maxLine, want)
		}
	})
}

// fuzzScanImpl is FuzzScan for the block implementation in markImpl.
func fuzzScanImpl(t *testing.T, data []byte, cut uint16, opt ScanOptions, maxLine int, want *Summary) {
	t.Helper()
	impl := implNames[markImpl]
	st := newScanState(opt, time.Time{}, false)
	if err := st.read(bytes.NewReader(data), make([]byte, maxLine+13), maxLine); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want, st.sum, ignoreState); diff != "" {
		t.Fatalf("%s: sequential (-want +got):\n%s", impl, diff)
	}
	b, _ := lineStart(bytes.NewReader(data), int64(len(data)), int64(cut)%int64(len(data)+1))
	got, err := scanChunks(bytes.NewReader(data), []int64{0, b, int64(len(data))}, opt, time.Time{}, maxLine+13, maxLine)
	if err != nil {
		t.Fatal(err)
	}
	if got != nil { // nil: a 4.x line, read in order instead
		if diff := cmp.Diff(want, got, ignoreState); diff != "" {
			t.Fatalf("%s: chunks at %d (-want +got):\n%s", impl, b, diff)
		}
	}
}

func TestMergeIntoZeroSummary(t *testing.T) {
	s, err := ScanFile(filepath.Join("testdata", "incident-messages.log"), ScanOptions{Year: 2012})
	if err != nil {
		t.Fatal(err)
	}
	var total Summary
	total.Merge(s)
	total.Merge(nil)
	if diff := cmp.Diff(s, &total, ignoreState); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

// A 4.x year carried from one file to the next: the January lines of the
// newer file are in the year after the December lines of the older one.
func TestScanSyslogCarry(t *testing.T) {
	older := "Dec 31 23:59:50 vmkernel: 7:19:45:13.619 cpu5:45459)NetPort: 1165: disabled port 0x3000003\n"
	newer := "Jan  1 00:00:10 vmkernel: 7:19:45:33.619 cpu5:45459)NetPort: 982: enabled port 0x3000003 with mac 00:50:56:84:5a:b1\n"
	st := &SyslogState{}
	a, err := Scan(strings.NewReader(older), ScanOptions{Year: 2013, Syslog: st})
	if err != nil {
		t.Fatal(err)
	}
	if st.Year != 2013 || st.Month != 12 || !st.Last.Equal(time.Date(2013, 12, 31, 23, 59, 50, 0, time.UTC)) {
		t.Fatalf("state after the older file: %+v", *st)
	}
	iso, err := Scan(strings.NewReader("2014-01-01T00:00:05.000Z cpu1:2)noise\n"), ScanOptions{Year: 2013, Syslog: st})
	if err != nil || iso.Lines != 1 || st.Year != 2013 || st.Month != 12 {
		t.Fatalf("an ISO file moved the state: %+v, %v", *st, err)
	}
	b, err := Scan(strings.NewReader(newer), ScanOptions{Year: 2013, Syslog: st})
	if err != nil {
		t.Fatal(err)
	}
	if a.First.Year() != 2013 || b.First.Year() != 2014 || st.Year != 2014 || st.Month != 1 {
		t.Errorf("older %v, newer %v, state %+v: want 2013, 2014, {2014 1}", a.First, b.First, *st)
	}
}

// At a file boundary the carried year never goes back: a newer copy that
// starts more than six months after the older one ended is in the same
// year, and one a few seconds out of order stays in it too.
func TestScanSyslogCarryBoundary(t *testing.T) {
	line := func(date string) string {
		return date + " vmkernel: 7:19:45:13.619 cpu5:45459)NetPort: 1165: disabled port 0x3000003\n"
	}
	for _, c := range []struct {
		name         string
		older, newer string
		want         int
	}{
		{"long gap", line("Jan 20 10:00:00"), line("Aug  3 10:00:00"), 2014},
		{"out of order", line("Mar  1 00:00:01"), line("Feb 28 23:59:59"), 2014},
		{"new year", line("Dec 31 23:59:59"), line("Jan  1 00:00:01"), 2015},
		{"december to june", line("Dec 31 10:00:00"), line("Jun  1 10:00:00"), 2015},
		{"clock set back 2 hours", line("Jun 10 12:00:00"), line("Jun 10 10:00:00"), 2014},
	} {
		st := &SyslogState{}
		if _, err := Scan(strings.NewReader(c.older), ScanOptions{Year: 2014, Syslog: st}); err != nil {
			t.Fatal(err)
		}
		s, err := Scan(strings.NewReader(c.newer), ScanOptions{Year: 2014, Syslog: st})
		if err != nil {
			t.Fatal(err)
		}
		if s.First.Year() != c.want {
			t.Errorf("%s: newer file dated %v, want year %d", c.name, s.First, c.want)
		}
	}
}

// A December line a few seconds out of order at the start of the copy
// after New Year belongs to the year before, and does not push the copy's
// January lines, or the next copy, a year on.
func TestScanSyslogCarryOutOfOrder(t *testing.T) {
	line := func(date string, port int) string {
		return fmt.Sprintf("%s vmkernel: 7:19:45:13.619 cpu5:45459)NetPort: 1165: disabled port 0x300000%d\n", date, port)
	}
	st := &SyslogState{}
	if _, err := Scan(strings.NewReader(line("Jan  1 00:00:01", 1)), ScanOptions{Year: 2014, Syslog: st}); err != nil {
		t.Fatal(err)
	}
	s, err := Scan(strings.NewReader(line("Dec 31 23:59:59", 2)+line("Jan  1 00:00:05", 3)), ScanOptions{Year: 2014, Syslog: st})
	if err != nil {
		t.Fatal(err)
	}
	if got := s.Ports[0x3000002].First; got.Year() != 2013 {
		t.Errorf("out-of-order December line dated %v, want 2013", got)
	}
	if got := s.Ports[0x3000003].First; got.Year() != 2014 {
		t.Errorf("January line after it dated %v, want 2014", got)
	}
	next, err := Scan(strings.NewReader(line("Jan  2 00:00:00", 4)), ScanOptions{Year: 2014, Syslog: st})
	if err != nil {
		t.Fatal(err)
	}
	if got := next.First; got.Year() != 2014 {
		t.Errorf("the next copy dated %v, want 2014", got)
	}
}

// Several lines out of order across New Year at the start of a copy are
// dated as they would be within one file.
func TestScanSyslogCarrySeveralOutOfOrder(t *testing.T) {
	line := func(date string, port int) string {
		return fmt.Sprintf("%s vmkernel: 7:19:45:13.619 cpu5:45459)NetPort: 1165: disabled port 0x300000%d\n", date, port)
	}
	st := &SyslogState{}
	if _, err := Scan(strings.NewReader(line("Jan  1 00:30:00", 1)), ScanOptions{Year: 2014, Syslog: st}); err != nil {
		t.Fatal(err)
	}
	s, err := Scan(strings.NewReader(line("Dec 31 23:45:00", 2)+line("Dec 31 23:20:00", 3)+line("Jan  1 00:31:00", 4)), ScanOptions{Year: 2014, Syslog: st})
	if err != nil {
		t.Fatal(err)
	}
	for port, want := range map[Port]int{0x3000002: 2013, 0x3000003: 2013, 0x3000004: 2014} {
		if got := s.Ports[port].First.Year(); got != want {
			t.Errorf("port %v dated %d, want %d", port, got, want)
		}
	}
}
