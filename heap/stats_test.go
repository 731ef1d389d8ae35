package heap

import (
	"errors"
	"math"
	"os"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func readFixture(t testing.TB, name string) string {
	t.Helper()
	b, err := os.ReadFile("testdata/" + name)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// figures is what a Sample says about its heap, for compact comparisons.
type figures struct {
	Name, FullName    string
	Max, Alloc, Avail int64
	HasMax, HasAvail  bool
	Lowest            int64
	Pct               float64
	Src               FreeSource
	Incomplete        bool
	Fields, Skipped   int
}

func figuresOf(s Sample) figures {
	f := figures{Name: s.Name, FullName: s.FullName, Incomplete: s.Incomplete, Fields: len(s.Fields), Skipped: s.Skipped}
	f.Max, f.HasMax = s.MaxSize()
	f.Alloc, _ = s.Allocated()
	f.Avail, f.HasAvail = s.MaxAvailable()
	f.Lowest, _ = s.LowestPercentFreeEver()
	f.Pct = math.Round(s.PercentFreeOfMax()*1e6) / 1e6
	f.Src = s.FreeSource()
	return f
}

func TestParseStatsSamples(t *testing.T) {
	tests := []struct {
		file string
		want []figures
	}{
		{
			// Regression: the seed incident. vsish printed "percent free of
			// max size:0" while the bytes say 4.98 %; the bytes win.
			file: "vsish-heap-stats-netGPHeap-esxi4-depleted.txt",
			want: []figures{{Name: "netGPHeap", Max: 67109968, Alloc: 63765168, Avail: 3344800, HasMax: true, HasAvail: true,
				Lowest: 0, Pct: 4.984058, Src: FreeFromMaxAvailable, Fields: 17}},
		},
		{
			// vsish truncates: 4.98 % is printed as 4.
			file: "vsish-heap-stats-netGPHeap-esxi4-after.txt",
			want: []figures{{Name: "netGPHeap", Max: 67109968, Alloc: 63765168, Avail: 3344800, HasMax: true, HasAvail: true,
				Lowest: 0, Pct: 4.984058, Src: FreeFromMaxAvailable, Fields: 17}},
		},
		{
			// grep-filtered `vsish -e get` loop: no maximum bytes available,
			// so the free share comes from allocated bytes.
			file: "vsish-heap-stats-vsip-nsx62-grepped.txt",
			want: []figures{
				{Name: "vsip-attr", FullName: "vsip-attr-0x430c1db5c000", Max: 536875872, Alloc: 944, HasMax: true, Lowest: 100, Pct: 99.999824, Src: FreeFromAllocated, Fields: 6},
				{Name: "vsip-flow", FullName: "vsip-flow-0x430bedb59000", Max: 805311328, Alloc: 1424, HasMax: true, Lowest: 99, Pct: 99.999823, Src: FreeFromAllocated, Fields: 6},
				{Name: "vsip-ipdiscovery", FullName: "vsip-ipdiscovery-0x430bcdb56000", Max: 536875872, Alloc: 1488, HasMax: true, Lowest: 99, Pct: 99.999723, Src: FreeFromAllocated, Fields: 6},
				{Name: "vsip-rules", FullName: "vsip-rules-0x430b6dc53000", Max: 1609569120, Alloc: 100317024, HasMax: true, Lowest: 93, Pct: 93.767461, Src: FreeFromAllocated, Fields: 6},
				{Name: "vsip-state", FullName: "vsip-state-0x430b0dd50000", Max: 1609569120, Alloc: 944, HasMax: true, Lowest: 100, Pct: 99.999941, Src: FreeFromAllocated, Fields: 6},
				{Name: "vsip-module", FullName: "vsip-module-0x430addd4d000", Max: 805311328, Alloc: 1544464, HasMax: true, Lowest: 99, Pct: 99.808215, Src: FreeFromAllocated, Fields: 6},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			got, err := ParseStats(strings.NewReader(readFixture(t, tt.file)))
			if err != nil {
				t.Fatalf("ParseStats: %v", err)
			}
			var gotF []figures
			for _, s := range got {
				gotF = append(gotF, figuresOf(s))
			}
			if diff := cmp.Diff(tt.want, gotF); diff != "" {
				t.Errorf("samples (-want +got):\n%s", diff)
			}
		})
	}
}

// Every field is kept, numeric or not; enumerated values keep their number
// and their words.
func TestParseStatsKeepsEveryField(t *testing.T) {
	got, err := ParseStats(strings.NewReader(readFixture(t, "vsish-heap-stats-netGPHeap-esxi4-depleted.txt")))
	if err != nil {
		t.Fatal(err)
	}
	want := []Field{
		{Key: "Name", Value: "netGPHeap"},
		{Key: "dynamically growable", Value: "1", Num: 1, IsNum: true},
		{Key: "physical contiguity", Value: "Heap_PhysContigType: 1 -> Any Physical Contiguity", Num: 1, IsNum: true},
		{Key: "memory type", Value: "MM_AllocType: 0 -> Any", Num: 0, IsNum: true},
		{Key: "# of ranges allocated", Value: "20", Num: 20, IsNum: true},
		{Key: "maximum # of ranges", Value: "200", Num: 200, IsNum: true},
		{Key: "dlmalloc overhead", Value: "2448", Num: 2448, IsNum: true},
		{Key: "current heap size", Value: "67109968", Num: 67109968, IsNum: true},
		{Key: "current bytes allocated", Value: "63765168", Num: 63765168, IsNum: true},
		{Key: "current bytes available", Value: "3344800", Num: 3344800, IsNum: true},
		{Key: "current bytes releasable", Value: "19568", Num: 19568, IsNum: true},
		{Key: "percent free of current size", Value: "0", Num: 0, IsNum: true},
		{Key: "percent releasable of current size", Value: "0", Num: 0, IsNum: true},
		{Key: "maximum heap size", Value: "67109968", Num: 67109968, IsNum: true},
		{Key: "maximum bytes available", Value: "3344800", Num: 3344800, IsNum: true},
		{Key: "percent free of max size", Value: "0", Num: 0, IsNum: true},
		{Key: "lowest percent free of max size ever encountered", Value: "0", Num: 0, IsNum: true},
	}
	if len(got) != 1 {
		t.Fatalf("got %d samples, want 1", len(got))
	}
	if diff := cmp.Diff(want, got[0].Fields); diff != "" {
		t.Errorf("fields (-want +got):\n%s", diff)
	}
	if cs, ok := got[0].Int(KeyCurrentSize); !ok || cs != 67109968 {
		t.Errorf("current heap size = %d, %v; want 67109968, true", cs, ok)
	}
	if p, ok := got[0].PrintedPercentFreeOfMax(); !ok || p != 0 {
		t.Errorf("PrintedPercentFreeOfMax() = %d, %v; want 0, true", p, ok)
	}
}

func TestParseStatsCases(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    []figures
		wantErr error
	}{
		{name: "empty", in: "", wantErr: ErrNoStats},
		{name: "garbage only", in: "hello\nworld\n", wantErr: ErrNoStats},
		// Every "key:value" line starts a sample: lines of another file
		// (a vmkernel log, a config) must not read as nameless heaps.
		{name: "a vmkernel log is not stats", in: "2013-08-20T12:00:00.123Z cpu3:33421)NetPort: 1: disabled port 0x3000007\n" +
			"Jul 26 01:26:46 vmkernel: 7:19:45:13.619 cpu5:45459)WARNING: Heap: 2525: Heap vmfs3 already at its maximum size.\n", wantErr: ErrNoStats},
		{name: "key:value lines of no heap", in: "host:esx01\nport:443\n{\nuser:root\n}\n", wantErr: ErrNoStats},
		{
			name: "log lines around a block are dropped",
			in:   "2013-08-20T12:00:00.123Z cpu3:33421)x\nHeap stats {\nName:a\nmaximum heap size:100\nmaximum bytes available:40\n}\nafter: this\n",
			want: []figures{{Name: "a", Max: 100, Avail: 40, HasMax: true, HasAvail: true, Pct: 40, Src: FreeFromMaxAvailable, Fields: 3}},
		},
		{
			// A block cut right after its opening line is truncated stats, not text.
			name:    "Heap stats { alone",
			in:      "Heap stats {\n",
			want:    []figures{{Pct: math.NaN(), Src: FreeNone, Incomplete: true}},
			wantErr: ErrTruncated,
		},
		{
			name:    "a nameless block with a heap field",
			in:      "   current bytes allocated:5\n   maximum heap size:10\n",
			want:    []figures{{Max: 10, Alloc: 5, HasMax: true, Pct: 50, Src: FreeFromAllocated, Fields: 2}},
			wantErr: nil,
		},
		{
			// `vsish -e get` indents fields by 3 spaces and closes the block.
			name: "get form with braces, two blocks",
			in: "Heap stats {\n   Name:a\n   maximum heap size:1000\n   current bytes allocated:250\n}\n" +
				"Heap stats {\n   Name:b\n   maximum heap size:200\n   percent free of max size:7\n}\n",
			want: []figures{
				{Name: "a", Max: 1000, Alloc: 250, HasMax: true, Pct: 75, Src: FreeFromAllocated, Fields: 3},
				{Name: "b", Max: 200, HasMax: true, Pct: 7, Src: FreeFromPrinted, Fields: 3},
			},
		},
		{
			name: "new Name starts a new sample without braces",
			in:   "Name:a\nmaximum heap size:100\nmaximum bytes available:10\nName:b\nmaximum heap size:100\nmaximum bytes available:90\n",
			want: []figures{
				{Name: "a", Max: 100, Avail: 10, HasMax: true, HasAvail: true, Pct: 10, Src: FreeFromMaxAvailable, Fields: 3},
				{Name: "b", Max: 100, Avail: 90, HasMax: true, HasAvail: true, Pct: 90, Src: FreeFromMaxAvailable, Fields: 3},
			},
		},
		{
			name: "CRLF, unknown lines counted, negative and text values kept",
			in:   "Heap stats {\r\n Name:x\r\nupper memory PA limit:-1\r\nsome words\r\nkind:fancy\r\nmaximum heap size:400\r\ncurrent bytes allocated:500\r\n}\r\n",
			// allocated above max clamps to 0 % free.
			want: []figures{{Name: "x", Max: 400, Alloc: 500, HasMax: true, Pct: 0, Src: FreeFromAllocated, Fields: 5, Skipped: 1}},
		},
		{
			name:    "truncated: no maximum heap size",
			in:      "Heap stats {\nName:netGPHeap\ncurrent heap size:67109968\ncurrent bytes allocated:63765168\n",
			want:    []figures{{Name: "netGPHeap", Alloc: 63765168, Pct: math.NaN(), Src: FreeNone, Incomplete: true, Fields: 3}},
			wantErr: ErrTruncated,
		},
		{
			name:    "truncated: cut in the middle of the last line",
			in:      "Heap stats {\nName:netGPHeap\nmaximum heap size:67109968\nmaximum bytes available:33",
			want:    []figures{{Name: "netGPHeap", Max: 67109968, Avail: 33, HasMax: true, HasAvail: true, Pct: 4.9e-05, Src: FreeFromMaxAvailable, Incomplete: true, Fields: 3}},
			wantErr: ErrTruncated,
		},
		{
			name: "closed block without final newline is whole",
			in:   "Heap stats {\nName:h\nmaximum heap size:10\nmaximum bytes available:5\n}",
			want: []figures{{Name: "h", Max: 10, Avail: 5, HasMax: true, HasAvail: true, Pct: 50, Src: FreeFromMaxAvailable, Fields: 3}},
		},
		{
			name:    "second of two entries truncated",
			in:      "a-0x1/\n   Name:a\n   maximum heap size:10\nb-0x2/\n   Name:b\n",
			want:    []figures{{Name: "a", FullName: "a-0x1", Max: 10, HasMax: true, Pct: math.NaN(), Src: FreeNone, Fields: 2}, {Name: "b", FullName: "b-0x2", Pct: math.NaN(), Src: FreeNone, Incomplete: true, Fields: 1}},
			wantErr: ErrTruncated,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseStats(strings.NewReader(tt.in))
			if !errors.Is(err, tt.wantErr) || (err == nil) != (tt.wantErr == nil) {
				t.Fatalf("ParseStats error = %v, want %v", err, tt.wantErr)
			}
			var gotF []figures
			for _, s := range got {
				gotF = append(gotF, figuresOf(s))
			}
			if diff := cmp.Diff(tt.want, gotF, cmp.Comparer(func(a, b float64) bool {
				return a == b || math.IsNaN(a) && math.IsNaN(b) || math.Abs(a-b) < 1e-9
			})); diff != "" {
				t.Errorf("samples (-want +got):\n%s", diff)
			}
		})
	}
}

