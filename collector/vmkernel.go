package collector

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"time"
)

// header is what parseHeader finds before the message. It holds no pointers
// into fresh memory: parsing a line allocates nothing.
type header struct {
	format                   Format
	year, mon, day           int
	hour, min, sec, nsec     int
	uptime                   time.Duration
	hasUptime, yearFromStamp bool
	world                    uint32 // W of the "cpuN:W)" world part; 0 without one
	msg                      []byte // the message, after any "cpuN:W)" world part
}

func (h *header) time(year int) time.Time {
	if h.yearFromStamp {
		year = h.year
	}
	return time.Date(year, time.Month(h.mon), h.day, h.hour, h.min, h.sec, h.nsec, time.UTC)
}

// ParseLine parses one log line (without its newline) of any supported
// format. year is used for 4.x syslog stamps, which carry none. A line in no
// known format gives an error wrapping ErrUnparsed, unless it holds a known
// event's words (see untimedEvent): that event has Format FormatUnknown
// and a zero Time, as its time cannot be read. It allocates only for
// the rare heap and dump lines (their names) and for errors.
func ParseLine(line []byte, year int) (Event, error) {
	line = trimCR(line)
	h, ok := parseHeader(line)
	if !ok {
		if ev, ok := untimedEvent(line); ok {
			return ev, nil
		}
		return Event{}, unparsed(line)
	}
	ev := classify(h.msg)
	if ev.Kind == KindCoreDump {
		ev.World = h.world
	}
	ev.Format = h.format
	ev.Time = h.time(year)
	ev.Uptime, ev.HasUptime = h.uptime, h.hasUptime
	return ev, nil
}

func unparsed(line []byte) error {
	const max = 120
	if len(line) > max {
		return fmt.Errorf("%w: %q…", ErrUnparsed, line[:max])
	}
	return fmt.Errorf("%w: %q", ErrUnparsed, line)
}

func trimCR(b []byte) []byte {
	if n := len(b); n > 0 && b[n-1] == '\r' {
		return b[:n-1]
	}
	return b
}

// parseHeader recognises the line formats as data: the first byte says which
// stamp to try (ISO starts with a digit, syslog with a month name).
func parseHeader(b []byte) (h header, ok bool) {
	if len(b) == 0 {
		return h, false
	}
	var rest []byte
	switch c := b[0]; {
	case c >= '0' && c <= '9':
		rest, ok = parseISO(&h, b)
	case c >= 'A' && c <= 'Z':
		rest, ok = parseSyslog(&h, b)
	}
	if !ok {
		return h, false
	}
	h.msg, h.world = stripWorld(rest)
	return h, true
}

// isoStampLen checks "2013-08-20T12:00:00.123Z" (fraction optional, 1-9
// digits) at the start of b, followed by a space or the end, and returns
// its length. The scanner calls it (or its two halves) alone on most lines.
func isoStampLen(b []byte) int {
	if len(b) < 20 || !isoMinuteOK(b) {
		return 0
	}
	if len(b) > 24 && isoSecondsMillis(binary.LittleEndian.Uint64(b[16:]), b[24]) {
		return 24 // the usual shape, without the loop
	}
	return isoSecondLen(b)
}

// isoMinuteOK checks the stamp up to the minute, "2013-08-20T12:00", in
// b[:16]. Nothing after it changes the answer, so the scanner may reuse it
// for lines that start with the same 16 bytes.
func isoMinuteOK(b []byte) bool {
	if len(b) < 16 || b[4] != '-' || b[7] != '-' || b[10] != 'T' || b[13] != ':' {
		return false
	}
	if b[0]-'0' > 9 || b[1]-'0' > 9 || b[2]-'0' > 9 || b[3]-'0' > 9 ||
		b[5]-'0' > 1 || b[6]-'0' > 9 || b[8]-'0' > 3 || b[9]-'0' > 9 ||
		b[11]-'0' > 2 || b[12]-'0' > 9 || b[14]-'0' > 5 || b[15]-'0' > 9 {
		return false
	}
	mon := (b[5]-'0')*10 + b[6] - '0'
	day := (b[8]-'0')*10 + b[9] - '0'
	hour := (b[11]-'0')*10 + b[12] - '0'
	return mon >= 1 && mon <= 12 && day >= 1 && day <= 31 && hour <= 23
}

