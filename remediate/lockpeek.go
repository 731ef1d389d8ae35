package remediate

import (
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"time"
)

// LockHolder is what a lock's files say about who holds it, read without
// taking the lock: `heapguard status` and `doctor` must answer while an
// instance acts, and even a shared flock, held for an instant, would make
// that instance's next AcquireLock fail.
type LockHolder struct {
	// Path is the lock file read: the flock file, or the pid file where
	// the fallback is in use.
	Path string `json:"path"`
	Held bool   `json:"held"`
	// PID and Since name the holder, or the last one when Held is false
	// (a released flock file keeps naming its last holder).
	PID   int       `json:"pid,omitempty"`
	Since time.Time `json:"since,omitzero"`
	// How says how Held was judged.
	How string `json:"how"`
}

// String says it for people: "held by pid 12 since …" or "free (…)".
func (h LockHolder) String() string {
	who := "no holder named"
	if h.PID > 0 {
		who = fmt.Sprintf("pid %d", h.PID)
		if !h.Since.IsZero() {
			who += " since " + fmtTime(h.Since)
		}
	}
	if h.Held {
		return fmt.Sprintf("held by %s (%s)", who, h.How)
	}
	if h.PID > 0 {
		return fmt.Sprintf("free, last held by %s (%s)", who, h.How)
	}
	return "free (" + h.How + ")"
}

// PeekLock says who holds the lock AcquireLock(dir) would take, reading
// its files only: nothing is created, locked or written. A pid-file lock
// is judged as AcquireLock judges it (stale or not). A flock file is
// held when the kernel lists a flock on it (/proc/locks, on Linux);
// where it cannot tell (ESXi has no /proc/locks), when the pid the file
// names is running, which may be a pid reused since. A missing folder or
// file is a free lock.
//
// The flock file is judged first, as AcquireLock tries it first: a pid
// file left by a crash in a fallback period does not hide a holder of the
// flock.
func PeekLock(dir string) (LockHolder, error) {
	fl, ferr := peekFlockFile(filepath.Join(dir, LockFile))
	if ferr == nil && fl.Held {
		return fl, nil
	}
	pidPath := filepath.Join(dir, LockPIDFile)
	h, err := readHolder(pidPath)
	switch {
	case err == nil:
		return peekPIDFile(pidPath, h), nil
	case !errors.Is(err, fs.ErrNotExist):
		return LockHolder{Path: pidPath}, fmt.Errorf("read lock %s: %w", pidPath, err)
	}
	return fl, ferr
}

// peekFlockFile judges the flock file p (see PeekLock).
func peekFlockFile(p string) (LockHolder, error) {
	h, err := readHolder(p)
	if errors.Is(err, fs.ErrNotExist) {
		return LockHolder{Path: p, How: "no lock file: never taken"}, nil
	}
	if err != nil {
		return LockHolder{Path: p}, fmt.Errorf("read lock %s: %w", p, err)
	}
	out := LockHolder{Path: p, PID: h.pid}
	out.Since, _ = time.Parse(time.RFC3339, h.start)
	locks, lerr := kernelFlocks()
	if lerr == nil {
		pid, held := locks.holder(h.fi)
		out.Held = held
		switch {
		case held && pid > 0 && pid != h.pid:
			// The file names an earlier holder: the kernel knows better.
			out.PID, out.Since = pid, time.Time{}
			out.How = "flock listed in /proc/locks"
		case held:
			out.How = "flock listed in /proc/locks"
		default:
			out.How = "no flock on it in /proc/locks"
		}
		return out, nil
	}
	switch {
	case h.pid <= 0:
		out.How = "the file names no process"
	case processAlive(h.pid):
		out.Held = true
		out.How = fmt.Sprintf("flock not visible here (%v); the pid it names is running", lerr)
	default:
		out.How = "the pid it names is not running"
	}
	return out, nil
}

// peekPIDFile judges a pid-file lock as acquirePIDFile would.
func peekPIDFile(p string, h holder) LockHolder {
	out := LockHolder{Path: p, PID: h.pid, How: "pid file"}
	out.Since, _ = time.Parse(time.RFC3339, h.start)
	if h.stale(time.Now(), uptime()) {
		out.How = "pid file, stale: its holder is gone"
		return out
	}
	out.Held = true
	return out
}