// A used-up heap's 0 is a figure, not an absent one: both inputs are the
// esxi4 depleted sample, edited as each case says.
func TestFreeOfMaxZeroIsKnown(t *testing.T) {
	depleted := readFixture(t, "vsish-heap-stats-netGPHeap-esxi4-depleted.txt")
	edit := func(t *testing.T, in, old, new string) string {
		t.Helper()
		if !strings.Contains(in, old) {
			t.Fatalf("fixture has no %q", old)
		}
		return strings.Replace(in, old, new, 1)
	}
	tests := []struct {
		name    string
		in      func(t *testing.T) string
		wantSrc FreeSource
	}{
		// Fails if a printed "percent free of max size:0" is taken for absent.
		{"only the printed percentage, 0", func(t *testing.T) string {
			in := edit(t, depleted, "current bytes allocated:63765168\n", "")
			return edit(t, in, "maximum bytes available:3344800\n", "")
		}, FreeFromPrinted},
		// Fails if "maximum bytes available:0" is taken for absent.
		{"maximum bytes available 0", func(t *testing.T) string {
			return edit(t, depleted, "maximum bytes available:3344800\n", "maximum bytes available:0\n")
		}, FreeFromMaxAvailable},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseStats(strings.NewReader(tt.in(t)))
			if err != nil || len(got) != 1 {
				t.Fatalf("ParseStats: %d samples, %v", len(got), err)
			}
			if pct, src, ok := got[0].FreeOfMax(); pct != 0 || src != tt.wantSrc || !ok {
				t.Errorf("FreeOfMax() = %v, %q, %v; want 0, %q, true", pct, src, ok, tt.wantSrc)
			}
		})
	}
}

