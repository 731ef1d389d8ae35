package main

import (
	"os"
	"path/filepath"
	"testing"
)

func TestHostDirName(t *testing.T) {
	for in, want := range map[string]string{
		"esx01":                 "esx01",
		"ESX01.Example.COM":     "esx01.example.com",
		" esx-02_b ":            "esx-02_b",
		"esx 03/../x":           "esx_03_.._x",
		"..":                    "",
		"":                      "",
		"._":                    "",
		"h\x00st":               "h_st",
		"\u00e9sx":              "_sx",
		"localhost.localdomain": "localhost.localdomain",
	} {
		if got := hostDirName(in); got != want {
			t.Errorf("hostDirName(%q) = %q, want %q", in, got, want)
		}
	}
}

// Two hosts running one binary from a shared datastore keep their state
// apart: the default folder is named by the host.
func TestDefaultStateDirPerHost(t *testing.T) {
	dir, err := defaultStateDir()
	if err != nil {
		t.Fatal(err)
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	name, err := os.Hostname()
	if err != nil {
		t.Fatal(err)
	}
	if want := filepath.Join(filepath.Dir(exe), "heapguard-state", hostDirName(name)); dir != want {
		t.Errorf("defaultStateDir() = %q, want %q", dir, want)
	}
}
