package deploy

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// hostilePaths hold what a shell would act on if a path were not quoted;
// canary is a folder where any such action would leave a file.
func hostilePaths(canary string) []string {
	return []string{
		"/tmp/plain",
		"/tmp/with space/and  two",
		"/tmp/it's/o'clock''",
		"/tmp/$(touch " + canary + "/dollar)",
		"/tmp/`touch " + canary + "/backtick`",
		"/tmp/x; touch " + canary + "/semicolon",
		"/tmp/a && touch " + canary + "/and",
		"/tmp/glob*?[a]/$HOME/~/\\back\\slash",
		"/tmp/'; touch " + canary + "/quote; '",
		"/tmp/\t-tab/-n/--/é",
	}
}

// TestQuotePathThroughShell: each quoted path reaches sh as one word,
// byte for byte, and runs nothing.
func TestQuotePathThroughShell(t *testing.T) {
	canary := t.TempDir()
	for _, p := range hostilePaths(canary) {
		q, err := quotePath(p)
		if err != nil {
			t.Errorf("quotePath(%q): %v", p, err)
			continue
		}
		out, err := exec.Command("/bin/sh", "-c", "printf '%s|' "+q).Output()
		if err != nil || string(out) != p+"|" {
			t.Errorf("sh printed %q (%v) for %q, quoted %s", out, err, p, q)
		}
	}
	if leaked, _ := os.ReadDir(canary); len(leaked) > 0 {
		t.Errorf("the shell ran something: %v", leaked)
	}
}

func TestQuotePathRefuses(t *testing.T) {
	for _, p := range []string{"", "relative/path", "./x", "/tmp/new\nline", "/tmp/cr\rx", "/tmp/nul\x00x", "/tmp/../etc", "/tmp//x", "/tmp/x/"} {
		if q, err := quotePath(p); !errors.Is(err, ErrRemotePath) {
			t.Errorf("quotePath(%q) = %q, %v; want ErrRemotePath", p, q, err)
		}
	}
	if _, err := shellCommand(scriptMove, "/ok", "/bad\n"); !errors.Is(err, ErrRemotePath) {
		t.Errorf("shellCommand with a bad second path: %v", err)
	}
}

// TestInstallHostileDest: a destination full of shell syntax is created
// and filled as named, over the real sshd, and runs nothing; one with a
// newline is refused before any command.
func TestInstallHostileDest(t *testing.T) {
	r := newRig(t, nil, []string{"ed25519"})
	canary := t.TempDir()
	base := t.TempDir()
	// One connection for all: each Install runs its own sessions.
	c, err := Dial(context.Background(), r.target, r.cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for i, p := range hostilePaths(canary)[1:] {
		r.dest = filepath.Join(base, p)
		res, err := Install(context.Background(), c, r.bin, InstallOptions{Dest: r.dest})
		if err != nil || res.Action != Installed || res.Path != filepath.Join(r.dest, BinaryName) {
			t.Errorf("%d: deploy to %q = %+v, %v", i, r.dest, res, err)
			continue
		}
		if got := r.installed(); got != r.bin.Sum() {
			t.Errorf("%d: %q holds sha256 %q", i, r.dest, got)
		}
	}
	if leaked, _ := os.ReadDir(canary); len(leaked) > 0 {
		t.Errorf("the host's shell ran something: %v", leaked)
	}
	r.dest = filepath.Join(base, "new\nline")
	if _, err := r.deploy(); !errors.Is(err, ErrRemotePath) {
		t.Errorf("deploy to a path with a newline: %v; want ErrRemotePath", err)
	}
	if _, err := os.Stat(filepath.Join(base, "new")); err == nil {
		t.Error("a path cut at its newline was created")
	}
}

// TestDefaultDest: with no --dest the first datastore label under the
// volumes folder is used; ESXi's own volumes and plain folders are not.
func TestDefaultDest(t *testing.T) {
	r := newRig(t, nil, []string{"ed25519"})
	vol := filepath.Join(t.TempDir(), "vmfs volumes")
	for _, d := range []string{"5f1a-uuid", "6a2b-uuid", "7c3d-uuid", "8d4e-uuid", "plainfolder"} {
		os.MkdirAll(filepath.Join(vol, d), 0o755)
	}
	for link, to := range map[string]string{"datastore2": "6a2b-uuid", "datastore1": "7c3d-uuid", "BOOTBANK1": "5f1a-uuid", "OSDATA-5f1a": "8d4e-uuid", "dangling": "gone"} {
		os.Symlink(to, filepath.Join(vol, link))
	}
	c, err := Dial(context.Background(), r.target, r.cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	got, err := DefaultDest(context.Background(), c, vol)
	if want := filepath.Join(vol, "datastore1", "heapguard"); err != nil || got != want {
		t.Errorf("DefaultDest = %q, %v; want %q", got, err, want)
	}
	res, err := Install(context.Background(), c, r.bin, InstallOptions{Volumes: vol})
	if err != nil || res.Path != filepath.Join(vol, "datastore1", "heapguard", BinaryName) {
		t.Errorf("Install with no Dest = %+v, %v", res, err)
	}
	if _, err := os.Stat(filepath.Join(vol, "7c3d-uuid", "heapguard", BinaryName)); err != nil {
		t.Errorf("not in the datastore's volume: %v", err)
	}
	empty := t.TempDir()
	if _, err := DefaultDest(context.Background(), c, empty); !errors.Is(err, ErrNoDatastore) {
		t.Errorf("DefaultDest on an empty folder: %v; want ErrNoDatastore", err)
	}
	if _, err := DefaultDest(context.Background(), c, filepath.Join(empty, "absent")); err == nil || !strings.Contains(err.Error(), "list datastores") {
		t.Errorf("DefaultDest on a missing folder: %v", err)
	}
}

func TestPickDatastore(t *testing.T) {
	for _, tc := range []struct {
		in, want string
		ok       bool
	}{
		{"datastore1\n", "datastore1", true},
		{"ssd-b\nssd-a\n", "ssd-a", true},
		{"BOOTBANK1\nBOOTBANK2\nOSDATA-61\nLOCKER-5\nHypervisor1\n", "", false},
		{"", "", false},
		{"a/b\n\nz\n", "z", true},
	} {
		got, ok := pickDatastore(tc.in)
		if got != tc.want || ok != tc.ok {
			t.Errorf("pickDatastore(%q) = %q, %v; want %q, %v", tc.in, got, ok, tc.want, tc.ok)
		}
	}
}

// FuzzQuotePath: whatever quotePath accepts, sh reads back as the same
// single word.
func FuzzQuotePath(f *testing.F) {
	for _, p := range hostilePaths("/nonexistent/canary") {
		f.Add(p)
	}
	f.Add("/a'b\"c\\d$e`f")
	f.Fuzz(func(t *testing.T, p string) {
		q, err := quotePath(p)
		if err != nil {
			return
		}
		out, err := exec.Command("/bin/sh", "-c", "printf '%s' "+q).Output()
		if err != nil || string(out) != p {
			t.Errorf("sh read %q back as %q (%v), quoted %s", p, out, err, q)
		}
	})
}
