package collector

import (
	"cmp"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
)

// FileSummary is what ScanLogs read of one file; Summary is nil when
// nothing of it could be read, and Err says why the rest was not.
type FileSummary struct {
	Path    string
	Summary *Summary
	Err     error
}

// ScanLogs scans log files, each with ScanFile and opt. With a year given
// for 4.x syslog dates (opt.Year) and several files, the copies of each
// log are read oldest first and each goes on from the year where the one
// before ended, across New Year; otherwise the files are read in the
// order given. Warnings say where the years may be off.
func ScanLogs(paths []string, opt ScanOptions) ([]FileSummary, []string) {
	var chains yearChains
	var warnings []string
	if opt.Year != 0 && len(paths) > 1 {
		paths = olderFirst(paths)
		chains = yearChains{}
	}
	out := make([]FileSummary, 0, len(paths))
	for i, p := range paths {
		sc := opt
		fam := logFamily(p)
		if chains != nil {
			var w string
			sc.Syslog, w = chains.next(fam, p)
			if w != "" {
				warnings = append(warnings, w)
			}
		}
		s, err := ScanFile(p, sc)
		if err != nil && chains != nil {
			if i+1 < len(paths) && logFamily(paths[i+1]) == fam {
				warnings = append(warnings, fmt.Sprintf("the 4.x dates of the copies of %s newer than %s may be a year off: it could not be read whole", fam, p))
			}
			if s == nil {
				chains.unread(fam)
			}
		}
		out = append(out, FileSummary{Path: p, Summary: s, Err: err})
	}
	return out, warnings
}

// yearChain carries the 4.x year along the copies of one log (see
// ScanOptions.Syslog).
type yearChain struct {
	state  SyslogState
	before SyslogState // the state before the last copy read
	gen    int         // that copy's rotation number
	path   string
}

// yearChains are the chains of the logs, by logFamily.
type yearChains map[string]*yearChain

// next returns the state the copy at path of the log fam starts from, and
// a warning when it looks like a copy read before. Two copies with one
// rotation number (messages.1 and messages.1.gz) are one copy twice: the
// second starts where the first did.
func (c yearChains) next(fam, path string) (*SyslogState, string) {
	_, gen := splitRotation(filepath.Base(path))
	ch := c[fam]
	switch {
	case ch == nil:
		ch = &yearChain{gen: gen, path: path}
		c[fam] = ch
	case gen >= 0 && gen == ch.gen:
		st := ch.before
		return &st, fmt.Sprintf("%s and %s look like one copy of %s (both rotation %d): each is dated on its own", ch.path, path, fam, gen)
	default:
		ch.before, ch.gen, ch.path = ch.state, gen, path
	}
	return &ch.state, ""
}

// unread forgets the copy just given out for fam: it could not be read,
// so another with its rotation number is no repeat.
func (c yearChains) unread(fam string) {
	if ch := c[fam]; ch != nil {
		ch.state, ch.gen, ch.path = ch.before, -2, ""
	}
}

// olderFirst orders the copies of each log oldest first, the logs (see
// logFamily) one after the other: by the rotation number in the names
// (messages.2.gz, messages.1.gz, messages.0.gz, then messages), then by
// modification time (copies taken without their times keep the order they
// were given in).
func olderFirst(paths []string) []string {
	type file struct {
		path, family string
		gen          int // -1: no rotation number, the live file
		mtime        time.Time
	}
	files := make([]file, len(paths))
	for i, p := range paths {
		_, gen := splitRotation(filepath.Base(p))
		files[i] = file{path: p, family: logFamily(p), gen: gen}
		if fi, err := os.Stat(p); err == nil {
			files[i].mtime = fi.ModTime()
		}
	}
	slices.SortStableFunc(files, func(a, b file) int {
		if c := strings.Compare(a.family, b.family); c != 0 {
			return c
		}
		if c := cmp.Compare(b.gen, a.gen); c != 0 {
			return c
		}
		return a.mtime.Compare(b.mtime)
	})
	out := make([]string, len(files))
	for i, f := range files {
		out[i] = f.path
	}
	return out
}

// logFamily names the log a file is a copy of: its folder and its name
// without a rotation suffix (".N", ".N.gz") and ".log", so that
// /var/log/messages.1.gz and /var/log/messages are one log, and two hosts'
// copies in two folders are two.
func logFamily(path string) string {
	base, _ := splitRotation(filepath.Base(path))
	return filepath.Join(filepath.Dir(path), strings.TrimSuffix(base, ".log"))
}

// splitRotation splits "name.N" or "name.N.gz" (N below 1000: rotations
// are few, and larger numbers are dates or addresses) into name and N;
// other names come back whole (without ".gz") with N = -1.
func splitRotation(name string) (string, int) {
	name = strings.TrimSuffix(name, ".gz")
	i := strings.LastIndexByte(name, '.')
	if i < 0 {
		return name, -1
	}
	n, err := strconv.Atoi(name[i+1:])
	if err != nil || n < 0 || n >= 1000 || strconv.Itoa(n) != name[i+1:] {
		return name, -1
	}
	return name[:i], n
}
