package remediate

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// HostDir is where, on the host (under --root), every acting heapguard
// takes the host-wide lock and keeps the host's guards record, whatever
// its state folder. /var/run is in RAM on ESXi: it is emptied at boot,
// when no action can be under way.
const HostDir = "/var/run/heapguard"

// Lock files inside the state directory.
const (
	LockFile = "lock"
	// LockPIDFile is the fallback lock where flock is not supported.
	LockPIDFile = "lock.pid"
)

// ErrLocked is wrapped when another heapguard instance holds the lock.
var ErrLocked = errors.New("another heapguard instance is acting")

// Lock keeps two instances (a cron overlap, or "run" plus "check") from
// acting at once. Release it when done; a crashed holder's flock goes away
// with its process, a crashed holder's pid file is found stale.
type Lock struct {
	f       *os.File // flock held on it
	pidPath string   // fallback: the pid file we created
	pidFile os.FileInfo
	pidF    *os.File // kept open: Refresh writes through it
	start   string   // when we took it, as written in it
	written int      // bytes of the pid file
	// Method says how the lock is held, for the log: "flock", or why the
	// pid file fallback was used.
	Method string
}

// lockInfo is what a holder writes in the lock: "pid=123 start=<RFC 3339>
// up=<seconds since boot>".
type lockInfo struct {
	pid   int
	start string
	up    int64 // 0: not written (older heapguard, or no uptime)
}

func (li lockInfo) String() string {
	if li.pid <= 0 {
		return "an unknown process (no pid written yet)"
	}
	s := "pid " + strconv.Itoa(li.pid)
	if li.start != "" {
		s += " since " + li.start
	}
	return s
}

func ownInfo() []byte { return lockContent(time.Now().UTC().Format(time.RFC3339)) }

// lockContent is what we write in a lock we took at start.
func lockContent(start string) []byte {
	b := fmt.Appendf(nil, "pid=%d start=%s", os.Getpid(), start)
	if up := uptimeSeconds(); up > 0 {
		b = fmt.Appendf(b, " up=%d", up)
	}
	return append(b, '\n')
}

func parseLockInfo(b []byte) lockInfo {
	var li lockInfo
	for _, f := range strings.Fields(string(b)) {
		k, v, ok := strings.Cut(f, "=")
		if !ok {
			continue
		}
		switch k {
		case "pid":
			if n, err := strconv.Atoi(v); err == nil && n > 0 {
				li.pid = n
			}
		case "start":
			li.start = v
		case "up":
			if n, err := strconv.ParseInt(v, 10, 64); err == nil && n > 0 {
				li.up = n
			}
		}
	}
	return li
}

// AcquireLock takes <stateDir>/lock with flock(LOCK_EX|LOCK_NB). Where the
// filesystem does not support flock (ESXi's VMFS and others may not; the
// answer is ENOSYS, EINVAL or EOPNOTSUPP; ENOLCK, which may pass, is an
// error: NFS without a lock daemon needs a local --state-dir) it falls back to
// creating <stateDir>/lock.pid with O_EXCL, holding our pid, start time
// and uptime, and says so in Method. A pid file whose process is gone, or
// that was written before the last boot, or that names this process
// without being held by it, is stale and taken over (see staleHolder).
// Another holder gives an error wrapping ErrLocked that names its pid.
func AcquireLock(stateDir string) (*Lock, error) { return acquireLock(stateDir, true) }

func acquireLock(stateDir string, useFlock bool) (*Lock, error) {
	p := filepath.Join(stateDir, LockFile)
	method := "pid file: flock not tried"
	if useFlock {
		f, err := os.OpenFile(p, os.O_RDWR|os.O_CREATE, 0o644)
		if err != nil {
			return nil, fmt.Errorf("open lock %s: %w", p, err)
		}
		err = flockExclusive(f)
		switch {
		case err == nil:
			// Name ourselves for whoever finds the lock taken.
			if err := f.Truncate(0); err == nil {
				f.WriteAt(ownInfo(), 0)
				f.Sync()
			}
			return &Lock{f: f, Method: "flock"}, nil
		case errors.Is(err, errWouldBlock):
			b, _ := os.ReadFile(p)
			f.Close()
			return nil, fmt.Errorf("%w: %s is held by %s", ErrLocked, p, parseLockInfo(b))
		case flockUnsupported(err):
			f.Close()
			method = fmt.Sprintf("pid file: flock not supported on this filesystem (%v)", err)
		default:
			f.Close()
			return nil, fmt.Errorf("lock %s: %w", p, err)
		}
	}
	l, err := acquirePIDFile(filepath.Join(stateDir, LockPIDFile))
	if err != nil {
		return nil, err
	}
	l.Method = method
	return l, nil
}

