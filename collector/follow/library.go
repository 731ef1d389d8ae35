package follow

import (
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/nxadm/tail"
)

// ErrLibrary marks a failure of the tail library (github.com/nxadm/tail).
var ErrLibrary = errors.New("follow: tail library")

// libraryTimeout bounds one library read; past it the read is abandoned.
const libraryTimeout = 10 * time.Second

// tailConfig is how the library is run: one pass from a checked offset to
// the end of the file, then it stops (see doc.go for why not Follow).
// Poll keeps inotify out (ESXi may lack it; inotify_tracker.go:220 exits
// the process when it cannot start). MustExist opens the file before
// TailFile returns instead of waiting for any file to appear and applying
// our offset to it (tail.go:274-292). ReOpen must stay false without
// Follow, or TailFile exits the process (tail.go:124-125).
func tailConfig(from int64) tail.Config {
	return tail.Config{
		Location:      &tail.SeekInfo{Offset: from, Whence: io.SeekStart},
		ReOpen:        false,
		MustExist:     true,
		Poll:          true,
		Follow:        false,
		CompleteLines: true,
		Logger:        tail.DiscardingLogger,
	}
}

// libLine is a line the library returned: its text and the offset after it.
type libLine struct {
	text []byte
	end  int64
}

// libraryRead reads the complete lines of the file at path from offset
// from to its end with the tail library. It checks that the lines follow
// each other with no gap (the library's offsets against their lengths) and
// drops a partial last line. Any panic, error, stall or disagreement is
// returned as an ErrLibrary error; the caller then reads by itself.
func libraryRead(path string, from int64, timeout time.Duration) (lines []libLine, err error) {
	defer func() {
		if p := recover(); p != nil {
			lines, err = nil, fmt.Errorf("%w: panic: %v", ErrLibrary, p)
		}
	}()
	t, err := tail.TailFile(path, tailConfig(from))
	if err != nil {
		return nil, fmt.Errorf("%w: open %s: %v", ErrLibrary, path, err)
	}
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	prev := from
	partial := false
	for {
		select {
		case l, ok := <-t.Lines:
			if !ok {
				// Lines is closed just before the tomb is marked done
				// (deferred in that order, tail.go:271-272): Err would
				// still say "tomb: still alive". Wait for the real end.
				if err := t.Wait(); err != nil {
					return nil, fmt.Errorf("%w: read %s: %v", ErrLibrary, path, err)
				}
				return lines, nil
			}
			if l.Err != nil {
				t.Kill(nil)
				return nil, fmt.Errorf("%w: read %s: %v", ErrLibrary, path, l.Err)
			}
			if partial {
				t.Kill(nil)
				return nil, fmt.Errorf("%w: read %s: line after a partial line at %d", ErrLibrary, path, prev)
			}
			// SeekInfo.Offset is the offset after the line (tail.go:455):
			// a complete line started at end-len-1, a partial one (no
			// newline yet, sent anyway when not following: tail.go:263-266,
			// 329-332) at end-len.
			n := int64(len(l.Text))
			switch end := l.SeekInfo.Offset; {
			case end-n-1 == prev:
				lines = append(lines, libLine{text: []byte(l.Text), end: end})
				prev = end
			case end-n == prev:
				partial = true
			default:
				t.Kill(nil)
				return nil, fmt.Errorf("%w: read %s: line of %d bytes ending at %d does not follow offset %d",
					ErrLibrary, path, n, end, prev)
			}
		case <-timer.C:
			// Kill does not wait; a read stuck in the kernel keeps its
			// goroutine, but not ours.
			t.Kill(nil)
			return nil, fmt.Errorf("%w: read %s: no end after %v", ErrLibrary, path, timeout)
		}
	}
}
