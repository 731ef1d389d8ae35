package collector

import (
	"bytes"
)

// The messages we track are matched by their words, never by the module
// before them (NetPort: or Uplink:) nor by the source-line number (982, 9893),
// which both change between builds. Every tracked message contains one of
// three markers; each marker has an anchor byte that is rare in vmkernel
// logs, so a scan can jump between anchors with bytes.IndexByte instead of
// looking at every line.
type marker struct {
	text   string
	anchor int // index in text of the rare byte searched for
}

var markers = [...]marker{
	{"abled port 0x", 1}, // 'b': "disabled port 0x…", "enabled port 0x…"
	{"Heap", 0},          // 'H': "Heap x already at its maximum…", "Heap_Align(…"
	{"Dump", 0},          // 'D': "wantCoreDump : vpxa", "UserDump: …Dumping cartel"
}

// nextMarker returns the index in b, at or after from, where marker m
// starts, or len(b).
func nextMarker(b []byte, from int, m *marker) int {
	a := m.text[m.anchor]
	n := len(m.text)
	for i := from + m.anchor; i < len(b); {
		j := bytes.IndexByte(b[i:], a)
		if j < 0 {
			break
		}
		s := i + j - m.anchor
		if s >= from && s+n <= len(b) && string(b[s:s+n]) == m.text {
			return s
		}
		i += j + 1
	}
	return len(b)
}

// classify turns a message (after header and world part) into an event.
func classify(msg []byte) Event {
	ev, _ := classifyAt(msg)
	return ev
}

// classifyAt is classify that also says where in msg the event's words
// start ("disabled port …", "Heap …", "wantCoreDump …", "Dumping cartel …").
func classifyAt(msg []byte) (Event, int) {
	for i := nextMarker(msg, 0, &markers[0]); i < len(msg); i = nextMarker(msg, i+1, &markers[0]) {
		if ev, ok := portEvent(msg, i); ok {
			if ev.Kind == KindPortDisabled {
				return ev, i - 3
			}
			return ev, i - 2
		}
	}
	for i := nextMarker(msg, 0, &markers[1]); i < len(msg); i = nextMarker(msg, i+1, &markers[1]) {
		if ev, ok := heapEvent(msg, i); ok {
			return ev, i
		}
	}
	for i := nextMarker(msg, 0, &markers[2]); i < len(msg); i = nextMarker(msg, i+1, &markers[2]) {
		if ev, ok := dumpEvent(msg, i); ok {
			if ev.Kind == KindCoreDump {
				return ev, i - len("wantCore")
			}
			return ev, i
		}
	}
	return Event{Kind: KindOther}, 0
}

// untimedEvent reads a known event in a line whose header is in no known
// format: the stamp masked by whoever published it, a line copied from the
// console, a prefix added by some relay. Without a header anything could
// be around the words, so they must come right after the vmkernel module
// and source line that write them ("NetPort: 1426: disabled port 0x…",
// "Heap: 2525: Heap vmfs3 already at its maximum size", "User: 2432:
// wantCoreDump : …", "UserDump: 1485: Dumping cartel …"); an English
// sentence that happens to hold the words does not count.
func untimedEvent(line []byte) (Event, bool) {
	ev, at := classifyAt(line)
	var ok bool
	switch ev.Kind {
	case KindPortDisabled, KindPortEnabled:
		ok = moduleBefore(line[:at], "NetPort") || moduleBefore(line[:at], "Uplink")
	case KindHeapMaxed, KindHeapAlignFailed:
		ok = moduleBefore(line[:at], "Heap")
	case KindCoreDump:
		ok = moduleBefore(line[:at], "User")
	case KindUserDump:
		ok = moduleBefore(line[:at], "UserDump")
	}
	if !ok {
		return Event{}, false
	}
	if ev.Kind == KindCoreDump {
		// The module's start: where moduleBefore found "User".
		ev.World = worldBefore(line[:bytes.LastIndex(line[:at], []byte("User:"))])
	}
	return ev, true
}

