package collector

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// Issue 14: log text as people paste it (tickets, forums, web pages).

// TestSyslogDayUnpadded: "Oct 4 08:02:38" (the padding space lost) reads as
// "Oct  4 08:02:38" does; a day without a digit or a shifted clock does not.
func TestSyslogDayUnpadded(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want time.Time
		ok   bool
	}{
		{"padded", "Oct  4 08:02:38 vmkernel: x", time.Date(2012, 10, 4, 8, 2, 38, 0, time.UTC), true},
		{"unpadded", "Oct 4 08:02:38 vmkernel: x", time.Date(2012, 10, 4, 8, 2, 38, 0, time.UTC), true},
		{"unpadded, host name", "Apr 7 17:41:03 esx_host vmkernel: x", time.Date(2012, 4, 7, 17, 41, 3, 0, time.UTC), true},
		{"unpadded, host as ident", "Apr 7 17:41:03 esx_host: 17:19:52:55.580 x", time.Date(2012, 4, 7, 17, 41, 3, 0, time.UTC), true},
		{"two digits", "Oct 14 08:02:38 vmkernel: x", time.Date(2012, 10, 14, 8, 2, 38, 0, time.UTC), true},
		{"unpadded day 0", "Oct 0 08:02:38 vmkernel: x", time.Time{}, false},
		{"unpadded, short clock", "Oct 4 8:02:38 vmkernel: x", time.Time{}, false},
		{"unpadded, no ident", "Oct 4 08:02:38", time.Time{}, false},
		{"unpadded, truncated", "Oct 4 08:0", time.Time{}, false},
		{"letter for day", "Oct x 08:02:38 vmkernel: x", time.Time{}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ev, err := ParseLine([]byte(tt.in), 2012)
			if (err == nil) != tt.ok {
				t.Fatalf("ParseLine(%q) error %v, want ok=%v", tt.in, err, tt.ok)
			}
			if tt.ok && (!ev.Time.Equal(tt.want) || ev.Format != FormatSyslog) {
				t.Errorf("ParseLine(%q) = %v %v, want %v syslog", tt.in, ev.Time, ev.Format, tt.want)
			}
		})
	}
}

// TestScanDayUnpaddedFixtures: the two pasted 4.x logs (SOURCES.md) have
// every line in a known format and their dumps counted.
func TestScanDayUnpaddedFixtures(t *testing.T) {
	for _, tt := range []struct {
		file    string
		lines   int64
		process []string
	}{
		{"vmkernel-41-messages-day-unpadded.log", 10, []string{"vix-async-pipe"}},
		{"vmkernel-4x-messages-hostd-dump-day-unpadded.log", 8, []string{"hostd-worker", "vix-async-pipe"}},
	} {
		t.Run(tt.file, func(t *testing.T) {
			s, err := ScanFile(filepath.Join("testdata", tt.file), ScanOptions{Year: 2012})
			if err != nil {
				t.Fatal(err)
			}
			if s.Lines != tt.lines || s.Unparsed != 0 {
				t.Errorf("lines %d unparsed %d, want %d and 0", s.Lines, s.Unparsed, tt.lines)
			}
			var got []string
			for _, p := range s.Processes {
				got = append(got, p.Process)
			}
			if diff := cmp.Diff(tt.process, got); diff != "" {
				t.Errorf("processes (-want +got):\n%s", diff)
			}
		})
	}
}

