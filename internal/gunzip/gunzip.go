// Package gunzip reads gzip streams with the inflating run ahead of the
// reader in its own goroutine. Inflating is the slow part of reading a .gz
// log; ahead of the scan, the two share the machine's cores instead of
// taking turns. It uses klauspost/compress, whose inflate is about 20 %
// faster than the standard library's, with the same API.
package gunzip

import (
	"errors"
	"io"

	"github.com/klauspost/compress/gzip"
)

const (
	chunkSize = 1 << 20 // bytes inflated per hand-over
	chunks    = 3       // in flight: one being read, one filling, one spare
)

// ErrClosed is returned by a Read after Close.
var ErrClosed = errors.New("gunzip: read after close")

// Reader is a gzip reader whose inflating runs ahead of its caller. It is
// not safe for concurrent use.
type Reader struct {
	full chan chunk
	free chan []byte
	stop chan struct{}
	cur  []byte // the unread rest of the chunk being read
	buf  []byte // that chunk's whole buffer, returned to free once read
	err  error
}

type chunk struct {
	b   []byte
	err error
}

// NewReader reads the gzip header of r (an error here is the header's) and
// starts inflating. Concatenated gzip members read as one stream, as with
// gzip -d. Close the Reader when done: the underlying reader is read until
// then.
func NewReader(r io.Reader) (*Reader, error) {
	zr, err := gzip.NewReader(r)
	if err != nil {
		return nil, err
	}
	g := &Reader{
		full: make(chan chunk, chunks),
		free: make(chan []byte, chunks),
		stop: make(chan struct{}),
	}
	for range chunks {
		g.free <- make([]byte, chunkSize)
	}
	go g.inflate(zr)
	return g, nil
}

// inflate fills free buffers from zr until an error (io.EOF at the end) or
// Close. Its sends never block: full has room for every buffer.
func (g *Reader) inflate(zr *gzip.Reader) {
	defer close(g.full)
	for {
		select { // Close first, whatever buffers are free
		case <-g.stop:
			return
		default:
		}
		var b []byte
		select {
		case b = <-g.free:
		case <-g.stop:
			return
		}
		n := 0
		var err error
		for n < len(b) && err == nil {
			var m int
			m, err = zr.Read(b[n:])
			n += m
			if g.stopped() {
				break // Close waits for this goroutine: no more reads
			}
		}
		g.full <- chunk{b[:n], err}
		if err != nil {
			return
		}
	}
}

func (g *Reader) stopped() bool {
	select {
	case <-g.stop:
		return true
	default:
		return false
	}
}

func (g *Reader) Read(p []byte) (int, error) {
	for len(g.cur) == 0 {
		if g.err != nil {
			return 0, g.err
		}
		if g.buf != nil {
			g.free <- g.buf[:cap(g.buf)]
			g.buf = nil
		}
		c, ok := <-g.full
		if !ok {
			g.err = ErrClosed
			return 0, g.err
		}
		g.buf, g.cur, g.err = c.b, c.b, c.err
	}
	n := copy(p, g.cur)
	g.cur = g.cur[n:]
	return n, nil
}

// Close stops the inflating and returns once it no longer reads the
// underlying reader, which its owner may then use again: after the read
// under way, if any, which waits as long as the underlying reader does.
// It does not close that reader.
func (g *Reader) Close() error {
	select {
	case <-g.stop:
		return nil
	default:
	}
	close(g.stop)
	for range g.full {
	}
	g.cur, g.buf, g.err = nil, nil, ErrClosed
	return nil
}