// moduleBefore reports whether pre ends with "<module>: <source line>: ",
// the module standing alone ("WARNING:Heap: 2525: ", "cpu6:3476319)User: 2428: ").
func moduleBefore(pre []byte, module string) bool {
	n := len(pre)
	if n < 2 || pre[n-1] != ' ' || pre[n-2] != ':' {
		return false
	}
	k := n - 2
	for k > 0 && isDigit(pre[k-1]) {
		k--
	}
	if k == n-2 || k < 2 || pre[k-1] != ' ' || pre[k-2] != ':' {
		return false
	}
	end := k - 2
	start := end - len(module)
	if start < 0 || string(pre[start:end]) != module {
		return false
	}
	return start == 0 || !isWordByte(pre[start-1])
}

// portEvent reads "disabled port 0x3000007" or "enabled port 0x3000007 with
// mac 00:50:56:84:5a:b4"; i is where "abled port 0x" starts.
func portEvent(msg []byte, i int) (Event, bool) {
	var ev Event
	var word int
	switch {
	case i >= 3 && string(msg[i-3:i]) == "dis":
		ev.Kind, word = KindPortDisabled, i-3
	case i >= 2 && string(msg[i-2:i]) == "en":
		ev.Kind, word = KindPortEnabled, i-2
	default:
		return ev, false
	}
	if word > 0 && isWordByte(msg[word-1]) {
		return ev, false // "reenabled", "undisabled": not the messages we know
	}
	j := i + len("abled port 0x")
	var v uint64
	start := j
	for ; j < len(msg); j++ {
		d, ok := hexVal(msg[j])
		if !ok {
			break
		}
		v = v<<4 | uint64(d)
		if j-start >= 8 {
			return ev, false // more than 32 bits
		}
	}
	if j == start || (j < len(msg) && isWordByte(msg[j])) {
		return ev, false
	}
	ev.Port = Port(v)
	if ev.Kind == KindPortEnabled {
		const with = " with mac "
		if len(msg)-j >= len(with)+17 && string(msg[j:j+len(with)]) == with {
			m := msg[j+len(with):]
			if len(m) == 17 || !isWordByte(m[17]) && m[17] != ':' {
				ev.MAC, ev.MACKnown = parseMAC(m[:17])
			}
		}
	}
	return ev, true
}

// heapEvent reads "Heap netGPHeap already at its maximumSize" (4.x),
// "Heap vmfs3 already at its maximum size" (later) and "Heap_Align(netGPHeap,
// 4364/4364 bytes, 8 align) failed"; i is where "Heap" starts.
func heapEvent(msg []byte, i int) (Event, bool) {
	if i > 0 && isWordByte(msg[i-1]) {
		return Event{}, false // "netGPHeap" itself
	}
	rest := msg[i+len("Heap"):]
	if len(rest) > 7 && string(rest[:7]) == "_Align(" {
		rest = rest[7:]
		c := bytes.IndexByte(rest, ',')
		p := bytes.IndexByte(rest, ')')
		if c <= 0 || p < c || !bytes.HasPrefix(rest[p+1:], []byte(" failed")) {
			return Event{}, false
		}
		return Event{Kind: KindHeapAlignFailed, Heap: heapBase(rest[:c])}, true
	}
	if len(rest) < 2 || rest[0] != ' ' {
		return Event{}, false
	}
	rest = rest[1:]
	sp := bytes.IndexByte(rest, ' ')
	if sp <= 0 {
		return Event{}, false
	}
	const tail = " already at its maximum"
	if !bytes.HasPrefix(rest[sp:], []byte(tail)) {
		return Event{}, false
	}
	return Event{Kind: KindHeapMaxed, Heap: heapBase(rest[:sp])}, true
}

