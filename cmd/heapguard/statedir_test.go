package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestHostDirName(t *testing.T) {
	for in, want := range map[string]string{
		"esx01":             "esx01",
		"ESX01.Example.COM": "esx01.example.com",
		" esx-02_b ":        "esx-02_b",
		"esx 03/../x":       "esx_03_.._x",
		"..":                "",
		"":                  "",
		"._":                "",
		"h\x00st":           "h_st",
		"\u00e9sx":          "_sx",
	} {
		if got := hostDirName(in); got != want {
			t.Errorf("hostDirName(%q) = %q, want %q", in, got, want)
		}
	}
}

// Two hosts running one binary from a shared datastore keep their state
// apart; names that do not tell hosts apart, and state left directly in
// heapguard-state by an earlier heapguard, are refused.
func TestStateDirFor(t *testing.T) {
	dir := t.TempDir()
	a, errA := stateDirFor(dir, "ESX01.lab")
	b, errB := stateDirFor(dir, "esx02.lab")
	if errA != nil || errB != nil || a == b || a != filepath.Join(dir, stateRoot, "esx01.lab") {
		t.Fatalf("esx01: %q, %v; esx02: %q, %v", a, errA, b, errB)
	}
	for _, name := range []string{"localhost", "LocalHost.localdomain", "", "..", " ", "esx 01", "esx/01", "\u00e9sx"} {
		if got, err := stateDirFor(dir, name); err == nil || !strings.Contains(err.Error(), "--state-dir") {
			t.Errorf("host %q: got %q, %v; want a refusal naming --state-dir", name, got, err)
		}
	}
	// A per-host folder beside it is fine; a state file in the root is not.
	if err := os.MkdirAll(a, 0o700); err != nil {
		t.Fatal(err)
	}
	if _, err := stateDirFor(dir, "esx01.lab"); err != nil {
		t.Fatalf("with the host folder made: %v", err)
	}
	// A host named like a state file has a folder of that name: fine.
	if _, err := stateDirFor(dir, "lock"); err != nil {
		t.Fatalf("host named lock: %v", err)
	}
	if err := os.MkdirAll(filepath.Join(dir, stateRoot, "lock"), 0o700); err != nil {
		t.Fatal(err)
	}
	if _, err := stateDirFor(dir, "esx01.lab"); err != nil {
		t.Fatalf("with a host folder named lock: %v", err)
	}
	for _, f := range []string{"guards.json", "journal.jsonl"} {
		if err := os.WriteFile(filepath.Join(dir, stateRoot, f), []byte("{}"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	_, err := stateDirFor(dir, "esx01.lab")
	if err == nil || !strings.Contains(err.Error(), "earlier heapguard (guards.json, journal.jsonl)") || !strings.Contains(err.Error(), a) {
		t.Errorf("old layout: %v", err)
	}
}