// staleEmpty is how old an empty pid file must be before it counts as
// stale: younger, its writer may be between create and write.
const staleEmpty = time.Minute

// pidFiles are the pid files this process holds, by file identity (a
// path may be reached several ways). Its mutex serialises taking and
// giving them up within the process, so a file naming our pid is ours
// exactly when it is listed here.
var pidFiles struct {
	sync.Mutex
	held []os.FileInfo
}

// heldIndex is where fi is in pidFiles.held, or -1.
func heldIndex(fi os.FileInfo) int {
	return slices.IndexFunc(pidFiles.held, func(h os.FileInfo) bool { return os.SameFile(h, fi) })
}

func acquirePIDFile(p string) (*Lock, error) {
	pidFiles.Lock()
	defer pidFiles.Unlock()
	for attempt := 0; attempt < 3; attempt++ {
		f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
		if err == nil {
			return createdPIDFile(p, f)
		}
		if !errors.Is(err, fs.ErrExist) {
			return nil, fmt.Errorf("create lock %s: %w", p, err)
		}
		b, judged, err := readLockFile(p)
		if errors.Is(err, fs.ErrNotExist) {
			continue // released meanwhile
		}
		if err != nil {
			return nil, fmt.Errorf("read lock %s: %w", p, err)
		}
		li := parseLockInfo(b)
		if li.pid > 0 && processAlive(li.pid) && !staleHolder(p, li) {
			return nil, fmt.Errorf("%w: %s is held by %s (if no heapguard runs on this host, remove the file)", ErrLocked, p, li)
		}
		if li.pid <= 0 && time.Since(judged.ModTime()) < staleEmpty {
			return nil, fmt.Errorf("%w: %s is held by %s", ErrLocked, p, li)
		}
		// Stale: take away the file judged (the same file, unchanged), and
		// only that one.
		takeAway(p, func(moved string) bool {
			again, fi, err := readLockFile(moved)
			return err == nil && sameVersion(fi, judged) && bytes.Equal(again, b)
		})
	}
	return nil, fmt.Errorf("%w: %s keeps changing hands", ErrLocked, p)
}

// createdPIDFile writes our name into f, just created at p, and checks that
// p is still f: a writer stalled past staleEmpty may have seen its empty
// file judged stale and replaced, and must not then take the other's.
func createdPIDFile(p string, f *os.File) (*Lock, error) {
	fi, err := f.Stat()
	start := time.Now().UTC().Format(time.RFC3339)
	content := lockContent(start)
	if err == nil {
		_, err = f.Write(content)
	}
	if err == nil {
		err = f.Sync()
	}
	if err != nil {
		f.Close()
		if fi != nil {
			takeAway(p, func(moved string) bool { return sameFile(moved, fi) })
		}
		return nil, fmt.Errorf("write lock %s: %w", p, err)
	}
	if !sameFile(p, fi) {
		f.Close()
		return nil, fmt.Errorf("%w: %s was taken over while it was being written (the disk stalled)", ErrLocked, p)
	}
	pidFiles.held = append(pidFiles.held, fi)
	return &Lock{pidPath: p, pidFile: fi, pidF: f, start: start, written: len(content)}, nil
}

// readLockFile reads the file at p through one descriptor, with its
// identity.
func readLockFile(p string) ([]byte, os.FileInfo, error) {
	f, err := os.Open(p)
	if err != nil {
		return nil, nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, nil, err
	}
	b, err := io.ReadAll(io.LimitReader(f, 4096))
	return b, fi, err
}

// takeAway removes the file at p if it is the one judged (isJudged, given
// where it was moved). The file is first renamed to a name of our own, an
// atomic step: when another instance put a new file at p meanwhile, that
// is what was moved, and it is put back rather than removed.
func takeAway(p string, isJudged func(moved string) bool) {
	moved := fmt.Sprintf("%s.stale.%d", p, os.Getpid())
	if os.Rename(p, moved) != nil {
		return
	}
	if isJudged(moved) {
		os.Remove(moved)
		return
	}
	// Another instance's file: put it back without replacing a file a
	// third one may have made at p since. If one did, the second's file is
	// dropped, and it finds the lock lost at its next Check.
	err := os.Link(moved, p)
	switch {
	case err == nil, errors.Is(err, fs.ErrExist):
		os.Remove(moved)
	default: // no hard links on this filesystem
		os.Rename(moved, p)
	}
}

// sameVersion reports whether a and b are one file, not modified in
// between. The inode alone is not enough: a file removed and made again at
// once often gets the same number back.
func sameVersion(a, b os.FileInfo) bool {
	return os.SameFile(a, b) && a.ModTime().Equal(b.ModTime()) && a.Size() == b.Size()
}

