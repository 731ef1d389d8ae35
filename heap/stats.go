package heap

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
)

// ErrTruncated is wrapped when a stats block was cut off: it has no
// maximum heap size, or the output ended in the middle of a line.
var ErrTruncated = errors.New("heap stats truncated")

// ErrNoStats is wrapped when the input holds no stats at all.
var ErrNoStats = errors.New("no heap stats")

// Keys of the fields heapguard uses, as vsish prints them.
const (
	KeyName             = "Name"
	KeyCurrentSize      = "current heap size"
	KeyAllocated        = "current bytes allocated"
	KeyMaxSize          = "maximum heap size"
	KeyMaxAvailable     = "maximum bytes available"
	KeyPercentFreeOfMax = "percent free of max size"
	KeyLowestPercentMax = "lowest percent free of max size ever encountered"
)

// Field is one "key:value" line of a stats block.
type Field struct {
	Key string `json:"key"`
	// Value is the text after the first ":" with blanks trimmed, always kept.
	Value string `json:"value"`
	// Num is the value as a number when IsNum. Plain integers ("67109968",
	// "-1") are numbers, and so are vsish's enumerated values
	// ("Heap_PhysContigType: 1 -> Any Physical Contiguity" gives 1, the
	// enum's number; Value keeps the words).
	Num   int64 `json:"num,omitempty"`
	IsNum bool  `json:"is_num,omitempty"`
}

// Sample is one heap's statistics at one moment. Every field is kept by
// name in input order, since fields differ between ESXi versions and heaps;
// the accessors answer ok=false for a field that is absent, never a
// silent zero.
type Sample struct {
	// Name is the heap's base name, from the "Name:" field ("netGPHeap").
	Name string `json:"name"`
	// FullName carries the address suffix ("vsip-attr-0x430c1db5c000")
	// when known: from an `ls` entry line in the input, or set by Read.
	FullName string  `json:"full_name,omitempty"`
	Fields   []Field `json:"fields"`
	// Incomplete marks a block that was cut off (see ErrTruncated).
	Incomplete bool `json:"incomplete,omitempty"`
	// Skipped counts lines inside the block that were not "key:value".
	Skipped int `json:"skipped,omitempty"`
}

// Field returns the last field with this key (case-insensitive).
func (s Sample) Field(key string) (Field, bool) {
	for i := len(s.Fields) - 1; i >= 0; i-- {
		if strings.EqualFold(s.Fields[i].Key, key) {
			return s.Fields[i], true
		}
	}
	return Field{}, false
}

// Int returns a numeric field.
func (s Sample) Int(key string) (int64, bool) {
	f, ok := s.Field(key)
	if !ok || !f.IsNum {
		return 0, false
	}
	return f.Num, true
}

func (s Sample) MaxSize() (int64, bool)      { return s.Int(KeyMaxSize) }
func (s Sample) Allocated() (int64, bool)    { return s.Int(KeyAllocated) }
func (s Sample) MaxAvailable() (int64, bool) { return s.Int(KeyMaxAvailable) }

// PrintedPercentFreeOfMax is vsish's own integer "percent free of max size".
func (s Sample) PrintedPercentFreeOfMax() (int64, bool) { return s.Int(KeyPercentFreeOfMax) }

// LowestPercentFreeEver is "lowest percent free of max size ever encountered".
func (s Sample) LowestPercentFreeEver() (int64, bool) { return s.Int(KeyLowestPercentMax) }

// FreeSource says which figures PercentFreeOfMax was computed from.
type FreeSource string

const (
	// FreeFromMaxAvailable: maximum bytes available / maximum heap size.
	FreeFromMaxAvailable FreeSource = "max_available"
	// FreeFromAllocated: (maximum heap size - current bytes allocated) /
	// maximum heap size; slightly optimistic, as it ignores dlmalloc
	// overhead. Used when "maximum bytes available" is absent (the
	// grep-filtered NSX output).
	FreeFromAllocated FreeSource = "allocated"
	// FreeFromPrinted: vsish's printed integer, which is truncated (the
	// esxi4 sample prints 4 for 4.98 %).
	FreeFromPrinted FreeSource = "printed"
	// FreeNone: nothing to compute it from.
	FreeNone FreeSource = ""
)

