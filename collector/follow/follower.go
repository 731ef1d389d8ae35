package follow

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"os"
	"sync"
	"time"

	"go.uber.org/zap"
)

// Follower follows a live log: every complete line once, across restarts
// (from a saved Position), rotation, truncation, deletion and a file that
// does not exist yet. It stops only when told to.
type Follower struct {
	path  string
	opt   Options
	lines chan Line
	st    counters

	ctx    context.Context
	cancel context.CancelFunc
	done   chan struct{}
	stop   sync.Once

	// Owned by the run goroutine.
	held      *os.File // the file being followed, kept open across rotation
	heldInode uint64
	pos       Position // after the last line handed over
	skip      skipState
	lastErr   string
	// libRead is libraryRead; tests replace it to make the library fail.
	libRead func(path string, from int64, timeout time.Duration) ([]libLine, error)
}

// skipState remembers a too-long line still being written at the end of
// the held file, so the next poll goes on discarding it instead of
// scanning it again from its start.
type skipState struct {
	active bool
	inode  uint64
	start  int64 // where the long line begins (pos.Offset)
	resume int64 // how far it has been scanned
}

// New starts following the log at path from pos (the zero Position: from
// the start of the file). The file need not exist yet.
func New(path string, pos Position, opt Options) (*Follower, error) {
	if path == "" {
		return nil, errors.New("follow: empty log path")
	}
	if pos.Offset < 0 {
		return nil, fmt.Errorf("%w: negative offset %d", ErrBadPosition, pos.Offset)
	}
	ctx, cancel := context.WithCancel(context.Background())
	f := &Follower{
		path:    path,
		opt:     opt.withDefaults(),
		lines:   make(chan Line, 64),
		ctx:     ctx,
		cancel:  cancel,
		done:    make(chan struct{}),
		pos:     pos,
		libRead: libraryRead,
	}
	f.pos.Path = path
	go f.run()
	return f, nil
}

// Lines delivers the lines. It is closed after Stop.
func (f *Follower) Lines() <-chan Line { return f.lines }

// Stop ends the following and waits for it; Lines is then closed.
func (f *Follower) Stop() {
	f.stop.Do(f.cancel)
	<-f.done
}

// Stats counts what the follower did so far.
func (f *Follower) Stats() Stats { return f.st.snapshot() }

func (f *Follower) run() {
	defer close(f.done)
	defer close(f.lines)
	defer func() {
		if f.held != nil {
			f.held.Close()
		}
	}()
	for {
		// A change found during a poll (the file moved under a read) is
		// handled at once; a few rounds settle any sequence of events.
		for range 4 {
			if !f.safePoll() {
				break
			}
		}
		if f.opt.Clock.Sleep(f.ctx, f.opt.Poll) != nil {
			return
		}
	}
}

// safePoll runs one poll; a panic in it is counted and reported, and the
// next poll starts again from the last position handed over.
func (f *Follower) safePoll() (again bool) {
	defer func() {
		if p := recover(); p != nil {
			f.st.restarts.Add(1)
			f.report(fmt.Errorf("follow %s: internal error: %v", f.path, p))
			again = false
		}
	}()
	return f.poll()
}

// report hands an error over once (until a poll succeeds) and logs it.
func (f *Follower) report(err error) {
	f.st.readErrors.Add(1)
	if err.Error() == f.lastErr {
		return
	}
	f.lastErr = err.Error()
	f.opt.Logger.Warn("follow log", zap.String("path", f.path), zap.Error(err))
	f.send(Line{Pos: f.pos, Err: err})
}

func (f *Follower) send(l Line) bool {
	select {
	case f.lines <- l:
		return true
	case <-f.ctx.Done():
		return false
	}
}

