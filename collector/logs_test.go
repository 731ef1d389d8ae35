package collector

import (
	"bytes"
	"compress/gzip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestOlderFirst(t *testing.T) {
	in := []string{"/l/messages", "/m/messages.1", "/l/messages.0.gz", "/l/messages.2.gz", "/l/messages.10", "/l/messages.1", "/m/messages"}
	want := []string{"/l/messages.10", "/l/messages.2.gz", "/l/messages.1", "/l/messages.0.gz", "/l/messages", "/m/messages.1", "/m/messages"}
	if got := olderFirst(in); !slices.Equal(got, want) {
		t.Errorf("olderFirst(%v) = %v, want %v", in, got, want)
	}
	for name, want := range map[string]int{"vmkernel.log": -1, "vmkernel.0.gz": 0, "messages.07": -1, "messages.-1": -1,
		"x.3": 3, "messages": -1, "messages.20140102": -1, "messages.999": 999} {
		if _, got := splitRotation(name); got != want {
			t.Errorf("splitRotation(%q) = %d, want %d", name, got, want)
		}
	}
	for p, want := range map[string]string{"/v/vmkernel.log": "/v/vmkernel", "/v/vmkernel.3.gz": "/v/vmkernel", "/v/messages.1": "/v/messages", "/w/messages": "/w/messages"} {
		if got := logFamily(p); got != want {
			t.Errorf("logFamily(%q) = %q, want %q", p, got, want)
		}
	}

	// Copies with one rotation number (plain and compressed): by time.
	dir := t.TempDir()
	a, b := filepath.Join(dir, "messages.0"), filepath.Join(dir, "messages.0.gz")
	for _, p := range []string{a, b} {
		if err := os.WriteFile(p, nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	now := time.Now()
	os.Chtimes(a, now, now)
	os.Chtimes(b, now.Add(-time.Hour), now.Add(-time.Hour))
	if got := olderFirst([]string{a, b}); !slices.Equal(got, []string{b, a}) {
		t.Errorf("by time: %v, want %v", got, []string{b, a})
	}
}

// TestScanLogsYearAcrossCopies: with a year given, the copies of a 4.x
// log are read oldest first, whatever order they come in, and the newer
// copy goes on into the next year. Fails if the year is not carried.
func TestScanLogsYearAcrossCopies(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	older := write("messages.1", "Dec 31 23:59:50 vmkernel: 7:19:45:13.619 cpu5:45459)NetPort: 1165: disabled port 0x3000003\n")
	newer := write("messages", "Jan  1 00:00:10 vmkernel: 7:19:45:33.619 cpu5:45459)NetPort: 982: enabled port 0x3000003 with mac 00:50:56:84:5a:b1\n")
	files, warnings := ScanLogs([]string{newer, older}, ScanOptions{Year: 2013})
	if len(files) != 2 || files[0].Path != older || files[1].Path != newer || len(warnings) != 0 {
		t.Fatalf("files %+v, warnings %q: want messages.1 then messages", files, warnings)
	}
	if got, want := files[0].Summary.First, time.Date(2013, 12, 31, 23, 59, 50, 0, time.UTC); !got.Equal(want) {
		t.Errorf("older copy starts %v, want %v", got, want)
	}
	if got, want := files[1].Summary.First, time.Date(2014, 1, 1, 0, 0, 10, 0, time.UTC); !got.Equal(want) {
		t.Errorf("newer copy starts %v, want %v", got, want)
	}
	// Without a year the files are read as given, each on its own.
	files, _ = ScanLogs([]string{newer, older}, ScanOptions{})
	if files[0].Path != newer {
		t.Errorf("without a year the order changed: %v", files)
	}
}

// TestGuessedYear: a summary says which year 4.x dates were put in when no
// year was given (so a report can say so), and nothing otherwise: with a
// year given, carried from an older copy, or for dates that carry theirs.
func TestGuessedYear(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string, mtime time.Time) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(p, mtime, mtime); err != nil {
			t.Fatal(err)
		}
		return p
	}
	syslog := "Jul 26 01:26:46 vmkernel: 7:19:45:13.619 cpu5:45459)NetPort: 1165: disabled port 0x3000003\n"
	iso := "2013-08-20T12:00:00.123Z cpu3:33421)NetPort: 1: disabled port 0x3000007\n"
	aug := time.Date(2026, 8, 1, 0, 0, 0, 0, time.UTC)
	plain := write("messages", syslog, aug)
	gz := filepath.Join(dir, "messages.1.gz")
	var b bytes.Buffer
	zw := gzip.NewWriter(&b)
	zw.Write([]byte(syslog))
	zw.Close()
	if err := os.WriteFile(gz, b.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	os.Chtimes(gz, aug, aug)
	// A file written in March cannot hold July lines of that year.
	march := write("messages.2", syslog, time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC))
	isoLog := write("vmkernel.log", iso, aug)
	for _, tc := range []struct {
		path string
		opt  ScanOptions
		want int
	}{
		{plain, ScanOptions{}, 2026},
		{gz, ScanOptions{}, 2026},
		{march, ScanOptions{}, 2025},
		{plain, ScanOptions{Year: 2012}, 0},
		{plain, ScanOptions{Syslog: &SyslogState{Year: 2012, Month: 7, Last: time.Date(2012, 7, 25, 0, 0, 0, 0, time.UTC)}}, 0},
		{isoLog, ScanOptions{}, 0},
	} {
		s, err := ScanFile(tc.path, tc.opt)
		if err != nil || s.GuessedYear != tc.want {
			t.Errorf("%s %+v: guessed year %d, %v; want %d", filepath.Base(tc.path), tc.opt, s.GuessedYear, err, tc.want)
		}
	}
	if s, _ := Scan(strings.NewReader(syslog), ScanOptions{}); s.GuessedYear != time.Now().UTC().Year() {
		t.Errorf("Scan: guessed year %d, want this year", s.GuessedYear)
	}
}
