package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/heapguard/heapguard/host"
	"github.com/heapguard/heapguard/remediate"
)

// TestUnsafeStateDirRefused: with a state folder every user can write,
// the acting commands (check, reset) refuse with the path and the fix,
// check's one Nagios line saying so; the read-only ones (status, journal,
// check --dry-run) still answer, with a warning on stderr. chmod go-w, as
// the message says, lets check act again.
func TestUnsafeStateDirRefused(t *testing.T) {
	t.Setenv(host.TestClockEnv, "sim")
	h := simHost(t, "flap-no-leak")
	h.Advance(10 * time.Minute)
	state := filepath.Join(h.Root(), "vmfs/volumes/datastore1/heapguard/heapguard-state/esx01")
	if code, out, stderr := runCLI(t, "check", "--root", h.Root(), "--state-dir", state); code == exitUnknown {
		t.Fatalf("first check: exit %d\n%s%s", code, out, stderr)
	}
	journal := filepath.Join(state, remediate.JournalFile)
	before, err := os.ReadFile(journal)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(state, 0o777); err != nil {
		t.Fatal(err)
	}
	why := []string{state, "0777", "chmod go-w"}
	says := func(s string) bool {
		for _, w := range why {
			if !strings.Contains(s, w) {
				return false
			}
		}
		return true
	}

	code, out, stderr := runCLI(t, "check", "--root", h.Root(), "--state-dir", state)
	if code != exitUnknown || !strings.HasPrefix(out, "HEAPGUARD UNKNOWN: could not start: ") || strings.Count(out, "\n") != 1 || !says(out) {
		t.Errorf("check: exit %d, stdout %q, stderr %q: want 3 and one line naming %q", code, out, stderr, why)
	}
	code, out, stderr = runCLI(t, "reset", "--root", h.Root(), "--state-dir", state)
	if code != exitUnknown || !says(stderr) {
		t.Errorf("reset: exit %d, stdout %q, stderr %q", code, out, stderr)
	}
	if after, _ := os.ReadFile(journal); string(after) != string(before) {
		t.Error("a refused command wrote the journal")
	}

	for _, args := range [][]string{
		{"status", "--root", h.Root(), "--state-dir", state},
		{"journal", "--root", h.Root(), "--state-dir", state},
		{"check", "--dry-run", "--root", h.Root(), "--state-dir", state},
	} {
		code, out, stderr := runCLI(t, args...)
		if code == exitUnknown || out == "" || !says(stderr) || !strings.Contains(stderr, "refuse") {
			t.Errorf("%s: exit %d, stdout %q, stderr %q: want its answer and a warning naming %q", args[0], code, out, stderr, why)
		}
	}

	if err := os.Chmod(state, 0o755); err != nil {
		t.Fatal(err)
	}
	if code, out, stderr := runCLI(t, "check", "--root", h.Root(), "--state-dir", state); code == exitUnknown || stderr != "" && strings.Contains(stderr, "chmod") {
		t.Errorf("after chmod go-w: exit %d\n%s%s", code, out, stderr)
	}
}

// TestUnsafeConfigRefused: a --config file (it holds --power-off-allow)
// that others can write is refused by an acting check, accepted once
// chmod go-w.
func TestUnsafeConfigRefused(t *testing.T) {
	t.Setenv(host.TestClockEnv, "sim")
	h := simHost(t, "flap-no-leak")
	cfg := filepath.Join(t.TempDir(), "heapguard.conf")
	if err := os.WriteFile(cfg, []byte("state-dir "+t.TempDir()+"\npower-off-allow DSVA*\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(cfg, 0o666); err != nil {
		t.Fatal(err)
	}
	code, out, stderr := runCLI(t, "check", "--root", h.Root(), "--config", cfg)
	if code != exitUnknown || !strings.Contains(out, cfg) || !strings.Contains(out, "chmod go-w") {
		t.Errorf("check with a world-writable config: exit %d, stdout %q, stderr %q", code, out, stderr)
	}
	if err := os.Chmod(cfg, 0o644); err != nil {
		t.Fatal(err)
	}
	if code, out, stderr := runCLI(t, "check", "--root", h.Root(), "--config", cfg); code == exitUnknown {
		t.Errorf("after chmod go-w: exit %d, stdout %q, stderr %q", code, out, stderr)
	}
}
