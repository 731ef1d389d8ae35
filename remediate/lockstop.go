package remediate

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"
)

// ErrHolderUnknown: the lock is held but its holder cannot be named for
// certain, so StopHolder signals no one.
var ErrHolderUnknown = errors.New("the lock's holder cannot be named for certain")

// StopOptions shape StopHolder; the zero value is usable.
type StopOptions struct {
	// Signal is sent to the holder's pid (default SIGTERM: heapguard
	// finishes the action under way and exits).
	Signal func(pid int) error
	// Wait bounds the wait for the holder to let go (default 10 min: an
	// action under way may take 8m45s).
	Wait time.Duration
	// Settle is how long the holder's pid must read the same, under a
	// flock that stays held, before it is signalled (default 200 ms).
	Settle time.Duration
	// Sleep waits between checks (default time.Sleep).
	Sleep func(time.Duration)
}

// StopHolder asks the process holding the flock lock in dir to stop, and
// waits until the lock is free. Whether the flock is held is asked of the
// kernel's lock table where there is one (/proc/locks), else by trying it. It returns the pid it signalled (0 when
// the lock was free). A holder is signalled only when the flock is seen
// held both before and after two identical reads of its pid, Settle apart:
// a holder writes its pid right after taking the flock, so a pid that
// reads the same under a flock held all along is the holder's, not that of
// a process gone whose pid may be reused. A lock held through the pid-file
// fallback (no flock on the filesystem) gives ErrHolderUnknown: there
// the pid may be stale.
func StopHolder(dir string, o StopOptions) (int, error) {
	if o.Signal == nil {
		o.Signal = signalTerm
	}
	if o.Wait <= 0 {
		o.Wait = 10 * time.Minute
	}
	if o.Settle <= 0 {
		o.Settle = 200 * time.Millisecond
	}
	if o.Sleep == nil {
		o.Sleep = time.Sleep
	}
	p := filepath.Join(dir, LockFile)
	// The lock names the pid to signal: one that others could write could
	// name any process.
	if err := CheckPrivate(dir, p); err != nil {
		return 0, err
	}
	first, held, err := flockHeld(p)
	if err != nil || !held {
		return 0, err
	}
	o.Sleep(o.Settle)
	second, held, err := flockHeld(p)
	if err != nil || !held {
		return 0, err
	}
	if first.pid <= 0 || first.raw != second.raw || !os.SameFile(first.fi, second.fi) || first.pid == os.Getpid() {
		return 0, fmt.Errorf("%w: %s names %s, then %s", ErrHolderUnknown, p, first, second)
	}
	if err := o.Signal(first.pid); err != nil {
		return first.pid, fmt.Errorf("stop %s, holder of %s: %w", first, p, err)
	}
	step := 100 * time.Millisecond
	for waited := time.Duration(0); waited < o.Wait; waited += step {
		if _, held, err := flockHeld(p); err != nil || !held {
			return first.pid, err
		}
		o.Sleep(step)
	}
	return first.pid, fmt.Errorf("%w: %s still holds %s after %v", ErrLocked, first, p, o.Wait)
}

// lockTable is the kernel's flock table (a variable: tests take the way
// of a host without /proc/locks, as ESXi).
var lockTable = kernelFlocks

// flockHeld tries the flock on p and lets it go at once: held says another
// process holds it, and h is what the file names then. A missing file is
// free; a filesystem without flock gives ErrHolderUnknown.
func flockHeld(p string) (h holder, held bool, err error) {
	// Where the kernel lists its flocks (Linux), ask it: trying the flock
	// ourselves, even for an instant, could make a starting instance fail
	// to take it.
	if locks, lerr := lockTable(); lerr == nil {
		h, err := readHolder(p)
		if errors.Is(err, os.ErrNotExist) {
			return holder{}, false, nil
		}
		if err != nil {
			return holder{}, false, fmt.Errorf("read lock %s: %w", p, err)
		}
		pid, held := locks.holder(h.fi)
		if held && pid > 0 && pid != h.pid {
			// The file still names an earlier holder: not settled yet.
			h.pid = 0
		}
		return h, held, nil
	}
	f, err := os.OpenFile(p, os.O_RDWR, 0)
	if errors.Is(err, os.ErrNotExist) {
		return holder{}, false, nil
	}
	if err != nil {
		return holder{}, false, fmt.Errorf("open lock %s: %w", p, err)
	}
	defer f.Close()
	err = flockExclusive(f)
	switch {
	case err == nil:
		return holder{}, false, nil // closing the file lets it go
	case errors.Is(err, errWouldBlock):
		h, err := readHolder(p)
		if err != nil {
			return holder{}, true, fmt.Errorf("read lock %s: %w", p, err)
		}
		return h, true, nil
	case flockUnsupported(err):
		return holder{}, false, fmt.Errorf("%w: %s: flock not supported here (%v)", ErrHolderUnknown, p, err)
	}
	return holder{}, false, fmt.Errorf("lock %s: %w", p, err)
}
