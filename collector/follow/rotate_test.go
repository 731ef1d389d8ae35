package follow

import (
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/heapguard/heapguard/host"
)

// A listed copy is read through the file opened when it was listed, even
// after a rotation put another copy under its name, and the rotation is
// seen.
func TestCopiesReadAfterRotation(t *testing.T) {
	path := filepath.Join(t.TempDir(), "vmkernel.log")
	appendFile(t, path, lines("a", 1, 2))
	rotateESXi(t, path, lines("b", 1, 2))
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	cur, err := viewOf(f)
	if err != nil {
		t.Fatal(err)
	}
	set, err := openCopies(path, cur)
	if err != nil {
		t.Fatal(err)
	}
	defer set.close()
	if !set.stable || len(set.fams) != 1 || len(set.fams[0]) != 1 {
		t.Fatalf("copies %+v, stable %v: want one, stable", set.fams, set.stable)
	}
	rotateESXi(t, path, lines("c", 1, 2)) // vmkernel.0.gz now holds the b lines

	r, err := set.fams[0][0].open(0)
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(r)
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != lines("a", 1, 2) {
		t.Errorf("listed copy reads %q, want the a lines", got)
	}
	again, err := families(path)
	if err != nil {
		t.Fatal(err)
	}
	if sameCopies(set.fams, again) {
		t.Error("sameCopies: the rotation was not seen")
	}
	if logIs(path, cur) {
		t.Error("logIs: the replaced log was taken for the old one")
	}
}

// rotateDuringListing makes the next listing of copies see a rotation run
// while it opens them, as the ESXi rotator can at any moment.
func rotateDuringListing(t *testing.T, path, first string) *int {
	t.Helper()
	calls := 0
	testHookCopiesOpened = func() {
		calls++
		if calls == 1 {
			rotateESXi(t, path, first)
		}
	}
	t.Cleanup(func() { testHookCopiesOpened = nil })
	return &calls
}

// A one-shot read that meets a rotation in progress reads nothing from
// that look, looks again and then reads every line once.
func TestReadFromRotationDuringListing(t *testing.T) {
	path := filepath.Join(t.TempDir(), "vmkernel.log")
	appendFile(t, path, lines("a", 1, 2))
	pos := atEnd(t, path, lines("a", 1, 2))
	appendFile(t, path, lines("a", 3, 2))
	rotateESXi(t, path, lines("b", 1, 2))
	calls := rotateDuringListing(t, path, lines("c", 1, 2))

	r := ReadFrom(path, pos, Options{Clock: host.NewManualClock(time.Now())})
	got := []string{}
	for l := range r.Lines() {
		got = append(got, string(l.Text))
	}
	if err := r.Err(); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want(lines("a", 3, 2), lines("b", 1, 2), lines("c", 1, 2)), got); diff != "" {
		t.Errorf("lines (-want +got):\n%s", diff)
	}
	if st := r.Stats(); st.Restarts != 1 || *calls != 2 {
		t.Errorf("restarts %d, listings %d: want 1 and 2", st.Restarts, *calls)
	}
}
