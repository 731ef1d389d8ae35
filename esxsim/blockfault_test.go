package esxsim

import (
	"os"
	"strings"
	"testing"
	"time"
)

// TestStallLog: while the log is stalled the host goes on (the heap
// leaks) and no line is written; resumed, new lines come again and the
// stalled time's lines are lost.
func TestStallLog(t *testing.T) {
	h := New(t, Incident())
	h.Advance(10 * time.Minute)
	logPath := h.Path(h.State().Ver().LogPath())
	size := func() int64 {
		fi, err := os.Stat(logPath)
		if err != nil {
			t.Fatal(err)
		}
		return fi.Size()
	}
	before, alloc := size(), h.State().Heaps[0].Allocated
	h.StallLog(true)
	h.Advance(5 * time.Minute)
	if got := size(); got != before {
		t.Errorf("stalled log grew from %d to %d bytes", before, got)
	}
	if h.State().Heaps[0].Allocated <= alloc {
		t.Error("the heap stopped leaking while the log was stalled")
	}
	h.StallLog(false)
	h.Advance(time.Minute)
	if size() <= before {
		t.Error("the log did not grow again once resumed")
	}
}

// TestBlockVMX: a blocked .vmx makes a reader wait until release, which
// hands it the file's text; afterwards the file is a regular file again.
func TestBlockVMX(t *testing.T) {
	h := New(t, Incident())
	p := h.Path("/vmfs/volumes/datastore1/DSVA01/DSVA01.vmx")
	want, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	release := h.BlockVMX("DSVA01")
	t.Cleanup(release)
	got := make(chan string, 1)
	go func() {
		b, err := os.ReadFile(p)
		if err != nil {
			got <- "error: " + err.Error()
			return
		}
		got <- string(b)
	}()
	select {
	case s := <-got:
		t.Fatalf("the read of a blocked .vmx returned: %.80q", s)
	case <-time.After(100 * time.Millisecond):
		// Not a wait for something to happen: the read must still be
		// blocked after a while, and release ends it below.
	}
	release()
	select {
	case s := <-got:
		if s != string(want) {
			t.Errorf("released read got %.200q, want the .vmx text", s)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the read stayed blocked after release")
	}
	if fi, err := os.Lstat(p); err != nil || !fi.Mode().IsRegular() {
		t.Errorf("after release: %v, %v; want a regular file", fi.Mode(), err)
	}
	release() // a second call does nothing
	if b, err := os.ReadFile(p); err != nil || !strings.Contains(string(b), "displayName") {
		t.Errorf("after a second release: %v %.80q", err, b)
	}
}
