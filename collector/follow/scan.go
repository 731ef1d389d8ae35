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

func newScanner(r io.Reader, off int64, max int) *scanner {
	return &scanner{br: bufio.NewReaderSize(r, 64<<10), off: off, lineStart: off, max: max}
}

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
