package follow

import (
	"bufio"
	"errors"
	"io"
)

// scanner splits a byte stream into lines of at most max bytes. Longer lines
// are skipped and counted while they stream past, so memory stays bounded
// whatever the file holds.
type scanner struct {
	br        *bufio.Reader
	off       int64 // stream offset of the next byte br returns
	lineStart int64 // offset where the line being read began
	max       int
	buf       []byte
	skipping  bool // inside a line already known to be too long
}

// bufSize is the scanner's read buffer for a stream of unknown length.
const bufSize = 64 << 10

func newScanner(r io.Reader, off int64, maxLine int) *scanner {
	size := bufSize
	// The daemon reads the live log's new bytes every poll, mostly none or
	// a few lines: a 64 KB buffer each time would be most of what a poll
	// allocates, zeroed and faulted in anew. A line longer than the buffer
	// is still read whole (keep).
	if sized, ok := r.(interface{ Size() int64 }); ok {
		size = int(min(int64(bufSize), max(sized.Size(), minBufSize)))
	}
	return &scanner{br: bufio.NewReaderSize(r, size), off: off, lineStart: off, max: maxLine}
}

// minBufSize keeps a short read from going through the buffer in pieces.
const minBufSize = 512

// next returns the next complete line without its '\n', and the offset just
// after it. skipped counts too-long lines passed on the way. At the end of
// the stream it returns io.EOF; a partial line is not returned, lineStart
// says where it began and skipping whether it is already too long.
func (s *scanner) next() (line []byte, end int64, skipped int, err error) {
	for {
		chunk, err := s.br.ReadSlice('\n')
		s.off += int64(len(chunk))
		switch {
		case err == nil:
			if s.skipping || len(s.buf)+len(chunk)-1 > s.max {
				skipped++
				s.skipping = false
				s.buf = s.buf[:0]
				s.lineStart = s.off
				continue
			}
			line = make([]byte, len(s.buf)+len(chunk)-1)
			copy(line[copy(line, s.buf):], chunk[:len(chunk)-1])
			s.buf = s.buf[:0]
			s.lineStart = s.off
			return line, s.off, skipped, nil
		case errors.Is(err, bufio.ErrBufferFull):
			s.keep(chunk)
		default:
			s.keep(chunk)
			return nil, s.lineStart, skipped, err
		}
	}
}

// keep stores part of a line, or drops it once the line is too long.
func (s *scanner) keep(chunk []byte) {
	if s.skipping {
		return
	}
	if len(s.buf)+len(chunk) > s.max {
		s.skipping = true
		s.buf = nil
		return
	}
	s.buf = append(s.buf, chunk...)
}
