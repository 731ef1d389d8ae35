package remediate

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
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

// A pid file left from before a reboot names a pid that may be alive again,
// another process's or our own: it is stale all the same, but only when
// both the uptime and the wall clock say so.
func TestLockPIDFileAfterReboot(t *testing.T) {
	up := uptimeSeconds()
	if up <= 0 {
		t.Skip("no uptime here")
	}
	now := time.Now().UTC()
	stamp := func(d time.Duration) string { return now.Add(d).Format(time.RFC3339) }
	boot := -time.Duration(up) * time.Second
	for _, c := range []struct {
		name, content string
		held          bool
	}{
		{"live pid, this boot", fmt.Sprintf("pid=1 start=%s up=%d\n", stamp(-10*time.Second), max(up-10, 1)), true},
		{"live pid, no uptime (older heapguard)", fmt.Sprintf("pid=1 start=%s\n", stamp(boot-48*time.Hour)), true},
		{"live pid, before a reboot", fmt.Sprintf("pid=1 start=%s up=%d\n", stamp(boot-48*time.Hour), up+7200), false},
		{"uptime says reboot, wall clock does not", fmt.Sprintf("pid=1 start=%s up=%d\n", stamp(-10*time.Second), up+7200), true},
		{"wall clock says reboot, uptime does not", fmt.Sprintf("pid=1 start=%s up=%d\n", stamp(boot-48*time.Hour), max(up-10, 1)), true},
		{"our pid, not held by us", fmt.Sprintf("pid=%d start=%s up=%d\n", os.Getpid(), stamp(-10*time.Second), max(up-10, 1)), false},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			if err := os.WriteFile(filepath.Join(dir, LockPIDFile), []byte(c.content), 0o644); err != nil {
				t.Fatal(err)
			}
			l, err := acquireLock(dir, false)
			if c.held {
				if !errors.Is(err, ErrLocked) || !strings.Contains(err.Error(), "pid 1 ") {
					t.Fatalf("got %v, want ErrLocked naming pid 1", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("stale pid file: %v", err)
			}
			b, _ := os.ReadFile(filepath.Join(dir, LockPIDFile))
			if li := parseLockInfo(b); li.pid != os.Getpid() || li.up <= 0 {
				t.Errorf("lock now says %q: want our pid and the uptime", b)
			}
			if err := l.Release(); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// Within one process the pid-file lock is held once, whatever path leads to
// it and however many goroutines try.
func TestLockPIDFileOncePerProcess(t *testing.T) {
	dir := t.TempDir()
	alias := filepath.Join(t.TempDir(), "alias")
	if err := os.Symlink(dir, alias); err != nil {
		t.Fatal(err)
	}
	l, err := acquireLock(dir, false)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := acquireLock(alias, false); !errors.Is(err, ErrLocked) {
		t.Fatalf("through a symlink while held: got %v, want ErrLocked", err)
	}
	if err := l.Release(); err != nil {
		t.Fatal(err)
	}

	var holders, most atomic.Int32
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for range 200 {
				l, err := acquireLock(dir, false)
				if err != nil {
					continue
				}
				n := holders.Add(1)
				for m := most.Load(); n > m && !most.CompareAndSwap(m, n); m = most.Load() {
				}
				if err := l.Check(); err != nil {
					t.Errorf("holder's check: %v", err)
				}
				runtime.Gosched()
				holders.Add(-1)
				if err := l.Release(); err != nil {
					t.Error(err)
				}
			}
		})
	}
	wg.Wait()
	if m := most.Load(); m != 1 {
		t.Errorf("%d holders at once, want 1", m)
	}
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

// A writer stalled while its file was still empty, whose file was judged
// stale and replaced meanwhile, does not take the other's file for its own.
func TestLockPIDFileTakenWhileWriting(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, LockPIDFile)
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	// Another instance takes the "stale" empty file over.
	other := "pid=1 start=2026-11-26T10:00:00Z\n"
	if err := os.Remove(p); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(other), 0o644); err != nil {
		t.Fatal(err)
	}
	pidFiles.Lock()
	l, err := createdPIDFile(p, f)
	pidFiles.Unlock()
	if !errors.Is(err, ErrLocked) || l != nil {
		t.Fatalf("got %v, %v; want ErrLocked", l, err)
	}
	if b, _ := os.ReadFile(p); string(b) != other {
		t.Errorf("the other's file now says %q", b)
	}
}