// isoSecondLen checks the rest of the stamp, from b[16] (len(b) >= 20):
// ":00", an optional fraction, "Z", then a space or the end. It returns
// the stamp's length, or 0.
func isoSecondLen(b []byte) int {
	if b[16] != ':' || b[17]-'0' > 6 || b[18]-'0' > 9 || (b[17]-'0')*10+b[18]-'0' > 60 {
		return 0
	}
	i := 19
	if b[i] == '.' {
		i++
		start := i
		for i < len(b) && i-start < 9 && b[i]-'0' <= 9 {
			i++
		}
		if i == start {
			return 0
		}
	}
	if i >= len(b) || b[i] != 'Z' {
		return 0
	}
	i++
	if i < len(b) && b[i] != ' ' {
		return 0
	}
	return i
}

// parseISO reads an ISO stamp (see isoStampLen), then an optional 8.x
// "In(182) vmkernel: " header.
func parseISO(h *header, b []byte) ([]byte, bool) {
	i := isoStampLen(b)
	if i == 0 {
		return nil, false
	}
	d2 := func(k int) int { return int(b[k]-'0')*10 + int(b[k+1]-'0') }
	h.year = d2(0)*100 + d2(2)
	h.mon, h.day, h.hour, h.min, h.sec = d2(5), d2(8), d2(11), d2(14), d2(17)
	if b[19] == '.' {
		scale := 100000000
		for k := 20; k < i-1; k++ {
			h.nsec += int(b[k]-'0') * scale
			scale /= 10
		}
	}
	h.yearFromStamp = true
	h.format = FormatISO
	if i == len(b) {
		return nil, true
	}
	rest := b[i+1:]
	if r, ok := strip8x(rest); ok {
		h.format = Format8x
		rest = r
	}
	return rest, true
}

// strip8x removes "In(182) vmkernel: ": two letters, a number in
// parentheses, then a syslog ident ending in a colon.
func strip8x(b []byte) ([]byte, bool) {
	if len(b) < 7 || !isUpper(b[0]) || !isLower(b[1]) || b[2] != '(' {
		return nil, false
	}
	i := 3
	for i < len(b) && isDigit(b[i]) {
		i++
	}
	if i == 3 || i+1 >= len(b) || b[i] != ')' || b[i+1] != ' ' {
		return nil, false
	}
	return stripIdent(b[i+2:])
}

// stripIdent removes "vmkernel: " or "Hostd[169827]: ": a word without
// spaces ending in a colon.
func stripIdent(b []byte) ([]byte, bool) {
	for i := 0; i < len(b); i++ {
		switch b[i] {
		case ':':
			if i == 0 {
				return nil, false
			}
			if i+1 == len(b) {
				return nil, true
			}
			if b[i+1] == ' ' {
				return b[i+2:], true
			}
		case ' ':
			return nil, false
		}
	}
	return nil, false
}

var months = [...]string{"Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"}

// parseSyslog reads "Jul 26 01:26:46 [host ]ident: [7:21:06:31.191 ]". The
// day is padded to two characters ("Jul  6"), but text copied into a
// ticket or a web page often loses the padding ("Oct 4 08:02:38"): both
// are read.
func parseSyslog(h *header, b []byte) ([]byte, bool) {
	if len(b) > 5 && b[5] == ' ' && isDigit(b[4]) {
		// "Oct 4 08:02:38 …": one character shorter; o shifts the rest.
		return parseSyslogAt(h, b, b[4:5], -1)
	}
	if len(b) < 7 {
		return nil, false
	}
	d := b[4:6]
	if d[0] == ' ' { // "Jul  6"
		d = d[1:]
	}
	return parseSyslogAt(h, b, d, 0)
}

