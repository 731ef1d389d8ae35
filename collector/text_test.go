package collector

import (
	"os"
	"path/filepath"
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
