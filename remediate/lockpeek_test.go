package remediate

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestPeekLock: PeekLock names the holder of either kind of lock, another
// process's or ours, and a released or killed holder as the last one,
// not as holding; it never gets in the holder's way.
func TestPeekLock(t *testing.T) {
	for _, mode := range []string{"flock", "pidfile"} {
		t.Run(mode, func(t *testing.T) {
			dir := t.TempDir()
			if h, err := PeekLock(dir); err != nil || h.Held || h.PID != 0 {
				t.Fatalf("never taken: %+v, %v", h, err)
			}
			stdin, line, wait, pid := startHelper(t, "holdlock "+dir+" "+mode)
			if line != "locked" {
				t.Fatalf("helper said %q", line)
			}
			before := dirState(t, dir)
			h, err := PeekLock(dir)
			if err != nil || !h.Held || h.PID != pid || h.Since.IsZero() {
				t.Errorf("held by pid %d: %+v, %v", pid, h, err)
			}
			if !strings.HasPrefix(h.String(), "held by pid ") {
				t.Errorf("String() = %q", h.String())
			}
			if after := dirState(t, dir); after != before {
				t.Errorf("PeekLock changed the lock folder:\n%s\n%s", before, after)
			}
			if _, err := acquireLock(dir, mode == "flock"); !errors.Is(err, ErrLocked) {
				t.Errorf("after a peek the lock could be taken: %v", err)
			}
			stdin.Close()
			if err := wait(); err != nil {
				t.Fatal(err)
			}
			h, err = PeekLock(dir)
			if err != nil || h.Held {
				t.Errorf("released: %+v, %v", h, err)
			}

			// Killed holder: a flock goes with it, a pid file stays behind.
			_, line, wait, pid = startHelper(t, "holdlock "+dir+" "+mode)
			if line != "locked" {
				t.Fatalf("helper said %q", line)
			}
			syscall.Kill(pid, syscall.SIGKILL)
			wait()
			if h, err := PeekLock(dir); err != nil || h.Held || h.PID != pid || !strings.HasPrefix(h.String(), "free, last held by pid ") {
				t.Errorf("holder killed: %+v (%s), %v", h, h, err)
			}
		})
	}
}

// TestPeekLockStalePIDFileAndFlock: a pid file left by a killed holder
// (a fallback period) does not hide a live holder of the flock.
func TestPeekLockStalePIDFileAndFlock(t *testing.T) {
	dir := t.TempDir()
	_, line, wait, dead := startHelper(t, "holdlock "+dir+" pidfile")
	if line != "locked" {
		t.Fatalf("helper said %q", line)
	}
	syscall.Kill(dead, syscall.SIGKILL)
	wait()
	stdin, line, wait, pid := startHelper(t, "holdlock "+dir+" flock")
	if line != "locked" {
		t.Fatalf("helper said %q", line)
	}
	defer func() { stdin.Close(); wait() }()
	if h, err := PeekLock(dir); err != nil || !h.Held || h.PID != pid {
		t.Errorf("flock held by pid %d, stale pid file of pid %d: %+v (%s), %v", pid, dead, h, h, err)
	}
}

// TestPeekLockOwnFlock: a flock this very process holds is held, and
// after its release it is not, although the file still names this live
// process: the kernel's list decides, not whether the pid runs.
func TestPeekLockOwnFlock(t *testing.T) {
	if _, err := os.Stat("/proc/locks"); err != nil {
		t.Skip("no /proc/locks here")
	}
	dir := t.TempDir()
	l, err := acquireLock(dir, true)
	if err != nil {
		t.Fatal(err)
	}
	if h, _ := PeekLock(dir); !h.Held || h.PID != os.Getpid() || h.How != "flock listed in /proc/locks" {
		t.Errorf("held by us: %+v", h)
	}
	l.Release()
	if h, _ := PeekLock(dir); h.Held || h.PID != os.Getpid() {
		t.Errorf("released by us: %+v", h)
	}
}

// dirState lists the files of dir with size, time and content.
func dirState(t *testing.T, dir string) string {
	t.Helper()
	var b strings.Builder
	fi, err := os.Stat(dir)
	if err != nil {
		t.Fatal(err)
	}
	b.WriteString(fi.ModTime().Format(time.RFC3339Nano) + "\n")
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		fi, _ := e.Info()
		c, _ := os.ReadFile(filepath.Join(dir, e.Name()))
		b.WriteString(e.Name() + " " + fi.ModTime().Format(time.RFC3339Nano) + " " + string(c) + "\n")
	}
	return b.String()
}

// TestReadGuardStatus: the status of a spent budget and an open breaker
// is read from the records, which stay as they were.
func TestReadGuardStatus(t *testing.T) {
	dir, hostDir := t.TempDir(), t.TempDir()
	g, err := OpenHostGuards(dir, hostDir, GuardLimits{BreakerAfter: 1})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 5, 1, 10, 0, 0, 0, time.UTC)
	for i := range 3 {
		start(t, g, powerOff, now.Add(time.Duration(i)*time.Minute))
	}
	g.Record(powerOff, Outcome{Result: ResultFailed, Err: "still on", Mutated: true}, now.Add(3*time.Minute))
	before, hostBefore := dirState(t, dir), dirState(t, hostDir)

	// The host record alone holds it all, as after the folder's loss.
	os.Remove(filepath.Join(dir, GuardsFile))
	before = dirState(t, dir)
	gs, err := ReadGuardStatus(dir, hostDir, GuardLimits{}, now.Add(10*time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	if gs.PowerOffsLeft() != 0 || gs.PowerOffsInWindow != 3 || !gs.NextPowerOffAt.Equal(now.Add(time.Hour)) ||
		!gs.BreakerOpen || !gs.BreakerSince.Equal(now.Add(3*time.Minute)) || !strings.Contains(gs.LastFailure, "still on") {
		t.Errorf("status %+v", gs)
	}
	if dirState(t, dir) != before || dirState(t, hostDir) != hostBefore {
		t.Error("ReadGuardStatus wrote a record")
	}
	if gs, _ := ReadGuardStatus(dir, hostDir, GuardLimits{}, now.Add(time.Hour+30*time.Second)); gs.PowerOffsLeft() != 1 {
		t.Errorf("an hour after the first power-off: %d left, want 1", gs.PowerOffsLeft())
	}
	os.WriteFile(filepath.Join(hostDir, GuardsFile), []byte("{"), 0o600)
	if _, err := ReadGuardStatus(dir, hostDir, GuardLimits{}, now); !errors.Is(err, ErrGuardState) {
		t.Errorf("damaged record: %v, want ErrGuardState", err)
	}
}
