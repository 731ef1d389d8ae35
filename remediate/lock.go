package remediate

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
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

// Lock files inside the state directory; LockPIDFile is the fallback
// where flock is not supported.
const (
	LockFile    = "lock"
	LockPIDFile = "lock.pid"
)

// ErrLocked is wrapped when another heapguard instance holds the lock.
var ErrLocked = errors.New("another heapguard instance is acting")

const (
	// staleEmpty is how old a pid file naming no one must be to be stale:
	// younger, its writer may be between create and write.
	staleEmpty = time.Minute
	// rebootMargin is how far both clocks must put a pid file before this
	// boot for it to count as left from before a reboot.
	rebootMargin = 10 * time.Minute
)

var (
	// heldIDs are the ids of the pid files this process holds: a file
	// naming our pid is ours exactly when its id is here.
	heldIDs sync.Map
	uptime  = uptimeSeconds // tests replace it
)

// Lock keeps two instances (a cron overlap, or "run" plus "check") from
// acting at once. A crashed holder's flock goes with its process; its pid
// file is found stale (see holder.stale).
type Lock struct {
	// Method says which lock is held: "flock", or why the pid-file
	// fallback was used.
	Method string
	f      *os.File // the flocked file
	pidF   *os.File // the pid file we made, kept open for Refresh
	path   string   // the pid file's path; "" once released
	me     holder   // what we wrote in it
}

// holder is what a holder writes in its lock, "pid=123 start=<RFC 3339>
// id=<this acquisition> up=<seconds since boot>", and the file as read.
type holder struct {
	pid       int
	start, id string
	up        int64 // 0: unknown
	raw       string
	fi        os.FileInfo
}

func self(id string) holder {
	return holder{pid: os.Getpid(), start: time.Now().UTC().Format(time.RFC3339), id: id, up: uptime()}
}

func (h holder) format() []byte {
	b := fmt.Appendf(nil, "pid=%d start=%s", h.pid, h.start)
	if h.id != "" {
		b = fmt.Appendf(b, " id=%s", h.id)
	}
	if h.up > 0 { // last: a refresh only makes the file longer
		b = fmt.Appendf(b, " up=%d", h.up)
	}
	return append(b, '\n')
}

func parseHolder(b []byte) holder {
	h := holder{raw: string(b)}
	for _, f := range strings.Fields(h.raw) {
		k, v, _ := strings.Cut(f, "=")
		n, _ := strconv.ParseInt(v, 10, 64)
		switch {
		case k == "pid" && n > 0 && n == int64(int(n)):
			h.pid = int(n)
		case k == "start":
			h.start = v
		case k == "id":
			h.id = v
		case k == "up" && n > 0:
			h.up = n
		}
	}
	return h
}

func (h holder) String() string {
	if h.pid <= 0 {
		return "an unknown process (no pid written yet)"
	}
	if h.start == "" {
		return "pid " + strconv.Itoa(h.pid)
	}
	return fmt.Sprintf("pid %d since %s", h.pid, h.start)
}

// readHolder reads the lock file at p through one descriptor, with its
// identity.
func readHolder(p string) (holder, error) {
	f, err := os.Open(p)
	if err != nil {
		return holder{}, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return holder{}, err
	}
	b, err := io.ReadAll(io.LimitReader(f, 4096))
	h := parseHolder(b)
	h.fi = fi
	return h, err
}

// stale reports whether h, read from a pid file at now (uptime up seconds,
// 0 when unknown), cannot still hold it. Pids are handed out again after a
// reboot, so a file from before this boot is stale even when its pid is
// alive; both clocks must say so, so that a clock step alone frees nothing.
func (h holder) stale(now time.Time, up int64) bool {
	switch {
	case h.pid <= 0: // not written yet, or its writer died first
		return now.Sub(h.fi.ModTime()) > staleEmpty
	case h.pid == os.Getpid():
		_, held := heldIDs.Load(h.id)
		return !held
	case !processAlive(h.pid):
		return true
	}
	start, err := time.Parse(time.RFC3339, h.start)
	boot := now.Add(-time.Duration(up) * time.Second)
	return err == nil && up > 0 && h.up-up > int64(rebootMargin/time.Second) && start.Before(boot.Add(-rebootMargin))
}

// AcquireLock takes <stateDir>/lock with flock(LOCK_EX|LOCK_NB). Where the
// filesystem does not support flock (ENOSYS, EINVAL, EOPNOTSUPP; ENOLCK is
// an error: NFS without a lock daemon needs a local --state-dir) it falls
// back to creating <stateDir>/lock.pid with O_EXCL, taking over a stale
// one, and says so in Method. Another holder gives an error wrapping
// ErrLocked that names its pid.
func AcquireLock(stateDir string) (*Lock, error) { return acquireLock(stateDir, true) }