// FreeOfMax returns the percentage of the maximum heap size that is still
// free, computed from bytes where possible, clamped to [0, 100], and which
// figures it came from; ok is false when there were none.
func (s Sample) FreeOfMax() (pct float64, src FreeSource, ok bool) {
	max, hasMax := s.MaxSize()
	if hasMax && max > 0 {
		if avail, ok := s.MaxAvailable(); ok {
			return clampPct(float64(avail) / float64(max) * 100), FreeFromMaxAvailable, true
		}
		if alloc, ok := s.Allocated(); ok {
			return clampPct(float64(max-alloc) / float64(max) * 100), FreeFromAllocated, true
		}
	}
	if p, ok := s.PrintedPercentFreeOfMax(); ok {
		return clampPct(float64(p)), FreeFromPrinted, true
	}
	return math.NaN(), FreeNone, false
}

// PercentFreeOfMax is FreeOfMax's percentage. It is NaN when unknown, so a
// "below threshold" comparison never fires on a missing figure; check
// FreeSource (or use FreeOfMax) before storing or printing it.
func (s Sample) PercentFreeOfMax() float64 {
	p, _, _ := s.FreeOfMax()
	return p
}

// FreeSource tells which figures PercentFreeOfMax used.
func (s Sample) FreeSource() FreeSource {
	_, src, _ := s.FreeOfMax()
	return src
}

func clampPct(p float64) float64 {
	switch {
	case p < 0:
		return 0
	case p > 100:
		return 100
	}
	return p
}

// ParseStats parses the text of `vsish -e cat /system/heaps/<name>/stats`
// ("Heap stats {", "key:value" lines, "}") and of `vsish -e get`, whose
// field lines are indented, possibly interleaved with `ls` entry lines
// ("vsip-attr-0x430c1db5c000/") as in a shell loop over the heaps.
//
// A "Heap stats {" line, an entry line, or a "Name:" line in a sample that
// already has a name starts a new sample, so several blocks give several
// samples. Lines of dots (an elision in pasted output) are ignored; other
// unrecognised lines are counted in Sample.Skipped. A sample without a
// maximum heap size, or one the input cut off in the middle of a line, is
// flagged Incomplete and the error wraps ErrTruncated; the samples are
// returned along with it. A sample that shows nothing of a heap (no name,
// no "Heap stats {" line, none of the fields vsish prints for every heap:
// "key:value" lines of some other file) is dropped. Input with no sample
// left wraps ErrNoStats.
func ParseStats(r io.Reader) ([]Sample, error) {
	var (
		samples []Sample
		opened  []bool // samples[i] began with a "Heap stats {" line
		cur     *Sample
		open    bool // cur is still being filled
		orphans int  // unrecognised lines outside any sample
		text    int  // lines that were not blank
	)
	start := func(full string, heapStats bool) {
		samples = append(samples, Sample{FullName: full})
		opened = append(opened, heapStats)
		cur, open = &samples[len(samples)-1], true
		if full != "" {
			cur.Name = BaseName(full)
		}
	}
	br := bufio.NewReader(r)
	cutLine := false
	for {
		raw, rerr := readLine(br)
		if rerr != nil && rerr != io.EOF {
			return samples, fmt.Errorf("parse heap stats: %w", rerr)
		}
		if rerr == io.EOF && raw == "" {
			break
		}
		if rerr == io.EOF {
			// Real vsish output ends with a newline; a last line without
			// one was cut (a capped or interrupted read).
			cutLine = true
		}
		line := strings.TrimSpace(raw)
		if line != "" {
			text++
		}
		switch {
		case line == "":
		case strings.Trim(line, ".…") == "":
			// Elision in pasted output; says nothing about the heap.
		case strings.HasSuffix(line, "{"):
			start("", strings.EqualFold(line, "Heap stats {"))
		case line == "}":
			open = false
		default:
			if e, ok := parseEntry(line); ok {
				start(e.Full, false)
				break
			}
			key, val, ok := strings.Cut(line, ":")
			key = strings.TrimSpace(key)
			if !ok || key == "" {
				if open {
					cur.Skipped++
				} else {
					orphans++
				}
				break
			}
			val = strings.TrimSpace(val)
			if strings.EqualFold(key, KeyName) {
				if !open || cur.hasName() {
					start("", false)
				}
				cur.Name = val
			} else if !open {
				start("", false)
			}
			f := Field{Key: key, Value: val}
			f.Num, f.IsNum = parseNum(val)
			cur.Fields = append(cur.Fields, f)
		}
		if rerr == io.EOF {
			break
		}
	}
	if cutLine && open && len(samples) > 0 {
		samples[len(samples)-1].Incomplete = true
	}
	// Any "key:value" line starts a sample, so a file that is not vsish
	// output (a log, a config) would give nameless samples of its lines.
	// A sample must show it is a heap's stats: a name, a "Heap stats {"
	// line, or a field vsish prints for every heap.
	kept := samples[:0]
	for i, smp := range samples {
		if smp.Name != "" || smp.FullName != "" || opened[i] || smp.hasHeapField() {
			kept = append(kept, smp)
		} else {
			orphans++
		}
	}
	samples = kept
	var truncated []string
	for i := range samples {
		if _, ok := samples[i].MaxSize(); !ok {
			samples[i].Incomplete = true
		}
		if samples[i].Incomplete {
			truncated = append(truncated, samples[i].label(i))
		}
	}
	switch {
	case len(samples) == 0 && orphans > 0:
		return nil, fmt.Errorf("parse heap stats: none of %d lines is a heap's: %w", text, ErrNoStats)
	case len(samples) == 0:
		return nil, fmt.Errorf("parse heap stats: %w", ErrNoStats)
	case len(truncated) > 0:
		return samples, fmt.Errorf("parse heap stats %s: %w", strings.Join(truncated, ", "), ErrTruncated)
	}
	return samples, nil
}