func readFixture(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// FuzzSyslogDayUnpadded: a 4.x line whose day lost its padding reads
// exactly as the padded line does, and an unpadded line never reads as
// anything the padded one does not.
func FuzzSyslogDayUnpadded(f *testing.F) {
	for _, name := range []string{"vmkernel-41-messages-day-unpadded.log", "vmkernel-4x-messages-hostd-dump-day-unpadded.log", "vmkernel-4x-messages.log"} {
		for _, l := range readLines(f, name) {
			f.Add(l)
		}
	}
	f.Fuzz(func(t *testing.T, line []byte) {
		if len(line) < 6 || line[3] != ' ' || line[5] != ' ' || !isDigit(line[4]) {
			return
		}
		padded := append([]byte(line[:4:4]), ' ')
		padded = append(padded, line[4:]...)
		got, err := ParseLine(line, 2012)
		want, werr := ParseLine(padded, 2012)
		if (err == nil) != (werr == nil) {
			t.Fatalf("unpadded %q: %v; padded: %v", line, err, werr)
		}
		if err == nil && !cmp.Equal(got, want) {
			t.Fatalf("unpadded %q:\n%+v\npadded:\n%+v", line, got, want)
		}
	})
}

// TestUntimedEvent: a known event's words behind a header in no known
// format count, with no time; the same words elsewhere do not.
func TestUntimedEvent(t *testing.T) {
	b4 := mustMAC(t, "00:50:56:84:5a:b4")
	tests := []struct {
		name string
		in   string
		want Event // Kind KindOther: ErrUnparsed
	}{
		// vmkernel-heap-maxed-kb.txt: the publishers dropped the stamps.
		{"KB align, vmkernel ident", "vmkernel: cpu2:1410)WARNING: Heap: 1370: Heap_Align(vmfs3, 4096/4096 bytes, 4 align) failed. caller: 0x8fdbd0", Event{Kind: KindHeapAlignFailed, Heap: "vmfs3"}},
		{"KB maxed, world only", "cpu4:1959755)WARNING:Heap: 2525: Heap vmfs3 already at its maximum size. Cannot expand.", Event{Kind: KindHeapMaxed, Heap: "vmfs3"}},
		{"KB maxed, bare", "WARNING: Heap: 2525: Heap vmfs3 already at its maximum size. Cannot expand.", Event{Kind: KindHeapMaxed, Heap: "vmfs3"}},
		{"4x maximumSize, stamp masked", "XXX XX XX:XX:XX vmkernel: 7:21:06:31.191 cpu3:33421)WARNING: Heap: 2218: Heap netGPHeap already at its maximumSize. Cannot expand.", Event{Kind: KindHeapMaxed, Heap: "netGPHeap"}},
		{"console copy, port enabled", "NetPort: 982: enabled port 0x3000007 with mac 00:50:56:84:5a:b4", Event{Kind: KindPortEnabled, Port: 0x3000007, MAC: b4, MACKnown: true}},
		{"unknown prefix, uplink disabled", "[esx01] cpu1:65597)Uplink: 9893: disabled port 0x2000002", Event{Kind: KindPortDisabled, Port: 0x2000002}},
		{"wantCoreDump", "cpu6:3476319)User: 2428: wantCoreDump : vix-async-pipe -enabled : 1", Event{Kind: KindCoreDump, Process: "vix-async-pipe", World: 3476319}},
		{"UserDump", "<13>cpu6:3476319)UserDump: 1485: Dumping cartel 3476251 (from world 3476319) to file /var/core/hostd-worker-zdump.000 ...", Event{Kind: KindUserDump, Process: "hostd-worker", World: 3476319, CoreFile: "/var/core/hostd-worker-zdump.000"}},
		// The words without their module and source line: prose, not a log.
		{"prose heap", "The Heap memory already at its maximum size, says the JVM", Event{}},
		{"prose heap with module word", "see Heap: Heap vmfs3 already at its maximum size", Event{}},
		{"module glued to a word", "MyHeap: 12: Heap vmfs3 already at its maximum size", Event{}},
		{"no source line", "Heap: : Heap vmfs3 already at its maximum size", Event{}},
		{"prose port", "the switch disabled port 0x3 for us", Event{}},
		{"wrong module for port", "Heap: 12: disabled port 0x3", Event{}},
		{"wrong module for dump", "NetPort: 1: wantCoreDump : vpxa -enabled : 1", Event{}},
		{"UserDump module, other words", "UserDump: 1587: Userworld coredump complete.", Event{}},
		{"near-miss kept", "vmkernel: cpu2:1410)WARNING: Heap_Align(vmfs3, 4096/4096 bytes, 4 align) failed.", Event{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseLine([]byte(tt.in), 2012)
			if tt.want.Kind == KindOther {
				if !errors.Is(err, ErrUnparsed) {
					t.Fatalf("ParseLine(%q) = %+v, %v; want ErrUnparsed", tt.in, got, err)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseLine(%q): %v", tt.in, err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("ParseLine(%q) (-want +got):\n%s", tt.in, diff)
			}
		})
	}
}

// TestScanUntimedHeapKB: the KB's six message bodies (no stamps) give the
// heap events they hold, with no time, and the one line that holds none
// stays unparsed.
func TestScanUntimedHeapKB(t *testing.T) {
	for _, impl := range markImpls() {
		withImpl(t, impl)
		s, err := Scan(bytes.NewReader(readFixture(t, "vmkernel-heap-maxed-kb.txt")), ScanOptions{Since: time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)})
		if err != nil {
			t.Fatal(err)
		}
		if s.Lines != 6 || s.Events != 5 || s.Untimed != 5 || s.Unparsed != 1 || s.BeforeSince != 0 {
			t.Errorf("%s: lines %d events %d untimed %d unparsed %d before-since %d, want 6 5 5 1 0",
				implNames[impl], s.Lines, s.Events, s.Untimed, s.Unparsed, s.BeforeSince)
		}
		want := []HeapSummary{{Heap: "vmfs3", Kind: KindHeapMaxed, Count: 2, Untimed: 2}, {Heap: "vmfs3", Kind: KindHeapAlignFailed, Count: 3, Untimed: 3}}
		if diff := cmp.Diff(want, s.Heaps); diff != "" {
			t.Errorf("%s: heaps (-want +got):\n%s", implNames[impl], diff)
		}
		if !s.First.IsZero() || !s.Last.IsZero() {
			t.Errorf("first/last %v %v, want zero: no time is known", s.First, s.Last)
		}
	}
}

// TestMergeUntimed: a copy with only untimed events neither moves the
// other's first and last nor its place in time.
func TestMergeUntimed(t *testing.T) {
	t0 := time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC)
	timed := NewSummary(0, 0)
	timed.add(&Event{Kind: KindHeapMaxed, Heap: "netGPHeap", Time: t0})
	untimed := NewSummary(0, 0)
	untimed.add(&Event{Kind: KindHeapMaxed, Heap: "netGPHeap"})
	untimed.add(&Event{Kind: KindPortEnabled, Port: 7})
	for _, order := range [][2]*Summary{{timed, untimed}, {untimed, timed}} {
		s := NewSummary(0, 0)
		s.Merge(order[0].clone())
		s.Merge(order[1].clone())
		if !s.First.Equal(t0) || !s.Last.Equal(t0) || s.Events != 3 || s.Untimed != 2 {
			t.Errorf("first %v last %v events %d untimed %d", s.First, s.Last, s.Events, s.Untimed)
		}
		if h := s.Heaps[0]; h.Count != 2 || h.Untimed != 1 || !h.First.Equal(t0) || !h.Last.Equal(t0) {
			t.Errorf("heap %+v", h)
		}
		if p := s.Ports[7]; p == nil || p.Untimed != 1 || p.Enabled != 0 || !p.First.IsZero() {
			t.Errorf("port %+v", p)
		}
	}
}

