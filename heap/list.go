package heap

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"path"
	"strings"
	"time"

	"github.com/heapguard/heapguard/host"
)

// Timeout bounds every vsish call: vsish answers from kernel memory, so
// anything slower means the host is in trouble and we must not hang with it.
const Timeout = 5 * time.Second

// ErrSyntax is wrapped by errors about lines that are not vsish output.
var ErrSyntax = errors.New("unrecognised vsish output")

// Entry is one heap of `vsish -e ls /system/heaps/`.
type Entry struct {
	// Base is the heap's name without the address suffix ("netGPHeap").
	Base string `json:"base"`
	// Full is the name as listed, address suffix included
	// ("netGPHeap-0x410001000000"); equal to Base when there is none.
	Full string `json:"full"`
}

// maxLine bounds one line of vsish output; longer lines are an error, not
// an out-of-memory.
const maxLine = 64 << 10

// ParseList parses `vsish -e ls /system/heaps/`: one heap per line, each a
// folder name ending in "/". Blank lines are skipped. Other lines are
// skipped and counted; when there were any, the entries found are returned
// together with an error wrapping ErrSyntax that says how many and quotes
// the first.
//
// Unverified: no raw, unfiltered listing of /system/heaps/ was found (see
// testdata/SOURCES.md); the format follows the `ls` entry lines of
// vsish-heap-stats-vsip-nsx62-grepped.txt ("vsip-attr-0x430c1db5c000/").
func ParseList(r io.Reader) ([]Entry, error) {
	var (
		entries []Entry
		bad     int
		first   string
	)
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 4096), maxLine)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" {
			continue
		}
		e, ok := parseEntry(line)
		if !ok {
			if bad == 0 {
				first = line
			}
			bad++
			continue
		}
		entries = append(entries, e)
	}
	if err := sc.Err(); err != nil {
		return entries, fmt.Errorf("parse heap list: %w", err)
	}
	if bad > 0 {
		return entries, fmt.Errorf("parse heap list: %d unrecognised lines, first %q: %w", bad, clip(first), ErrSyntax)
	}
	return entries, nil
}

// parseEntry accepts "name/" where name is one path element without blanks.
func parseEntry(line string) (Entry, bool) {
	name, ok := strings.CutSuffix(line, "/")
	if !ok || name == "" || name == "." || name == ".." ||
		strings.ContainsAny(name, "/ \t:{}") {
		return Entry{}, false
	}
	return Entry{Base: BaseName(name), Full: name}, true
}

// BaseName strips a trailing "-0x<hex>" address suffix from a heap name:
// "netGPHeap-0x410001000000" gives "netGPHeap". Names without one are
// returned as they are.
func BaseName(full string) string {
	i := strings.LastIndex(full, "-0x")
	if i <= 0 {
		return full
	}
	hex := full[i+3:]
	if hex == "" {
		return full
	}
	for _, c := range hex {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
			return full
		}
	}
	return full[:i]
}

// List runs `vsish -e ls /system/heaps/` and parses it. Unrecognised lines
// are reported in the error, with the entries that were found.
func List(ctx context.Context, r host.Runner) ([]Entry, error) {
	res, err := r.Run(ctx, Timeout, "vsish", "-e", "ls", "/system/heaps/")
	if err != nil {
		return nil, fmt.Errorf("list heaps: %w", err)
	}
	entries, err := ParseList(strings.NewReader(string(res.Stdout)))
	if err != nil {
		return entries, fmt.Errorf("list heaps: %w", err)
	}
	return entries, nil
}

// Read runs `vsish -e cat /system/heaps/<full>/stats` for one heap and
// parses it. The sample's FullName is the entry's. A truncated answer gives
// the incomplete sample with an error wrapping ErrTruncated.
func Read(ctx context.Context, r host.Runner, e Entry) (Sample, error) {
	if _, ok := parseEntry(e.Full + "/"); !ok {
		return Sample{}, fmt.Errorf("read heap stats %q: bad heap name", e.Full)
	}
	res, err := r.Run(ctx, Timeout, "vsish", "-e", "cat", "/system/heaps/"+e.Full+"/stats")
	if err != nil {
		return Sample{}, fmt.Errorf("read heap stats %s: %w", e.Full, err)
	}
	samples, perr := ParseStats(strings.NewReader(string(res.Stdout)))
	if len(samples) == 0 {
		if perr == nil {
			perr = ErrNoStats
		}
		return Sample{}, fmt.Errorf("read heap stats %s: %w", e.Full, perr)
	}
	if len(samples) > 1 {
		return Sample{}, fmt.Errorf("read heap stats %s: %d stats blocks, want 1: %w", e.Full, len(samples), ErrSyntax)
	}
	s := samples[0]
	base := e.Base
	if base == "" {
		base = BaseName(e.Full)
	}
	switch {
	case s.Name == "":
		s.Name = base
	case s.Name != base:
		return s, fmt.Errorf("read heap stats %s: stats name %q does not match: %w", e.Full, s.Name, ErrSyntax)
	}
	s.FullName = e.Full
	if perr != nil {
		return s, fmt.Errorf("read heap stats %s: %w", e.Full, perr)
	}
	return s, nil
}

// Match reports whether a heap's base name matches one of the --heaps
// globs (path.Match syntax, case-insensitive, since people type
// "netgpheap"). No globs match every heap. A malformed glob only matches
// its own text; ValidGlobs reports it at flag-parsing time.
func Match(globs []string, base string) bool {
	if len(globs) == 0 {
		return true
	}
	b := strings.ToLower(base)
	for _, g := range globs {
		g = strings.ToLower(g)
		ok, err := path.Match(g, b)
		if err != nil {
			ok = g == b
		}
		if ok {
			return true
		}
	}
	return false
}

// ValidGlobs checks --heaps globs, so a typo is an error rather than a
// filter that silently matches nothing.
func ValidGlobs(globs []string) error {
	for _, g := range globs {
		if _, err := path.Match(g, ""); err != nil {
			return fmt.Errorf("heap glob %q: %w", g, err)
		}
	}
	return nil
}

func clip(s string) string {
	if len(s) > 80 {
		return s[:80] + "…"
	}
	return s
}
