package follow

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/klauspost/compress/gzip"
)

// fileView is what is known of one file: its inode, size and head hash.
type fileView struct {
	ok    bool
	inode uint64
	size  int64
	head  string
	mtime time.Time
}

// rotated is one rotated copy of the log: vmkernel.0.gz (ESXi 5.x and
// later), messages.0.gz (4.x), or vmkernel.log.1 (logrotate).
type rotated struct {
	path string
	gz   bool
	gen  int
	view fileView
	// f is the copy opened by load. It is read through f, never opened by
	// name again: a rotation in between would put another copy there.
	f *os.File
	// opened says load could open the copy (whether or not it could read
	// it), and inode is that file's.
	opened bool
	inode  uint64
}

// families lists the rotated copies of the log at path, one list per naming
// family (<stem>.N[.gz], then <name>.N[.gz]), newest (lowest N) first. Of a
// generation present both plain and compressed (the rotator is compressing
// it right now), the plain one is kept: the .gz may be incomplete.
func families(path string) ([][]rotated, error) {
	dir, name := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("list rotated logs in %s: %w", dir, err)
	}
	bases := []string{strings.TrimSuffix(name, filepath.Ext(name))}
	if bases[0] != name {
		bases = append(bases, name)
	}
	var out [][]rotated
	for _, base := range bases {
		byGen := map[int]rotated{}
		for _, e := range ents {
			gen, gz, ok := rotatedName(base, e.Name())
			if !ok || !e.Type().IsRegular() {
				continue
			}
			if old, seen := byGen[gen]; seen && !old.gz {
				continue
			}
			byGen[gen] = rotated{path: filepath.Join(dir, e.Name()), gz: gz, gen: gen}
		}
		if len(byGen) == 0 {
			continue
		}
		fam := make([]rotated, 0, len(byGen))
		for _, r := range byGen {
			fam = append(fam, r)
		}
		sort.Slice(fam, func(i, j int) bool { return fam[i].gen < fam[j].gen })
		out = append(out, fam)
	}
	return out, nil
}

// rotatedName reports whether name is base.N or base.N.gz.
func rotatedName(base, name string) (gen int, gz bool, ok bool) {
	rest, found := strings.CutPrefix(name, base+".")
	if !found {
		return 0, false, false
	}
	rest, gz = strings.CutSuffix(rest, ".gz")
	n, err := strconv.Atoi(rest)
	if err != nil || n < 0 || strconv.Itoa(n) != rest {
		return 0, false, false
	}
	return n, gz, true
}

// open returns the content of a loaded copy from byte off of its
// (decompressed) content. Closing the copy is copySet's job.
func (r *rotated) open(off int64) (io.Reader, error) {
	if r.f == nil {
		return nil, fmt.Errorf("%s: not opened", r.path)
	}
	sr := io.NewSectionReader(r.f, 0, math.MaxInt64)
	if !r.gz {
		if _, err := sr.Seek(off, io.SeekStart); err != nil {
			return nil, err
		}
		return sr, nil
	}
	zr, err := gzip.NewReader(sr)
	if err != nil {
		return nil, fmt.Errorf("gunzip %s: %w", r.path, err)
	}
	if _, err := io.CopyN(io.Discard, zr, off); err != nil {
		return nil, fmt.Errorf("gunzip %s: skip %d bytes: %w", r.path, off, err)
	}
	return zr, nil
}

// load opens the copy and fills r.view (inode and head hash; size is not
// known for a .gz without reading it all, and not needed). A copy that is
// there but cannot be read keeps its inode in r.inode.
func (r *rotated) load() error {
	f, err := os.Open(r.path)
	if err != nil {
		return err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return err
	}
	r.opened, r.inode = true, inodeOf(fi)
	r.f = f
	rc, err := r.open(0)
	var head string
	if err == nil {
		head, err = readHead(rc)
	}
	if err != nil {
		f.Close()
		r.f = nil
		return fmt.Errorf("read head of %s: %w", r.path, err)
	}
	r.view = fileView{ok: true, inode: r.inode, head: head, mtime: fi.ModTime()}
	return nil
}

// copySet is the rotated copies of a log, listed and opened together by
// openCopies.
type copySet struct {
	fams  [][]rotated
	views [][]fileView
	// stable says nothing moved while the copies were listed and opened.
	stable bool
}

// openCopies lists the rotated copies of the log at path, opens each and
// reads its head, then checks that nothing moved meanwhile: the same copies
// listed again, each name still naming the file opened under it, and the
// log itself still cur (the same inode, or still absent). A rotation that
// runs at the same moment fails the check (stable false; a listing taken
// during renames can miss a copy or show one twice): read nothing then, and
// look again. Close the set when done.
func openCopies(path string, cur fileView) (*copySet, error) {
	// A directory that cannot be listed is reported, not waited for.
	set := &copySet{stable: true}
	fams, err := families(path)
	if err != nil {
		return set, err
	}
	set.fams = fams
	set.views = loadViews(fams)
	if testHookCopiesOpened != nil {
		testHookCopiesOpened()
	}
	again, err := families(path)
	if err != nil {
		return set, err
	}
	set.stable = sameCopies(fams, again) && logIs(path, cur)
	return set, nil
}

// testHookCopiesOpened, when set, runs between the two listings of
// openCopies (tests rotate the log there).
var testHookCopiesOpened func()

