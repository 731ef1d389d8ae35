package collector

import (
	"time"
	"unicode/utf8"
)

// Parser parses the lines of one file in order. On top of ParseLine it
// knows the year of 4.x syslog stamps (which carry none) and tells
// continuation lines from garbage.
//
// Year: with an explicit year, the first 4.x line is in that year. With year
// 0 and a modification time, the first 4.x line is put in the mtime's year,
// or the year before if that would date it after the mtime (a file written
// in January that starts in December). Either way, a month that goes back
// (December -> January) adds a year.
//
// Continuation: an untimed line of printable text right after a parsed line
// (or after another continuation) is part of that record
// (vmkernel-5x.log lines 34-38), not garbage.
type Parser struct {
	year    int
	modTime time.Time
	lastMon int
	started bool // the first syslog line has fixed the year
	carried bool // year and lastMon come from an older copy (ScanOptions.Syslog)
	// carriedLast is the time of the older copy's last 4.x line.
	carriedLast time.Time
	// last is the last 4.x line's stamp (msg cleared), lastYear its year.
	last     header
	lastYear int
	prevOK   bool // the previous line was parsed or a continuation
	// guess: no year was given; guessedYear is the year the first 4.x line
	// was then put in (0 before one), for a warning.
	guess       bool
	guessedYear int
}

// NewParser returns a Parser for one file; see Parser for year and modTime.
// With neither, 4.x stamps get the current year.
func NewParser(year int, modTime time.Time) *Parser {
	guess := year == 0
	if year == 0 && modTime.IsZero() {
		year = time.Now().UTC().Year()
	}
	return &Parser{year: year, modTime: modTime.UTC(), guess: guess}
}

// Parse parses the next line of the file (without its newline).
func (p *Parser) Parse(line []byte) (Event, error) {
	line = trimCR(line)
	h, ok := p.header(line)
	if !ok {
		if ev, ok := untimedEvent(line); ok {
			// Its record's bounds are unknown (no header to tell one
			// from the next): untimed text after it is not taken to
			// continue it, and stays unparsed.
			p.prevOK = false
			return ev, nil
		}
		if p.continues(line) {
			return Event{Kind: KindContinuation}, nil
		}
		return Event{}, unparsed(line)
	}
	ev := classify(h.msg)
	if ev.Kind == KindCoreDump {
		ev.World = h.world
	}
	ev.Format = h.format
	ev.Time = h.time(p.year)
	ev.Uptime, ev.HasUptime = h.uptime, h.hasUptime
	return ev, nil
}

// header parses the header and moves the year state on; on failure the
// caller must call continues.
func (p *Parser) header(line []byte) (header, bool) {
	h, ok := parseHeader(line)
	if ok {
		p.prevOK = true
	}
	if ok && !h.yearFromStamp {
		p.syslogYear(&h)
	}
	return h, ok
}

func (p *Parser) syslogYear(h *header) {
	if !p.started {
		p.started = true
		if p.year == 0 {
			p.year = p.modTime.Year()
			if h.time(p.year).After(p.modTime.Add(24 * time.Hour)) {
				p.year--
			}
		}
		if p.guess {
			p.guessedYear = p.year
		}
	} else if p.carried {
		// The first line after an older copy: New Year or a long gap may
		// lie between them, and lines out of order (a clock set back at
		// boot) are common. It takes the year that dates it earliest, but
		// not more than a day before the older copy's last line.
		y := p.year - 1
		for y < p.year+1 && h.time(y).Before(p.carriedLast.Add(-carrySlack)) {
			y++
		}
		p.carried = false
		if y < p.year {
			// Out of order across New Year: it belongs to the year
			// before and must not move the state; the lines after it
			// follow the rules within a file.
			h.year, h.yearFromStamp = y, true
			p.remember(h)
			return
		}
		p.year = y
	} else if h.mon < p.lastMon-6 {
		// Months only go back by a lot across New Year; lines a few seconds
		// out of order (the 4.x sample has some) do not.
		p.year++
	} else if h.mon > p.lastMon+6 {
		// A December line just after the January ones: written out of
		// order around New Year, it belongs to the year before. It must
		// not move the year state, or the next January line would add a
		// second year.
		h.year, h.yearFromStamp = p.year-1, true
		p.remember(h)
		return
	}
	p.lastMon = h.mon
	p.remember(h)
}

// carrySlack is how far before the older copy's last line the first line
// of the next copy may be dated.
const carrySlack = 24 * time.Hour

// remember keeps h's stamp as the last 4.x line's (for SyslogState).
func (p *Parser) remember(h *header) {
	p.last = *h
	p.last.msg = nil
	p.lastYear = p.year
	if h.yearFromStamp {
		p.lastYear = h.year
	}
}

// continues decides for an unparsed line whether it continues the record
// before it, and updates the state.
func (p *Parser) continues(line []byte) bool {
	ok := p.prevOK && isText(line)
	p.prevOK = ok
	return ok
}

// breakChain is called for a line that was skipped (too long).
func (p *Parser) breakChain() { p.prevOK = false }

// isText is true for a non-empty line of valid UTF-8 without control bytes
// other than tab.
func isText(b []byte) bool {
	if len(b) == 0 {
		return false
	}
	for _, c := range b {
		if c < 0x20 && c != '\t' || c == 0x7f {
			return false
		}
	}
	return utf8.Valid(b)
}