// Taking a stale file away never removes a file put there meanwhile.
func TestLockTakeAway(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, LockPIDFile)
	judged := []byte("pid=999999 start=2026-11-20T10:00:00Z\n")
	isJudged := func(moved string) bool {
		b, err := os.ReadFile(moved)
		return err == nil && bytes.Equal(b, judged)
	}
	live := []byte("pid=1 start=2026-11-26T10:00:00Z\n")
	if err := os.WriteFile(p, live, 0o644); err != nil {
		t.Fatal(err)
	}
	takeAway(p, isJudged)
	if b, err := os.ReadFile(p); err != nil || !bytes.Equal(b, live) {
		t.Errorf("a live file put there meanwhile: now %q, %v", b, err)
	}
	if err := os.WriteFile(p, judged, 0o644); err != nil {
		t.Fatal(err)
	}
	takeAway(p, isJudged)
	if _, err := os.Stat(p); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("the judged file is still there: %v", err)
	}
	if left, _ := filepath.Glob(p + ".stale.*"); len(left) != 0 {
		t.Errorf("left behind: %v", left)
	}
}

// Refresh keeps the holder and its start, and refuses a file that is no
// longer ours.
func TestLockRefresh(t *testing.T) {
	dir := t.TempDir()
	l, err := acquireLock(dir, false)
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, LockPIDFile)
	before := parseLockInfo(readQuiet(p))
	if err := l.Refresh(); err != nil {
		t.Fatal(err)
	}
	after := parseLockInfo(readQuiet(p))
	if after.pid != os.Getpid() || after.start != before.start || after.up < before.up {
		t.Errorf("after refresh %+v, before %+v", after, before)
	}
	if _, err := acquireLock(dir, false); !errors.Is(err, ErrLocked) {
		t.Errorf("after refresh, a second acquire: %v", err)
	}
	if err := os.Remove(p); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte("pid=1 start=2026-11-26T10:00:00Z\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := l.Refresh(); err == nil || !strings.Contains(err.Error(), "pid 1") {
		t.Errorf("refresh of a file no longer ours: %v", err)
	}
	if b, _ := os.ReadFile(p); !strings.HasPrefix(string(b), "pid=1 ") {
		t.Errorf("refresh wrote over another's file: %q", b)
	}
	var flock *Lock
	if err := flock.Refresh(); err != nil {
		t.Errorf("nil lock: %v", err)
	}
}

// A stale empty file is judged by identity as well as content: another
// instance's new file, empty for an instant while it is written, is not
// taken for it.
func TestLockTakeAwayByIdentity(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, LockPIDFile)
	if err := os.WriteFile(p, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	old := time.Now().Add(-2 * staleEmpty)
	if err := os.Chtimes(p, old, old); err != nil {
		t.Fatal(err)
	}
	b, judged, err := readLockFile(p)
	if err != nil {
		t.Fatal(err)
	}
	// Meanwhile another instance took the stale file over and made its own.
	if err := os.Remove(p); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	takeAway(p, func(moved string) bool {
		again, fi, err := readLockFile(moved)
		return err == nil && sameVersion(fi, judged) && bytes.Equal(again, b)
	})
	if _, err := os.Stat(p); err != nil {
		t.Errorf("the other's new file was taken away: %v", err)
	}
}

// Check says whether the lock is still ours.
func TestLockCheck(t *testing.T) {
	dir := t.TempDir()
	l, err := acquireLock(dir, false)
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Check(); err != nil {
		t.Fatalf("just taken: %v", err)
	}
	p := filepath.Join(dir, LockPIDFile)
	os.Remove(p)
	if err := l.Check(); !errors.Is(err, ErrLocked) {
		t.Errorf("file gone: %v", err)
	}
	if err := os.WriteFile(p, []byte(fmt.Sprintf("pid=%d start=x\n", os.Getpid())), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := l.Check(); !errors.Is(err, ErrLocked) {
		t.Errorf("another file naming our pid: %v", err)
	}
	var none *Lock
	if err := none.Check(); err != nil {
		t.Errorf("nil lock: %v", err)
	}
	fl, err := acquireLock(t.TempDir(), true)
	if err != nil {
		t.Fatal(err)
	}
	defer fl.Release()
	if err := fl.Check(); err != nil {
		t.Errorf("flock: %v", err)
	}
}
