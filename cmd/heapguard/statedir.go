package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/heapguard/heapguard/remediate"
)

// stateRoot is the folder beside the binary that holds one state folder
// per host.
const stateRoot = "heapguard-state"

// defaultStateDir is heapguard-state/<host name> beside the binary. The
// binary usually sits on a datastore, which every host of a cluster may
// mount: the state (log position, journal, budgets, lock) is one host's,
// and two hosts must not share it.
func defaultStateDir() (string, error) {
	exe, err := executablePath()
	if err != nil {
		return "", fmt.Errorf("find the state folder: %w (give --state-dir)", err)
	}
	name, err := os.Hostname()
	if err != nil {
		return "", fmt.Errorf("find the state folder: host name: %w (give --state-dir)", err)
	}
	return stateDirFor(filepath.Dir(exe), name)
}

// stateDirFor is defaultStateDir for a binary in dir on the host named
// name. It refuses a name that does not tell hosts apart, and a
// heapguard-state that holds state itself (written before state folders
// were per host): using a new folder beside it would forget its budgets,
// breaker and log position, and not see its lock.
func stateDirFor(dir, name string) (string, error) {
	host := hostDirName(name)
	if host == "" || host == "localhost" || strings.HasPrefix(host, "localhost.") {
		return "", fmt.Errorf("find the state folder: the host name %q does not tell hosts apart: set one (esxcli system hostname set) or give --state-dir", name)
	}
	if host != strings.ToLower(strings.TrimSpace(name)) {
		// Two names could come out as one folder.
		return "", fmt.Errorf("find the state folder: the host name %q has characters a folder name cannot keep: give --state-dir", name)
	}
	root := filepath.Join(dir, stateRoot)
	var old []string
	for _, f := range []string{remediate.LockFile, remediate.LockPIDFile, remediate.GuardsFile, remediate.JournalFile, "state.json", "state.dry-run.json"} {
		fi, err := os.Lstat(filepath.Join(root, f))
		switch {
		case err == nil && fi.Mode().IsRegular():
			old = append(old, f)
		case err == nil, errors.Is(err, fs.ErrNotExist):
			// A folder: some host's, named like a state file.
		default:
			return "", fmt.Errorf("find the state folder: %w (give --state-dir)", err)
		}
	}
	if len(old) > 0 {
		return "", fmt.Errorf("find the state folder: %s holds the state of an earlier heapguard (%s): stop it, then move those files into %s, or give --state-dir %s",
			root, strings.Join(old, ", "), filepath.Join(root, host), root)
	}
	return filepath.Join(root, host), nil
}

// hostDirName turns a host name into one safe path element: lower case,
// anything but letters, digits, '.', '-' and '_' as '_'; "" when nothing
// usable is left.
func hostDirName(name string) string {
	name = strings.ToLower(strings.TrimSpace(name))
	var b strings.Builder
	for _, r := range name {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9', r == '.', r == '-', r == '_':
			b.WriteRune(r)
		default:
			b.WriteByte('_')
		}
	}
	s := b.String()
	if strings.Trim(s, "._") == "" {
		return ""
	}
	return s
}

// executablePath is this program's path: os.Executable, which reads
// /proc/self/exe, else an absolute argv[0], as cron, inetd and the boot
// script start heapguard, where /proc is not there to read.
func executablePath() (string, error) {
	exe, err := os.Executable()
	if err == nil {
		return exe, nil
	}
	if filepath.IsAbs(os.Args[0]) {
		return os.Args[0], nil
	}
	return "", err
}
