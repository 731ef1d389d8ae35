package collector

import (
	"bufio"
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func mustMAC(t *testing.T, s string) MAC {
	t.Helper()
	m, err := ParseMAC(s)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func TestParseLine(t *testing.T) {
	b4 := mustMAC(t, "00:50:56:84:5a:b4")
	up4x := 7*24*time.Hour + 21*time.Hour + 6*time.Minute + 14107*time.Millisecond
	tests := []struct {
		name string
		in   string
		want Event
	}{
		// 4.x /var/log/messages (vmkernel-4x-messages.log)
		{"4x disabled", "Jul 26 01:26:29 vmkernel: 7:21:06:14.107 cpu10:202157)NetPort: 1165: disabled port 0x3000007",
			Event{Kind: KindPortDisabled, Format: FormatSyslog, Time: time.Date(2012, 7, 26, 1, 26, 29, 0, time.UTC), Uptime: up4x, HasUptime: true, Port: 0x3000007}},
		{"4x enabled", "Jul 26 01:26:29 vmkernel: 7:21:06:14.110 cpu10:202157)NetPort: 982: enabled port 0x3000007 with mac 00:50:56:84:5a:b4",
			Event{Kind: KindPortEnabled, Format: FormatSyslog, Time: time.Date(2012, 7, 26, 1, 26, 29, 0, time.UTC), Uptime: up4x + 3*time.Millisecond, HasUptime: true, Port: 0x3000007, MAC: b4, MACKnown: true}},
		{"4x heap maxed maximumSize", "Jul 26 01:26:46 vmkernel: 7:21:06:31.191 cpu3:33421)WARNING: Heap: 2218: Heap netGPHeap already at its maximumSize. Cannot expand.",
			Event{Kind: KindHeapMaxed, Format: FormatSyslog, Time: time.Date(2012, 7, 26, 1, 26, 46, 0, time.UTC), Uptime: up4x + 17084*time.Millisecond, HasUptime: true, Heap: "netGPHeap"}},
		{"4x heap align", "Jul 26 01:26:46 vmkernel: 7:21:06:31.191 cpu3:33421)WARNING: Heap: 2481: Heap_Align(netGPHeap, 4364/4364 bytes, 8 align) failed. caller: 0x41801c90bb4e",
			Event{Kind: KindHeapAlignFailed, Format: FormatSyslog, Time: time.Date(2012, 7, 26, 1, 26, 46, 0, time.UTC), Uptime: up4x + 17084*time.Millisecond, HasUptime: true, Heap: "netGPHeap"}},
		{"4x wantCoreDump", "Jul 26 01:26:46 vmkernel: 7:21:06:31.199 cpu3:14258)User: 2432: wantCoreDump : vpxa -enabled : 1",
			Event{Kind: KindCoreDump, Format: FormatSyslog, Time: time.Date(2012, 7, 26, 1, 26, 46, 0, time.UTC), Uptime: up4x + 17092*time.Millisecond, HasUptime: true, Process: "vpxa", World: 14258}},
		{"4x UserDump", "Jul 26 01:26:46 vmkernel: 7:21:06:31.383 cpu11:14258)UserDump: 1485: Dumping cartel 14235 (from world 14258) to file /var/core/vpxa-zdump.000 ...",
			Event{Kind: KindUserDump, Format: FormatSyslog, Time: time.Date(2012, 7, 26, 1, 26, 46, 0, time.UTC), Uptime: up4x + 17276*time.Millisecond, HasUptime: true, Process: "vpxa", World: 14258, CoreFile: "/var/core/vpxa-zdump.000"}},
		{"4x padded day, host name, no uptime", "Jul  6 01:26:46 esx01 Hostd: something",
			Event{Kind: KindOther, Format: FormatSyslog, Time: time.Date(2012, 7, 6, 1, 26, 46, 0, time.UTC)}},
		// 5.x (vmkernel-5x.log)
		{"5x Uplink enabled masked mac", "2017-09-30T17:27:30.509Z cpu1:65597)Uplink: 9893: enabled port 0x2000002 with mac 70:5a:0f:XX:XX:XX",
			Event{Kind: KindPortEnabled, Format: FormatISO, Time: time.Date(2017, 9, 30, 17, 27, 30, 509e6, time.UTC), Port: 0x2000002}},
		{"5x NetPort disabled other number", "2017-09-30T17:27:30.509Z cpu1:65597)NetPort: 1879: disabled port 0x2000002",
			Event{Kind: KindPortDisabled, Format: FormatISO, Time: time.Date(2017, 9, 30, 17, 27, 30, 509e6, time.UTC), Port: 0x2000002}},
		{"5x noise", "2012-11-01T04:12:00.960Z cpu17:4113)ScsiDeviceIO: 2309: Cmd(0x41244109c100) 0x28, CmdSN 0x8000006c from world 12535 to dev \"naa.xxx\" failed H:0xb D:0x0 P:0x0 Possible sense data: 0x0 0x0 0x0.",
			Event{Kind: KindOther, Format: FormatISO, Time: time.Date(2012, 11, 1, 4, 12, 0, 960e6, time.UTC)}},
		{"5x maximum size, address suffix, CRLF", "2013-08-20T12:00:00.123Z cpu4:1959755)WARNING:Heap: 2525: Heap netGPHeap-0x410001000000 already at its maximum size. Cannot expand.\r",
			Event{Kind: KindHeapMaxed, Format: FormatISO, Time: time.Date(2013, 8, 20, 12, 0, 0, 123e6, time.UTC), Heap: "netGPHeap"}},
		{"5x hostd worker dump", "2013-08-20T12:00:00Z cpu11:14258)UserDump: 1485: Dumping cartel 14235 (from world 14258) to file /var/core/hostd-worker-zdump.001 ...",
			Event{Kind: KindUserDump, Format: FormatISO, Time: time.Date(2013, 8, 20, 12, 0, 0, 0, time.UTC), Process: "hostd-worker", World: 14258, CoreFile: "/var/core/hostd-worker-zdump.001"}},
		// 8.x (vmkernel-8x.log)
		{"8x opID", "2023-12-07T05:04:55.159Z In(182) vmkernel: cpu10:2099084 opID=a9f5cca4)SunRPC: 1096: Destroying world 0x22222f",
			Event{Kind: KindOther, Format: Format8x, Time: time.Date(2023, 12, 7, 5, 4, 55, 159e6, time.UTC)}},
		{"8x no world, no fraction", "2025-01-23T22:10:20Z In(182) vmkernel: 9127.5:D:Disable PCIe VDM on PF0",
			Event{Kind: KindOther, Format: Format8x, Time: time.Date(2025, 1, 23, 22, 10, 20, 0, time.UTC)}},
		{"8x alert", "2025-01-20T01:44:25.919Z Al(177) vmkalert: cpu66:2097709)ALERT: <NMLX_ERR> nmlx5_coreQueryTir:268 command failed: IO was aborted",
			Event{Kind: KindOther, Format: Format8x, Time: time.Date(2025, 1, 20, 1, 44, 25, 919e6, time.UTC)}},
		{"8x enabled with opID", "2026-04-10T08:27:13.470Z In(182) vmkernel: cpu2:2097999 opID=be121f44)NetPort: 1426: enabled port 0x4000010 with mac 00:50:56:84:5A:B4",
			Event{Kind: KindPortEnabled, Format: Format8x, Time: time.Date(2026, 4, 10, 8, 27, 13, 470e6, time.UTC), Port: 0x4000010, MAC: b4, MACKnown: true}},
		{"8x warning heap maxed", "2026-04-10T08:27:13.470Z Wa(180) vmkwarning: cpu2:2097999)WARNING: Heap: 3058: Heap netGPHeap already at its maximum size. Cannot expand.",
			Event{Kind: KindHeapMaxed, Format: Format8x, Time: time.Date(2026, 4, 10, 8, 27, 13, 470e6, time.UTC), Heap: "netGPHeap"}},
		{"9x hostd is a known format", "2025-12-11T16:43:23.314Z In(166) Hostd[169797]: --> [context]zKq7AVICAgAAAB28eQEIaG9zdGQAAF5oNWxpYnZtYWNvcmUuc28AAHtnJADEaCQAbhMlAGA4JQC7iEoBXl8IbGliYy5zby42AAEwXBA=[/context]",
			Event{Kind: KindOther, Format: Format8x, Time: time.Date(2025, 12, 11, 16, 43, 23, 314e6, time.UTC)}},
		// Near misses stay KindOther.
		{"reenabled is not ours", "2017-09-30T17:27:30.509Z cpu1:65597)X: 1: reenabled port 0x2000002", Event{Kind: KindOther, Format: FormatISO, Time: time.Date(2017, 9, 30, 17, 27, 30, 509e6, time.UTC)}},
		{"port id too long", "2017-09-30T17:27:30.509Z cpu1:65597)X: 1: disabled port 0x123456789", Event{Kind: KindOther, Format: FormatISO, Time: time.Date(2017, 9, 30, 17, 27, 30, 509e6, time.UTC)}},
		{"heap growth is not maxed", "2017-09-30T17:27:30.509Z cpu2:1410)WARNING: Heap: 1266: Heap vmfs3: Maximum allowed growth (24) too small for size (8192)", Event{Kind: KindOther, Format: FormatISO, Time: time.Date(2017, 9, 30, 17, 27, 30, 509e6, time.UTC)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseLine([]byte(tt.in), 2012)
			if err != nil {
				t.Fatalf("ParseLine: %v", err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("ParseLine(%q) (-want +got):\n%s", tt.in, diff)
			}
		})
	}
}

func TestParseLineUnparsed(t *testing.T) {
	for _, in := range []string{
		"", "garbage", "  TDH                  <0>", "buffer_info[next_to_clean]:",
		"2017-13-30T17:27:30.509Z cpu1:1)x", "2017-09-30T17:27:30.Z x", "2017-09-30T17:27:30.509 cpu1:1)x",
		"2017-09-30T17:27:30.509Zcpu1:1)x", "Foo 26 01:26:46 vmkernel: x", "Jul 32 01:26:46 vmkernel: x",
		"Jul 26 01:26:46 no-ident-colon", "vmkernel: cpu2:1410)WARNING: Heap_Align(vmfs3, 4096/4096 bytes, 4 align) failed.",
		"\x00\x00\x00", "2017-09-30T17:27:30.509Z\x00",
	} {
		_, err := ParseLine([]byte(in), 2012)
		if !errors.Is(err, ErrUnparsed) {
			t.Errorf("ParseLine(%q) error = %v, want ErrUnparsed", in, err)
		}
	}
}

// The KB's heap lines come without a timestamp; classify reads their
// messages as they are (vmkernel-heap-maxed-kb.txt: "maximum size", and
// "WARNING:Heap:" without a space).
func TestClassifyHeapKB(t *testing.T) {
	want := []Event{
		{Kind: KindHeapAlignFailed, Heap: "vmfs3"},
		{Kind: KindOther},
		{Kind: KindHeapMaxed, Heap: "vmfs3"},
		{Kind: KindHeapAlignFailed, Heap: "vmfs3"},
		{Kind: KindHeapMaxed, Heap: "vmfs3"},
		{Kind: KindHeapAlignFailed, Heap: "vmfs3"},
	}
	lines := readLines(t, "vmkernel-heap-maxed-kb.txt")
	var got []Event
	for _, l := range lines {
		msg, _ := stripWorld(l)
		got = append(got, classify(msg))
		// With a stamp in front, each format gives the same event.
		for _, prefix := range []string{"2013-06-05T10:00:00.000Z ", "2023-06-05T10:00:00.000Z Wa(180) vmkwarning: ", "Jun  5 10:00:00 vmkernel: 0:01:00:00.000 "} {
			ev, err := ParseLine(append([]byte(prefix), bytes.TrimPrefix(l, []byte("vmkernel: "))...), 2013)
			if err != nil {
				t.Fatal(err)
			}
			if ev.Kind != got[len(got)-1].Kind || ev.Heap != got[len(got)-1].Heap {
				t.Errorf("%q%q: got %v %q, want %v", prefix, l, ev.Kind, ev.Heap, got[len(got)-1].Kind)
			}
		}
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

func readLines(t testing.TB, name string) [][]byte {
	t.Helper()
	f, err := os.Open(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out [][]byte
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		out = append(out, bytes.Clone(sc.Bytes()))
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// Every line of each sample parses through a Parser; the kinds found are
// what each sample shows.
func TestParseSamples(t *testing.T) {
	tests := []struct {
		file  string
		kinds map[Kind]int
	}{
		{"vmkernel-4x-messages.log", map[Kind]int{KindHeapMaxed: 2, KindHeapAlignFailed: 2, KindCoreDump: 1, KindUserDump: 1, KindPortDisabled: 7, KindPortEnabled: 7}},
		// Lines 34-38 continue line 33's record without a stamp.
		{"vmkernel-5x.log", map[Kind]int{KindOther: 41, KindPortDisabled: 1, KindPortEnabled: 1, KindContinuation: 5}},
		{"vmkernel-8x.log", map[Kind]int{KindOther: 26}},
		{"vmkernel-9x.log", map[Kind]int{KindOther: 12}},
		{"hostd-9x-continuation.log", map[Kind]int{KindOther: 4}},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			p := NewParser(2012, time.Time{})
			got := map[Kind]int{}
			for i, l := range readLines(t, tt.file) {
				ev, err := p.Parse(l)
				if err != nil {
					t.Errorf("line %d: %v", i+1, err)
				}
				got[ev.Kind]++
			}
			if diff := cmp.Diff(tt.kinds, got); diff != "" {
				t.Errorf("kinds (-want +got):\n%s", diff)
			}
		})
	}
}

func TestParserYear(t *testing.T) {
	lines := []string{
		"Dec 31 23:59:58 vmkernel: 1:00:00:00.000 cpu0:1)a",
		"Jan  1 00:00:01 vmkernel: 1:00:00:03.000 cpu0:1)b",
		"Dec 31 23:59:59 vmkernel: 1:00:00:04.000 cpu0:1)late line, written out of order: still the old year",
		"2020-06-01T00:00:00Z cpu0:1)ISO lines carry their year",
	}
	tests := []struct {
		name    string
		year    int
		modTime time.Time
		want    []int
	}{
		{"explicit year, wrap adds one", 2011, time.Time{}, []int{2011, 2012, 2011, 2020}},
		{"mtime in January: file began the year before", 0, time.Date(2013, 1, 1, 0, 5, 0, 0, time.UTC), []int{2012, 2013, 2012, 2020}},
		{"mtime in December: same year", 0, time.Date(2013, 12, 31, 23, 59, 59, 0, time.UTC), []int{2013, 2014, 2013, 2020}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := NewParser(tt.year, tt.modTime)
			var got []int
			for _, l := range lines {
				ev, err := p.Parse([]byte(l))
				if err != nil {
					t.Fatal(err)
				}
				got = append(got, ev.Time.Year())
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("years (-want +got):\n%s", diff)
			}
		})
	}
}

func TestParserContinuation(t *testing.T) {
	p := NewParser(2017, time.Time{})
	lines := []struct {
		in   string
		want Kind
		err  bool
	}{
		{"  orphan before any record", 0, true},
		{"2017-09-30T17:27:31.239Z cpu5:65931)<3>e1000e 0000:00:1f.6: vmnic0: Detected Hardware Unit Hang:", KindOther, false},
		{"  TDH                  <0>", KindContinuation, false},
		{"buffer_info[next_to_clean]:", KindContinuation, false},
		{"\x00\x01binary", 0, true},
		{"  after garbage: not a continuation", 0, true},
	}
	for i, l := range lines {
		ev, err := p.Parse([]byte(l.in))
		if (err != nil) != l.err || (err == nil && ev.Kind != l.want) {
			t.Errorf("line %d %q: got %v, %v; want kind %v, error %v", i, l.in, ev.Kind, err, l.want, l.err)
		}
		if err != nil && !errors.Is(err, ErrUnparsed) {
			t.Errorf("line %d: error %v is not ErrUnparsed", i, err)
		}
	}
}

func TestPortMACStrings(t *testing.T) {
	if got := Port(0x3000007).String(); got != "0x3000007" {
		t.Errorf("Port.String = %q", got)
	}
	for _, s := range []string{"0x3000007", "50331655"} {
		p, err := ParsePort(s)
		if err != nil || p != 0x3000007 {
			t.Errorf("ParsePort(%q) = %v, %v", s, p, err)
		}
	}
	if _, err := ParsePort("0xZZ"); err == nil {
		t.Error("ParsePort(0xZZ): no error")
	}
	m := mustMAC(t, "00:50:56:84:5A:b4")
	if got := m.String(); got != "00:50:56:84:5a:b4" {
		t.Errorf("MAC.String = %q", got)
	}
	for _, bad := range []string{"70:5a:0f:XX:XX:XX", "00:50:56:84:5a", "00-50-56-84-5a-b4"} {
		if _, err := ParseMAC(bad); err == nil {
			t.Errorf("ParseMAC(%q): no error", bad)
		}
	}
}

func TestParseLineAllocs(t *testing.T) {
	for _, l := range []string{
		"2012-11-01T04:12:00.960Z cpu17:4113)ScsiDeviceIO: 2309: Cmd(0x41244109c100) 0x28, CmdSN 0x8000006c from world 12535 to dev \"naa.xxx\" failed H:0xb D:0x0 P:0x0",
		"2017-09-30T17:27:30.509Z cpu1:65597)NetPort: 1879: disabled port 0x2000002",
		"2017-09-30T17:27:30.509Z cpu1:65597)Uplink: 9893: enabled port 0x2000002 with mac 00:50:56:84:5a:b4",
		"Jul 26 01:26:29 vmkernel: 7:21:06:14.110 cpu10:202157)NetPort: 982: enabled port 0x3000007 with mac 00:50:56:84:5a:b4",
		"2023-12-07T05:04:55.159Z In(182) vmkernel: cpu10:2099084 opID=a9f5cca4)SunRPC: 1096: Destroying world 0x22222f",
	} {
		b := []byte(l)
		if n := testing.AllocsPerRun(100, func() { _, _ = ParseLine(b, 2012) }); n != 0 {
			t.Errorf("ParseLine(%q): %v allocs, want 0", l, n)
		}
	}
}

func BenchmarkParseLine(b *testing.B) {
	for _, bc := range []struct{ name, line string }{
		{"noise", "2012-11-01T04:12:00.960Z cpu17:4113)ScsiDeviceIO: 2309: Cmd(0x41244109c100) 0x28, CmdSN 0x8000006c from world 12535 to dev \"naa.xxx\" failed H:0xb D:0x0 P:0x0 Possible sense data: 0x0 0x0 0x0."},
		{"netport", "2017-09-30T17:27:30.509Z cpu1:65597)Uplink: 9893: enabled port 0x2000002 with mac 00:50:56:84:5a:b4"},
		{"4x", "Jul 26 01:26:29 vmkernel: 7:21:06:14.110 cpu10:202157)NetPort: 982: enabled port 0x3000007 with mac 00:50:56:84:5a:b4"},
	} {
		line := []byte(bc.line)
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(line)))
			for b.Loop() {
				if _, err := ParseLine(line, 2012); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func FuzzParseLine(f *testing.F) {
	for _, name := range []string{"vmkernel-4x-messages.log", "vmkernel-5x.log", "vmkernel-8x.log", "vmkernel-9x.log", "vmkernel-heap-maxed-kb.txt", "hostd-9x-continuation.log",
		"vmkernel-41-messages-day-unpadded.log", "vmkernel-4x-messages-hostd-dump-day-unpadded.log",
		"hostd-6x-vpxa-crash-syslog.log", "vobd-6x-vpxa-crash-syslog.log", "hostd-6x-vic.log"} {
		for _, l := range readLines(f, name) {
			f.Add(l)
		}
	}
	f.Fuzz(func(t *testing.T, line []byte) {
		ev, err := ParseLine(line, 2012)
		if err != nil {
			if !errors.Is(err, ErrUnparsed) {
				t.Fatalf("error %v is not ErrUnparsed", err)
			}
			return
		}
		if ev.Kind >= KindContinuation {
			t.Fatalf("bad event %+v", ev)
		}
		if ev.Format == FormatUnknown {
			// An event read without a header (untimedEvent): never a
			// plain line, never a time.
			if ev.Kind == KindOther || !ev.Time.IsZero() || ev.HasUptime {
				t.Fatalf("bad untimed event %+v", ev)
			}
			return
		}
		// The scanner's fast path must agree with the full parse.
		if n := isoStampLen(line); (n > 0) != (ev.Format == FormatISO || ev.Format == Format8x) && len(line) > 0 && line[len(line)-1] != '\r' {
			t.Fatalf("isoStampLen=%d but format %v", n, ev.Format)
		}
	})
}
