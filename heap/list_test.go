package heap

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/heapguard/heapguard/host"
)

// entryLines keeps the `ls` entry lines of the NSX sample, the only real
// listing lines we have.
func entryLines(t testing.TB) string {
	var b strings.Builder
	for _, l := range strings.Split(readFixture(t, "vsish-heap-stats-vsip-nsx62-grepped.txt"), "\n") {
		if strings.HasSuffix(l, "/") {
			b.WriteString(l + "\n")
		}
	}
	return b.String()
}

func TestParseList(t *testing.T) {
	nsx := []Entry{
		{Base: "vsip-attr", Full: "vsip-attr-0x430c1db5c000"},
		{Base: "vsip-flow", Full: "vsip-flow-0x430bedb59000"},
		{Base: "vsip-ipdiscovery", Full: "vsip-ipdiscovery-0x430bcdb56000"},
		{Base: "vsip-rules", Full: "vsip-rules-0x430b6dc53000"},
		{Base: "vsip-state", Full: "vsip-state-0x430b0dd50000"},
		{Base: "vsip-module", Full: "vsip-module-0x430addd4d000"},
	}
	tests := []struct {
		name    string
		in      string
		want    []Entry
		wantErr error
	}{
		{name: "empty", in: ""},
		{name: "nsx sample entry lines", in: entryLines(t), want: nsx},
		{
			// The whole grepped sample: the 36 indented field lines are not
			// listing lines; the entries are still returned.
			name: "nsx sample with field lines", in: readFixture(t, "vsish-heap-stats-vsip-nsx62-grepped.txt"),
			want: nsx, wantErr: ErrSyntax,
		},
		{
			name: "seed heap, no suffix, blank lines, CRLF",
			in:   "netGPHeap-0x410001000000/\r\n\r\nuwshmemHeap/\n  netPktHeap-0x41000a000000/  \n",
			want: []Entry{
				{Base: "netGPHeap", Full: "netGPHeap-0x410001000000"},
				{Base: "uwshmemHeap", Full: "uwshmemHeap"},
				{Base: "netPktHeap", Full: "netPktHeap-0x41000a000000"},
			},
		},
		{
			name: "suffix that is not hex stays",
			in:   "odd-0xZZ/\nodd-0x/\n-0x12/\n",
			want: []Entry{{Base: "odd-0xZZ", Full: "odd-0xZZ"}, {Base: "odd-0x", Full: "odd-0x"}, {Base: "-0x12", Full: "-0x12"}},
		},
		{
			name: "garbage counted", in: "a/\nnot an entry\n/\n../\nx/y/\nb/\n",
			want: []Entry{{Base: "a", Full: "a"}, {Base: "b", Full: "b"}}, wantErr: ErrSyntax,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseList(strings.NewReader(tt.in))
			if !errors.Is(err, tt.wantErr) || (err == nil) != (tt.wantErr == nil) {
				t.Fatalf("ParseList error = %v, want %v", err, tt.wantErr)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("entries (-want +got):\n%s", diff)
			}
		})
	}
}

func TestParseListCountsGarbage(t *testing.T) {
	_, err := ParseList(strings.NewReader(readFixture(t, "vsish-heap-stats-vsip-nsx62-grepped.txt")))
	if err == nil || !strings.Contains(err.Error(), "36 unrecognised lines") || !strings.Contains(err.Error(), `"Name:vsip-attr"`) {
		t.Errorf("error = %v, want 36 lines counted and the first quoted", err)
	}
}

func FuzzParseList(f *testing.F) {
	f.Add(entryLines(f))
	f.Add(readFixture(f, "vsish-heap-stats-vsip-nsx62-grepped.txt"))
	f.Add("netGPHeap-0x410001000000/\n")
	f.Fuzz(func(t *testing.T, in string) {
		entries, _ := ParseList(strings.NewReader(in))
		for _, e := range entries {
			if e.Full == "" || e.Base == "" || strings.ContainsAny(e.Full, "/ \t") || !strings.HasPrefix(e.Full, e.Base) {
				t.Fatalf("bad entry %+v", e)
			}
		}
	})
}

func TestMatch(t *testing.T) {
	tests := []struct {
		globs []string
		base  string
		want  bool
	}{
		{nil, "netGPHeap", true},
		{[]string{"netGPHeap"}, "netGPHeap", true},
		{[]string{"netgpheap"}, "netGPHeap", true},
		{[]string{"net*"}, "netPktHeap", true},
		{[]string{"vsip-*", "dvfilter*"}, "netGPHeap", false},
		{[]string{"vsip-*", "dvfilter*"}, "dvfilter-generic-fastpath", true},
		{[]string{"[bad"}, "[bad", true},
		{[]string{"[bad"}, "b", false},
	}
	for _, tt := range tests {
		if got := Match(tt.globs, tt.base); got != tt.want {
			t.Errorf("Match(%q, %q) = %v, want %v", tt.globs, tt.base, got, tt.want)
		}
	}
	if err := ValidGlobs([]string{"net*", "[bad"}); err == nil || !strings.Contains(err.Error(), `"[bad"`) {
		t.Errorf("ValidGlobs error = %v, want one naming [bad", err)
	}
	if err := ValidGlobs([]string{"net*", "vsip-?"}); err != nil {
		t.Errorf("ValidGlobs: %v", err)
	}
}