func sameFile(p string, fi os.FileInfo) bool {
	now, err := os.Stat(p)
	return err == nil && os.SameFile(now, fi)
}

// Refresh brings the uptime in a pid-file lock up to date, so that the file
// tells a reboot apart however soon after its start the holder dies (see
// staleHolder). Long-running holders call it now and then. The content is
// written over in place through our own descriptor, never truncated to
// nothing first, so a reader never sees it empty. An error
// wrapping ErrLocked says the lock was lost. For flock it does nothing.
func (l *Lock) Refresh() error {
	if l == nil || l.pidPath == "" {
		return nil
	}
	pidFiles.Lock()
	defer pidFiles.Unlock()
	if err := l.check(); err != nil {
		return err
	}
	content := lockContent(l.start)
	if _, err := l.pidF.WriteAt(content, 0); err != nil {
		return fmt.Errorf("refresh lock %s: %w", l.pidPath, err)
	}
	if len(content) < l.written { // the uptime could not be read this time
		if err := l.pidF.Truncate(int64(len(content))); err != nil {
			return fmt.Errorf("refresh lock %s: %w", l.pidPath, err)
		}
	}
	l.written = len(content)
	if err := l.pidF.Sync(); err != nil {
		return fmt.Errorf("refresh lock %s: %w", l.pidPath, err)
	}
	return nil
}

// Check reports whether the lock is still ours: for a pid file, the file at
// its path is the one we made and names us. Holders call it before acting.
// The error wraps ErrLocked.
func (l *Lock) Check() error {
	if l == nil || l.pidPath == "" {
		return nil
	}
	pidFiles.Lock()
	defer pidFiles.Unlock()
	return l.check()
}

func (l *Lock) check() error {
	b, fi, err := readLockFile(l.pidPath)
	if err != nil {
		return fmt.Errorf("%w: lock %s lost: %w", ErrLocked, l.pidPath, err)
	}
	if li := parseLockInfo(b); !os.SameFile(fi, l.pidFile) || li.pid != os.Getpid() {
		return fmt.Errorf("%w: lock %s lost: now held by %s", ErrLocked, l.pidPath, li)
	}
	return nil
}

// rebootMargin is how far both the uptime and the wall clock must say the
// holder of a pid file started before this boot before it counts as stale.
const rebootMargin = 10 * time.Minute

// staleHolder reports whether the live pid li names cannot hold the pid
// file at p (with pidFiles locked). Pids are handed out again after a
// reboot, so a pid file left from before one may name another process,
// or this one:
//   - written before the last boot: the uptime it records is above the
//     uptime now, and its start time is before now minus the uptime, both
//     by rebootMargin (two clocks, so that one clock that is not what it
//     seems cannot free a held lock alone);
//   - naming this process, which does not hold it.
func staleHolder(p string, li lockInfo) bool {
	if up := uptimeSeconds(); li.up > 0 && up > 0 && li.up-up > int64(rebootMargin/time.Second) {
		start, err := time.Parse(time.RFC3339, li.start)
		boot := time.Now().Add(-time.Duration(up) * time.Second)
		if err == nil && start.Before(boot.Add(-rebootMargin)) {
			return true
		}
	}
	if li.pid == os.Getpid() {
		fi, err := os.Stat(p)
		return err == nil && heldIndex(fi) < 0
	}
	return false
}

// Release gives the lock up.
func (l *Lock) Release() error {
	if l == nil {
		return nil
	}
	if l.f != nil {
		// The lock file stays: removing it would let a third instance lock a
		// new file while a second still waits on the old one.
		err := l.f.Close()
		l.f = nil
		return err
	}
	if l.pidPath != "" {
		p := l.pidPath
		l.pidPath = ""
		pidFiles.Lock()
		defer pidFiles.Unlock()
		if l.pidF != nil {
			l.pidF.Close()
			l.pidF = nil
		}
		if i := heldIndex(l.pidFile); i >= 0 {
			pidFiles.held = slices.Delete(pidFiles.held, i, i+1)
		}
		fi, err := os.Stat(p)
		if errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("release lock %s: the file is gone", p)
		}
		if li := parseLockInfo(readQuiet(p)); err != nil || !os.SameFile(fi, l.pidFile) || li.pid != os.Getpid() {
			return fmt.Errorf("release lock %s: now held by %s", p, li)
		}
		// Moved away first, so that a file another instance put there in
		// between is put back, not removed.
		mine := false
		takeAway(p, func(moved string) bool {
			mine = sameFile(moved, l.pidFile)
			return mine
		})
		if !mine {
			return fmt.Errorf("release lock %s: taken over while being released", p)
		}
	}
	return nil
}

func readQuiet(p string) []byte {
	b, _ := os.ReadFile(p)
	return b
}
