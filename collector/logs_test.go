package collector

import (
	"os"
	"path/filepath"
	"slices"
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