// fakeVsish answers vsish argv with canned output; it stands in for the
// simulated host until esxsim is available to this package's tests.
type fakeVsish struct {
	out   map[string]string // joined argv -> stdout
	fail  map[string]error
	calls [][]string
	tmo   []time.Duration
}

func (f *fakeVsish) Run(ctx context.Context, timeout time.Duration, argv ...string) (host.Result, error) {
	f.calls = append(f.calls, argv)
	f.tmo = append(f.tmo, timeout)
	key := strings.Join(argv, " ")
	if err := f.fail[key]; err != nil {
		return host.Result{Argv: argv, ExitCode: 1}, &host.CommandError{Argv: argv, ExitCode: 1, Err: err}
	}
	out, ok := f.out[key]
	if !ok {
		return host.Result{Argv: argv, ExitCode: 1}, &host.CommandError{Argv: argv, ExitCode: 1, Stderr: "no such node"}
	}
	return host.Result{Argv: argv, Stdout: []byte(out)}, nil
}

func TestListAndRead(t *testing.T) {
	stats := readFixture(t, "vsish-heap-stats-netGPHeap-esxi4-depleted.txt")
	f := &fakeVsish{out: map[string]string{
		"vsish -e ls /system/heaps/":                                "netGPHeap-0x410001000000/\nvmfs3-0x410016400000/\n",
		"vsish -e cat /system/heaps/netGPHeap-0x410001000000/stats": stats,
		"vsish -e cat /system/heaps/vmfs3-0x410016400000/stats":     "Heap stats {\nName:vmfs3\ncurrent bytes allocated:5\n",
		"vsish -e cat /system/heaps/other-0x1/stats":                stats,
	}}
	ctx := context.Background()
	entries, err := List(ctx, f)
	if err != nil {
		t.Fatal(err)
	}
	want := []Entry{{Base: "netGPHeap", Full: "netGPHeap-0x410001000000"}, {Base: "vmfs3", Full: "vmfs3-0x410016400000"}}
	if diff := cmp.Diff(want, entries); diff != "" {
		t.Fatalf("entries (-want +got):\n%s", diff)
	}
	s, err := Read(ctx, f, entries[0])
	if err != nil {
		t.Fatal(err)
	}
	if s.Name != "netGPHeap" || s.FullName != "netGPHeap-0x410001000000" {
		t.Errorf("sample names %q %q", s.Name, s.FullName)
	}
	if s.PercentFreeOfMax() < 4.98 || s.PercentFreeOfMax() > 4.99 {
		t.Errorf("PercentFreeOfMax = %v", s.PercentFreeOfMax())
	}

	// Truncated stats: the incomplete sample and ErrTruncated, naming the heap.
	s, err = Read(ctx, f, entries[1])
	if !errors.Is(err, ErrTruncated) || !s.Incomplete || !strings.Contains(err.Error(), "vmfs3-0x410016400000") {
		t.Errorf("Read truncated = %+v, %v", s, err)
	}
	// A stats block of another heap is refused.
	if _, err := Read(ctx, f, Entry{Base: "other", Full: "other-0x1"}); !errors.Is(err, ErrSyntax) {
		t.Errorf("Read with mismatched name: %v", err)
	}
	// A failing vsish names the heap and keeps the command error.
	_, err = Read(ctx, f, Entry{Base: "gone", Full: "gone-0x2"})
	var cerr *host.CommandError
	if !errors.As(err, &cerr) || !strings.Contains(err.Error(), "gone-0x2") {
		t.Errorf("Read of missing heap: %v", err)
	}
	// A name that would leave /system/heaps/ is never run.
	n := len(f.calls)
	if _, err := Read(ctx, f, Entry{Full: "../x"}); err == nil || len(f.calls) != n {
		t.Errorf("Read(../x) = %v after %d calls", err, len(f.calls)-n)
	}
	for i, d := range f.tmo {
		if d != Timeout {
			t.Errorf("call %v timeout %v, want %v", f.calls[i], d, Timeout)
		}
	}
	if !slices.Equal(f.calls[1], []string{"vsish", "-e", "cat", "/system/heaps/netGPHeap-0x410001000000/stats"}) {
		t.Errorf("argv %q", f.calls[1])
	}

	f.fail = map[string]error{"vsish -e ls /system/heaps/": fmt.Errorf("%w after 5s", host.ErrTimeout)}
	if _, err := List(ctx, f); !errors.Is(err, host.ErrTimeout) {
		t.Errorf("List with timeout: %v", err)
	}
}
