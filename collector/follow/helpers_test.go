package follow

import (
	"compress/gzip"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func appendFile(t *testing.T, path, s string) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteString(s); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

func copyFile(t *testing.T, src, dst string) {
	t.Helper()
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dst, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// lines makes n numbered lines "<prefix>1\n…" with a log-like header, so
// every file starts with its own first line.
func lines(prefix string, from, n int) string {
	var b strings.Builder
	for i := from; i < from+n; i++ {
		fmt.Fprintf(&b, "2026-04-10T08:27:13.470Z cpu2:2097999)%s%d\n", prefix, i)
	}
	return b.String()
}

// want splits what lines returned into texts.
func want(parts ...string) []string {
	out := []string{}
	for _, p := range parts {
		out = append(out, strings.Split(strings.TrimSuffix(p, "\n"), "\n")...)
	}
	return out
}

// gzipTo compresses src into dst and removes src, as the ESXi rotator
// leaves vmkernel.0.gz.
func gzipTo(t *testing.T, src, dst string) {
	t.Helper()
	in, err := os.Open(src)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	out, err := os.Create(dst)
	if err != nil {
		t.Fatal(err)
	}
	zw := gzip.NewWriter(out)
	if _, err := io.Copy(zw, in); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := out.Close(); err != nil {
		t.Fatal(err)
	}
	// The kernel stamps files from a coarse clock that can lag time.Now()
	// by a few ms; stamp the copy precisely, as the tests run faster than
	// any real rotation (doc.go, Limits).
	now := time.Now()
	if err := os.Chtimes(dst, now, now); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(src); err != nil {
		t.Fatal(err)
	}
}

// rotateESXi rotates dir/vmkernel.log the way ESXi keeps it: older
// vmkernel.N.gz move up one, the log is renamed to vmkernel.0, a new log
// is created with first, and vmkernel.0 is compressed to vmkernel.0.gz.
func rotateESXi(t *testing.T, path, first string) {
	t.Helper()
	dir := filepath.Dir(path)
	for n := 8; n >= 0; n-- {
		old := filepath.Join(dir, fmt.Sprintf("vmkernel.%d.gz", n))
		if _, err := os.Stat(old); err == nil {
			if err := os.Rename(old, filepath.Join(dir, fmt.Sprintf("vmkernel.%d.gz", n+1))); err != nil {
				t.Fatal(err)
			}
		}
	}
	zero := filepath.Join(dir, "vmkernel.0")
	if err := os.Rename(path, zero); err != nil {
		t.Fatal(err)
	}
	appendFile(t, path, first)
	gzipTo(t, zero, zero+".gz")
}
