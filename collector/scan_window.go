package collector

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime/debug"
)

// errFileChanged is returned when a mapped file shrinks under the scan.
var errFileChanged = errors.New("file truncated while being read")

// readRange feeds the lines of [lo,hi) of f (lo at a line start) through the
// state, one window of about win bytes at a time. A window is mapped when the
// platform allows it, which saves copying it out of the page cache, and
// unmapped after use, so that resident memory stays at one window; when
// mapping fails it is read into a buffer instead. Semantics equal read's.
func (st *scanState) readRange(f *os.File, lo, hi int64, win, maxLine int, mapOK bool) (err error) {
	page := int64(os.Getpagesize())
	// A window without a newline must prove an oversized line even when it
	// starts a page after the line.
	win = max(win, maxLine+2*int(page))
	var buf []byte
	var cur []byte // the mapped window, unmapped if a fault unwinds
	pos := lo
	if mapOK {
		// Touching a page the file no longer has raises SIGBUS: make it an
		// error rather than a crash.
		defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
		defer func() {
			if cur != nil {
				unmapWindow(cur)
			}
			if r := recover(); r != nil {
				if _, ok := r.(interface{ Addr() uintptr }); !ok {
					panic(r)
				}
				err = fmt.Errorf("read at %d: %w", pos, errFileChanged)
			}
		}()
	}
	skipping := false // inside an oversized line, already counted
	for pos < hi {
		ws := pos &^ (page - 1)
		we := min(ws+int64(win), hi)
		var m []byte
		if mapOK {
			if m, err = mapWindow(f, ws, int(we-ws)); err != nil {
				mapOK, err = false, nil
			}
			cur = m
		}
		if !mapOK {
			if buf == nil {
				buf = make([]byte, win)
			}
			n, rerr := f.ReadAt(buf[:we-ws], ws)
			if rerr != nil && rerr != io.EOF {
				return rerr
			}
			if n < int(we-ws) { // the file shrank: scan what is there
				we, hi = ws+int64(n), ws+int64(n)
				if we <= pos {
					return nil
				}
			}
			m = buf[:n]
		}
		data := m[pos-ws:]
		if skipping {
			i := bytes.IndexByte(data, '\n')
			if i < 0 {
				data = nil
			} else {
				skipping = false
				data = data[i+1:]
			}
		}
		switch last := bytes.LastIndexByte(data, '\n'); {
		case we == hi:
			if len(data) > 0 {
				st.block(data, maxLine)
			}
			pos = hi
		case skipping:
			pos = we
		case last >= 0:
			st.block(data[:last+1], maxLine)
			pos = we - int64(len(data)) + int64(last) + 1
		default:
			// No newline in more than maxLine bytes.
			st.oversized()
			skipping = true
			pos = we
		}
		if cur != nil {
			unmapWindow(cur)
			cur = nil
		}
	}
	return nil
}
