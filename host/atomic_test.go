package host

import (
	"os"
	"path/filepath"
	"testing"
)

func TestWriteFileAtomic(t *testing.T) {
	for name, write := range map[string]func(string, []byte, os.FileMode) error{
		"WriteFileAtomic": WriteFileAtomic, "WriteFileReplace": WriteFileReplace,
	} {
		t.Run(name, func(t *testing.T) { testReplace(t, write) })
	}
}

// testReplace checks what both writers promise: the old content or the
// new, the mode, no temporary file left, errors rather than panics.
func testReplace(t *testing.T, write func(string, []byte, os.FileMode) error) {
	dir := t.TempDir()
	p := filepath.Join(dir, "state.json")
	for _, content := range []string{"first\n", "second, longer\n", ""} {
		if err := write(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		got, err := os.ReadFile(p)
		if err != nil || string(got) != content {
			t.Fatalf("read back %q, %v; want %q", got, err, content)
		}
	}
	if fi, _ := os.Stat(p); fi.Mode().Perm() != 0o600 {
		t.Errorf("mode %v, want 0600", fi.Mode().Perm())
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Errorf("temporary files left behind: %v", entries)
	}
	// A folder that is not there: an error naming the file, no panic.
	if err := write(filepath.Join(dir, "no", "such", "x"), []byte("x"), 0o600); err == nil {
		t.Error("want an error for a missing folder")
	}
	// The target is a folder: the rename fails and the old folder stays.
	sub := filepath.Join(dir, "sub")
	os.Mkdir(sub, 0o755)
	if err := write(sub, []byte("x"), 0o600); err == nil {
		t.Error("want an error when the target is a folder")
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 2 {
		t.Errorf("temporary files left behind after a failed rename: %v", entries)
	}
}
