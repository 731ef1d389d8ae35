package main

import (
	"bytes"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/heapguard/heapguard/metrics"
)

// TestJSONMatchesDoc runs every command that prints JSON on the seed
// incident (a live run that acts, a dry check, then status, journal,
// doctor, version, and report on a log and on the host) and checks what
// each printed against docs/json.md. Every object the document defines
// must turn up, so no table describes output that no longer exists.
func TestJSONMatchesDoc(t *testing.T) {
	doc := loadJSONDoc(t)
	seen := map[string]bool{}
	stepped := func(args ...string) string {
		t.Helper()
		cmd := steppedCommand(heapguardBin(t), args...)
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		err := cmd.Run() // the exit status is the verdict's; the output is checked
		if stdout.Len() == 0 {
			t.Fatalf("%v printed nothing (%v); stderr:\n%s", args, err, stderr.String())
		}
		return stdout.String()
	}
	one := func(root, out string) {
		t.Helper()
		checkJSON(t, doc, seen, root, []byte(out))
	}
	lines := func(root, out string) {
		t.Helper()
		n := 0
		for _, line := range strings.Split(strings.TrimSuffix(out, "\n"), "\n") {
			if strings.TrimSpace(line) == "" || !strings.HasPrefix(line, "{") || !strings.HasSuffix(line, "}") {
				t.Errorf("%s: line %d is not one JSON object: %q", root, n+1, line)
				continue
			}
			checkJSON(t, doc, seen, root, []byte(line))
			n++
		}
		if n < 2 {
			t.Errorf("%s: %d lines, want several", root, n)
		}
	}

	h := simHost(t, "seed-incident")
	h.Advance(105 * time.Minute)
	state := filepath.Join(t.TempDir(), "state")
	lines("plan output", stepped("run", "--json", "--root", h.Root(), "--state-dir", state, "--power-off-allow", "DSVA*",
		"--interval", "30s", "--for", "20m"))
	one("status", stepped("status", "--json", "--root", h.Root(), "--state-dir", state))
	lines("journal entry", stepped("journal", "--json", "--root", h.Root(), "--state-dir", state))
	one("doctor", stepped("doctor", "--json", "--root", h.Root(), "--state-dir", state))
	one("version", stepped("version", "--json"))
	metricsJSON := func(path string) string {
		t.Helper()
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	one("metrics snapshot", metricsJSON(filepath.Join(state, metrics.FileName)))

	dry := simHost(t, "seed-incident")
	dry.Advance(109 * time.Minute)
	one("plan output", stepped("check", "--json", "--dry-run", "--root", dry.Root(), "--state-dir", t.TempDir(), "--power-off-allow", "DSVA*"))
	one("report", stepped("report", "--json", "--root", dry.Root()))
	// A poll that cannot sample the watched heap saves a scrape error.
	blind := t.TempDir()
	stepped("check", "--json", "--dry-run", "--root", dry.Root(), "--state-dir", blind, "--heaps", "nothing*")
	one("metrics snapshot", metricsJSON(filepath.Join(blind, metrics.DryRunFileName)))
	one("report", stepped("report", "--json", incidentLog))
	// An agent's log : the agent log object, a crash without a time.
	one("report", stepped("report", "--json", "../../collector/testdata/vobd-6x-vpxa-crash-syslog.log", kbLog))

	var unseen []string
	for name := range doc {
		if !seen[name] {
			unseen = append(unseen, name)
		}
	}
	sort.Strings(unseen)
	if len(unseen) > 0 {
		t.Errorf("docs/json.md defines objects no output showed: %s", strings.Join(unseen, ", "))
	}
}
