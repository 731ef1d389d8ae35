package collector

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"runtime"
	"sync"
	"time"

	"github.com/heapguard/heapguard/internal/gunzip"
)

const (
	// DefaultFlapCycles and DefaultFlapWindow: a port is flapping after this
	// many cycles within this much log time.
	DefaultFlapCycles = 10
	DefaultFlapWindow = 5 * time.Minute
	// MaxLineLen is the longest line parsed; longer ones are counted as
	// Oversized and skipped without being held in memory whole.
	MaxLineLen = 1 << 20

	// readSize is how much is read at once, per worker: with the longest
	// line carried over, the bulk of the resident memory. Reading into a
	// buffer that stays in the cache is about 3 times faster than mapping
	// the file, whose first touch of each page costs more than the copy.
	readSize = 1 << 20
	// parallelMin is the smallest plain file scanned in parallel chunks.
	parallelMin = 4 << 20
	maxWorkers  = 8
)

// ErrNotRegular is returned for a path that is a directory or a device.
var ErrNotRegular = errors.New("not a regular file")

// ScanOptions tune a scan. The zero value is usable.
type ScanOptions struct {
	// Year of the first 4.x syslog line; 0 uses the file's modification time
	// (see Parser), or the current year for Scan.
	Year int
	// Since drops events before it (counted as BeforeSince).
	Since time.Time
	// FlapCycles within FlapWindow make a port flapping (defaults 10, 5m).
	FlapCycles int
	FlapWindow time.Duration
	// Syslog, when not nil, carries the year of 4.x dates from one file to
	// the next copy of the same log (rotated copies read oldest first): a
	// scan starts from it once it is set, instead of Year or the file's
	// time, and leaves in it where its own last 4.x line stood. The first
	// line takes the year that dates it earliest but not more than a day
	// before the carried last line.
	Syslog *SyslogState
}

// SyslogState is where 4.x dates stand at the end of a copy: the year and
// month its lines had reached, and the time of its last line. The zero
// value means no 4.x line yet.
type SyslogState struct {
	Year, Month int
	Last        time.Time
}

// done ends a sequential scan: the summary says which year 4.x dates were
// guessed to be in, and opt.Syslog gets the 4.x state (see carry).
func (st *scanState) done(opt ScanOptions) {
	st.sum.GuessedYear = st.p.guessedYear
	st.carry(opt)
}

// carry leaves the parser's 4.x state in opt.Syslog.
func (st *scanState) carry(opt ScanOptions) {
	p := st.p
	if opt.Syslog == nil || !p.started {
		return
	}
	if p.carried {
		// No line of this copy settled the year: the older copy's
		// state still holds.
		*opt.Syslog = SyslogState{Year: p.year, Month: p.lastMon, Last: p.carriedLast}
		return
	}
	*opt.Syslog = SyslogState{Year: p.year, Month: p.lastMon, Last: p.last.time(p.lastYear)}
}

// ScanFile summarises one log file: plain or gzip (detected by its magic
// bytes, not its name). Memory stays constant whatever the file's size; a
// large plain file is read in parallel chunks. On a read error the summary
// so far is returned with the error.
func ScanFile(path string, opt ScanOptions) (*Summary, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("scan: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("scan %s: %w", path, ErrNotRegular)
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("scan: %w", err)
	}
	defer f.Close()
	head := make([]byte, detectSample)
	n, _ := f.ReadAt(head, 0)
	if n >= 2 && isGzip(head[:2]) {
		s, err := scanGzip(bufio.NewReaderSize(f, 256<<10), opt, fi.ModTime())
		if err != nil {
			return s, fmt.Errorf("scan %s: %w", path, err)
		}
		return s, nil
	}
	if kind := DetectLog(head[:n]); kind != LogVmkernel {
		st := newScanState(opt, fi.ModTime(), false)
		st.sum.Log = kind
		err := st.scanAgentLog(f)
		st.done(opt)
		if err != nil {
			return st.sum, fmt.Errorf("scan %s: %w", path, err)
		}
		return st.sum, nil
	}
	workers := min(runtime.GOMAXPROCS(0), maxWorkers)
	if workers > 1 && fi.Size() >= parallelMin {
		s, err := scanParallel(f, fi.Size(), workers, opt, fi.ModTime())
		if err != nil {
			return s, fmt.Errorf("scan %s: %w", path, err)
		}
		if s != nil {
			return s, nil
		}
		// 4.x lines need the year carried from line to line: read in order.
	}
	st := newScanState(opt, fi.ModTime(), false)
	// Up to the size stat saw, as the parallel path: a line being written
	// to a live log is left for the next read.
	err = st.read(io.NewSectionReader(f, 0, fi.Size()), make([]byte, readSize+MaxLineLen), MaxLineLen)
	st.done(opt)
	if err != nil {
		return st.sum, fmt.Errorf("scan %s: %w", path, err)
	}
	return st.sum, nil
}

// Scan summarises a log read from r, gunzipping it if it starts with the
// gzip magic bytes.
func Scan(r io.Reader, opt ScanOptions) (*Summary, error) {
	return ScanModTime(r, opt, time.Time{})
}

