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
// each poll of the daemon and each run of heapguard check.
type Reader struct {
	path string
	opt  Options
	pos  Position
	st   Stats
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
func (r *Reader) Stats() Stats { return r.st }

func (r *Reader) fail(err error) {
	r.st.ReadErrors++
	r.err = errors.Join(r.err, err)
}

// A read that meets a rotation running, or the live file rewritten under
// it, starts again from the last line yielded, at most this many times,
// rotationWait apart.
const (
	rotationTries = 20
	rotationWait  = 25 * time.Millisecond
)

func (r *Reader) run(yield func(Line) bool) {
	for try := 1; !r.try(yield, try == rotationTries); try++ {
		if try == rotationTries {
			r.fail(fmt.Errorf("read %s: the file kept changing under the read; the rest is left for the next one", r.path))
			return
		}
		r.st.Restarts++
		if r.opt.Clock.Sleep(context.Background(), rotationWait) != nil {
			return
		}
	}
}

// try reads, unless a rotation runs while it looks at the files and this
// is not the last try, or the live file is rewritten under the read: then
// it yields nothing more and returns false.
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
	steps, out := resolve(r.pos, cur, copies)
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
		// The loss is reported once: whatever file is at the path next
		// (none yet, if the log was deleted) is read from its start.
		r.pos = Position{Path: r.path}
	}
	for _, s := range steps {
		var src io.Reader
		var id Position
		same := func(int64) bool { return true }
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
			if testHookLiveRead != nil {
				testHookLiveRead()
			}
			// Bounded by the size seen at open: "up to the current end".
			src = io.NewSectionReader(f, s.from, cur.size-s.from)
			id = Position{Path: r.path, Inode: cur.inode, FirstLineHash: cur.head}
			// A file truncated and rewritten since it was looked at keeps
			// its inode, and our offset then falls inside other lines:
			// only bytes of the content seen at open may be yielded.
			same = func(end int64) bool {
				now, err := viewOf(f)
				return err == nil && now.size >= end && (cur.head == "" || now.head == cur.head)
			}
		}
		switch r.stream(src, s.from, id, same, yield) {
		case streamStopped:
			return true
		case streamChanged:
			return false
		case streamFailed:
			if s.kind == stepCur {
				return true
			}
		}
	}
	return true
}

// testHookLiveRead, when set, runs just before the live file is read
// (tests rewrite the file there).
var testHookLiveRead func()

// streamEnd says how stream ended.
type streamEnd uint8

const (
	streamDone    streamEnd = iota
	streamStopped           // the consumer stopped ranging
	streamChanged           // the file changed under the read; the batch was dropped
	streamFailed            // a read error, reported
)

// stream reads the complete lines of src, whose first byte is content
// offset from, and yields them with their positions (id gives Path, Inode
// and FirstLineHash). Lines go in batches of about batchBytes, each only
// once same(offset after the batch) confirms the file still held them, so
// memory stays bounded and nothing read from a rewritten file is yielded.
func (r *Reader) stream(src io.Reader, from int64, id Position, same func(end int64) bool, yield func(Line) bool) streamEnd {
	sc := newScanner(src, from, r.opt.MaxLine)
	var batch []Line
	n, skipped := 0, 0
	for {
		text, end, sk, err := sc.next()
		skipped += sk
		if err == nil {
			p := id
			p.Offset, p.Time = end, time.Now().UTC()
			batch = append(batch, Line{Text: text, Pos: p})
			if n += len(text) + 1; n < batchBytes {
				continue
			}
		}
		if !same(sc.lineStart) {
			return streamChanged
		}
		r.st.Oversized += uint64(skipped)
		for _, l := range batch {
			r.pos = l.Pos
			r.st.Lines++
			if !yield(l) {
				return streamStopped
			}
		}
		// lineStart is past every complete line, skipped ones too.
		r.pos = id
		r.pos.Offset, r.pos.Time = sc.lineStart, time.Now().UTC()
		batch, n, skipped = batch[:0], 0, 0
		switch {
		case errors.Is(err, io.EOF):
			return streamDone
		case err != nil:
			r.fail(fmt.Errorf("read %s from %d: %w", r.path, from, err))
			return streamFailed
		}
	}
}