// parseSyslogAt reads the stamp with the day d already cut out; o is -1 when
// the day lost its padding.
func parseSyslogAt(h *header, b, d []byte, o int) ([]byte, bool) {
	if len(b) < 16+o || b[3] != ' ' || b[6+o] != ' ' || b[9+o] != ':' || b[12+o] != ':' || b[15+o] != ' ' {
		return nil, false
	}
	for i, m := range months {
		if b[0] == m[0] && b[1] == m[1] && b[2] == m[2] {
			h.mon = i + 1
			break
		}
	}
	if h.mon == 0 {
		return nil, false
	}
	var ok1, ok2, ok3, ok4 bool
	h.day, ok1 = num(d)
	h.hour, ok2 = num(b[7+o : 9+o])
	h.min, ok3 = num(b[10+o : 12+o])
	h.sec, ok4 = num(b[13+o : 15+o])
	if !(ok1 && ok2 && ok3 && ok4) || !validClock(h) {
		return nil, false
	}
	b = b[16+o:]
	rest, ok := stripIdent(b)
	if !ok {
		// ESX classic writes the host name before the ident.
		sp := bytes.IndexByte(b, ' ')
		if sp <= 0 {
			return nil, false
		}
		if rest, ok = stripIdent(b[sp+1:]); !ok {
			return nil, false
		}
	}
	h.format = FormatSyslog
	if up, n, ok := parseUptime(rest); ok {
		h.uptime, h.hasUptime = up, true
		rest = rest[n:]
	}
	return rest, true
}

// parseUptime reads "7:21:06:31.191 " (days:h:m:s.ms) and returns its length
// with the space.
func parseUptime(b []byte) (time.Duration, int, bool) {
	i := 0
	days := 0
	for i < len(b) && isDigit(b[i]) && i < 6 {
		days = days*10 + int(b[i]-'0')
		i++
	}
	if i == 0 || len(b) < i+14 || b[i] != ':' || b[i+3] != ':' || b[i+6] != ':' || b[i+9] != '.' || b[i+13] != ' ' {
		return 0, 0, false
	}
	hh, ok1 := num(b[i+1 : i+3])
	mm, ok2 := num(b[i+4 : i+6])
	ss, ok3 := num(b[i+7 : i+9])
	ms, ok4 := num(b[i+10 : i+13])
	if !(ok1 && ok2 && ok3 && ok4) || hh > 23 || mm > 59 || ss > 59 {
		return 0, 0, false
	}
	d := time.Duration(days)*24*time.Hour + time.Duration(hh)*time.Hour +
		time.Duration(mm)*time.Minute + time.Duration(ss)*time.Second + time.Duration(ms)*time.Millisecond
	return d, i + 14, true
}

// stripWorld removes "cpu3:33421)" or "cpu10:2099084 opID=a9f5cca4)" when
// present, and returns the world id (33421), or 0; some 8.x lines have
// none ("9127.5:D:Disable PCIe VDM on PF0").
func stripWorld(b []byte) ([]byte, uint32) {
	if len(b) < 6 || b[0] != 'c' || b[1] != 'p' || b[2] != 'u' {
		return b, 0
	}
	i := 3
	for i < len(b) && isDigit(b[i]) {
		i++
	}
	if i == 3 || i >= len(b) || b[i] != ':' {
		return b, 0
	}
	i++
	start := i
	var world uint64
	for i < len(b) && isDigit(b[i]) {
		world = world*10 + uint64(b[i]-'0')
		i++
	}
	if i == start || i >= len(b) {
		return b, 0
	}
	if world > 1<<32-1 || i-start > 10 {
		world = 0 // not an id we can hold: the line still parses
	}
	if b[i] == ')' {
		return b[i+1:], uint32(world)
	}
	if b[i] != ' ' {
		return b, 0
	}
	// " opID=…)": the op id has no spaces and no parenthesis.
	for j := i + 1; j < len(b) && j < i+200; j++ {
		switch b[j] {
		case ')':
			return b[j+1:], uint32(world)
		case ' ', '(':
			return b, 0
		}
	}
	return b, 0
}

func validClock(h *header) bool {
	return h.mon >= 1 && h.mon <= 12 && h.day >= 1 && h.day <= 31 &&
		h.hour <= 23 && h.min <= 59 && h.sec <= 60
}

func num(b []byte) (int, bool) {
	n := 0
	for _, c := range b {
		if !isDigit(c) {
			return 0, false
		}
		n = n*10 + int(c-'0')
	}
	return n, len(b) > 0
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }
func isUpper(c byte) bool { return c >= 'A' && c <= 'Z' }
func isLower(c byte) bool { return c >= 'a' && c <= 'z' }

func hexVal(c byte) (byte, bool) {
	switch {
	case c >= '0' && c <= '9':
		return c - '0', true
	case c >= 'a' && c <= 'f':
		return c - 'a' + 10, true
	case c >= 'A' && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}
