package remediate

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// StopHolder sends SIGTERM to the process holding the flock, and only once
// it is gone does it return: the lock is then free to take.
func TestStopHolderStopsTheHolder(t *testing.T) {
	dir := t.TempDir()
	_, line, wait, pid := startHelper(t, "holdlock "+dir)
	if line != "locked" {
		t.Fatalf("helper said %q", line)
	}
	got, err := StopHolder(dir, StopOptions{Wait: time.Minute, Settle: time.Millisecond})
	if err != nil {
		t.Fatalf("StopHolder: %v", err)
	}
	if got != pid {
		t.Errorf("signalled pid %d, want the holder %d", got, pid)
	}
	wait()
	l, err := AcquireLock(dir)
	if err != nil {
		t.Fatalf("acquire after StopHolder: %v", err)
	}
	l.Release()
}

// A lock nobody holds, whatever pid its file names (a holder killed with
// SIGKILL leaves its pid there, and that pid may belong to another process
// by now), gets no signal.
func TestStopHolderFreeLockSignalsNoOne(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, LockFile), []byte("pid=1 start=2026-01-01T00:00:00Z\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	pid, err := StopHolder(dir, StopOptions{Signal: func(pid int) error {
		t.Errorf("signalled pid %d of a free lock", pid)
		return nil
	}})
	if err != nil || pid != 0 {
		t.Fatalf("StopHolder on a free lock: pid %d, %v", pid, err)
	}
	// No lock file at all: free too.
	if pid, err := StopHolder(t.TempDir(), StopOptions{}); err != nil || pid != 0 {
		t.Fatalf("StopHolder without a lock file: pid %d, %v", pid, err)
	}
}

// A pid that changes between the two reads (a new holder not done writing
// its pid, or the file rewritten) is not trusted: no signal.
func TestStopHolderUnsettledPID(t *testing.T) {
	dir := t.TempDir()
	_, line, _, _ := startHelper(t, "holdlock "+dir)
	if line != "locked" {
		t.Fatalf("helper said %q", line)
	}
	p := filepath.Join(dir, LockFile)
	_, err := StopHolder(dir, StopOptions{
		Signal: func(pid int) error { t.Errorf("signalled pid %d named by a changing file", pid); return nil },
		Sleep: func(time.Duration) {
			// The helper holds the flock; only the text changes.
			if err := os.WriteFile(p, []byte("pid=424242 start=2026-01-01T00:00:00Z\n"), 0o644); err != nil {
				t.Fatal(err)
			}
		},
	})
	if !errors.Is(err, ErrHolderUnknown) {
		t.Fatalf("StopHolder with a changing pid: %v, want ErrHolderUnknown", err)
	}
}

// A holder that does not let go within Wait is an error naming it; the
// wait is bounded.
func TestStopHolderBounded(t *testing.T) {
	dir := t.TempDir()
	_, line, _, pid := startHelper(t, "holdlock "+dir)
	if line != "locked" {
		t.Fatalf("helper said %q", line)
	}
	var slept time.Duration
	got, err := StopHolder(dir, StopOptions{
		Signal: func(int) error { return nil }, // the holder ignores it
		Wait:   time.Second,
		Sleep:  func(d time.Duration) { slept += d },
	})
	if !errors.Is(err, ErrLocked) || got != pid {
		t.Fatalf("StopHolder of a holder that stays: pid %d, %v; want %d and ErrLocked", got, err, pid)
	}
	if slept < time.Second || slept > 2*time.Second {
		t.Errorf("waited %v in all, want about the 1s bound", slept)
	}
}

// TestStopHolderWithoutLockTable runs the tests above the way of a host
// whose kernel lists no flocks (ESXi has no /proc/locks): by trying the
// flock.
func TestStopHolderWithoutLockTable(t *testing.T) {
	saved := lockTable
	lockTable = func() (flockTable, error) { return nil, fmt.Errorf("no /proc/locks here") }
	defer func() { lockTable = saved }()
	t.Run("stops", TestStopHolderStopsTheHolder)
	t.Run("free", TestStopHolderFreeLockSignalsNoOne)
	t.Run("unsettled", TestStopHolderUnsettledPID)
	t.Run("bounded", TestStopHolderBounded)
}
