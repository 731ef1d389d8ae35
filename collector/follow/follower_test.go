package follow

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// checkLines compares everything received with want, in order: each line
// exactly once.
func checkLines(t *testing.T, h *harness, want []string) {
	t.Helper()
	if diff := cmp.Diff(want, h.texts()); diff != "" {
		t.Errorf("lines (-want +got):\n%s", diff)
	}
}

func TestFollowAppend(t *testing.T) {
	sample, err := os.ReadFile("testdata/vmkernel-5x.log")
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "vmkernel.log")
	appendFile(t, path, string(sample))
	h := follow(t, path, Position{}, false, Options{})
	sampleLines := want(string(sample))
	h.waitFor(sampleLines[len(sampleLines)-1])
	appendFile(t, path, lines("a", 1, 3))
	h.waitFor("2026-04-10T08:27:13.470Z cpu2:2097999)a3")
	checkLines(t, h, append(sampleLines, want(lines("a", 1, 3))...))
	l := h.last()
	if got, want := l.Pos.Offset, int64(len(sample)+len(lines("a", 1, 3))); got != want {
		t.Errorf("last position offset = %d, want %d (end of file)", got, want)
	}
	fi, _ := os.Stat(path)
	if l.Pos.Inode != inodeOf(fi) || l.Pos.Path != path || l.Pos.FirstLineHash == "" {
		t.Errorf("last position = %+v, want inode %d, path and a first-line hash", l.Pos, inodeOf(fi))
	}
	if st := h.f.Stats(); st.Lines != uint64(len(sampleLines)+3) || st.LibraryErrors != 0 {
		t.Errorf("stats = %+v", st)
	}
}

