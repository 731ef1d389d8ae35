package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/heapguard/heapguard/internal/deploytest"
	"github.com/heapguard/heapguard/internal/vib"
)

func TestMkvib(t *testing.T) {
	dir := t.TempDir()
	bin := deploytest.ELF{Marker: true, Payload: "hg"}.Write(t, dir, "heapguard")
	var out, errb bytes.Buffer
	args := []string{"-bin", bin, "-describe", "v1.4.0-2-g0123abc", "-date", "2026-12-01T10:00:00Z", "-out", dir}
	if code := run(args, &out, &errb); code != 0 {
		t.Fatalf("mkvib: %d, %s", code, errb.String())
	}
	data, err := os.ReadFile(filepath.Join(dir, "heapguard-1.4.0-2.vib"))
	if err != nil {
		t.Fatal(err)
	}
	v, err := vib.Read(data)
	if err != nil || v.Descriptor.ID() != "heapguard_bootbank_heapguard_1.4.0-2" {
		t.Fatalf("the VIB written: %v", err)
	}
	bd, err := os.ReadFile(filepath.Join(dir, "heapguard-1.4.0-2-offline-bundle.zip"))
	if err != nil {
		t.Fatal(err)
	}
	if b, err := vib.ReadBundle(bd); err != nil || b.ComponentVersion != "1.4.0-2" {
		t.Fatalf("the bundle written: %v", err)
	}
	if !strings.Contains(out.String(), "VIB heapguard_bootbank_heapguard_1.4.0-2, acceptance level CommunitySupported") {
		t.Errorf("output %q", out.String())
	}

	// A binary with the stock runtime would die on ESXi: no VIB of it.
	stock := deploytest.ELF{Payload: "stock"}.Write(t, dir, "stock")
	errb.Reset()
	if code := run([]string{"-bin", stock, "-version", "1.0.0-0", "-date", "2026-12-01T10:00:00Z", "-out", dir}, &out, &errb); code != 1 ||
		!strings.Contains(errb.String(), "stock Go runtime") {
		t.Errorf("mkvib of a stock binary: %d, %q", code, errb.String())
	}
	if _, err := os.Stat(filepath.Join(dir, "heapguard-1.0.0-0.vib")); !os.IsNotExist(err) {
		t.Errorf("a VIB of the stock binary was written: %v", err)
	}
	if code := run([]string{"-bin", bin, "-version", "1.0.0-0", "-out", dir}, &out, &errb); code != 1 {
		t.Errorf("mkvib without -date: %d, want 1", code)
	}
}
