package loggen

import (
	"bufio"
	"bytes"
	"regexp"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// uniqC is `grep 'enabled port' | awk '{print $field}' | sort | uniq -c`.
func uniqC(t *testing.T, log []byte, field int) map[string]int {
	t.Helper()
	out := map[string]int{}
	sc := bufio.NewScanner(bytes.NewReader(log))
	for sc.Scan() {
		if !strings.Contains(sc.Text(), "enabled port") {
			continue
		}
		f := strings.Fields(sc.Text())
		v := ""
		if len(f) >= field {
			v = f[field-1]
		}
		out[v]++
	}
	return out
}

func TestIncidentCounts(t *testing.T) {
	var buf bytes.Buffer
	if err := Incident(&buf, 1); err != nil {
		t.Fatal(err)
	}
	want := map[string]int{"00:50:56:84:5a:b1": 1618, "00:50:56:84:5a:b4": 1618, "00:50:56:84:5a:ba": 1617}
	if diff := cmp.Diff(want, uniqC(t, buf.Bytes(), 13)); diff != "" {
		t.Errorf("uniq -c of $13 (-want +got):\n%s", diff)
	}
	// The counts come from the heap figures, not from the seed.
	var other bytes.Buffer
	if err := Incident(&other, 42); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want, uniqC(t, other.Bytes(), 13)); diff != "" {
		t.Errorf("seed 42 (-want +got):\n%s", diff)
	}
	// It ends with the incident's own crash lines.
	lines := strings.Split(strings.TrimSuffix(buf.String(), "\n"), "\n")
	wantTail := []string{
		"Jul 26 01:26:44 vmkernel: 7:21:06:29.187 cpu7:202156)NetPort: 982: enabled port 0x3000007 with mac 00:50:56:84:5a:b4",
		"Jul 26 01:26:46 vmkernel: 7:21:06:31.191 cpu3:33421)WARNING: Heap: 2218: Heap netGPHeap already at its maximumSize. Cannot expand.",
		"Jul 26 01:26:46 vmkernel: 7:21:06:31.191 cpu3:33421)WARNING: Heap: 2481: Heap_Align(netGPHeap, 4364/4364 bytes, 8 align) failed. caller: 0x41801c90bb4e",
		"Jul 26 01:26:46 vmkernel: 7:21:06:31.195 cpu2:33595)WARNING: Heap: 2218: Heap netGPHeap already at its maximumSize. Cannot expand.",
		"Jul 26 01:26:46 vmkernel: 7:21:06:31.195 cpu2:33595)WARNING: Heap: 2481: Heap_Align(netGPHeap, 4364/4364 bytes, 8 align) failed. caller: 0x41801c90bb4e",
		"Jul 26 01:26:46 vmkernel: 7:21:06:31.199 cpu3:14258)User: 2432: wantCoreDump : vpxa -enabled : 1",
		"Jul 26 01:26:46 vmkernel: 7:21:06:31.383 cpu11:14258)UserDump: 1485: Dumping cartel 14235 (from world 14258) to file /var/core/vpxa-zdump.000 ...",
	}
	got := lines[len(lines)-len(wantTail):]
	// The last enable's cpu and world depend on the seed; compare its stamp and message.
	got0, want0 := got[0][:41], wantTail[0][:41]
	if got0 != want0 || !strings.HasSuffix(got[0], "enabled port 0x3000007 with mac 00:50:56:84:5a:b4") {
		t.Errorf("last enable: %q, want like %q", got[0], wantTail[0])
	}
	if diff := cmp.Diff(wantTail[1:], got[1:]); diff != "" {
		t.Errorf("crash lines (-want +got):\n%s", diff)
	}
}

var iso5x = regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z cpu\d+:\d+\)\S`)

func TestBench(t *testing.T) {
	var a, b bytes.Buffer
	if err := Bench(&a, 20000, BenchOptions{Seed: 3}); err != nil {
		t.Fatal(err)
	}
	if err := Bench(&b, 20000, BenchOptions{Seed: 3}); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a.Bytes(), b.Bytes()) {
		t.Fatal("same seed, different logs")
	}
	lines := strings.Split(strings.TrimSuffix(a.String(), "\n"), "\n")
	if len(lines) != 20000 {
		t.Fatalf("%d lines, want 20000", len(lines))
	}
	shapes := map[string]bool{}
	prev := ""
	for i, l := range lines {
		if !iso5x.MatchString(l) {
			t.Fatalf("line %d not in 5.x format: %q", i+1, l)
		}
		if l[:24] < prev {
			t.Fatalf("line %d goes back in time: %q after %q", i+1, l[:24], prev)
		}
		prev = l[:24]
		msg := l[strings.IndexByte(l, ')')+1:]
		shapes[strings.Fields(msg)[0]] = true
	}
	if len(shapes) < 10 {
		t.Errorf("noise too uniform: %d shapes", len(shapes))
	}
	// The 5.x pipeline field is $9; six ports flap, under NetPort: and Uplink:.
	counts := uniqC(t, a.Bytes(), 9)
	if len(counts) != 6 {
		t.Errorf("enabled MACs: %v", counts)
	}
	for mac, n := range counts {
		if n < 50 {
			t.Errorf("%s flapped %d times", mac, n)
		}
	}
	if !strings.Contains(a.String(), ")Uplink: 9893: enabled port") || !strings.Contains(a.String(), ")NetPort: 982: enabled port") {
		t.Error("missing NetPort or Uplink enabled lines")
	}
	if avg := a.Len() / len(lines); avg < 110 || avg > 150 {
		t.Errorf("average line %d bytes, want ~125", avg)
	}
}

// TestBenchEventRatio: -event-ratio sets the share of port lines, within
// a percentage point, for the default density and the incident's peak.
func TestBenchEventRatio(t *testing.T) {
	for _, want := range []float64{0.05, 0.1, 0.3} {
		var b bytes.Buffer
		if err := Bench(&b, 100000, BenchOptions{Seed: 1, EventRatio: want}); err != nil {
			t.Fatal(err)
		}
		ports := strings.Count(b.String(), " port 0x")
		if got := float64(ports) / 100000; got < want-0.01 || got > want+0.01 {
			t.Errorf("event ratio %.2f: %.4f of the lines are port lines", want, got)
		}
	}
}