// TestFlapTrackerSkipsUntimed: the agent's tracker keeps no port from a
// line whose time is unknown (a zero time would sit in every window).
func TestFlapTrackerSkipsUntimed(t *testing.T) {
	ft := NewFlapTracker(2, time.Minute)
	ev, err := ParseLine([]byte("NetPort: 982: enabled port 0x3000007 with mac 00:50:56:84:5a:b4"), 2012)
	if err != nil || ev.Kind != KindPortEnabled {
		t.Fatalf("ParseLine: %+v %v", ev, err)
	}
	ft.Observe(ev)
	ft.Observe(ev)
	if st := ft.Status(time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC)); len(st) != 0 {
		t.Errorf("status %+v, want no port", st)
	}
}

// FuzzUntimedEvent: a line in no known format gives an event only with
// the words right after their module and source line, never a time, and
// the scanner counts it as ParseLine reads it.
func FuzzUntimedEvent(f *testing.F) {
	for _, name := range []string{"vmkernel-heap-maxed-kb.txt", "vmkernel-4x-messages.log", "vmkernel-41-messages-day-unpadded.log"} {
		for _, l := range readLines(f, name) {
			f.Add(l)
			if i := bytes.Index(l, []byte("cpu")); i > 0 {
				f.Add(l[i:]) // without its header
			}
		}
	}
	modules := map[Kind][]string{KindPortDisabled: {"NetPort", "Uplink"}, KindPortEnabled: {"NetPort", "Uplink"},
		KindHeapMaxed: {"Heap"}, KindHeapAlignFailed: {"Heap"}, KindCoreDump: {"User"}, KindUserDump: {"UserDump"}}
	f.Fuzz(func(t *testing.T, line []byte) {
		ev, err := ParseLine(line, 2012)
		if err != nil || ev.Format != FormatUnknown {
			return
		}
		if !ev.Time.IsZero() || ev.HasUptime {
			t.Fatalf("untimed event with a time: %+v", ev)
		}
		mods, ok := modules[ev.Kind]
		if !ok {
			t.Fatalf("untimed event of kind %v", ev.Kind)
		}
		found := false
		for _, m := range mods {
			found = found || bytes.Contains(line, []byte(m+": "))
		}
		if !found {
			t.Fatalf("%q: %v without module %v", line, ev.Kind, mods)
		}
		if (ev.Kind == KindHeapMaxed || ev.Kind == KindHeapAlignFailed) && ev.Heap == "" ||
			(ev.Kind == KindCoreDump || ev.Kind == KindUserDump) && ev.Process == "" {
			t.Fatalf("%q: event without its name: %+v", line, ev)
		}
		if bytes.IndexByte(line, '\n') < 0 {
			s, err := Scan(bytes.NewReader(line), ScanOptions{Year: 2012})
			if err != nil || s.Events != 1 || s.Untimed != 1 {
				t.Fatalf("%q: scan %+v %v, want one untimed event", line, s, err)
			}
		}
	})
}