// poll checks what the file at the path is, decides with resolve what to
// read, and reads it. It returns true when it should run again at once.
func (f *Follower) poll() bool {
	if f.ctx.Err() != nil {
		return false
	}
	var cur, held fileView
	var curF *os.File
	fi, err := os.Stat(f.path)
	switch {
	case err == nil && f.held != nil && inodeOf(fi) == f.heldInode:
		curF = f.held
	case err == nil:
		curF, err = os.Open(f.path)
		if errors.Is(err, fs.ErrNotExist) {
			curF = nil
			break
		}
		if err != nil {
			f.report(fmt.Errorf("open %s: %w", f.path, err))
			return false
		}
		defer func() {
			if curF != f.held {
				curF.Close()
			}
		}()
	case errors.Is(err, fs.ErrNotExist):
	default:
		// EIO, ESTALE, ENOTDIR...: the library would exit the process here
		// (watch/polling.go:81). Keep the open file and try again later.
		f.report(fmt.Errorf("stat %s: %w", f.path, err))
		return false
	}
	if curF == nil && f.held == nil {
		return false // waiting for the file to appear
	}
	if curF != nil {
		if cur, err = viewOf(curF); err != nil {
			f.report(fmt.Errorf("read %s: %w", f.path, err))
			return false
		}
	}
	if f.held != nil && curF != f.held {
		if held, err = viewOf(f.held); err != nil {
			f.report(fmt.Errorf("read held %s: %w", f.path, err))
			held = fileView{}
		}
	}
	var set *copySet // listed once per poll, when resolve asks
	copies := func() [][]fileView {
		if set == nil {
			var err error
			if set, err = openCopies(f.path, cur); err != nil {
				f.report(err)
			}
		}
		return set.views
	}
	defer func() {
		if set != nil {
			set.close()
		}
	}()
	steps, out := resolve(f.pos, cur, held, copies)
	if set != nil && !set.stable {
		// A rotation is running: look again once it is done.
		f.st.restarts.Add(1)
		return true
	}
	f.st.count(out)
	if !out.continued {
		f.opt.Logger.Info("log moved", zap.String("path", f.path), zap.Bool("rotated", out.rotated),
			zap.Bool("truncated", out.truncated), zap.Bool("gap", out.gap), zap.Int64("offset", f.pos.Offset))
		if out.gap {
			f.opt.Logger.Warn("rest of the log is gone; lines were lost", zap.String("path", f.path),
				zap.Int64("offset", f.pos.Offset))
		}
	}
	for _, s := range steps {
		switch s.kind {
		case stepHeld:
			id := Position{Path: f.path, Inode: f.heldInode, FirstLineHash: held.head}
			if !f.drain(io.NewSectionReader(f.held, s.from, math.MaxInt64-s.from), s.from, id) {
				return false
			}
		case stepChain:
			rot := &set.fams[s.fam][s.idx]
			rc, err := rot.open(s.from)
			if err != nil {
				f.report(fmt.Errorf("read rotated log %s: %w", rot.path, err))
				continue
			}
			id := Position{Path: f.path, Inode: rot.view.inode, FirstLineHash: rot.view.head}
			if !f.drain(rc, s.from, id) {
				return false
			}
		case stepCur:
			// The copies are read; do not hold them (the rotator may have
			// deleted them) while the live file is.
			if set != nil {
				set.close()
				set = nil
			}
			if curF != f.held {
				if f.held != nil {
					f.held.Close()
				}
				f.held, f.heldInode = curF, cur.inode
			}
			if !out.continued || f.pos.Inode != cur.inode {
				f.pos = Position{Path: f.path, Inode: cur.inode, Offset: s.from, FirstLineHash: cur.head, Time: time.Now().UTC()}
			}
			return f.readLive(cur)
		}
	}
	// The followed file is gone and nothing replaced it yet: whatever
	// appears next is new.
	if f.held != nil {
		f.held.Close()
		f.held, f.heldInode = nil, 0
	}
	f.pos = Position{Path: f.path}
	f.skip = skipState{}
	return false
}

// drain hands over every complete line of a file that no longer grows (a
// rotated copy, or the old file kept open after its rename).
func (f *Follower) drain(r io.Reader, from int64, id Position) bool {
	end, ok, err := stream(r, from, id, f.opt, &f.st, func(l Line) bool {
		if !f.send(l) {
			return false
		}
		f.st.lines.Add(1)
		f.pos = l.Pos
		return true
	})
	if !ok {
		return false
	}
	id.Offset, id.Time = end, time.Now().UTC()
	f.pos = id
	if err != nil {
		f.report(fmt.Errorf("read %s from %d: %w", f.path, from, err))
	}
	return true
}

