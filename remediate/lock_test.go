package remediate

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestLockInProcess(t *testing.T) {
	for _, useFlock := range []bool{true, false} {
		t.Run(fmt.Sprintf("flock=%v", useFlock), func(t *testing.T) {
			dir := t.TempDir()
			l1, err := acquireLock(dir, useFlock)
			if err != nil {
				t.Fatal(err)
			}
			_, err = acquireLock(dir, useFlock)
			if !errors.Is(err, ErrLocked) {
				t.Fatalf("second acquire: got %v, want ErrLocked", err)
			}
			if want := fmt.Sprintf("pid %d", os.Getpid()); !strings.Contains(err.Error(), want) {
				t.Errorf("error %q does not name the holder (%s)", err, want)
			}
			if err := l1.Release(); err != nil {
				t.Fatal(err)
			}
			l2, err := acquireLock(dir, useFlock)
			if err != nil {
				t.Fatalf("acquire after release: %v", err)
			}
			l2.Release()
		})
	}
}

func TestLockTwoProcesses(t *testing.T) {
	for _, mode := range []string{"flock", "pidfile"} {
		t.Run(mode, func(t *testing.T) {
			dir := t.TempDir()
			stdin, line, wait, pid := startHelper(t, "holdlock "+dir+" "+mode)
			if line != "locked" {
				t.Fatalf("helper said %q", line)
			}
			_, err := acquireLock(dir, mode == "flock")
			if !errors.Is(err, ErrLocked) {
				t.Fatalf("acquire while another process holds it: got %v, want ErrLocked", err)
			}
			if want := fmt.Sprintf("pid %d", pid); !strings.Contains(err.Error(), want) {
				t.Errorf("error %q does not name the holder (%s)", err, want)
			}
			stdin.Close()
			if err := wait(); err != nil {
				t.Fatalf("helper: %v", err)
			}
			l, err := acquireLock(dir, mode == "flock")
			if err != nil {
				t.Fatalf("acquire after the other process released: %v", err)
			}
			l.Release()
		})
	}
}

// A holder killed with SIGKILL releases nothing: its flock goes with the
// process, its pid file must be found stale.
func TestLockHolderKilled(t *testing.T) {
	for _, mode := range []string{"flock", "pidfile"} {
		t.Run(mode, func(t *testing.T) {
			dir := t.TempDir()
			_, line, wait, pid := startHelper(t, "holdlock "+dir+" "+mode)
			if line != "locked" {
				t.Fatalf("helper said %q", line)
			}
			if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
				t.Fatal(err)
			}
			wait()
			l, err := acquireLock(dir, mode == "flock")
			if err != nil {
				t.Fatalf("acquire after the holder died: %v", err)
			}
			if mode == "pidfile" && !strings.Contains(string(readQuiet(filepath.Join(dir, LockPIDFile))), fmt.Sprintf("pid=%d", os.Getpid())) {
				t.Errorf("pid file does not hold our pid")
			}
			l.Release()
		})
	}
}

func TestLockPIDFileEmpty(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, LockPIDFile)
	if err := os.WriteFile(p, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	// Young and empty: its writer may be about to write; taken as held.
	if _, err := acquireLock(dir, false); !errors.Is(err, ErrLocked) {
		t.Fatalf("young empty pid file: got %v, want ErrLocked", err)
	}
	old := time.Now().Add(-2 * staleEmpty)
	if err := os.Chtimes(p, old, old); err != nil {
		t.Fatal(err)
	}
	l, err := acquireLock(dir, false)
	if err != nil {
		t.Fatalf("old empty pid file: %v", err)
	}
	l.Release()
}

func TestAcquireLockMethod(t *testing.T) {
	l, err := AcquireLock(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer l.Release()
	if l.Method != "flock" {
		t.Errorf("Method = %q on a local filesystem, want flock", l.Method)
	}
}

func TestFlockUnsupported(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want bool
	}{
		{syscall.ENOSYS, true},
		{syscall.EINVAL, true},
		{syscall.EOPNOTSUPP, true},
		{fmt.Errorf("flock: %w", syscall.ENOSYS), true},
		{syscall.EWOULDBLOCK, false},
		{syscall.EBADF, false},
	} {
		if got := flockUnsupported(tc.err); got != tc.want {
			t.Errorf("flockUnsupported(%v) = %v, want %v", tc.err, got, tc.want)
		}
	}
}

func TestLockStateDirMissing(t *testing.T) {
	_, err := AcquireLock(filepath.Join(t.TempDir(), "nope"))
	if err == nil || errors.Is(err, ErrLocked) {
		t.Fatalf("got %v, want an open error", err)
	}
}

func FuzzParseLockInfo(f *testing.F) {
	f.Add([]byte("pid=4242 start=2026-07-26T01:26:46Z\n"))
	f.Add([]byte("pid=-1 start"))
	f.Fuzz(func(t *testing.T, b []byte) {
		li := parseLockInfo(b)
		if li.pid < 0 {
			t.Errorf("negative pid %d from %q", li.pid, b)
		}
		_ = li.String()
	})
}