func TestAgentOf(t *testing.T) {
	for in, want := range map[string]string{
		"vpxa": "vpxa", "vpxa-worker": "vpxa", "vpxa-IO": "vpxa", "hostd-worker": "hostd", "vix-async-pipe": "hostd",
		"hostd-poll": "hostd", "/var/core/vpxa-worker-zdump.000": "vpxa", "/usr/lib/vmware/vpxa/bin/vpxa": "vpxa", "/bin/hostd": "hostd",
		// Not guessed: their own cartels, or unknown.
		"hostdCgiServer": "", "rhttpproxy-work": "", "hbr": "", "vpxa2": "", "hostd-probe": "", "": "", "sfcb-vmware_bas": "",
	} {
		if got := AgentOf(in); got != want {
			t.Errorf("AgentOf(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestCrashesOnce: the wantCoreDump and UserDump lines of one world are
// one crash; two crashes stay two.
func TestCrashesOnce(t *testing.T) {
	t0 := time.Date(2012, 10, 4, 8, 2, 38, 0, time.UTC)
	core := func(p string, w uint32, at time.Duration) Event {
		ev := Event{Kind: KindCoreDump, Process: p, World: w}
		if at >= 0 {
			ev.Time = t0.Add(at)
		}
		return ev
	}
	dump := func(p string, w uint32, at time.Duration) Event {
		ev := core(p, w, at)
		ev.Kind, ev.CoreFile = KindUserDump, "/var/core/"+p+"-zdump.000"
		return ev
	}
	const untimed = -1
	tests := []struct {
		name   string
		events []Event
		want   []string // agent:processes of each crash
	}{
		{"pair of one world", []Event{core("vix-async-pipe", 7448, 0), dump("vix-async-pipe", 7448, 0)}, []string{"hostd:vix-async-pipe"}},
		{"thread and core file", []Event{core("vix-async-pipe", 3476319, 0), dump("hostd-worker", 3476319, time.Second)}, []string{"hostd:hostd-worker,vix-async-pipe"}},
		{"two wantCoreDumps are two crashes", []Event{core("vpxa", 1, 0), core("vpxa", 1, time.Second)}, []string{"vpxa:vpxa", "vpxa:vpxa"}},
		{"other world", []Event{core("vpxa", 1, 0), dump("vpxa", 2, time.Second)}, []string{"vpxa:vpxa", "vpxa:vpxa"}},
		{"same world, too late", []Event{core("vpxa", 1, 0), dump("vpxa", 1, 20*time.Minute)}, []string{"vpxa:vpxa", "vpxa:vpxa"}},
		{"untimed pair of one world", []Event{core("vpxa", 9, untimed), dump("vpxa-worker", 9, untimed)}, []string{"vpxa:vpxa,vpxa-worker"}},
		{"untimed, no world: not tied", []Event{core("vpxa", 0, untimed), dump("vpxa", 0, untimed)}, []string{"vpxa:vpxa", "vpxa:vpxa"}},
		{"no world, same agent, close", []Event{core("vpxa", 0, 0), dump("vpxa-worker", 0, time.Second)}, []string{"vpxa:vpxa,vpxa-worker"}},
		{"unknown process kept as itself", []Event{core("sfcbd", 0, 0), dump("sfcbd", 0, time.Second)}, []string{":sfcbd", ":sfcbd"}},
		{"interleaved crashes", []Event{core("vpxa", 1, 0), core("hostd-worker", 2, 0), dump("hostd-worker", 2, 0), dump("vpxa", 1, 0)}, []string{"vpxa:vpxa", "hostd:hostd-worker"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := NewSummary(0, 0)
			for _, ev := range tt.events {
				s.add(&ev)
			}
			var got []string
			for _, c := range s.Crashes {
				got = append(got, c.Agent+":"+strings.Join(c.Processes, ","))
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("crashes (-want +got):\n%s", diff)
			}
			// Split in two copies at every point, merged: the same crashes.
			for cut := range tt.events {
				a, b := NewSummary(0, 0), NewSummary(0, 0)
				for i, ev := range tt.events {
					if i < cut {
						a.add(&ev)
					} else {
						b.add(&ev)
					}
				}
				a.appendSummary(b)
				var merged []string
				for _, c := range a.Crashes {
					merged = append(merged, c.Agent+":"+strings.Join(c.Processes, ","))
				}
				if diff := cmp.Diff(tt.want, merged); diff != "" {
					t.Errorf("cut at %d: crashes (-want +got):\n%s", cut, diff)
				}
			}
		})
	}
}

// TestCrashesPastCap: past maxCrashes a crash of two lines (wantCoreDump
// and UserDump of one world) is still one crash dropped, whether the log is
// read whole or in three copies merged in order (as chunks are scanned).
func TestCrashesPastCap(t *testing.T) {
	t0 := time.Date(2012, 10, 4, 8, 2, 38, 0, time.UTC)
	const crashes = maxCrashes + 50
	var evs []Event
	for i := range crashes {
		at := t0.Add(time.Duration(i) * time.Minute)
		w := uint32(1000 + i)
		evs = append(evs, Event{Kind: KindCoreDump, Process: "vpxa", World: w, Time: at},
			Event{Kind: KindUserDump, Process: "vpxa-worker", World: w, Time: at.Add(time.Second)})
	}
	cuts := []int{0, 1, len(evs) / 2, 2*maxCrashes + 1, 2*maxCrashes + 21, len(evs) - 1}
	for i, cut1 := range cuts {
		for _, cut2 := range cuts[i:] {
			parts := []*Summary{NewSummary(0, 0), NewSummary(0, 0), NewSummary(0, 0)}
			for j := range evs {
				switch {
				case j < cut1:
					parts[0].add(&evs[j])
				case j < cut2:
					parts[1].add(&evs[j])
				default:
					parts[2].add(&evs[j])
				}
			}
			parts[0].appendSummary(parts[1])
			parts[0].appendSummary(parts[2])
			if s := parts[0]; len(s.Crashes) != maxCrashes || s.CrashesDropped != crashes-maxCrashes {
				t.Errorf("cut at %d and %d: %d crashes listed, %d dropped; want %d and %d", cut1, cut2, len(s.Crashes), s.CrashesDropped, maxCrashes, crashes-maxCrashes)
			}
		}
	}
}

// TestCrashesPastCapMergedAsWhole: a summary merged into an empty one has
// the crashes of the whole: a dropped crash's line is not joined to a
// listed crash that lies more than crashLookBack crashes before it.
func TestCrashesPastCapMergedAsWhole(t *testing.T) {
	t0 := time.Date(2012, 10, 4, 8, 2, 38, 0, time.UTC)
	var evs []Event
	at := t0
	for i := range maxCrashes - 1 {
		at = at.Add(time.Second)
		evs = append(evs, Event{Kind: KindCoreDump, Process: "vpxa", World: uint32(1000 + i), Time: at})
	}
	x := at.Add(time.Second)
	evs = append(evs, Event{Kind: KindCoreDump, Process: "vpxa", Time: x}) // no world
	for i := range 12 {
		w, at := uint32(5000+i), x.Add(time.Duration(i+1)*time.Second)
		evs = append(evs, Event{Kind: KindCoreDump, Process: "hostd-worker", World: w, Time: at},
			Event{Kind: KindUserDump, Process: "hostd-worker", World: w, Time: at})
	}
	evs = append(evs, Event{Kind: KindUserDump, Process: "vpxa-worker", Time: x.Add(2 * time.Minute)})
	whole := NewSummary(0, 0)
	for i := range evs {
		whole.add(&evs[i])
	}
	merged := NewSummary(0, 0)
	merged.appendSummary(whole)
	if diff := cmp.Diff(whole.Crashes, merged.Crashes, ignoreState); diff != "" || merged.CrashesDropped != whole.CrashesDropped {
		t.Errorf("merged into an empty summary: %d dropped, whole %d; crashes (-whole +merged):\n%s", merged.CrashesDropped, whole.CrashesDropped, diff)
	}
}

// TestMergeLeavesOtherAlone: Merge of an earlier summary past maxCrashes
// does not change it (its dropped crashes are copied, not shared).
func TestMergeLeavesOtherAlone(t *testing.T) {
	t0 := time.Date(2012, 10, 4, 8, 2, 38, 0, time.UTC)
	early, late := NewSummary(0, 0), NewSummary(0, 0)
	for i := range maxCrashes + 20 {
		ev := Event{Kind: KindCoreDump, Process: "vpxa", World: uint32(1000 + i), Time: t0.Add(time.Duration(i) * time.Second)}
		early.add(&ev)
	}
	before := slices.Clone(early.droppedTail)
	for i := range before {
		before[i].Processes = slices.Clone(before[i].Processes)
	}
	for i := range 20 {
		w := uint32(1000 + maxCrashes + 20 - crashLookBack + i%crashLookBack)
		ev := Event{Kind: KindUserDump, Process: "vpxa-worker", World: w, Time: t0.Add(time.Duration(maxCrashes+30) * time.Second)}
		late.add(&ev)
	}
	late.Merge(early)
	if diff := cmp.Diff(before, early.droppedTail, cmp.AllowUnexported(Crash{})); diff != "" {
		t.Errorf("Merge changed the other summary's dropped crashes (-before +after):\n%s", diff)
	}
}

// TestScanCrashFixtures: the pasted logs' dumps are one hostd crash each,
// and the incident's one vpxa crash.
func TestScanCrashFixtures(t *testing.T) {
	for _, tt := range []struct {
		file string
		want []Crash
	}{
		{"vmkernel-41-messages-day-unpadded.log", []Crash{{Agent: "hostd", Processes: []string{"vix-async-pipe"}, Time: time.Date(2012, 10, 4, 8, 2, 38, 0, time.UTC),
			World: 7448, CoreFile: "/var/core/vix-async-pipe-zdump.000", Lines: 2}}},
		{"vmkernel-4x-messages-hostd-dump-day-unpadded.log", []Crash{{Agent: "hostd", Processes: []string{"hostd-worker", "vix-async-pipe"}, Time: time.Date(2012, 4, 7, 17, 41, 3, 0, time.UTC),
			World: 3476319, CoreFile: "/var/core/hostd-worker-zdump.000", Lines: 2}}},
		{"vmkernel-4x-messages.log", []Crash{{Agent: "vpxa", Processes: []string{"vpxa"}, Time: time.Date(2012, 7, 26, 1, 26, 46, 0, time.UTC),
			World: 14258, CoreFile: "/var/core/vpxa-zdump.000", Lines: 2}}},
	} {
		t.Run(tt.file, func(t *testing.T) {
			s, err := ScanFile(filepath.Join("testdata", tt.file), ScanOptions{Year: 2012})
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, s.Crashes, ignoreState); diff != "" {
				t.Errorf("crashes (-want +got):\n%s", diff)
			}
		})
	}
}

// FuzzCrashes: every dump line is in exactly one crash (or, past
// maxCrashes, in one counted as dropped), a crash holds at
// most one wantCoreDump and one UserDump line, and a log split in two
// copies and merged gives the crashes of the whole within the look-back
// (a line may pair differently at the cut, never be lost).
func FuzzCrashes(f *testing.F) {
	f.Add([]byte{0, 1, 0, 1, 1, 0, 2, 3, 200, 4})
	f.Add([]byte{0, 0, 0, 1, 0, 0, 1, 1, 1, 1, 1, 1})
	f.Add([]byte{})
	procs := []string{"vpxa", "vpxa-worker", "hostd-worker", "vix-async-pipe", "sfcbd"}
	f.Fuzz(func(t *testing.T, data []byte) {
		t0 := time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC)
		var evs []Event
		var at time.Duration
		for i := 0; i+2 < len(data); i += 3 {
			ev := Event{Kind: KindCoreDump, Process: procs[int(data[i]>>1)%len(procs)], World: uint32(data[i+1] % 4)}
			if data[i]&1 == 1 {
				ev.Kind = KindUserDump
			}
			at += time.Duration(data[i+2]) * 10 * time.Second
			if data[i+2] != 255 {
				ev.Time = t0.Add(at)
			}
			evs = append(evs, ev)
		}
		whole := NewSummary(0, 0)
		for i := range evs {
			whole.add(&evs[i])
		}
		lines := 0
		for _, c := range whole.Crashes {
			lines += c.Lines
			if c.Lines > 2 || c.Lines < 1 {
				t.Fatalf("crash of %d lines: %+v", c.Lines, c)
			}
		}
		// A crash past maxCrashes, counted as dropped, holds one or two lines.
		if dropped := len(evs) - lines; dropped < whole.CrashesDropped || dropped > 2*whole.CrashesDropped {
			t.Fatalf("%d lines in crashes, %d dump lines, %d crashes dropped", lines, len(evs), whole.CrashesDropped)
		}
		cut := len(evs) / 2
		a, b := NewSummary(0, 0), NewSummary(0, 0)
		for i := range evs {
			if i < cut {
				a.add(&evs[i])
			} else {
				b.add(&evs[i])
			}
		}
		a.Merge(b)
		merged, all := len(a.Crashes)+a.CrashesDropped, len(whole.Crashes)+whole.CrashesDropped
		if merged < all-crashLookBack || merged > all+crashLookBack {
			t.Fatalf("merged %d crashes, whole %d (dropped included)", merged, all)
		}
	})
}
