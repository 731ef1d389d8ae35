package follow

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"iter"
	"os"
	"time"

	"go.uber.org/zap"
)

// Reader is a one-shot read of what a log gained since a position, for
// runs that do not stay (heapguard check). It reads plain files itself and
// shares the rotation logic with Follower.
type Reader struct {
	path string
	opt  Options
	pos  Position
	st   counters
	err  error
	used bool
}

// ReadFrom prepares to read the lines of the log at path written after pos,
// up to its current end: the rest of pos's file (from its rotated copy if
// it was rotated, a .gz read through), every newer rotated copy, then the
// live file. A partial last line is left for the next read.
func ReadFrom(path string, pos Position, opt Options) *Reader {
	return &Reader{path: path, opt: opt.withDefaults(), pos: pos}
}

// Lines yields the lines; it can be ranged over once.
func (r *Reader) Lines() iter.Seq[Line] {
	return func(yield func(Line) bool) {
		if r.used {
			return
		}
		r.used = true
		r.run(yield)
	}
}

// Pos is the position after the last line yielded (or skipped as too
// long): persist it once those lines are handled.
func (r *Reader) Pos() Position { return r.pos }

// Err reports what went wrong. A rotated copy that cannot be read is
// skipped (and reported here) so one bad file cannot stall the reading.
func (r *Reader) Err() error { return r.err }

// Stats counts what the read did.
func (r *Reader) Stats() Stats { return r.st.snapshot() }

func (r *Reader) fail(err error) {
	r.st.readErrors.Add(1)
	r.err = errors.Join(r.err, err)
}

// Rotations seen running while a read is resolved are waited out this many
// times, rotationWait apart, before the read goes on with what it found.
const (
	rotationTries = 20
	rotationWait  = 25 * time.Millisecond
)

func (r *Reader) run(yield func(Line) bool) {
	for try := 1; !r.try(yield, try == rotationTries); try++ {
		r.st.restarts.Add(1)
		if r.opt.Clock.Sleep(context.Background(), rotationWait) != nil {
			return
		}
	}
}

// try reads, unless a rotation runs while it looks at the files and this
// is not the last try: then it reads nothing and returns false.
func (r *Reader) try(yield func(Line) bool, last bool) bool {
	var cur fileView
	f, err := os.Open(r.path)
	switch {
	case err == nil:
		defer f.Close()
		if cur, err = viewOf(f); err != nil {
			r.fail(fmt.Errorf("read %s: %w", r.path, err))
			return true
		}
	case errors.Is(err, fs.ErrNotExist):
		// Between a rotation's rename and the new file: the copies remain.
	default:
		r.fail(fmt.Errorf("read %s: %w", r.path, err))
		return true
	}
	var set *copySet
	copies := func() [][]fileView {
		if set == nil {
			if set, err = openCopies(r.path, cur); err != nil {
				r.fail(err)
			}
		}
		return set.views
	}
	defer func() {
		if set != nil {
			set.close()
		}
	}()
	steps, out := resolve(r.pos, cur, fileView{}, copies)
	if set != nil && !set.stable {
		if !last {
			return false
		}
		r.opt.Logger.Warn("log rotating all the time; reading the copies as found", zap.String("path", r.path))
	}
	r.st.count(out)
	if !out.continued {
		r.opt.Logger.Info("log moved since the saved position", zap.String("path", r.path),
			zap.Bool("rotated", out.rotated), zap.Bool("truncated", out.truncated), zap.Bool("gap", out.gap))
	}
	if out.gap {
		r.opt.Logger.Warn("rest of the log since the saved position is gone; lines were lost",
			zap.String("path", r.path), zap.Int64("offset", r.pos.Offset))
	}
	emit := func(l Line) bool {
		r.pos = l.Pos
		r.st.lines.Add(1)
		return yield(l)
	}
	for _, s := range steps {
		var src io.Reader
		var id Position
		switch s.kind {
		case stepChain:
			rot := &set.fams[s.fam][s.idx]
			rc, err := rot.open(s.from)
			if err != nil {
				r.fail(fmt.Errorf("read rotated log %s: %w", rot.path, err))
				continue
			}
			src, id = rc, Position{Path: r.path, Inode: rot.view.inode, FirstLineHash: rot.view.head}
		case stepCur:
			// Bounded by the size seen at open: "up to the current end".
			src = io.NewSectionReader(f, s.from, cur.size-s.from)
			id = Position{Path: r.path, Inode: cur.inode, FirstLineHash: cur.head}
		default:
			continue
		}
		end, ok, err := stream(src, s.from, id, r.opt, &r.st, emit)
		if !ok {
			return true
		}
		id.Offset, id.Time = end, time.Now().UTC()
		r.pos = id
		if err != nil {
			r.fail(fmt.Errorf("read %s from %d: %w", r.path, s.from, err))
			if s.kind == stepCur {
				return true
			}
		}
	}
	return true
}
