package remediate

import (
	"errors"
	"fmt"
	"io"
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

// deadPID is above any pid_max: no process has it.
const deadPID = 1 << 30

// withUptime makes the host's uptime read up seconds for the test.
func withUptime(t *testing.T, up int64) {
	t.Helper()
	old := uptime
	uptime = func() int64 { return up }
	t.Cleanup(func() { uptime = old })
}

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
			if want := fmt.Sprintf("pid %d since ", os.Getpid()); !strings.Contains(err.Error(), want) {
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
			if want := fmt.Sprintf("pid %d since ", pid); !strings.Contains(err.Error(), want) {
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
			if mode == "pidfile" {
				if h, _ := readHolder(filepath.Join(dir, LockPIDFile)); h.pid != os.Getpid() {
					t.Errorf("pid file names %s, not us", h)
				}
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
	const up = 3600
	withUptime(t, up)
	now := time.Now().UTC()
	stamp := func(d time.Duration) string { return now.Add(d).Format(time.RFC3339) }
	boot := -time.Duration(up) * time.Second
	for _, c := range []struct {
		name, content string
		held          bool
	}{
		{"live pid, this boot", fmt.Sprintf("pid=1 start=%s up=%d\n", stamp(-10*time.Second), up-10), true},
		{"live pid, no uptime (older heapguard)", fmt.Sprintf("pid=1 start=%s\n", stamp(boot-48*time.Hour)), true},
		{"live pid, before a reboot", fmt.Sprintf("pid=1 start=%s up=%d\n", stamp(boot-48*time.Hour), up+7200), false},
		{"uptime says reboot, wall clock does not", fmt.Sprintf("pid=1 start=%s up=%d\n", stamp(-10*time.Second), up+7200), true},
		{"wall clock says reboot (a step forward), uptime does not", fmt.Sprintf("pid=1 start=%s up=%d\n", stamp(boot-48*time.Hour), up-10), true},
		{"both say reboot, uptime within the margin", fmt.Sprintf("pid=1 start=%s up=%d\n", stamp(boot-48*time.Hour), up+300), true},
		{"our pid, not held by us", fmt.Sprintf("pid=%d start=%s id=x up=%d\n", os.Getpid(), stamp(-10*time.Second), up-10), false},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			p := filepath.Join(dir, LockPIDFile)
			if err := os.WriteFile(p, []byte(c.content), 0o644); err != nil {
				t.Fatal(err)
			}
			l, err := acquireLock(dir, false)
			if c.held {
				if !errors.Is(err, ErrLocked) || !strings.Contains(err.Error(), "pid 1 ") {
					t.Fatalf("got %v, want ErrLocked naming pid 1", err)
				}
				if b, _ := os.ReadFile(p); string(b) != c.content {
					t.Errorf("the held file now says %q", b)
				}
				return
			}
			if err != nil {
				t.Fatalf("stale pid file: %v", err)
			}
			if h, _ := readHolder(p); h.pid != os.Getpid() || h.up != up || h.id == "" {
				t.Errorf("lock now says %q: want our pid, id and the uptime", h.raw)
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

// contend takes the pid-file lock in dir until it has held it holds
// times, a moment each time; a third of the time it dies holding it,
// leaving a stale file for the others to race for. Holding means owning
// dir/inside, made with O_EXCL: failing to make it means two holders.
func contend(dir string, holds int) error {
	inside := filepath.Join(dir, "inside")
	deadline := time.Now().Add(20 * time.Second)
	for held := 0; held < holds; {
		if time.Now().After(deadline) {
			return fmt.Errorf("held only %d times in 20 s", held)
		}
		l, err := acquireLock(dir, false)
		if errors.Is(err, ErrLocked) {
			time.Sleep(time.Duration(held%3) * 100 * time.Microsecond)
			continue
		}
		if err != nil {
			return err
		}
		m, err := os.OpenFile(inside, os.O_CREATE|os.O_EXCL, 0o644)
		if err != nil {
			return fmt.Errorf("two holders at once: %w", err)
		}
		m.Close()
		held++
		runtime.Gosched()
		if err := l.Check(); err != nil {
			return fmt.Errorf("holder's check: %w", err)
		}
		if err := os.Remove(inside); err != nil {
			return err
		}
		if held%3 == 0 { // die holding it
			if err := os.WriteFile(l.path, fmt.Appendf(nil, "pid=%d start=x\n", deadPID), 0o644); err != nil {
				return err
			}
			l.drop()
		} else if err := l.Release(); err != nil {
			return err
		}
	}
	return nil
}

// Acquirers racing for the pid file, a stale one often, never both hold it:
// goroutines, and processes.
func TestLockContend(t *testing.T) {
	t.Run("goroutines", func(t *testing.T) {
		dir := t.TempDir()
		var wg sync.WaitGroup
		for range 4 {
			wg.Go(func() {
				if err := contend(dir, 60); err != nil {
					t.Error(err)
				}
			})
		}
		wg.Wait()
	})
	t.Run("processes", func(t *testing.T) {
		dir := t.TempDir()
		var waits []func() error
		var stdins []io.WriteCloser
		for range 3 {
			stdin, line, wait, _ := startHelper(t, "contend "+dir+" 60")
			if line != "ready" {
				t.Fatalf("helper said %q", line)
			}
			stdins, waits = append(stdins, stdin), append(waits, wait)
		}
		for _, s := range stdins { // start them at once
			s.Close()
		}
		for _, w := range waits {
			if err := w(); err != nil {
				t.Errorf("helper: %v", err)
			}
		}
	})
}

// A holder whose file another instance judged stale and took over learns
// it from Check, and its Release leaves the new holder's file alone.
func TestLockCheckAfterTakeOver(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, LockPIDFile)
	withUptime(t, 1_000_000)
	l, err := acquireLock(dir, false)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Release()
	// Our file, as if written two days before a reboot that the other
	// instance (uptime 60 s) has seen.
	b, _ := os.ReadFile(p)
	b = []byte(strings.Replace(string(b), "start="+l.me.start, "start="+time.Now().Add(-48*time.Hour).UTC().Format(time.RFC3339), 1))
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := l.Check(); err != nil {
		t.Fatalf("still ours: %v", err)
	}
	stdin, line, wait, pid := startHelper(t, "holdlock "+dir+" pidfile 60")
	if line != "locked" {
		t.Fatalf("helper said %q", line)
	}
	err = l.Check()
	if want := fmt.Sprintf("pid %d ", pid); !errors.Is(err, ErrLocked) || !strings.Contains(err.Error(), want) {
		t.Errorf("check after the take-over: %v, want ErrLocked naming %s", err, want)
	}
	if err := l.Refresh(); !errors.Is(err, ErrLocked) {
		t.Errorf("refresh after the take-over: %v, want ErrLocked", err)
	}
	if err := l.Release(); err == nil {
		t.Error("release of a lost lock: no error")
	}
	if h, _ := readHolder(p); h.pid != pid {
		t.Errorf("the new holder's file now names %s", h)
	}
	stdin.Close()
	if err := wait(); err != nil {
		t.Fatalf("helper: %v", err)
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
	p, err := acquireLock(t.TempDir(), false)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Release()
	if !strings.HasPrefix(p.Method, "pid file: ") {
		t.Errorf("Method = %q for the fallback", p.Method)
	}
}

func TestLockKind(t *testing.T) {
	dir := t.TempDir()
	if k, err := LockKind(dir); err != nil || k != "flock" {
		t.Errorf("LockKind = %q, %v on a local filesystem, want flock", k, err)
	}
	if left, _ := os.ReadDir(dir); len(left) != 0 {
		t.Errorf("left behind: %v", left)
	}
	if _, err := LockKind(filepath.Join(dir, "nope")); err == nil {
		t.Error("LockKind of a missing folder: no error")
	}
}

func TestPIDFileMethod(t *testing.T) {
	if k, err := pidFileMethod(syscall.ENOSYS); err != nil || !strings.HasPrefix(k, "pid file: flock not supported") {
		t.Errorf("for ENOSYS: %q, %v", k, err)
	}
	if _, err := pidFileMethod(syscall.ENOLCK); !errors.Is(err, syscall.ENOLCK) {
		t.Errorf("for ENOLCK: %v, want the error", err)
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
		{syscall.ENOLCK, false},
	} {
		if got := flockUnsupported(tc.err); got != tc.want {
			t.Errorf("flockUnsupported(%v) = %v, want %v", tc.err, got, tc.want)
		}
	}
}

func TestLockStateDirMissing(t *testing.T) {
	for _, useFlock := range []bool{true, false} {
		_, err := acquireLock(filepath.Join(t.TempDir(), "nope"), useFlock)
		if err == nil || errors.Is(err, ErrLocked) {
			t.Errorf("flock=%v: got %v, want an open error", useFlock, err)
		}
	}
}

func FuzzParseHolder(f *testing.F) {
	f.Add([]byte("pid=4242 start=2026-07-26T01:26:46Z id=k3 up=77\n"))
	f.Add([]byte("pid=-1 start up=-5 id"))
	f.Fuzz(func(t *testing.T, b []byte) {
		h := parseHolder(b)
		if h.pid < 0 || h.up < 0 {
			t.Errorf("negative pid %d or uptime %d from %q", h.pid, h.up, b)
		}
		_ = h.String()
		if h.pid > 0 {
			again := parseHolder(h.format())
			if again.pid != h.pid || again.start != h.start || again.id != h.id || again.up != h.up {
				t.Errorf("%q: written and read back as %+v, want %+v", b, again, h)
			}
		}
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
	other := "pid=1 start=2026-11-26T10:00:00Z id=o\n"
	if err := os.Remove(p); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(other), 0o644); err != nil {
		t.Fatal(err)
	}
	l, err := created(p, f)
	if !errors.Is(err, ErrLocked) || l != nil {
		t.Fatalf("got %v, %v; want ErrLocked", l, err)
	}
	if b, _ := os.ReadFile(p); string(b) != other {
		t.Errorf("the other's file now says %q", b)
	}
}

// Taking a stale file over never removes a file put there meanwhile, and
// removes the judged one.
func TestLockTakeOver(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, LockPIDFile)
	if err := os.WriteFile(p, fmt.Appendf(nil, "pid=%d start=2026-11-20T10:00:00Z\n", deadPID), 0o644); err != nil {
		t.Fatal(err)
	}
	judged, err := readHolder(p)
	if err != nil || !judged.stale(time.Now(), uptime()) {
		t.Fatalf("%+v, %v: want a stale holder", judged, err)
	}
	// Meanwhile another instance took it over and made its own.
	live := "pid=1 start=2026-11-26T10:00:00Z id=o\n"
	if err := os.Remove(p); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(live), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := takeOver(p, judged); err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(p); err != nil || string(b) != live {
		t.Errorf("a live file put there meanwhile: now %q, %v", b, err)
	}
	if err := os.WriteFile(p, fmt.Appendf(nil, "pid=%d start=2026-11-20T10:00:00Z\n", deadPID), 0o644); err != nil {
		t.Fatal(err)
	}
	if judged, err = readHolder(p); err != nil {
		t.Fatal(err)
	}
	if err := takeOver(p, judged); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(p); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("the judged file is still there: %v", err)
	}
	if left, _ := os.ReadDir(dir); len(left) != 0 {
		t.Errorf("left behind: %v", left)
	}
}

// A stale empty file is judged by identity as well as content: another
// instance's new file, empty for an instant while it is written, is not
// taken for it.
func TestLockTakeOverByIdentity(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, LockPIDFile)
	if err := os.WriteFile(p, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	old := time.Now().Add(-2 * staleEmpty)
	if err := os.Chtimes(p, old, old); err != nil {
		t.Fatal(err)
	}
	judged, err := readHolder(p)
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
	if err := takeOver(p, judged); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(p); err != nil {
		t.Errorf("the other's new file was taken away: %v", err)
	}
}

// While another instance takes a stale file over (it holds lock.pid.take),
// no one else removes the file.
func TestLockTakeOverInProgress(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, LockPIDFile)
	stale := fmt.Sprintf("pid=%d start=2026-11-20T10:00:00Z\n", deadPID)
	if err := os.WriteFile(p, []byte(stale), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(p+".take", 0o700); err != nil {
		t.Fatal(err)
	}
	_, err := acquireLock(dir, false)
	if !errors.Is(err, ErrLocked) || !strings.Contains(err.Error(), p+".take") {
		t.Errorf("got %v, want ErrLocked naming %s", err, p+".take")
	}
	if b, _ := os.ReadFile(p); string(b) != stale {
		t.Errorf("the file being taken over now says %q", b)
	}
	if err := os.Remove(p + ".take"); err != nil {
		t.Fatal(err)
	}
	l, err := acquireLock(dir, false)
	if err != nil {
		t.Fatalf("once the take-over is done with: %v", err)
	}
	l.Release()
}

// Refresh keeps the holder and its start, brings the uptime up to date, and
// refuses a file that is no longer ours.
func TestLockRefresh(t *testing.T) {
	dir := t.TempDir()
	withUptime(t, 100)
	l, err := acquireLock(dir, false)
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, LockPIDFile)
	before, _ := readHolder(p)
	withUptime(t, 100_000)
	if err := l.Refresh(); err != nil {
		t.Fatal(err)
	}
	after, _ := readHolder(p)
	if after.pid != os.Getpid() || after.start != before.start || after.id != before.id || after.up != 100_000 {
		t.Errorf("after refresh %q, before %q", after.raw, before.raw)
	}
	if err := l.Check(); err != nil {
		t.Errorf("after refresh: %v", err)
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
	if err := l.Refresh(); !errors.Is(err, ErrLocked) || !strings.Contains(err.Error(), "pid 1") {
		t.Errorf("refresh of a file no longer ours: %v", err)
	}
	if b, _ := os.ReadFile(p); string(b) != "pid=1 start=2026-11-26T10:00:00Z\n" {
		t.Errorf("refresh wrote over another's file: %q", b)
	}
	var none *Lock
	if err := none.Refresh(); err != nil {
		t.Errorf("nil lock: %v", err)
	}
	fl, err := acquireLock(t.TempDir(), true)
	if err != nil {
		t.Fatal(err)
	}
	defer fl.Release()
	if err := fl.Refresh(); err != nil {
		t.Errorf("flock: %v", err)
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
	if err := os.WriteFile(p, fmt.Appendf(nil, "pid=%d start=%s\n", os.Getpid(), l.me.start), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := l.Check(); !errors.Is(err, ErrLocked) {
		t.Errorf("another file naming our pid: %v", err)
	}
	if err := l.Release(); err == nil {
		t.Error("release of a lost lock: no error")
	}
	if _, err := os.Stat(p); err != nil {
		t.Errorf("release of a lost lock removed the file: %v", err)
	}
	if err := l.Check(); err != nil {
		t.Errorf("released: %v", err)
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