// ScanModTime is Scan for a copy whose modification time is known (an
// archive member's): 4.x dates without a year take its year, as
// ScanFile's do, instead of the current one.
func ScanModTime(r io.Reader, opt ScanOptions, modTime time.Time) (*Summary, error) {
	br := bufio.NewReaderSize(r, detectSample)
	if magic, _ := br.Peek(2); isGzip(magic) {
		return scanGzip(br, opt, modTime)
	}
	return scanText(br, opt, modTime)
}

// scanText scans a log read from br (already gunzipped), an agent's log
// or a vmkernel log, as its first lines tell.
func scanText(br *bufio.Reader, opt ScanOptions, modTime time.Time) (*Summary, error) {
	head, _ := br.Peek(detectSample)
	st := newScanState(opt, modTime, false)
	var err error
	if kind := DetectLog(head); kind != LogVmkernel {
		st.sum.Log = kind
		err = st.scanAgentLog(br)
	} else {
		err = st.read(br, make([]byte, readSize+MaxLineLen), MaxLineLen)
	}
	st.done(opt)
	return st.sum, err
}

func isGzip(b []byte) bool { return len(b) >= 2 && b[0] == 0x1f && b[1] == 0x8b }

func scanGzip(r io.Reader, opt ScanOptions, modTime time.Time) (*Summary, error) {
	zr, err := gunzip.NewReader(r)
	if err != nil {
		return NewSummary(opt.FlapCycles, opt.FlapWindow), fmt.Errorf("gunzip: %w", err)
	}
	defer zr.Close()
	s, err := scanText(bufio.NewReaderSize(zr, detectSample), opt, modTime)
	if err != nil {
		return s, fmt.Errorf("gunzip: %w", err)
	}
	return s, nil
}

// scanState is one sequential pass over lines.
type scanState struct {
	sum   *Summary
	p     *Parser
	since time.Time

	// In chunk mode the pass starts mid-file without knowing whether the
	// line before was parsed: lead counts the leading untimed text lines
	// (counted Unparsed) that are continuations if it was; leadOpen is true
	// while only such lines have been seen.
	leadOpen  bool
	lead      int64
	sawSyslog bool

	nl, cand   []uint64 // blockBits' bitmaps, reused
	ends, hits []int32  // and the offsets of their bits
}

func newScanState(opt ScanOptions, modTime time.Time, chunk bool) *scanState {
	p := NewParser(opt.Year, modTime)
	if c := opt.Syslog; c != nil && c.Year != 0 {
		p.year, p.lastMon, p.started, p.carried, p.carriedLast = c.Year, c.Month, true, true, c.Last
	}
	return &scanState{
		sum:      NewSummary(opt.FlapCycles, opt.FlapWindow),
		p:        p,
		since:    opt.Since,
		leadOpen: chunk,
	}
}

// read feeds every line of r through the state. buf must be longer than
// maxLine.
func (st *scanState) read(r io.Reader, buf []byte, maxLine int) error {
	n := 0
	skipping := false // inside an oversized line, already counted
	for {
		m, err := r.Read(buf[n:])
		n += m
		data := buf[:n]
		if skipping {
			i := bytes.IndexByte(data, '\n')
			if i < 0 {
				n, data = 0, nil
			} else {
				skipping = false
				data = data[i+1:]
			}
		}
		done := 0
		if last := bytes.LastIndexByte(data, '\n'); last >= 0 {
			st.block(data[:last+1], maxLine)
			done = last + 1
		}
		rest := data[done:]
		if len(rest) > maxLine {
			st.oversized()
			skipping = true
			rest = nil
		}
		n = copy(buf, rest)
		if err == io.EOF {
			if n > 0 {
				st.block(buf[:n], maxLine)
			}
			return nil
		}
		if err != nil {
			return err
		}
	}
}

// blockScalar is block without bitmaps (see bits.go), the path where no
// SIMD routine exists. The three message markers are looked for across the
// block, not per line; only lines holding one get a full parse. The loop is
// the hot path: most lines are noise with a valid ISO stamp, counted in
// locals after one stamp check.
func (st *scanState) blockScalar(data []byte, maxLine int) {
	var next [len(markers)]int
	cand := len(data) // the first of next
	for k := range markers {
		next[k] = nextMarker(data, 0, &markers[k])
		cand = min(cand, next[k])
	}
	var lines, other int64
	stamped := false // an ISO line was counted in locals since the last slow one
	for pos := 0; pos < len(data); {
		end := len(data)
		if i := bytes.IndexByte(data[pos:], '\n'); i >= 0 {
			end = pos + i
		}
		// A marker never holds a newline, so one starting before end is in
		// this line. The stamp is checked before trimming a CR: it passes
		// only if it would pass after.
		if cand >= end && end-pos <= maxLine && end-pos >= 20 && data[pos]-'0' <= 9 && isoStampLen(data[pos:end]) > 0 {
			lines++
			other++
			stamped = true
			pos = end + 1
			continue
		}
		if stamped {
			st.p.prevOK = true
			st.leadOpen = false
			stamped = false
		}
		hit := false
		if cand < end {
			hit = true
			cand = len(data)
			for k := range next {
				if next[k] < end {
					next[k] = nextMarker(data, end+1, &markers[k])
				}
				cand = min(cand, next[k])
			}
		}
		if end-pos > maxLine {
			st.oversized()
		} else {
			st.line(data[pos:end], hit)
		}
		pos = end + 1
	}
	if stamped {
		st.p.prevOK = true
		st.leadOpen = false
	}
	st.sum.Lines += lines
	st.sum.Other += other
}