func TestFollowCopytruncate(t *testing.T) {
	path := filepath.Join(t.TempDir(), "vmkernel.log")
	appendFile(t, path, lines("a", 1, 5))
	h := follow(t, path, Position{}, true, Options{})
	h.step()
	// Lines land just before logrotate copies and truncates: they are only
	// in the copy by the next poll.
	appendFile(t, path, lines("a", 6, 2))
	copyFile(t, path, path+".1")
	if err := os.Truncate(path, 0); err != nil {
		t.Fatal(err)
	}
	appendFile(t, path, lines("b", 1, 3))
	h.step()
	checkLines(t, h, want(lines("a", 1, 7), lines("b", 1, 3)))
	if st := h.f.Stats(); st.Truncations != 1 || st.Gaps != 0 {
		t.Errorf("stats = %+v, want 1 truncation, no gap", st)
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

func TestFollowRotateGzip(t *testing.T) {
	path := filepath.Join(t.TempDir(), "vmkernel.log")
	appendFile(t, path, lines("a", 1, 3))
	h := follow(t, path, Position{}, true, Options{})
	h.step()
	appendFile(t, path, lines("a", 4, 2))
	rotateESXi(t, path, lines("b", 1, 2))
	h.step()
	appendFile(t, path, lines("b", 3, 1))
	h.step()
	checkLines(t, h, want(lines("a", 1, 5), lines("b", 1, 3)))
	if st := h.f.Stats(); st.Rotations != 1 || st.Gaps != 0 {
		t.Errorf("stats = %+v, want 1 rotation, no gap", st)
	}
}

// TestFollowRotateRealTime is the same story with real 10 ms polls.
func TestFollowRotateRealTime(t *testing.T) {
	path := filepath.Join(t.TempDir(), "vmkernel.log")
	appendFile(t, path, lines("a", 1, 3))
	h := follow(t, path, Position{}, false, Options{})
	h.waitFor("2026-04-10T08:27:13.470Z cpu2:2097999)a3")
	for i := range 3 {
		appendFile(t, path, lines("a", 4+i*2, 2))
		rotateESXi(t, path, lines("b", 1+i*2, 2))
	}
	h.waitFor("2026-04-10T08:27:13.470Z cpu2:2097999)b6")
	got := h.texts()
	seen := map[string]int{}
	for _, s := range got {
		seen[s]++
	}
	// Three rotations in quick succession; the follower may see them one
	// by one or all at once, and must not lose or repeat a line either way.
	for _, w := range want(lines("a", 1, 9), lines("b", 1, 6)) {
		if seen[w] != 1 {
			t.Errorf("line %q seen %d times; all: %q", w, seen[w], got)
		}
	}
	if len(got) != 15 {
		t.Errorf("got %d lines, want 15", len(got))
	}
}

func TestFollowDeleteRecreate(t *testing.T) {
	path := filepath.Join(t.TempDir(), "vmkernel.log")
	appendFile(t, path, lines("a", 1, 2))
	h := follow(t, path, Position{}, true, Options{})
	h.step()
	appendFile(t, path, lines("a", 3, 1))
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	h.step() // drains the deleted file, then waits
	appendFile(t, path, lines("b", 1, 2))
	h.step()
	checkLines(t, h, want(lines("a", 1, 3), lines("b", 1, 2)))
}

// TestFollowTruncateRegrow is the library's blind spot: the file is cut and
// grows past the old offset between two polls.
func TestFollowTruncateRegrow(t *testing.T) {
	path := filepath.Join(t.TempDir(), "vmkernel.log")
	appendFile(t, path, lines("a", 1, 5))
	h := follow(t, path, Position{}, true, Options{})
	h.step()
	if err := os.Truncate(path, 0); err != nil {
		t.Fatal(err)
	}
	appendFile(t, path, lines("b", 1, 12))
	h.step()
	h.step()
	checkLines(t, h, want(lines("a", 1, 5), lines("b", 1, 12)))
	if st := h.f.Stats(); st.Truncations != 1 {
		t.Errorf("stats = %+v, want 1 truncation", st)
	}
}

// TestFollowRewrittenDuringRead: the file is truncated and regrown past
// the old offset (same inode, new first line) while a read is under way.
// What was read from the old offset of the new file is dropped, and the
// new file is read from its start.
// Fails if readLive stops comparing the first line after a read.
func TestFollowRewrittenDuringRead(t *testing.T) {
	path := filepath.Join(t.TempDir(), "vmkernel.log")
	appendFile(t, path, lines("a", 1, 5))
	h := follow(t, path, Position{}, true, Options{})
	h.step()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	appendFile(t, path, lines("a", 6, 2))
	var rewrites int
	var rewriteErr error
	h.f.libRead = func(p string, from int64, timeout time.Duration) ([]libLine, error) {
		if rewrites == 0 {
			// O_TRUNC keeps the inode; "bb" lines do not align with the old offset.
			rewriteErr = os.WriteFile(path, []byte(lines("bb", 1, 12)), 0o644)
		}
		rewrites++
		return libraryRead(p, from, timeout)
	} // the follower sleeps: no race
	h.step()
	if rewriteErr != nil {
		t.Fatal(rewriteErr)
	}
	if fi2, err := os.Stat(path); err != nil || inodeOf(fi2) != inodeOf(fi) {
		t.Fatalf("the rewrite changed the inode (%v); the test needs it kept", err)
	}
	if rewrites == 0 {
		t.Fatal("the library was not called")
	}
	checkLines(t, h, want(lines("a", 1, 5), lines("bb", 1, 12)))
	if st := h.f.Stats(); st.Restarts == 0 {
		t.Errorf("stats = %+v, want the read restarted", st)
	}
}

func TestFollowMissingAtStart(t *testing.T) {
	path := filepath.Join(t.TempDir(), "vmkernel.log")
	h := follow(t, path, Position{}, false, Options{})
	appendFile(t, path, lines("a", 1, 3))
	h.waitFor("2026-04-10T08:27:13.470Z cpu2:2097999)a3")
	checkLines(t, h, want(lines("a", 1, 3)))
	if errs := h.errors(); len(errs) != 0 {
		t.Errorf("a missing file is not an error, got %v", errs)
	}
}

func TestFollowRestart(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "vmkernel.log")
	state := filepath.Join(dir, "state", "position.json")
	if err := os.Mkdir(filepath.Dir(state), 0o755); err != nil {
		t.Fatal(err)
	}
	appendFile(t, path, lines("a", 1, 3))
	h := follow(t, path, Position{}, true, Options{})
	h.step()
	h.stop()
	if err := SavePosition(state, h.last().Pos); err != nil {
		t.Fatal(err)
	}
	appendFile(t, path, lines("a", 4, 2))
	pos, err := LoadPosition(state)
	if err != nil {
		t.Fatal(err)
	}
	h2 := follow(t, path, pos, true, Options{})
	h2.step()
	checkLines(t, h2, want(lines("a", 4, 2)))
}

func TestFollowRestartAfterRotations(t *testing.T) {
	path := filepath.Join(t.TempDir(), "vmkernel.log")
	appendFile(t, path, lines("a", 1, 3))
	h := follow(t, path, Position{}, true, Options{})
	h.step()
	h.stop()
	pos := h.last().Pos
	// While stopped: more lines, then two rotations.
	appendFile(t, path, lines("a", 4, 2))
	rotateESXi(t, path, lines("b", 1, 2))
	rotateESXi(t, path, lines("c", 1, 2))
	h2 := follow(t, path, pos, true, Options{})
	h2.step()
	checkLines(t, h2, want(lines("a", 4, 2), lines("b", 1, 2), lines("c", 1, 2)))
	// The new file may reuse the old inode number (tmpfs does), so a
	// restart can take the rotation for a truncation; only the sum counts.
	if st := h2.f.Stats(); st.Rotations+st.Truncations != 1 || st.Gaps != 0 {
		t.Errorf("stats = %+v, want the rotation seen once, no gap", st)
	}
}

func TestFollowPartialLine(t *testing.T) {
	path := filepath.Join(t.TempDir(), "vmkernel.log")
	appendFile(t, path, "a1\nhalf")
	h := follow(t, path, Position{}, true, Options{})
	h.step()
	checkLines(t, h, []string{"a1"})
	if got := h.last().Pos.Offset; got != 3 {
		t.Errorf("position after a1 = %d, want 3 (not past the partial line)", got)
	}
	appendFile(t, path, "-done\na2\n")
	h.step()
	checkLines(t, h, []string{"a1", "half-done", "a2"})
	if got := h.last().Pos.Offset; got != int64(len("a1\nhalf-done\na2\n")) {
		t.Errorf("final position = %d", got)
	}
}

func TestFollowOversized(t *testing.T) {
	path := filepath.Join(t.TempDir(), "vmkernel.log")
	appendFile(t, path, "a1\n")
	h := follow(t, path, Position{}, true, Options{})
	h.step()
	// A 5 MB line arrives over several polls, then the log goes on.
	big := strings.Repeat("x", 1<<20)
	for range 5 {
		appendFile(t, path, big)
		h.step()
	}
	appendFile(t, path, "\na2\n")
	h.step()
	appendFile(t, path, strings.Repeat("y", 5<<20)+"\na3\n")
	h.step()
	checkLines(t, h, []string{"a1", "a2", "a3"})
	if st := h.f.Stats(); st.Oversized != 2 {
		t.Errorf("stats = %+v, want 2 oversized", st)
	}
	fi, _ := os.Stat(path)
	if got := h.last().Pos.Offset; got != fi.Size() {
		t.Errorf("last position %d, want %d (end of file)", got, fi.Size())
	}
}

// TestFollowSurvivesStatError is the case the library exits on
// (watch/polling.go:81): stat fails with ENOTDIR. The follower reports it,
// keeps going, and reads on once the path is back.
func TestFollowSurvivesStatError(t *testing.T) {
	dir := t.TempDir()
	logDir := filepath.Join(dir, "log")
	if err := os.Mkdir(logDir, 0o755); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(logDir, "vmkernel.log")
	appendFile(t, path, lines("a", 1, 2))
	h := follow(t, path, Position{}, false, Options{})
	h.waitFor("2026-04-10T08:27:13.470Z cpu2:2097999)a2")
	if err := os.Rename(logDir, logDir+".away"); err != nil {
		t.Fatal(err)
	}
	appendFile(t, logDir, "not a folder\n")
	if err := h.waitErr(); !strings.Contains(err.Error(), "not a directory") {
		t.Errorf("error = %v, want ENOTDIR", err)
	}
	if err := os.Remove(logDir); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(logDir+".away", logDir); err != nil {
		t.Fatal(err)
	}
	appendFile(t, path, lines("a", 3, 1))
	h.waitFor("2026-04-10T08:27:13.470Z cpu2:2097999)a3")
	checkLines(t, h, want(lines("a", 1, 3)))
}