// readLive reads what the followed file gained since f.pos. Small steps
// go through the tail library, large ones (a backlog, a long line) through
// our bounded scanner. Either way the lines are handed over only after the
// file is checked again: same inode at the path, same first line, at least
// as long as what was read. Otherwise the file changed under the read (the
// truncate-and-regrow the library cannot see), the lines are dropped, and
// the next poll starts again from f.pos.
func (f *Follower) readLive(cur fileView) (again bool) {
	for {
		if f.ctx.Err() != nil {
			return false
		}
		from := f.pos.Offset
		size := cur.size
		if size <= from && !f.skipping(from) {
			f.lastErr = ""
			return false
		}
		var lines []libLine
		var next int64
		var viaLibrary bool
		var err error
		if !f.skipping(from) && size-from <= int64(f.opt.MaxLine) {
			viaLibrary = true
			lines, err = f.safeLibRead(from)
			if err != nil {
				f.st.libErrors.Add(1)
				f.st.restarts.Add(1)
				f.opt.Logger.Warn("tail library failed; reading by ourselves", zap.String("path", f.path), zap.Error(err))
				viaLibrary = false
			} else {
				f.st.libReads.Add(1)
				next = from
				if len(lines) > 0 {
					next = lines[len(lines)-1].end
				}
			}
		}
		more := false
		if !viaLibrary {
			lines, next, more, err = f.scanLive(from)
			if err != nil {
				f.report(fmt.Errorf("read %s from %d: %w", f.path, from, err))
				return false
			}
		}
		// Check the file again before anything is handed over.
		now, err := viewOf(f.held)
		if err != nil {
			f.report(fmt.Errorf("read %s: %w", f.path, err))
			return false
		}
		same := now.size >= next && (f.pos.FirstLineHash == "" || now.head == f.pos.FirstLineHash)
		if same && viaLibrary {
			// The library opened the file by name: was it still ours?
			fi, err := os.Stat(f.path)
			same = err == nil && inodeOf(fi) == f.heldInode
		}
		if !same {
			f.st.restarts.Add(1)
			f.skip = skipState{}
			return true
		}
		if f.pos.FirstLineHash == "" {
			f.pos.FirstLineHash = now.head
		}
		for _, l := range lines {
			if len(l.text) > f.opt.MaxLine {
				f.st.oversized.Add(1)
				f.pos.Offset = l.end
				continue
			}
			p := f.pos
			p.Offset, p.Time = l.end, time.Now().UTC()
			if !f.send(Line{Text: l.text, Pos: p}) {
				return false
			}
			f.st.lines.Add(1)
			f.pos = p
		}
		// Skipped long lines move the position too.
		f.pos.Offset = next
		f.lastErr = ""
		if !more {
			return false
		}
		cur = now
	}
}

// safeLibRead runs the library read; a panic is an ErrLibrary error.
func (f *Follower) safeLibRead(from int64) (lines []libLine, err error) {
	defer func() {
		if p := recover(); p != nil {
			lines, err = nil, fmt.Errorf("%w: panic: %v", ErrLibrary, p)
		}
	}()
	return f.libRead(f.path, from, libraryTimeout)
}

func (f *Follower) skipping(from int64) bool {
	return f.skip.active && f.skip.inode == f.heldInode && f.skip.start == from
}

// scanLive reads up to batchBytes of lines of the held file from offset
// from with our bounded scanner. next is the offset after the last
// complete line (skipped long ones included); more says a batch was cut.
func (f *Follower) scanLive(from int64) (lines []libLine, next int64, more bool, err error) {
	start, skipping := from, false
	if f.skipping(from) {
		start, skipping = f.skip.resume, true
	}
	f.skip = skipState{}
	s := newScanner(io.NewSectionReader(f.held, start, math.MaxInt64-start), start, f.opt.MaxLine, skipping)
	s.lineStart = from
	var n int64
	for n < batchBytes {
		text, end, skipped, err := s.next()
		f.st.oversized.Add(uint64(skipped))
		if err == io.EOF {
			if s.skipping {
				f.skip = skipState{active: true, inode: f.heldInode, start: s.lineStart, resume: s.off}
			}
			return lines, s.lineStart, false, nil
		}
		if err != nil {
			return nil, 0, false, err
		}
		lines = append(lines, libLine{text: text, end: end})
		n += int64(len(text)) + 1
	}
	return lines, s.lineStart, true, nil
}