// heapFields are fields vsish prints for every heap; a sample holding none
// is not a heap's stats.
var heapFields = []string{KeyName, KeyCurrentSize, KeyAllocated, KeyMaxSize, KeyMaxAvailable,
	KeyPercentFreeOfMax, KeyLowestPercentMax, "initial heap size", "current bytes available",
	"number of failed allocations", "dynamically growable"}

func (s *Sample) hasHeapField() bool {
	for _, k := range heapFields {
		if _, ok := s.Field(k); ok {
			return true
		}
	}
	return false
}

// hasName reports whether the sample already holds a Name field (as
// opposed to a name taken from its entry line).
func (s *Sample) hasName() bool {
	_, ok := s.Field(KeyName)
	return ok
}

func (s *Sample) label(i int) string {
	switch {
	case s.FullName != "":
		return s.FullName
	case s.Name != "":
		return s.Name
	}
	return fmt.Sprintf("#%d", i+1)
}

// readLine reads one line of at most maxLine bytes, without its newline.
func readLine(br *bufio.Reader) (string, error) {
	var b strings.Builder
	for {
		chunk, err := br.ReadSlice('\n')
		if b.Len()+len(chunk) > maxLine {
			return "", fmt.Errorf("line longer than %d bytes", maxLine)
		}
		b.Write(chunk)
		switch err {
		case nil:
			return strings.TrimSuffix(strings.TrimSuffix(b.String(), "\n"), "\r"), nil
		case bufio.ErrBufferFull:
			continue
		default:
			return b.String(), err
		}
	}
}

// parseNum reads a plain integer or the number of an enumerated value
// ("MM_AllocType: 0 -> Any").
func parseNum(v string) (int64, bool) {
	if n, err := strconv.ParseInt(v, 10, 64); err == nil {
		return n, true
	}
	if _, rest, ok := strings.Cut(v, ": "); ok {
		num, _, ok := strings.Cut(rest, " -> ")
		if ok {
			if n, err := strconv.ParseInt(strings.TrimSpace(num), 10, 64); err == nil {
				return n, true
			}
		}
	}
	return 0, false
}
