package main

import (
	"bytes"
	"context"
	"encoding/json"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// runCLI runs heapguard in-process and returns its exit code and output.
func runCLI(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := run(context.Background(), args, strings.NewReader(""), &out, &errb)
	return code, out.String(), errb.String()
}

const incidentLog = "../../collector/testdata/incident-messages.log"

// kbLog holds heap failure messages quoted without their timestamp prefix
// (collector/testdata/SOURCES.md): lines in no known format, five of which
// hold a heap event's words (they count, time unknown).
const kbLog = "../../collector/testdata/vmkernel-heap-maxed-kb.txt"

// TestReportIncidentGolden is the text report of the incident's own log
// (built by internal/loggen from the post's lines).
func TestReportIncidentGolden(t *testing.T) {
	code, out, stderr := runCLI(t, "report", "--year", "2012", incidentLog)
	if code != exitCritical {
		t.Errorf("exit %d, want %d (CRITICAL: heap maxed, vpxa dumped); stderr %s", code, exitCritical, stderr)
	}
	golden := filepath.Join("testdata", "report-incident.golden")
	if *update {
		if err := os.WriteFile(golden, []byte(out), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if out != string(want) {
		t.Errorf("report differs from %s (go test -update rewrites it):\n%s", golden, out)
	}
}

// TestReportIncidentJSON checks the keys scripts rely on (docs/json.md)
// and the incident's counts: 1618 b1, 1618 b4, 1617 ba.
func TestReportIncidentJSON(t *testing.T) {
	code, out, _ := runCLI(t, "report", "--json", "--year", "2012", incidentLog)
	if code != exitCritical {
		t.Errorf("exit %d", code)
	}
	var r struct {
		Ports []struct {
			Port, MAC, VM     string
			Enabled, Disabled int
			First, Last       time.Time
			CyclesPerMin      int  `json:"cycles_per_min"`
			Flapping          bool `json:"flapping"`
		} `json:"ports"`
		HeapEvents []struct {
			Heap, Kind string
			Count      int
		} `json:"heap_events"`
		Dumps []struct {
			Process string
			Count   int
		} `json:"dumps"`
		Heaps     []any  `json:"heaps"`
		Lines     int64  `json:"lines"`
		Unparsed  *int64 `json:"unparsed"`
		Oversized *int64 `json:"oversized"`
		Verdict   string `json:"verdict"`
	}
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatal(err)
	}
	got := map[string]int{}
	for _, p := range r.Ports {
		got[p.MAC] = p.Enabled
		if !p.Flapping || p.CyclesPerMin < 19 || p.First.Year() != 2012 || p.First.Location() != time.UTC {
			t.Errorf("port %+v: want flapping, ~20 cycles a minute, 2012 UTC times", p)
		}
	}
	want := map[string]int{"00:50:56:84:5a:b1": 1618, "00:50:56:84:5a:b4": 1618, "00:50:56:84:5a:ba": 1617}
	for mac, n := range want {
		if got[mac] != n {
			t.Errorf("%s: %d enabled lines, want %d", mac, got[mac], n)
		}
	}
	kinds := map[string]int{}
	for _, e := range r.HeapEvents {
		if e.Heap == "netGPHeap" {
			kinds[e.Kind] = e.Count
		}
	}
	if kinds["maxed"] == 0 || kinds["align_failed"] == 0 {
		t.Errorf("heap events %+v: want netGPHeap maxed and align_failed", r.HeapEvents)
	}
	if len(r.Dumps) != 1 || r.Dumps[0].Process != "vpxa" || r.Dumps[0].Count != 1 {
		t.Errorf("dumps %+v: want one vpxa dump", r.Dumps)
	}
	if r.Heaps == nil || r.Unparsed == nil || r.Oversized == nil || r.Verdict != "CRITICAL" || r.Lines == 0 {
		t.Errorf("missing keys or wrong verdict: %+v", r)
	}
}

// TestReportBadInput: whatever the input, a clear message and the right
// exit code, never a panic or a hang.
func TestReportBadInput(t *testing.T) {
	dir := t.TempDir()
	write := func(name string, b []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	rnd := rand.New(rand.NewPCG(1, 2))
	random := make([]byte, 1<<20)
	for i := range random {
		random[i] = byte(rnd.Uint32())
	}
	long := bytes.Repeat([]byte("x"), 10<<20)
	long = append(append([]byte("2013-08-20T12:00:00.123Z cpu3:33421)NetPort: 1: disabled port 0x3000007\n"), long...), '\n')
	long = append(long, []byte("2013-08-20T12:00:01.123Z cpu3:33421)NetPort: 1: enabled port 0x3000007 with mac 00:50:56:84:5a:b4\n")...)
	nuls := []byte("2013-08-20T12:00:00.123Z cpu3:33421)Net\x00Port: \x00\x00\n\x00\x00\x00\n\xff\xfe invalid utf-8\n")

	tests := []struct {
		name       string
		args       []string
		wantCode   int
		wantStderr string
		wantOut    string
	}{
		// Nothing known to judge is UNKNOWN, never an OK about nothing.
		{"random bytes", []string{write("random", random)}, exitUnknown, "lines are in no known vmkernel log format: nothing to judge", "Verdict: UNKNOWN"},
		{"empty file", []string{write("empty", nil)}, exitUnknown, "is empty: no log line to judge", "Verdict: UNKNOWN"},
		{"messages without their timestamp", []string{kbLog}, exitCritical, "1 of 6 lines is in no known vmkernel log format (skipped)",
			"Verdict: CRITICAL: vmfs3 reached its maximum size (2 lines, time unknown)"},
		// A file with known lines keeps its verdict and says what it skipped.
		{"a 10 MB line", []string{write("long", long)}, exitOK, "1 line longer than 1 MiB skipped", "1 oversized"},
		{"NULs and invalid UTF-8", []string{write("nuls", nuls)}, exitOK, "2 of 3 lines are in no known vmkernel log format (skipped)", "warning: " + filepath.Join(dir, "nuls") + ": 2 of 3 lines"},
		{"directory", []string{dir}, exitUnknown, "read log " + dir + ": not a regular file\n", "Verdict: UNKNOWN"},
		{"missing file", []string{filepath.Join(dir, "nope")}, exitUnknown, "no such file or directory", "Verdict: UNKNOWN"},
		{"missing and good: the good one is still reported", []string{filepath.Join(dir, "nope"), incidentLog},
			exitCritical, "no such file or directory", "0x3000003"},
		{"missing and quiet: unknown", []string{filepath.Join(dir, "nope"), write("quiet", []byte("2013-08-20T12:00:00.123Z cpu3:33421)Net: nothing\n"))},
			exitUnknown, "no such file or directory", "Verdict: UNKNOWN"},
		{"bad --since", []string{"--since", "yesterday", incidentLog}, exitUnknown, "--since", ""},
		{"no input at all", nil, exitUnknown, "give LOGFILE", ""},
		{"unknown flag", []string{"--bogus"}, exitUnknown, "flag provided but not defined", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			done := make(chan struct{})
			var code int
			var out, stderr string
			go func() {
				defer close(done)
				code, out, stderr = runCLI(t, append([]string{"report"}, tt.args...)...)
			}()
			select {
			case <-done:
			case <-time.After(30 * time.Second):
				t.Fatal("report hung")
			}
			if code != tt.wantCode {
				t.Errorf("exit %d, want %d; stderr: %s", code, tt.wantCode, stderr)
			}
			if !strings.Contains(stderr, tt.wantStderr) {
				t.Errorf("stderr %q does not contain %q", stderr, tt.wantStderr)
			}
			if !strings.Contains(out, tt.wantOut) {
				t.Errorf("stdout does not contain %q:\n%s", tt.wantOut, out)
			}
		})
	}
}

func TestHelpAndVersion(t *testing.T) {
	code, out, _ := runCLI(t, "version")
	if code != 0 || !strings.Contains(out, "heapguard") || !strings.Contains(out, "go1.") {
		t.Errorf("version: %d %q", code, out)
	}
	code, out, _ = runCLI(t, "help")
	for _, c := range []string{"report", "run", "check", "doctor", "reset"} {
		if code != 0 || !strings.Contains(out, "  "+c+" ") {
			t.Errorf("help does not list %s:\n%s", c, out)
		}
	}
	for name := range commands {
		code, out, stderr := runCLI(t, name, "-h")
		if code != 0 || !strings.Contains(out, "EXIT STATUS") || stderr != "" {
			t.Errorf("%s -h: exit %d, stderr %q, output lacks EXIT STATUS:\n%s", name, code, stderr, out)
		}
	}
	if code, _, _ := runCLI(t, "frobnicate"); code != exitUnknown {
		t.Errorf("unknown command: exit %d, want 3", code)
	}
	if code, _, _ := runCLI(t); code != exitUnknown {
		t.Errorf("no command: exit %d, want 3", code)
	}
}

// TestFlagsAfterArguments: flags may follow the log files, and "--" ends
// the flags ("report FILE --json" must not read --json as a file).
func TestFlagsAfterArguments(t *testing.T) {
	code, out, stderr := runCLI(t, "report", incidentLog, "--json", "--year", "2012")
	if code != exitCritical || !strings.HasPrefix(out, "{") || stderr != "" {
		t.Errorf("report FILE --json --year 2012: exit %d, stderr %q, output starts %.20q", code, stderr, out)
	}
	code, _, stderr = runCLI(t, "report", "--year", "2012", "--", "--json")
	if code != exitUnknown || !strings.Contains(stderr, "read log --json") {
		t.Errorf("after --, --json is a file name: exit %d, stderr %q", code, stderr)
	}
}

// TestReportMixedInput: several files are judged worst-of. A file with no
// known line is an error (UNKNOWN) even among good ones; an empty file
// among good ones is only noted (the live log is empty right after a
// rotation); a file with some known lines says how many were skipped.
func TestReportMixedInput(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	quiet := write("quiet.log", "2013-08-20T12:00:00.123Z cpu3:33421)Net: nothing\n")
	// Untimed text right after a log line continues it: the binary line
	// breaks that, so the five lines after the first are unknown.
	partial := write("partial.log", "2013-08-20T12:00:00.123Z cpu3:33421)Net: nothing\n\x01\x02\nnot a log line\nx\ny\nz\n")
	empty := write("vmkernel.log", "")
	unknown := write("unknown.log", "not a log line\nWARNING: the Heap memory already at its maximum size\n")
	tests := []struct {
		name      string
		args      []string
		want      int
		wantError string // in errors, and on the text report's "error:" lines
		wantWarn  string
	}{
		{"no known line among a good file: UNKNOWN", []string{quiet, unknown}, exitUnknown,
			unknown + ": all 2 lines are in no known vmkernel log format: nothing to judge", ""},
		{"CRITICAL beats the UNKNOWN", []string{"--year", "2012", incidentLog, unknown}, exitCritical,
			unknown + ": all 2 lines are in no known vmkernel log format", ""},
		{"untimed heap lines count beside a good file", []string{quiet, kbLog}, exitCritical, "",
			kbLog + ": 1 of 6 lines is in no known vmkernel log format (skipped)"},
		{"empty among good ones: noted", []string{quiet, empty}, exitOK, "", empty + " is empty"},
		{"some known lines: verdict kept, count stated", []string{partial}, exitOK, "",
			partial + ": 5 of 6 lines are in no known vmkernel log format (skipped)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, out, _ := runCLI(t, append([]string{"report", "--json"}, tt.args...)...)
			var r struct {
				Errors, Warnings []string
				Verdict          string
			}
			if err := json.Unmarshal([]byte(out), &r); err != nil {
				t.Fatal(err)
			}
			if code != tt.want {
				t.Errorf("exit %d, want %d: %+v", code, tt.want, r)
			}
			has := func(l []string, s string) bool {
				return slices.ContainsFunc(l, func(e string) bool { return strings.Contains(e, s) })
			}
			if tt.wantError != "" && !has(r.Errors, tt.wantError) || tt.wantError == "" && len(r.Errors) > 0 {
				t.Errorf("errors %q, want %q", r.Errors, tt.wantError)
			}
			if tt.wantWarn != "" && !has(r.Warnings, tt.wantWarn) {
				t.Errorf("warnings %q lack %q", r.Warnings, tt.wantWarn)
			}
			_, text, _ := runCLI(t, append([]string{"report"}, tt.args...)...)
			if tt.wantError != "" && !strings.Contains(text, "error: "+tt.wantError) ||
				tt.wantWarn != "" && !strings.Contains(text, "warning: "+tt.wantWarn) {
				t.Errorf("text report lacks %q%q:\n%s", tt.wantError, tt.wantWarn, text)
			}
		})
	}
}

// TestReportHeapStatsNotVsish: a file that is not vsish output is an
// error saying so, not a list of blank-named heaps.
func TestReportHeapStatsNotVsish(t *testing.T) {
	empty := filepath.Join(t.TempDir(), "empty.txt")
	if err := os.WriteFile(empty, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ file, want string }{
		{"../../collector/testdata/vmkernel-5x.log", "not vsish heap stats output"},
		{incidentLog, "not vsish heap stats output"},
		{empty, "the file is empty"},
	} {
		code, out, stderr := runCLI(t, "report", "--heap-stats", tc.file)
		if code != exitUnknown || !strings.Contains(stderr, "read heap stats "+tc.file+": "+tc.want) || strings.Contains(out, "Heap samples") {
			t.Errorf("--heap-stats %s: exit %d, stderr %q, stdout:\n%s", tc.file, code, stderr, out)
		}
	}
	code, out, _ := runCLI(t, "report", "--heap-stats", "../../heap/testdata/vsish-heap-stats-netGPHeap-esxi4-depleted.txt")
	if code != exitCritical || !strings.Contains(out, "netGPHeap") {
		t.Errorf("real vsish output: exit %d:\n%s", code, out)
	}
}

func TestParseSince(t *testing.T) {
	now := time.Date(2014, 6, 10, 12, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		in   string
		want time.Time
	}{
		{"", time.Time{}},
		{"2d", now.Add(-48 * time.Hour)},
		{"1d12h", now.Add(-36 * time.Hour)},
		{"0d30m", now.Add(-30 * time.Minute)},
		{"6h", now.Add(-6 * time.Hour)},
		{"90m", now.Add(-90 * time.Minute)},
		{"2014-06-01", time.Date(2014, 6, 1, 0, 0, 0, 0, time.UTC)},
		{"2014-06-01T10:00:00+02:00", time.Date(2014, 6, 1, 8, 0, 0, 0, time.UTC)},
	} {
		got, err := parseSince(tc.in, now)
		if err != nil || !got.Equal(tc.want) {
			t.Errorf("parseSince(%q) = %v, %v; want %v", tc.in, got, err, tc.want)
		}
	}
	for _, bad := range []string{"yesterday", "d", "-1d", "+1d", "1d-1h", "1d+1h", "-6h", "2days", "1h2d", "1.5d", "99999999d", "2d2d", "36500d2562047h"} {
		if got, err := parseSince(bad, now); err == nil {
			t.Errorf("parseSince(%q) = %v, want an error", bad, got)
		}
	}
}

// TestReportYearGuessWarned: 4.x dates carry no year; read without --year,
// a copied log takes its file's year, which the report says, naming the
// file's time and --year. With --year, or dates that carry their year,
// nothing is said.
func TestReportYearGuessWarned(t *testing.T) {
	dir := t.TempDir()
	b, err := os.ReadFile(incidentLog)
	if err != nil {
		t.Fatal(err)
	}
	copied := filepath.Join(dir, "messages")
	if err := os.WriteFile(copied, b, 0o644); err != nil {
		t.Fatal(err)
	}
	mtime := time.Date(2026, 8, 1, 10, 0, 0, 0, time.UTC)
	if err := os.Chtimes(copied, mtime, mtime); err != nil {
		t.Fatal(err)
	}
	want := copied + ": its 4.x dates carry no year: took 2026 from the file's modification time (2026-08-01); give --year N"
	code, out, stderr := runCLI(t, "report", copied)
	if code != exitCritical || !strings.Contains(stderr, want) || !strings.Contains(out, "warning: "+want) || !strings.Contains(out, "last 2026-07-26") {
		t.Errorf("exit %d, stderr %q; stdout:\n%s", code, stderr, out)
	}
	if _, _, stderr := runCLI(t, "report", "--year", "2012", copied); strings.Contains(stderr, "carry no year") {
		t.Errorf("--year given: %q", stderr)
	}
	if _, _, stderr := runCLI(t, "report", "../../collector/testdata/vmkernel-5x.log"); strings.Contains(stderr, "carry no year") {
		t.Errorf("ISO dates: %q", stderr)
	}
}

// TestReportMessagesNamePaths: messages name files by the path given or
// the host path, never a Go package or a path inside the root.
func TestReportMessagesNamePaths(t *testing.T) {
	root := t.TempDir()
	code, out, stderr := runCLI(t, "report", "--root", root, "--no-live", t.TempDir())
	if code != exitUnknown {
		t.Errorf("exit %d", code)
	}
	for _, want := range []string{"VMs not mapped to MACs: read " + filepath.Join(root, "vmfs", "volumes") + ": no such file or directory", "not a regular file"} {
		if !strings.Contains(stderr, want) || !strings.Contains(out, want) {
			t.Errorf("stderr %q / stdout lack %q:\n%s", stderr, want, out)
		}
	}
	for _, bad := range []string{"collector:", "open vmfs/volumes", "scan vmx files"} {
		if strings.Contains(stderr+out, bad) {
			t.Errorf("output names %q:\n%s\n%s", bad, stderr, out)
		}
	}
}
