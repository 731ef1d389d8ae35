package remediate

import (
	"fmt"
	"io"
	"regexp"
	"strings"
)

// Vmknic is one VMkernel NIC of `esxcfg-vmknic -l`: the host's own
// interface (management, vMotion, storage), never a VM's.
type Vmknic struct {
	Name string `json:"name"` // "vmk1"
	MAC  string `json:"mac"`  // normalised
}

var vmknicName = regexp.MustCompile(`^vmk[0-9]+$`)

// ParseVmknics parses `esxcfg-vmknic -l`, one row per NIC and address
// family (samples esxcfg-vmknic-l-*.txt):
//
//	Interface  Port Group/DVPort/Opaque Network        IP Family IP Address  …  MAC Address       MTU     TSO MSS   Enabled Type                NetStack
//	vmk1       ISCSI                                   IPv4      172.18.0.114 … 00:50:56:6b:b7:14 1500    65535     true    STATIC              defaultTcpipStack
//
// Columns differ by release (no IP Family, TSO MSS or NetStack on older
// ones), widths follow the values, a port group may hold blanks and an
// IPv6 row has no broadcast: a row is read by its tokens, not by columns.
// Its name is the first token; its MAC the last token that is a MAC and
// is followed by a number (the MTU), which no port group name, address or
// IPv6 address (eight groups or "::") can fake. Each NIC comes once,
// however many rows it has.
//
// The list is only trusted whole: output that does not start with the
// header, and any other line that is not a row, make an error wrapping
// ErrBadOutput (the NICs read so far come with it).
func ParseVmknics(r io.Reader) ([]Vmknic, error) {
	var (
		nics   []Vmknic
		header bool
		bad    int
		first  string
	)
	seen := map[Vmknic]bool{}
	err := scanLines(r, func(line string) {
		t := strings.TrimSpace(line)
		switch {
		case t == "":
			return
		case !header && strings.HasPrefix(t, "Interface"):
			header = true
			return
		}
		n, ok := parseVmknicRow(t)
		if !ok || !header {
			if bad == 0 {
				first = t
			}
			bad++
			return
		}
		if !seen[n] {
			seen[n] = true
			nics = append(nics, n)
		}
	})
	switch {
	case err != nil:
		return nics, fmt.Errorf("parse esxcfg-vmknic: %w", err)
	case !header && bad == 0:
		return nil, fmt.Errorf("parse esxcfg-vmknic: no header line: %w", ErrBadOutput)
	case !header:
		return nil, fmt.Errorf("parse esxcfg-vmknic: no header line, first line %s: %w", quoteClip(first), ErrBadOutput)
	case bad > 0:
		return nics, fmt.Errorf("parse esxcfg-vmknic: %d unrecognised lines, first %s: %w", bad, quoteClip(first), ErrBadOutput)
	}
	if nics == nil {
		nics = []Vmknic{}
	}
	return nics, nil
}

func parseVmknicRow(line string) (Vmknic, bool) {
	f := strings.Fields(line)
	if len(f) < 3 || !vmknicName.MatchString(f[0]) {
		return Vmknic{}, false
	}
	for i := len(f) - 2; i > 0; i-- {
		if !isDigits(f[i+1]) {
			continue
		}
		if mac, ok := NormalizeMAC(f[i]); ok && strings.Count(f[i], ":") == 5 {
			return Vmknic{Name: f[0], MAC: mac}, true
		}
	}
	return Vmknic{}, false
}

func isDigits(s string) bool {
	for _, r := range s {
		if r < '0' || r > '9' {
			return false
		}
	}
	return s != ""
}
