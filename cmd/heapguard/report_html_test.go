package main

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/heapguard/heapguard/internal/testtool"

	"github.com/google/go-cmp/cmp"
	"github.com/heapguard/heapguard/host"
)

// chromiumTimeout bounds each browser run: a browser that hangs must fail
// the test, not hold the suite.
const chromiumTimeout = 20 * time.Second

// findChromium returns the headless browser, skipping the test when there
// is none, except on CI (CI=true), where a missing browser is a failure:
// .ci/run installs it.
func findChromium(t *testing.T) string {
	t.Helper()
	return testtool.Need(t, "chromium", "chromium", "chromium-browser")
}

// runChromium runs the browser headless on a file with args, its own
// profile and no network, and returns its stdout and stderr.
func runChromium(t *testing.T, bin, page string, args ...string) (string, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), chromiumTimeout)
	defer cancel()
	argv := append([]string{"--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
		"--user-data-dir=" + t.TempDir(), "--no-first-run", "--disable-extensions",
		// Nothing may be fetched: a page that needs the network fails to
		// load it, and says so on the console.
		"--host-resolver-rules=MAP * ~NOTFOUND", "--enable-logging=stderr", "--v=0"}, args...)
	argv = append(argv, "file://"+page)
	cmd := exec.CommandContext(ctx, bin, argv...)
	cmd.WaitDelay = 2 * time.Second
	cmd.Env = append(os.Environ(), "HOME="+t.TempDir())
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		t.Fatalf("chromium %s: %v (ctx %v)\n%s", strings.Join(argv, " "), err, ctx.Err(), errb.String())
	}
	return out.String(), errb.String()
}

// consoleProblems are the browser's log lines about the page: console
// messages (the page has no script, so any is a fault: an error, a
// resource that failed to load) and failed loads.
func consoleProblems(stderr string) []string {
	var out []string
	for line := range strings.Lines(stderr) {
		if strings.Contains(line, ":CONSOLE") || strings.Contains(line, "net::ERR") || strings.Contains(line, "Uncaught") {
			out = append(out, strings.TrimSpace(line))
		}
	}
	return out
}

var (
	domSeries = regexp.MustCompile(`data-series="(\w+)" data-name="([^"]*)"`)
	domMark   = regexp.MustCompile(`data-mark="(\w+)"( data-dry-run="true")? data-label="([^"]*)"`)
)

// seedIncidentPage journals the seed incident's dry-run remediation and
// writes `report --html` of it: the simulated host from 95 to 110 minutes
// in (8.7 % free of max), dry checks every three minutes allowed to power
// off the DSVA VMs, under the host's clock, as on a real host.
func seedIncidentPage(t *testing.T, page string) {
	t.Helper()
	h := simHost(t, "seed-incident")
	t.Setenv(host.TestClockEnv, "sim")
	state := filepath.Join(t.TempDir(), "state")
	check := []string{"check", "--dry-run", "--root", h.Root(), "--state-dir", state, "--power-off-allow", "DSVA*", "--hold-polls", "1"}
	// Checks every three minutes from cron: the trend window they save
	// is the heap's recent curve.
	h.Advance(95 * time.Minute)
	for range 5 {
		if code, out, stderr := runCLI(t, check...); code == exitUnknown {
			t.Fatalf("check: exit %d\n%s\n%s", code, out, stderr)
		}
		h.Advance(3 * time.Minute)
	}
	if code, out, stderr := runCLI(t, check...); code != exitCritical || !strings.Contains(out, "powering off 3 VMs") {
		t.Fatalf("check: exit %d\n%s\n%s", code, out, stderr)
	}
	code, _, stderr := runCLI(t, "report", "--root", h.Root(), "--state-dir", state, "--html", page)
	if code != exitCritical {
		t.Fatalf("report --html: exit %d, want %d\n%s", code, exitCritical, stderr)
	}
}

