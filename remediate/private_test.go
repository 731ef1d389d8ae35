package remediate

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/heapguard/heapguard/host"
)

// withUmask runs fn under umask m. The umask is the process's: callers are
// not parallel, so no other test of the package runs meanwhile.
func withUmask(t *testing.T, m int, fn func()) {
	t.Helper()
	old := syscall.Umask(m)
	defer syscall.Umask(old)
	fn()
}

func perm(t *testing.T, p string) os.FileMode {
	t.Helper()
	fi, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Mode().Perm()
}

// TestStateDirCreatedPrivate: the state folder comes out 0700 and the
// journal, the guards and the lock files 0600 whatever the umask: a umask
// of 0 must not open them to others, and one of 0277 must not leave the
// folder unusable.
func TestStateDirCreatedPrivate(t *testing.T) {
	for _, mask := range []int{0, 0o022, 0o277} {
		dir := filepath.Join(t.TempDir(), "heapguard-state", "esx01")
		withUmask(t, mask, func() {
			if err := CreateStateDir(dir); err != nil {
				t.Fatalf("umask %04o: %v", mask, err)
			}
		})
		if got := perm(t, dir); got != 0o700 {
			t.Errorf("umask %04o: state folder mode %04o, want 0700", mask, got)
		}
		withUmask(t, mask&0o077, func() {
			j, err := OpenJournal(dir, nil)
			if err != nil {
				t.Fatalf("umask %04o: %v", mask, err)
			}
			if err := j.Append(Entry{Action: ActDecide, Target: "plan"}); err != nil {
				t.Fatal(err)
			}
			j.Close()
			g, err := OpenHostGuards(dir, "", GuardLimits{})
			if err != nil {
				t.Fatal(err)
			}
			if err := g.Reset(host.SystemClock{}.Now()); err != nil {
				t.Fatal(err)
			}
			l, err := AcquireLock(dir)
			if err != nil {
				t.Fatal(err)
			}
			l.Release()
			l, err = acquireLock(dir, false)
			if err != nil {
				t.Fatal(err)
			}
			l.Release()
		})
		for _, f := range []string{JournalFile, GuardsFile, LockFile} {
			if got := perm(t, filepath.Join(dir, f)); got != 0o600 {
				t.Errorf("umask %04o: %s mode %04o, want 0600", mask, f, got)
			}
		}
		if err := CheckStateDir(dir); err != nil {
			t.Errorf("umask %04o: a folder heapguard made is refused: %v", mask, err)
		}
	}
}

// TestPIDLockPrivate: the pid-file lock (filesystems without flock) is
// 0600 too.
func TestPIDLockPrivate(t *testing.T) {
	dir := t.TempDir()
	withUmask(t, 0, func() {
		l, err := acquireLock(dir, false)
		if err != nil {
			t.Fatal(err)
		}
		defer l.Release()
		if got := perm(t, filepath.Join(dir, LockPIDFile)); got != 0o600 {
			t.Errorf("lock.pid mode %04o, want 0600", got)
		}
	})
}

