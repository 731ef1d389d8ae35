package collector

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// ErrUnparsed marks a line in no known log format. Callers count and skip it.
var ErrUnparsed = errors.New("collector: line in no known format")

// Format is the shape of a log line's header, detected per line.
type Format uint8

const (
	FormatUnknown Format = iota
	// FormatSyslog is 4.x/5.0 /var/log/messages: "Jul 26 01:26:46 vmkernel: 7:21:06:31.191 cpu3:33421)…".
	FormatSyslog
	// FormatISO is 5.1–7.x vmkernel.log: "2013-08-20T12:00:00.123Z cpu3:33421)…".
	FormatISO
	// Format8x is 8.x and later: "2026-04-10T08:27:13.470Z In(182) vmkernel: cpu2:2097999)…".
	Format8x
)

var formatNames = [...]string{"unknown", "syslog-4x", "iso-5x", "esxi-8x"}

func (f Format) String() string {
	if int(f) < len(formatNames) {
		return formatNames[f]
	}
	return "format(" + strconv.Itoa(int(f)) + ")"
}

// Kind tells what a line reports.
type Kind uint8

const (
	// KindOther is any line in a known format that reports nothing we track.
	KindOther Kind = iota
	KindPortDisabled
	KindPortEnabled
	// KindHeapMaxed: "Heap netGPHeap already at its maximumSize. Cannot expand."
	KindHeapMaxed
	// KindHeapAlignFailed: "Heap_Align(netGPHeap, 4364/4364 bytes, 8 align) failed."
	KindHeapAlignFailed
	// KindCoreDump: "User: 2432: wantCoreDump : vpxa -enabled : 1".
	KindCoreDump
	// KindUserDump: "UserDump: 1485: Dumping cartel … to file /var/core/vpxa-zdump.000 ...".
	KindUserDump
	// KindAgentCrash: an agent's crash in vobd.log or hostd.log (see
	// agentCrash), never in a vmkernel log.
	KindAgentCrash
	// KindContinuation is an untimed line that continues the record before
	// it. Only a Parser (which knows the previous line) returns it.
	KindContinuation
)

var kindNames = [...]string{"other", "port_disabled", "port_enabled", "heap_maxed",
	"heap_align_failed", "core_dump", "user_dump", "agent_crash", "continuation"}

func (k Kind) String() string {
	if int(k) < len(kindNames) {
		return kindNames[k]
	}
	return "kind(" + strconv.Itoa(int(k)) + ")"
}

// MarshalText writes the kind's name, so JSON shows "heap_maxed", not 3.
func (k Kind) MarshalText() ([]byte, error) { return []byte(k.String()), nil }

// UnmarshalText reads a name written by MarshalText.
func (k *Kind) UnmarshalText(b []byte) error {
	for i, n := range kindNames {
		if n == string(b) {
			*k = Kind(i)
			return nil
		}
	}
	return fmt.Errorf("unknown event kind %q", b)
}

// Port is a virtual switch port id. The log writes it in hex ("0x3000007"),
// net-stats -l in decimal (50331655).
type Port uint32

func (p Port) String() string { return "0x" + strconv.FormatUint(uint64(p), 16) }

// MarshalText writes the log's hex form; it also makes Port usable as a JSON map key.
func (p Port) MarshalText() ([]byte, error) { return []byte(p.String()), nil }

// UnmarshalText accepts what ParsePort accepts.
func (p *Port) UnmarshalText(b []byte) error {
	v, err := ParsePort(string(b))
	if err != nil {
		return err
	}
	*p = v
	return nil
}

// ParsePort reads "0x3000007" (log form) or "50331655" (net-stats form).
func ParsePort(s string) (Port, error) {
	base, digits := 10, s
	if strings.HasPrefix(s, "0x") || strings.HasPrefix(s, "0X") {
		base, digits = 16, s[2:]
	}
	v, err := strconv.ParseUint(digits, base, 32)
	if err != nil {
		return 0, fmt.Errorf("parse port %q: %w", s, err)
	}
	return Port(v), nil
}

// MAC is a 48-bit Ethernet address.
type MAC [6]byte

const hexDigits = "0123456789abcdef"

// String gives the lower-case colon form the log and .vmx files use.
func (m MAC) String() string {
	var b [17]byte
	for i, v := range m {
		if i > 0 {
			b[i*3-1] = ':'
		}
		b[i*3] = hexDigits[v>>4]
		b[i*3+1] = hexDigits[v&0xf]
	}
	return string(b[:])
}

// MarshalText writes the colon form.
func (m MAC) MarshalText() ([]byte, error) { return []byte(m.String()), nil }

// UnmarshalText reads the colon form.
func (m *MAC) UnmarshalText(b []byte) error {
	v, ok := parseMAC(b)
	if !ok {
		return fmt.Errorf("parse mac %q: not six colon-separated hex bytes", b)
	}
	*m = v
	return nil
}

// ParseMAC reads "00:50:56:84:5a:b4" (either case).
func ParseMAC(s string) (MAC, error) {
	var m MAC
	err := m.UnmarshalText([]byte(s))
	return m, err
}

// Event is one parsed log line.
type Event struct {
	Kind   Kind
	Format Format
	// Time is the line's stamp in UTC. Zero for continuation lines, and for
	// an event read from a line whose header is in no known format
	// (Format FormatUnknown): its time is unknown, the event still counts.
	Time time.Time
	// Uptime is the 4.x "days:h:m:s.ms" stamp; HasUptime says it was there.
	Uptime    time.Duration
	HasUptime bool
	// Port is set for KindPortDisabled and KindPortEnabled.
	Port Port
	// MAC is set for KindPortEnabled when MACKnown; a masked or missing MAC
	// ("70:5a:0f:XX:XX:XX") leaves MACKnown false.
	MAC      MAC
	MACKnown bool
	// Heap is the heap's base name ("netGPHeap", without "-0x…") for the heap kinds.
	Heap string
	// Process is the dumped program ("vpxa", "hostd-worker") for the dump kinds.
	Process string
	// World is, for the dump kinds, the world whose crash the line
	// reports: the one that wrote a wantCoreDump line (its "cpuN:W)"), the
	// "from world W" of a UserDump line; 0 when the line does not say.
	// The two lines of one crash share it.
	World uint32
	// CoreFile is the core's path when the line names it
	// ("/var/core/vpxa-zdump.000"), for the dump kinds.
	CoreFile string
	// Agent is the agent a KindAgentCrash line names by its binary's path.
	Agent string
}
