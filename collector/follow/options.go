package follow

import (
	"io"
	"os"

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
}

// Options tune a read. Zero values take defaults.
type Options struct {
	// Logger receives notes and warnings (rotations, gaps). Nil: none.
	Logger *zap.Logger
	// MaxLine is the longest line kept, in bytes (default 1 MiB). Longer
	// lines are skipped and counted in Stats.Oversized, never buffered.
	MaxLine int
	// Clock paces the retries of a read that met a rotation or a rewrite
	// (default host.SystemClock). Positions carry the system's wall time
	// instead, as it is compared with the files' modification times.
	Clock host.Clock
}

const (
	defaultMaxLine = 1 << 20
	// batchBytes bounds how much is read before lines are checked and
	// handed over, so a large backlog is never held in memory at once.
	batchBytes = 256 << 10
)

func (o Options) withDefaults() Options {
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
	// Restarts counts reads thrown away and redone from the last line
	// yielded: a rotation ran, or the file changed, under the read.
	Restarts    uint64
	Truncations uint64 // the file was cut in place (copytruncate, "> file")
	Rotations   uint64 // the file was renamed, deleted or replaced
	Oversized   uint64 // lines longer than MaxLine, skipped
	ReadErrors  uint64 // errors reading or stat-ing the files
	// Gaps counts times the rest of a file could not be found (truncated
	// without a copy, or rotated copies already deleted): lines were lost.
	Gaps uint64
}

func (s *Stats) count(out outcome) {
	if out.continued {
		return
	}
	if out.truncated {
		s.Truncations++
	}
	if out.rotated {
		s.Rotations++
	}
	if out.gap {
		s.Gaps++
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
