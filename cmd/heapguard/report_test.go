package main

import (
	"bytes"
	"context"
	"encoding/json"
	"math/rand/v2"
	"os"
	"path/filepath"
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
		{"random bytes", []string{write("random", random)}, exitOK, "no known vmkernel log format", "unparsed"},
		{"a 10 MB line", []string{write("long", long)}, exitOK, "1 lines longer than 1 MiB skipped", "1 oversized"},
		{"NULs and invalid UTF-8", []string{write("nuls", nuls)}, exitOK, "", "3 lines read"},
		{"empty file", []string{write("empty", nil)}, exitOK, "is empty", "0 lines read"},
		{"directory", []string{dir}, exitUnknown, "not a regular file", "Verdict: UNKNOWN"},
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