// heapBase drops vsish's address suffix: "netGPHeap-0x410001000000" ->
// "netGPHeap". Same rule as heap.BaseName (the last "-0x" followed by hex
// only), so the log's heap names and vsish's agree.
func heapBase(b []byte) string {
	k := bytes.LastIndex(b, []byte("-0x"))
	if k <= 0 || k+3 == len(b) {
		return string(b)
	}
	for _, c := range b[k+3:] {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
			return string(b)
		}
	}
	return string(b[:k])
}

// dumpEvent reads "wantCoreDump : vpxa -enabled : 1" and "Dumping cartel
// 14235 (from world 14258) to file /var/core/vpxa-zdump.000 ..."; i is where
// "Dump" starts.
func dumpEvent(msg []byte, i int) (Event, bool) {
	if i >= 8 && string(msg[i-8:i]) == "wantCore" {
		rest := bytes.TrimLeft(msg[i+len("Dump"):], " ")
		if len(rest) == 0 || rest[0] != ':' {
			return Event{}, false
		}
		rest = bytes.TrimLeft(rest[1:], " ")
		name := token(rest)
		if len(name) == 0 {
			return Event{}, false
		}
		return Event{Kind: KindCoreDump, Process: string(name)}, true
	}
	if !bytes.HasPrefix(msg[i:], []byte("Dumping cartel ")) {
		return Event{}, false
	}
	const toFile = " to file "
	k := bytes.Index(msg[i:], []byte(toFile))
	if k < 0 {
		return Event{}, false
	}
	path := token(msg[i+k+len(toFile):])
	base := path[bytes.LastIndexByte(path, '/')+1:]
	if z := bytes.Index(base, []byte("-zdump")); z >= 0 {
		base = base[:z]
	} else if d := bytes.IndexByte(base, '.'); d >= 0 {
		base = base[:d]
	}
	if len(base) == 0 {
		return Event{}, false
	}
	return Event{Kind: KindUserDump, Process: string(base), World: fromWorld(msg[i : i+k]), CoreFile: string(path)}, true
}

// fromWorld reads W in "Dumping cartel 14235 (from world 14258)", or 0.
func fromWorld(b []byte) uint32 {
	const from = "(from world "
	k := bytes.Index(b, []byte(from))
	if k < 0 {
		return 0
	}
	var w uint64
	j := k + len(from)
	for start := j; j < len(b) && isDigit(b[j]) && j-start < 10; j++ {
		w = w*10 + uint64(b[j]-'0')
	}
	if j == len(b) || b[j] != ')' || w > 1<<32-1 {
		return 0
	}
	return uint32(w)
}

// worldBefore finds the "cpuN:W)" world part that ends pre or sits just
// before a "WARNING: " or similar word ("cpu6:3476319)User: 2428: " was
// cut to "cpu6:3476319)"), for a line without a known header; 0 if none.
func worldBefore(pre []byte) uint32 {
	c := bytes.LastIndex(pre, []byte("cpu"))
	if c < 0 {
		return 0
	}
	rest, w := stripWorld(pre[c:])
	if w == 0 || len(rest) > 0 && (len(rest) > 16 || bytes.IndexByte(rest, ' ') >= 0 && !bytes.HasPrefix(rest, []byte("WARNING: "))) {
		return 0
	}
	return w
}

func token(b []byte) []byte {
	if sp := bytes.IndexByte(b, ' '); sp >= 0 {
		return b[:sp]
	}
	return b
}

func isWordByte(c byte) bool {
	return isDigit(c) || isUpper(c) || isLower(c) || c == '_'
}

// parseMAC reads exactly "xx:xx:xx:xx:xx:xx".
func parseMAC(b []byte) (MAC, bool) {
	var m MAC
	if len(b) != 17 {
		return m, false
	}
	for i := range m {
		if i > 0 && b[i*3-1] != ':' {
			return MAC{}, false
		}
		hi, ok1 := hexVal(b[i*3])
		lo, ok2 := hexVal(b[i*3+1])
		if !ok1 || !ok2 {
			return MAC{}, false
		}
		m[i] = hi<<4 | lo
	}
	return m, true
}