// TestReportHTMLInChromium opens the seed incident's page in a real
// headless Chromium: it loads with nothing on the console, and the DOM the
// browser built holds the chart's series and the three dry-run power-offs.
// With -update it also rewrites the screenshot docs/report-seed.png.
func TestReportHTMLInChromium(t *testing.T) {
	bin := findChromium(t)
	start := time.Now()
	page := filepath.Join(t.TempDir(), "report.html")
	seedIncidentPage(t, page)
	raw, err := os.ReadFile(page)
	if err != nil {
		t.Fatal(err)
	}
	for _, ref := range []string{"src=", "href=", "url(", "@import", "<script", "<link"} {
		if bytes.Contains(raw, []byte(ref)) {
			t.Errorf("the page refers to something outside itself or runs a script: %q", ref)
		}
	}

	dom, stderr := runChromium(t, bin, page, "--dump-dom")
	if p := consoleProblems(stderr); len(p) > 0 {
		t.Errorf("console output while loading the page:\n%s", strings.Join(p, "\n"))
	}
	if !strings.Contains(dom, `<svg class="chart"`) {
		t.Fatalf("no chart in the DOM:\n%s", dom)
	}
	var series, marks []string
	for _, m := range domSeries.FindAllStringSubmatch(dom, -1) {
		series = append(series, m[1]+" "+m[2])
	}
	for _, m := range domMark.FindAllStringSubmatch(dom, -1) {
		mark := m[1] + " " + m[3]
		if m[2] != "" {
			mark += " (marked dry run)"
		}
		marks = append(marks, mark)
	}
	wantSeries := []string{"heap netGPHeap", "port DSVA04 (0x3000003)", "port DSVA01 (0x3000005)", "port DSVA03 (0x3000007)"}
	if diff := cmp.Diff(wantSeries, series); diff != "" {
		t.Errorf("series in the DOM (-want +got):\n%s", diff)
	}
	wantMarks := []string{
		"power_off power off DSVA04 (dry run) (marked dry run)",
		"power_off power off DSVA01 (dry run) (marked dry run)",
		"power_off power off DSVA03 (dry run) (marked dry run)",
		"restart restart vpxa (dry run) (marked dry run)",
	}
	if diff := cmp.Diff(wantMarks, marks); diff != "" {
		t.Errorf("marks in the DOM (-want +got):\n%s", diff)
	}
	if *update {
		shot, err := filepath.Abs("../../docs/report-seed.png")
		if err != nil {
			t.Fatal(err)
		}
		_, stderr := runChromium(t, bin, page, "--screenshot="+shot, "--window-size=1200,1600")
		if fi, err := os.Stat(shot); err != nil || fi.Size() == 0 {
			t.Fatalf("no screenshot written: %v\n%s", err, stderr)
		}
	}
	t.Logf("seed incident, report --html and chromium: %s", time.Since(start).Round(10*time.Millisecond))
}

// TestReportHTMLStateDir: a named state folder without a journal is a
// warning, not an error (the report is still made); a damaged journal's
// good lines still count; --html - writes the page, not the text, to stdout.
func TestReportHTMLStateDir(t *testing.T) {
	empty := t.TempDir()
	code, out, stderr := runCLI(t, "report", "--year", "2012", "--state-dir", empty, "--html", "-", incidentLog)
	if code != exitCritical {
		t.Errorf("exit %d, want %d: a missing journal changes no verdict\n%s", code, exitCritical, stderr)
	}
	if !strings.Contains(stderr, "warning: heapguard's journal not on the timeline") || !strings.Contains(stderr, empty) {
		t.Errorf("no warning naming the missing journal:\n%s", stderr)
	}
	if !strings.HasPrefix(out, "<!DOCTYPE html>") || strings.Contains(out, "Flapping ports, by cycles") {
		t.Errorf("--html - should write the page alone to stdout:\n%.300s", out)
	}

	state := t.TempDir()
	journal := `{"time":"2012-07-26T01:26:00Z","plan_id":"p","action":"power_off","target":"DSVA03","vmid":"3","dry_run":false,"result":"ok","heap":{"name":"netGPHeap-0x410001000000","percent_free_of_max":3.5}}
{"time":"2012-07-26T01:26:0
`
	if err := os.WriteFile(filepath.Join(state, "journal.jsonl"), []byte(journal), 0o644); err != nil {
		t.Fatal(err)
	}
	page := filepath.Join(t.TempDir(), "r.html")
	_, _, stderr = runCLI(t, "report", "--year", "2012", "--state-dir", state, "--html", page, incidentLog)
	if !strings.Contains(stderr, "skipped 1 line that is not a journal entry") {
		t.Errorf("the torn line is not counted:\n%s", stderr)
	}
	b, err := os.ReadFile(page)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`data-mark="power_off" data-label="power off DSVA03"`, `data-series="heap" data-name="netGPHeap"`, `data-mark="crash"`, `data-mark="heap_maxed"`} {
		if !bytes.Contains(b, []byte(want)) {
			t.Errorf("page lacks %s", want)
		}
	}
}

// TestWriteReportHTML is the call serve makes: the page of the report o
// and args ask for, or an error when they ask for nothing.
func TestWriteReportHTML(t *testing.T) {
	var buf bytes.Buffer
	if err := writeReportHTML(context.Background(), &buf, &reportOptions{year: 2012}, []string{incidentLog}); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(buf.String(), `<span class="verdict CRITICAL">`) || !strings.Contains(buf.String(), `data-series="port"`) {
		t.Errorf("page of the incident log lacks its verdict or port series:\n%.400s", buf.String())
	}
	buf.Reset()
	err := writeReportHTML(context.Background(), &buf, &reportOptions{}, nil)
	if err == nil || buf.Len() != 0 {
		t.Errorf("no input: error %v, %d bytes written", err, buf.Len())
	}
}