func acquireLock(stateDir string, useFlock bool) (*Lock, error) {
	method := "pid file: flock not tried"
	if useFlock {
		p := filepath.Join(stateDir, LockFile)
		f, err := os.OpenFile(p, os.O_RDWR|os.O_CREATE, 0o600)
		if err != nil {
			return nil, fmt.Errorf("open lock %s: %w", p, err)
		}
		if err = flockExclusive(f); err == nil {
			// Name ourselves for whoever finds the lock taken.
			if err := f.Truncate(0); err == nil {
				f.WriteAt(self("").format(), 0)
				f.Sync()
			}
			return &Lock{f: f, Method: "flock"}, nil
		}
		f.Close()
		if errors.Is(err, errWouldBlock) {
			h, _ := readHolder(p)
			return nil, fmt.Errorf("%w: %s is held by %s", ErrLocked, p, h)
		}
		if method, err = pidFileMethod(err); err != nil {
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

// pidFileMethod is the Method of the pid-file fallback for what flock
// answered, or that answer when it does not call for the fallback.
func pidFileMethod(err error) (string, error) {
	if !flockUnsupported(err) {
		return "", err
	}
	return fmt.Sprintf("pid file: flock not supported on this filesystem (%v)", err), nil
}

// LockKind says which lock AcquireLock takes in dir ("flock", or the pid
// file's Method), by trying flock on a temporary file there.
func LockKind(dir string) (string, error) {
	f, err := os.CreateTemp(dir, ".lockkind-")
	if err != nil {
		return "", err
	}
	defer os.Remove(f.Name())
	defer f.Close()
	if err := flockExclusive(f); err != nil {
		return pidFileMethod(err)
	}
	return "flock", nil
}

func acquirePIDFile(p string) (*Lock, error) {
	for range 3 {
		f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if err == nil {
			return created(p, f)
		}
		if !errors.Is(err, fs.ErrExist) {
			return nil, fmt.Errorf("create lock %s: %w", p, err)
		}
		h, err := readHolder(p)
		if errors.Is(err, fs.ErrNotExist) {
			continue // released meanwhile
		}
		if err != nil {
			return nil, fmt.Errorf("read lock %s: %w", p, err)
		}
		if !h.stale(time.Now(), uptime()) {
			return nil, fmt.Errorf("%w: %s is held by %s (if no heapguard runs on this host, remove the file)", ErrLocked, p, h)
		}
		if err := takeOver(p, h); err != nil {
			return nil, err
		}
	}
	return nil, fmt.Errorf("%w: %s keeps changing hands", ErrLocked, p)
}

// takeOver removes the pid file at p if it is still the stale version
// judged (same inode, time and content). It holds <p>.take (a directory,
// made atomically) meanwhile: only takers remove a file, so the one it
// checked is the one it removes.
func takeOver(p string, judged holder) error {
	mu := p + ".take"
	if err := os.Mkdir(mu, 0o700); errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("%w: %s is being taken over by another instance (if no heapguard runs on this host, remove %s)", ErrLocked, p, mu)
	} else if err != nil {
		return fmt.Errorf("take over lock %s: %w", p, err)
	}
	defer os.Remove(mu)
	h, err := readHolder(p)
	if err != nil || !os.SameFile(h.fi, judged.fi) || !h.fi.ModTime().Equal(judged.fi.ModTime()) || h.raw != judged.raw {
		return nil
	}
	if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("take over lock %s: %w", p, err)
	}
	return nil
}

// created names us in f, just made at p, then checks that p still names
// us: a writer stalled past staleEmpty may have had its file taken over.
func created(p string, f *os.File) (*Lock, error) {
	l := &Lock{pidF: f, path: p, me: self(strconv.FormatUint(rand.Uint64(), 36))}
	heldIDs.Store(l.me.id, true) // before the file names us
	_, err := f.Write(l.me.format())
	if err == nil {
		err = f.Sync()
	}
	if err != nil {
		l.drop() // the file, naming no one, is stale after staleEmpty
		return nil, fmt.Errorf("write lock %s: %w", p, err)
	}
	if err := l.Check(); err != nil {
		l.drop()
		return nil, err
	}
	return l, nil
}

// Check reports whether the lock is still ours: always for flock; for a
// pid file, while the file names us. Holders call it before acting. The
// error wraps ErrLocked.
func (l *Lock) Check() error {
	if l == nil || l.path == "" {
		return nil
	}
	h, err := readHolder(l.path)
	if err != nil {
		return fmt.Errorf("%w: lock %s lost: %w", ErrLocked, l.path, err)
	}
	if h.pid != l.me.pid || h.id != l.me.id {
		return fmt.Errorf("%w: lock %s lost: now held by %s", ErrLocked, l.path, h)
	}
	return nil
}

// Refresh brings the uptime in a pid file up to date, so that after a
// reboot the file is seen to be from before it however long its holder ran
// (see holder.stale). Long-running holders call it now and then; an error
// wrapping ErrLocked says the lock was lost. For flock it does nothing.
func (l *Lock) Refresh() error {
	if err := l.Check(); err != nil || l == nil || l.path == "" {
		return err
	}
	if up := uptime(); up > l.me.up {
		l.me.up = up
		// In place through our own descriptor: the file never reads empty,
		// and another's file is never written.
		if _, err := l.pidF.WriteAt(l.me.format(), 0); err != nil {
			return fmt.Errorf("refresh lock %s: %w", l.path, err)
		}
		return l.pidF.Sync()
	}
	return nil
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
	if l.path == "" {
		return nil
	}
	err := l.Check()
	if err == nil {
		err = os.Remove(l.path)
	}
	l.drop() // after the removal: until then, our goroutines see the file held
	return err
}

// drop forgets a pid-file lock without touching the file.
func (l *Lock) drop() {
	l.pidF.Close()
	heldIDs.Delete(l.me.id)
	l.path = ""
}
