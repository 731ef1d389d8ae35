package testtool

import (
	"os"
	"path/filepath"
	"testing"
)

// recorder is a TB that records how the test would have ended.
type recorder struct{ fatal, skip string }

func (r *recorder) Helper()           {}
func (r *recorder) Fatal(args ...any) { r.fatal = args[0].(string) }
func (r *recorder) Skip(args ...any)  { r.skip = args[0].(string) }

func TestNeedFound(t *testing.T) {
	dir := t.TempDir()
	tool := filepath.Join(dir, "tool")
	if err := os.WriteFile(tool, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", dir)
	var r recorder
	if got := Need(&r, "pkg", "/nonexistent/tool", "tool"); got != tool || r.fatal != "" || r.skip != "" {
		t.Errorf("Need = %q (fatal %q, skip %q), want %s", got, r.fatal, r.skip, tool)
	}
	if got := Need(&r, "pkg", tool); got != tool {
		t.Errorf("Need(absolute) = %q, want %s", got, tool)
	}
}

// TestNeedMissing: a missing tool fails under CI=true and skips otherwise.
func TestNeedMissing(t *testing.T) {
	t.Setenv("PATH", t.TempDir())
	for _, ci := range []string{"true", ""} {
		t.Setenv("CI", ci)
		var r recorder
		Need(&r, "busybox-static", "busybox", "/nonexistent/busybox")
		if ci == "true" && (r.fatal == "" || r.skip != "") || ci == "" && (r.skip == "" || r.fatal != "") {
			t.Errorf("CI=%q: fatal %q, skip %q", ci, r.fatal, r.skip)
		}
	}
}
