package follow

import (
	"io"
	"os"
	"sync/atomic"
	"time"

	"github.com/heapguard/heapguard/host"
	"go.uber.org/zap"
)

// Line is one complete line of the log.
type Line struct {
	// Text is the line without its '\n'. It is the receiver's to keep.
	Text []byte
	// Pos is the position just after this line: persist it once the line
	// has been handled, and a restart goes on with the next one.
	Pos Position
	// Err, when set, reports a problem; Text is nil and Pos is the last
	// position reached. The follower keeps going after it.
	Err error
}

// Options tune a Follower or a one-shot read. Zero values take defaults.
type Options struct {
	// Poll is how often the log is checked (default 1 s).
	Poll time.Duration
	// Logger receives warnings (rotations, gaps, library errors). Nil: none.
	Logger *zap.Logger
	// MaxLine is the longest line kept, in bytes (default 1 MiB). Longer
	// lines are skipped and counted in Stats.Oversized, never buffered.
	MaxLine int
	// Clock paces the polls (default host.SystemClock). Positions carry
	// wall time: it is compared with the files' modification times.
	Clock host.Clock
}

const (
	defaultPoll    = time.Second
	defaultMaxLine = 1 << 20
	// batchBytes bounds how much is read before lines are checked and
	// handed over, so a large backlog is never held in memory at once.
	batchBytes = 256 << 10
)

func (o Options) withDefaults() Options {
	if o.Poll <= 0 {
		o.Poll = defaultPoll
	}
	if o.Logger == nil {
		o.Logger = zap.NewNop()
	}
	if o.MaxLine <= 0 {
		o.MaxLine = defaultMaxLine
	}
	if o.Clock == nil {
		o.Clock = host.SystemClock{}
	}
	return o
}

// Stats counts what happened while reading.
type Stats struct {
	Lines uint64 // lines handed over
	// Restarts counts reads thrown away and redone from the last checked
	// position: the library failed, or the file changed under the read.
	Restarts    uint64
	Truncations uint64 // the file was cut in place (copytruncate, "> file")
	Rotations   uint64 // the file was renamed, deleted or replaced
	Oversized   uint64 // lines longer than MaxLine, skipped
	// LibraryErrors counts failures of the tail library: an error, a panic,
	// a stall, or lines that disagree with the file.
	LibraryErrors uint64
	LibraryReads  uint64 // reads the tail library did without error
	ReadErrors    uint64 // errors reading or stat-ing the files ourselves
	// Gaps counts times the rest of a file could not be found (truncated
	// without a copy, or rotated copies already deleted): lines were lost.
	Gaps uint64
}

type counters struct {
	lines, restarts, truncations, rotations, oversized, libErrors, libReads, readErrors, gaps atomic.Uint64
}

func (c *counters) snapshot() Stats {
	return Stats{
		Lines:         c.lines.Load(),
		Restarts:      c.restarts.Load(),
		Truncations:   c.truncations.Load(),
		Rotations:     c.rotations.Load(),
		Oversized:     c.oversized.Load(),
		LibraryErrors: c.libErrors.Load(),
		LibraryReads:  c.libReads.Load(),
		ReadErrors:    c.readErrors.Load(),
		Gaps:          c.gaps.Load(),
	}
}

func (c *counters) count(out outcome) {
	if out.continued {
		return
	}
	if out.truncated {
		c.truncations.Add(1)
	}
	if out.rotated {
		c.rotations.Add(1)
	}
	if out.gap {
		c.gaps.Add(1)
	}
}

// viewOf describes an open file: inode and size from fstat, head from its
// first bytes.
func viewOf(f *os.File) (fileView, error) {
	fi, err := f.Stat()
	if err != nil {
		return fileView{}, err
	}
	head, err := readHead(io.NewSectionReader(f, 0, HeadSize))
	if err != nil {
		return fileView{}, err
	}
	return fileView{ok: true, inode: inodeOf(fi), size: fi.Size(), head: head}, nil
}

// stream reads complete lines of r, whose first byte is content offset
// from, and hands each to emit with its position (id gives Path, Inode and
// FirstLineHash). It stops at the end of r or when emit returns false.
func stream(r io.Reader, from int64, id Position, opt Options, st *counters, emit func(Line) bool) (end int64, ok bool, err error) {
	s := newScanner(r, from, opt.MaxLine, false)
	end = from
	for {
		text, e, skipped, err := s.next()
		st.oversized.Add(uint64(skipped))
		if err != nil {
			if err == io.EOF {
				err = nil
			}
			// lineStart is past every complete line, skipped ones too.
			return s.lineStart, true, err
		}
		end = e
		p := id
		p.Offset = e
		p.Time = time.Now().UTC()
		if !emit(Line{Text: text, Pos: p}) {
			return end, false, nil
		}
	}
}