func TestParseStatsLongLine(t *testing.T) {
	in := "Heap stats {\nName:" + strings.Repeat("x", maxLine+10) + "\n"
	if _, err := ParseStats(strings.NewReader(in)); err == nil {
		t.Fatal("ParseStats accepted a line longer than maxLine")
	}
}

func FuzzParseStats(f *testing.F) {
	for _, name := range []string{
		"vsish-heap-stats-netGPHeap-esxi4-depleted.txt",
		"vsish-heap-stats-netGPHeap-esxi4-after.txt",
		"vsish-heap-stats-vsip-nsx62-grepped.txt",
	} {
		f.Add(readFixture(f, name))
	}
	f.Add("Heap stats {\nName:a\nmaximum heap size:0\n}\n")
	f.Fuzz(func(t *testing.T, in string) {
		samples, err := ParseStats(strings.NewReader(in))
		if err == nil && len(samples) == 0 {
			t.Fatal("no samples and no error")
		}
		for _, s := range samples {
			p, src, ok := s.FreeOfMax()
			if ok != (src != FreeNone) {
				t.Fatalf("FreeOfMax ok=%v with source %q", ok, src)
			}
			if ok && (p < 0 || p > 100 || math.IsNaN(p)) {
				t.Fatalf("percent free %v out of range (source %s)", p, src)
			}
			if _, has := s.MaxSize(); !has && !s.Incomplete {
				t.Fatal("sample without maximum heap size not flagged incomplete")
			}
			if s.Incomplete && !errors.Is(err, ErrTruncated) {
				t.Fatalf("incomplete sample but error %v", err)
			}
		}
	})
}