// sameCopies reports whether two listings name the same copies and every
// copy of a is still at its name: the file opened under it (read or not;
// a copy that cannot be read is skipped, not waited for).
func sameCopies(a, b [][]rotated) bool {
	if len(a) != len(b) {
		return false
	}
	for f := range a {
		if len(a[f]) != len(b[f]) {
			return false
		}
		for i, r := range a[f] {
			if r.path != b[f][i].path || !r.opened {
				return false // renamed away before it could be opened
			}
			fi, err := os.Stat(r.path)
			if err != nil || inodeOf(fi) != r.inode {
				return false
			}
		}
	}
	return true
}

// logIs reports whether the file at path is still cur.
func logIs(path string, cur fileView) bool {
	fi, err := os.Stat(path)
	if !cur.ok {
		return errors.Is(err, fs.ErrNotExist)
	}
	return err == nil && inodeOf(fi) == cur.inode
}

func (c *copySet) close() {
	for _, fam := range c.fams {
		for _, r := range fam {
			if r.f != nil {
				r.f.Close()
			}
		}
	}
}

// stepKind names where a step reads from.
type stepKind uint8

const (
	stepChain stepKind = iota // a rotated copy
	stepCur                   // the file now at the log's path
)

// step is one stream to read, in order, from byte from.
type step struct {
	kind     stepKind
	fam, idx int // for stepChain: families()[fam][idx]
	from     int64
}

// outcome says what resolve found.
type outcome struct {
	continued bool // pos's content is still at the path
	rotated   bool // it moved away (renamed, deleted, replaced)
	truncated bool // it was cut in place
	gap       bool // the rest of pos's content is nowhere to be found
}

// matches reports whether f holds the content pos was reading.
func matches(f fileView, pos Position) bool {
	if !f.ok {
		return false
	}
	if pos.FirstLineHash != "" {
		return f.head == pos.FirstLineHash
	}
	return pos.Inode == 0 || f.inode == pos.Inode
}

// resolve decides what to read, in order, to go on from pos without losing
// or repeating a line: cur is the file at the log's path, copies the
// rotated copies per family, newest first (asked for only when pos's
// content has left the path; only head and mtime are used).
//
// The rest of pos's content comes from the rotated copy with the same
// head; then every newer rotated copy whole; then cur whole.
func resolve(pos Position, cur fileView, copies func() [][]fileView) ([]step, outcome) {
	// Nothing complete was read from pos's file (it was empty, or its
	// first line partial), so its content has no name to be found by.
	blind := pos.FirstLineHash == "" && pos.Offset == 0 && pos.Inode != 0 && !pos.Time.IsZero()
	if matches(cur, pos) && cur.size >= pos.Offset && !(blind && copiedSince(copies(), pos.Time)) {
		return []step{{kind: stepCur, from: pos.Offset}}, outcome{continued: true}
	}
	var steps []step
	var out outcome
	if blind {
		// Read whole, oldest first, every copy written to since pos was
		// taken: pos's file is one of them (renamed, or copied before a
		// truncation), and nothing was read from it. A copy written in the
		// same clock tick as the read, or compressed later into a new
		// file, can be missed or read twice (doc.go, Limits).
		for f, fam := range copies() {
			if len(fam) == 0 {
				continue
			}
			for j := len(fam) - 1; j >= 0; j-- {
				if c := fam[j]; c.ok && !c.mtime.Before(pos.Time) {
					steps = append(steps, step{kind: stepChain, fam: f, idx: j})
				}
			}
			break
		}
	} else if fam, k := findHead(copies(), pos.FirstLineHash); k >= 0 {
		steps = append(steps, step{kind: stepChain, fam: fam, idx: k, from: pos.Offset})
		for j := k - 1; j >= 0; j-- {
			steps = append(steps, step{kind: stepChain, fam: fam, idx: j})
		}
	} else if pos.Offset > 0 {
		out.gap = true
	}
	if cur.ok {
		steps = append(steps, step{kind: stepCur})
	}
	if len(steps) == 0 && pos.Offset == 0 {
		return nil, outcome{continued: true} // nothing was read, nothing is there
	}
	if cur.ok && pos.Inode != 0 && cur.inode == pos.Inode {
		out.truncated = true
	} else {
		out.rotated = true
	}
	return steps, out
}

// copiedSince reports whether a rotated copy was written at or after t.
func copiedSince(copies [][]fileView, t time.Time) bool {
	for _, fam := range copies {
		for _, c := range fam {
			if c.ok && !c.mtime.Before(t) {
				return true
			}
		}
	}
	return false
}

// findHead returns the family and index of the newest rotated copy whose
// head is head, or -1, -1.
func findHead(copies [][]fileView, head string) (fam, idx int) {
	if head == "" {
		return -1, -1
	}
	for f, fam := range copies {
		for i, c := range fam {
			if c.ok && c.head == head {
				return f, i
			}
		}
	}
	return -1, -1
}

// loadViews loads (and opens) every rotated copy. A copy that cannot be
// read is left not ok, so it never matches.
func loadViews(fams [][]rotated) [][]fileView {
	out := make([][]fileView, len(fams))
	for f := range fams {
		out[f] = make([]fileView, len(fams[f]))
		for i := range fams[f] {
			if fams[f][i].load() == nil {
				out[f][i] = fams[f][i].view
			}
		}
	}
	return out
}
