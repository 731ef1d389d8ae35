package remediate

import (
	"fmt"
	"io"
	"strconv"
	"strings"
)

// NetPort is one port of `net-stats -l`.
type NetPort struct {
	// PortNum is decimal in net-stats and hex in the vmkernel log
	// ("0x3000007" = 50331655).
	PortNum    uint32 `json:"port"`
	Type       int    `json:"type"`
	SubType    int    `json:"subtype"`
	SwitchName string `json:"switch"`
	MAC        string `json:"mac"`
	// ClientName is the rest of the line after the MAC and may hold
	// blanks ("NSX Manager.eth0"); VM ports read "<VM name>.ethN".
	ClientName string `json:"client"`
}

// PortID is the port number as the vmkernel log prints it ("0x3000007").
func (p NetPort) PortID() string { return "0x" + strconv.FormatUint(uint64(p.PortNum), 16) }

// ParsePortID reads a port number in the log's hex form ("0x3000007") or
// net-stats' decimal form ("50331655").
func ParsePortID(s string) (uint32, error) {
	s = strings.TrimSpace(s)
	var (
		n   uint64
		err error
	)
	if h, ok := strings.CutPrefix(strings.ToLower(s), "0x"); ok {
		n, err = strconv.ParseUint(h, 16, 32)
	} else {
		n, err = strconv.ParseUint(s, 10, 32)
	}
	if err != nil {
		return 0, fmt.Errorf("port id %s: %w", quoteClip(s), ErrBadOutput)
	}
	return uint32(n), nil
}

// ParseNetStats parses `net-stats -l`:
//
//	PortNum          Type SubType SwitchName       MACAddress         ClientName
//	100663359           5       9 DvsPortset-1     00:50:56:be:4d:12  NSX Manager.eth0
//
// The switch name is what lies between SubType and the MAC, the client
// name all that follows the MAC. Lines that are not rows are skipped and
// counted: the ports found are returned with an error wrapping
// ErrBadOutput that says how many.
func ParseNetStats(r io.Reader) ([]NetPort, error) {
	var (
		ports []NetPort
		bad   int
		first string
	)
	err := scanLines(r, func(line string) {
		t := strings.TrimSpace(line)
		if t == "" || strings.HasPrefix(t, "PortNum") {
			return
		}
		p, ok := parseNetStatsRow(t)
		if !ok {
			if bad == 0 {
				first = t
			}
			bad++
			return
		}
		ports = append(ports, p)
	})
	if err != nil {
		return ports, fmt.Errorf("parse net-stats: %w", err)
	}
	if bad > 0 {
		return ports, fmt.Errorf("parse net-stats: %d unrecognised lines, first %s: %w", bad, quoteClip(first), ErrBadOutput)
	}
	return ports, nil
}

func parseNetStatsRow(line string) (NetPort, bool) {
	rest := line
	next := func() string {
		rest = strings.TrimLeft(rest, " \t")
		i := strings.IndexAny(rest, " \t")
		if i < 0 {
			tok := rest
			rest = ""
			return tok
		}
		tok := rest[:i]
		rest = rest[i:]
		return tok
	}
	var p NetPort
	n, err := strconv.ParseUint(next(), 10, 32)
	if err != nil {
		return p, false
	}
	p.PortNum = uint32(n)
	if p.Type, err = strconv.Atoi(next()); err != nil {
		return p, false
	}
	if p.SubType, err = strconv.Atoi(next()); err != nil {
		return p, false
	}
	// The MAC is the first token after SubType that is one; the switch
	// name, which may hold blanks, comes before it.
	var sw []string
	for rest != "" {
		tok := next()
		if mac, ok := NormalizeMAC(tok); ok && len(sw) > 0 {
			p.SwitchName, p.MAC = strings.Join(sw, " "), mac
			p.ClientName = strings.TrimSpace(rest)
			return p, true
		}
		if tok != "" {
			sw = append(sw, tok)
		}
	}
	return p, false
}