// TestOpenJournalTightensReadable: a journal an older heapguard made 0644
// is made 0600; one that others can write is left as it is, for
// CheckStateDir to refuse rather than quietly hide.
func TestOpenJournalTightensReadable(t *testing.T) {
	for _, c := range []struct{ before, after os.FileMode }{
		{0o644, 0o600}, {0o640, 0o600}, {0o600, 0o600}, {0o666, 0o666}, {0o620, 0o620},
	} {
		dir := t.TempDir()
		p := filepath.Join(dir, JournalFile)
		if err := os.WriteFile(p, []byte(`{"action":"decide"}`+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, c.before); err != nil {
			t.Fatal(err)
		}
		j, err := OpenJournal(dir, nil)
		if err != nil {
			t.Fatal(err)
		}
		j.Close()
		if got := perm(t, p); got != c.after {
			t.Errorf("journal %04o: after open %04o, want %04o", c.before, got, c.after)
		}
	}
}

func TestCheckStateDir(t *testing.T) {
	type file struct {
		name string
		mode os.FileMode
		uid  int // -1: the test's own user
	}
	cases := []struct {
		name    string
		dirMode os.FileMode
		dirUID  int
		files   []file
		want    []string // "" in want: no error
	}{
		{name: "private", dirMode: 0o700, dirUID: -1, files: []file{{JournalFile, 0o600, -1}, {GuardsFile, 0o600, -1}}},
		{name: "readable by all, as a datastore folder made by hand", dirMode: 0o755, dirUID: -1, files: []file{{JournalFile, 0o644, -1}, {"state.json", 0o644, -1}}},
		{name: "folder world-writable", dirMode: 0o777, dirUID: -1,
			want: []string{"folder", "is mode 0777", "every user can write it", "chmod go-w"}},
		{name: "folder group-writable", dirMode: 0o770, dirUID: -1,
			want: []string{"is mode 0770", "its group can write it", "chmod go-w"}},
		{name: "folder sticky and world-writable, as /tmp", dirMode: 0o777 | os.ModeSticky, dirUID: -1,
			want: []string{"is mode 0777"}},
		{name: "journal world-writable", dirMode: 0o700, dirUID: -1, files: []file{{JournalFile, 0o666, -1}},
			want: []string{"file", JournalFile, "is mode 0666", "chmod go-w"}},
		{name: "guards group-writable", dirMode: 0o700, dirUID: -1, files: []file{{GuardsFile, 0o620, -1}},
			want: []string{GuardsFile, "is mode 0620", "its group"}},
		{name: "state world-writable", dirMode: 0o700, dirUID: -1, files: []file{{"state.json", 0o602, -1}},
			want: []string{"state.json", "is mode 0602"}},
		{name: "another file writable is not judged", dirMode: 0o700, dirUID: -1, files: []file{{"notes.txt", 0o666, -1}}},
		{name: "folder of another user", dirMode: 0o700, dirUID: 4242,
			want: []string{"owned by uid 4242", "chown"}},
		{name: "journal of another user", dirMode: 0o700, dirUID: -1, files: []file{{JournalFile, 0o600, 4242}},
			want: []string{JournalFile, "owned by uid 4242"}},
		{name: "nobody, as NFS shows a squashed root", dirMode: 0o700, dirUID: 65534, files: []file{{JournalFile, 0o600, 65534}}},
		{name: "nobody world-writable", dirMode: 0o700, dirUID: 65534, files: []file{{JournalFile, 0o666, 65534}},
			want: []string{"is mode 0666"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			needRoot := c.dirUID >= 0
			for _, f := range c.files {
				needRoot = needRoot || f.uid >= 0
			}
			if needRoot && os.Geteuid() != 0 {
				t.Skip("chown needs root")
			}
			dir := filepath.Join(t.TempDir(), "state")
			if err := os.Mkdir(dir, 0o700); err != nil {
				t.Fatal(err)
			}
			for _, f := range c.files {
				p := filepath.Join(dir, f.name)
				if err := os.WriteFile(p, []byte("{}\n"), 0o600); err != nil {
					t.Fatal(err)
				}
				mustChmod(t, p, f.mode)
				if f.uid >= 0 {
					if err := os.Chown(p, f.uid, -1); err != nil {
						t.Fatal(err)
					}
				}
			}
			mustChmod(t, dir, c.dirMode)
			if c.dirUID >= 0 {
				if err := os.Chown(dir, c.dirUID, -1); err != nil {
					t.Fatal(err)
				}
			}
			err := CheckStateDir(dir)
			if len(c.want) == 0 {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			if !errors.Is(err, ErrUnsafeState) {
				t.Fatalf("err %v, want ErrUnsafeState", err)
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
		})
	}
}

// TestCheckStateDirNamesEvery: each unsafe path is named, so the admin
// fixes them in one go.
func TestCheckStateDirNamesEvery(t *testing.T) {
	dir := t.TempDir()
	for _, f := range []string{JournalFile, GuardsFile} {
		p := filepath.Join(dir, f)
		if err := os.WriteFile(p, nil, 0o600); err != nil {
			t.Fatal(err)
		}
		mustChmod(t, p, 0o666)
	}
	err := CheckStateDir(dir)
	for _, f := range []string{JournalFile, GuardsFile} {
		if err == nil || !strings.Contains(err.Error(), "chmod go-w "+filepath.Join(dir, f)) {
			t.Errorf("error %v does not name %s with its fix", err, f)
		}
	}
}

// TestCheckStateDirMissing: a folder not made yet is no error; the caller
// creates it 0700.
func TestCheckStateDirMissing(t *testing.T) {
	if err := CheckStateDir(filepath.Join(t.TempDir(), "none")); err != nil {
		t.Fatal(err)
	}
}

func mustChmod(t *testing.T, p string, m os.FileMode) {
	t.Helper()
	if err := os.Chmod(p, m); err != nil {
		t.Fatal(err)
	}
}

// TestStopHolderRefusesUnsafeLock: a lock that others can write could
// name any pid: stop (and run --replace) signal no one and say why.
func TestStopHolderRefusesUnsafeLock(t *testing.T) {
	for _, c := range []struct {
		name string
		dir  os.FileMode
		lock os.FileMode
	}{{"lock world-writable", 0o700, 0o666}, {"folder world-writable", 0o777, 0o600}} {
		dir := t.TempDir()
		_, line, _, _ := startHelper(t, "holdlock "+dir)
		if line != "locked" {
			t.Fatalf("helper said %q", line)
		}
		mustChmod(t, filepath.Join(dir, LockFile), c.lock)
		mustChmod(t, dir, c.dir)
		pid, err := StopHolder(dir, StopOptions{Wait: time.Second, Settle: time.Millisecond, Signal: func(pid int) error {
			t.Errorf("%s: signalled pid %d", c.name, pid)
			return nil
		}})
		if pid != 0 || !errors.Is(err, ErrUnsafeState) {
			t.Errorf("%s: pid %d, %v; want ErrUnsafeState", c.name, pid, err)
		}
	}
}
