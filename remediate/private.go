package remediate

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
)

// ErrUnsafeState is wrapped by every error about a state folder or state
// file that someone other than heapguard's user can write: whoever can
// write the journal or the guards can hide a power-off or reset the
// budgets, so an acting command refuses to start on them.
var ErrUnsafeState = errors.New("unsafe state permissions")

// StateFiles are the files of a state folder whose content steers what
// heapguard does: the journal (recovery reads it back), the budgets and
// the saved state (log position, cooldowns).
var StateFiles = []string{JournalFile, GuardsFile, "state.json", "state.dry-run.json"}

// nfsAnonymous are the owners an NFS server reports for root's files when
// it squashes root or cannot map the id (nobody, 65534, and -2 as uid_t):
// the admin on the host cannot chown them away, so they are not refused
// for their owner; their mode is still checked. NetApp's NFS notes: "When
// using NFSv4.1, the root user might display as nobody".
var nfsAnonymous = map[uint32]bool{65534: true, 4294967294: true}

// CreateStateDir creates dir (and missing parents) 0700. A folder it
// creates is set to 0700 after creation, whatever the umask; an existing
// one keeps its mode (CheckStateDir judges it).
func CreateStateDir(dir string) error {
	_, err := os.Stat(dir)
	if err == nil {
		return nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("state folder %s: %w", dir, err)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("create state folder %s: %w", dir, err)
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		return fmt.Errorf("create state folder %s: %w", dir, err)
	}
	return nil
}

// CheckStateDir returns nil when dir and the StateFiles in it (those that
// exist) can be written by no one but this process's user. Otherwise it
// returns one error wrapping ErrUnsafeState that names each unsafe path,
// its mode and owner, and the command that fixes it. A missing dir is
// not an error (the caller creates it).
func CheckStateDir(dir string) error {
	paths := []string{dir}
	for _, f := range StateFiles {
		paths = append(paths, filepath.Join(dir, f))
	}
	return CheckPrivate(paths...)
}

// CheckPrivate is CheckStateDir for a list of paths (folders or files);
// paths that do not exist are skipped.
func CheckPrivate(paths ...string) error {
	var errs []error
	for _, p := range paths {
		fi, err := os.Stat(p)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("%w: %s: %w", ErrUnsafeState, p, err))
			continue
		}
		if err := checkPrivate(p, fi, os.Geteuid()); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// checkPrivate judges one path for the user euid.
func checkPrivate(p string, fi fs.FileInfo, euid int) error {
	kind := "file"
	if fi.IsDir() {
		kind = "folder"
	}
	perm := fi.Mode().Perm()
	uid, known := owner(fi)
	who := "owner unknown"
	if known {
		who = fmt.Sprintf("owner uid %d", uid)
	}
	if perm&0o022 != 0 {
		return fmt.Errorf("%w: %s %s is mode %04o (%s): %s can write it, and could hide a power-off or reset the budgets; fix: chmod go-w %s",
			ErrUnsafeState, kind, p, perm, who, writers(perm), p)
	}
	if known && euid >= 0 && uid != uint32(euid) && !nfsAnonymous[uid] {
		return fmt.Errorf("%w: %s %s is owned by uid %d, not by heapguard's user (uid %d), who can write it; fix: chown %d %s",
			ErrUnsafeState, kind, p, uid, euid, euid, p)
	}
	return nil
}

func writers(perm fs.FileMode) string {
	switch {
	case perm&0o020 != 0 && perm&0o002 != 0:
		return "its group and every user"
	case perm&0o002 != 0:
		return "every user"
	}
	return "its group"
}

func owner(fi fs.FileInfo) (uint32, bool) {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return 0, false
	}
	return st.Uid, true
}