func (st *scanState) oversized() {
	st.sum.Lines++
	st.sum.Oversized++
	st.p.breakChain()
	st.leadOpen = false
}

// line handles one line; cand says it holds a marker and may be an event.
// It must count exactly what Parser.Parse would return.
func (st *scanState) line(b []byte, cand bool) {
	s := st.sum
	s.Lines++
	b = trimCR(b)
	if !cand && len(b) > 0 && b[0]-'0' <= 9 {
		// Most lines: only whether the stamp is valid matters.
		if isoStampLen(b) > 0 {
			st.p.prevOK = true
			st.leadOpen = false
			s.Other++
			return
		}
	}
	h, ok := st.p.header(b)
	if ok {
		st.leadOpen = false
		if h.format == FormatSyslog {
			st.sawSyslog = true
		}
		if !cand {
			s.Other++
			return
		}
		ev := classify(h.msg)
		if ev.Kind == KindOther {
			s.Other++
			return
		}
		if ev.Kind == KindCoreDump {
			ev.World = h.world
		}
		ev.Format = h.format
		ev.Time = h.time(st.p.year)
		ev.Uptime, ev.HasUptime = h.uptime, h.hasUptime
		if !st.since.IsZero() && ev.Time.Before(st.since) {
			s.BeforeSince++
			return
		}
		s.add(&ev)
		return
	}
	if cand {
		// Only a line holding a marker can hold an event's words.
		if ev, ok := untimedEvent(b); ok {
			st.p.prevOK = false // as Parser.Parse
			st.leadOpen = false
			s.add(&ev) // never before Since: its time is unknown
			return
		}
	}
	if st.p.continues(b) {
		s.Other++
		s.Continuation++
		return
	}
	s.Unparsed++
	if st.leadOpen {
		if isText(b) {
			st.lead++
		} else {
			st.leadOpen = false
		}
	}
}

// scanParallel scans [0,size) of f in workers chunks split at line starts
// and joins them in order. It returns nil (and no error) when the file has
// 4.x lines, which must be read in order.
func scanParallel(f io.ReaderAt, size int64, workers int, opt ScanOptions, modTime time.Time) (*Summary, error) {
	bounds := make([]int64, workers+1)
	bounds[workers] = size
	for k := 1; k < workers; k++ {
		b, err := lineStart(f, size, size*int64(k)/int64(workers))
		if err != nil {
			return nil, err
		}
		bounds[k] = max(b, bounds[k-1])
	}
	return scanChunks(f, bounds, opt, modTime, readSize+MaxLineLen, MaxLineLen)
}

// lineStart returns the first line start at or after off.
func lineStart(f io.ReaderAt, size, off int64) (int64, error) {
	if off <= 0 {
		return 0, nil
	}
	var buf [64 << 10]byte
	for pos := off - 1; pos < size; {
		n, err := f.ReadAt(buf[:], pos)
		if i := bytes.IndexByte(buf[:n], '\n'); i >= 0 {
			return pos + int64(i) + 1, nil
		}
		pos += int64(n)
		if err == io.EOF {
			break
		}
		if err != nil {
			return 0, err
		}
	}
	return size, nil
}

// scanChunks scans each [bounds[k], bounds[k+1]) at once and joins the
// results in order, so that the summary equals a sequential scan's; each
// chunk is read through a buffer of bufSize.
func scanChunks(f io.ReaderAt, bounds []int64, opt ScanOptions, modTime time.Time, bufSize, maxLine int) (*Summary, error) {
	n := len(bounds) - 1
	states := make([]*scanState, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for k := range n {
		states[k] = newScanState(opt, modTime, k > 0)
		wg.Go(func() {
			sr := io.NewSectionReader(f, bounds[k], bounds[k+1]-bounds[k])
			errs[k] = states[k].read(sr, make([]byte, bufSize), maxLine)
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	for _, st := range states {
		if st.sawSyslog {
			return nil, nil
		}
	}
	sum := states[0].sum
	prevOK := states[0].p.prevOK
	for _, st := range states[1:] {
		if prevOK && st.lead > 0 {
			st.sum.Unparsed -= st.lead
			st.sum.Other += st.lead
			st.sum.Continuation += st.lead
		}
		if !st.leadOpen {
			prevOK = st.p.prevOK
		}
		sum.appendSummary(st.sum)
	}
	return sum, nil
}

// PathCause drops the operation and path that an *fs.PathError repeats,
// for messages that name the path already.
func PathCause(err error) error {
	if pe, ok := errors.AsType[*fs.PathError](err); ok {
		return pe.Err
	}
	if errors.Is(err, ErrNotRegular) {
		return ErrNotRegular
	}
	return err
}
