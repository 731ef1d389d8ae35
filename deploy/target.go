package deploy

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strconv"
	"strings"
)

// ErrTarget marks a host that cannot be parsed; errors wrapping it carry
// the text and, from a hosts file, its line number.
var ErrTarget = errors.New("bad host")

// DefaultPort is SSH's port, used when a host names none.
const DefaultPort = 22

// Target is one host to deploy to: [user@]host[:port]. User is empty when
// the host named none (the caller's default applies).
type Target struct {
	User string
	Host string // a name, an IPv4 address or an IPv6 address without brackets
	Port int
}

// Addr is host:port for net.Dial, IPv6 in brackets.
func (t Target) Addr() string { return net.JoinHostPort(t.Host, strconv.Itoa(t.Port)) }

// String is the target as it can be parsed back: [user@]host:port.
func (t Target) String() string {
	if t.User == "" {
		return t.Addr()
	}
	return t.User + "@" + t.Addr()
}

// ParseTarget reads one [user@]host[:port]. An IPv6 address must be in
// brackets ([::1] or [::1]:2222), so that a port is never mistaken for
// its last group.
func ParseTarget(s string) (Target, error) {
	bad := func(why string) (Target, error) { return Target{}, fmt.Errorf("%w %q: %s", ErrTarget, s, why) }
	if s == "" {
		return bad("empty")
	}
	for _, r := range s {
		if r <= ' ' || r == 0x7f {
			return bad("contains a space or control character")
		}
	}
	t := Target{Port: DefaultPort}
	hostport := s
	// The last @ splits: a user may be user@domain.
	if i := strings.LastIndexByte(s, '@'); i >= 0 {
		t.User, hostport = s[:i], s[i+1:]
		if t.User == "" {
			return bad("empty user before @")
		}
		if strings.HasPrefix(t.User, "-") {
			return bad("user starts with -")
		}
	}
	host, port := hostport, ""
	switch {
	case strings.HasPrefix(hostport, "["):
		end := strings.IndexByte(hostport, ']')
		if end < 0 {
			return bad("[ without ]")
		}
		host = hostport[1:end]
		rest := hostport[end+1:]
		if rest != "" {
			p, ok := strings.CutPrefix(rest, ":")
			if !ok {
				return bad("text after ]: want [IPv6]:port")
			}
			port = p
			if port == "" {
				return bad("empty port")
			}
		}
		a, err := netip.ParseAddr(host)
		if err != nil || !a.Is6() || a.Is4In6() {
			return bad("brackets hold an IPv6 address, not " + strconv.Quote(host))
		}
	case strings.Count(hostport, ":") > 1:
		return bad("an IPv6 address goes in brackets: [::1] or [::1]:22")
	default:
		if i := strings.IndexByte(hostport, ':'); i >= 0 {
			host, port = hostport[:i], hostport[i+1:]
			if port == "" {
				return bad("empty port")
			}
		}
		if err := checkHostName(host); err != nil {
			return bad(err.Error())
		}
	}
	if port != "" {
		n, err := strconv.Atoi(port)
		if err != nil || n < 1 || n > 65535 || port[0] == '+' || port[0] == '0' {
			return bad("port " + strconv.Quote(port) + ": want 1 to 65535")
		}
		t.Port = n
	}
	t.Host = host
	return t, nil
}

// checkHostName accepts a DNS name or an IPv4 address: letters, digits,
// '-', '_' and '.', not starting with '-' or '.'.
func checkHostName(h string) error {
	if h == "" {
		return errors.New("empty host")
	}
	if len(h) > 253 {
		return errors.New("host name longer than 253 characters")
	}
	if h[0] == '-' || h[0] == '.' {
		return errors.New("host starts with " + h[:1])
	}
	for _, r := range h {
		ok := r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.'
		if !ok {
			return fmt.Errorf("character %q not allowed in a host name", r)
		}
	}
	return nil
}

// ParseHosts reads a hosts file: one [user@]host[:port] per line, '#'
// starts a comment, blank lines are skipped. An error names the first bad
// line; a host listed twice (same user, host and port) is an error too.
func ParseHosts(r io.Reader) ([]Target, error) {
	var targets []Target
	seen := map[Target]int{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 4096), 64*1024)
	n := 0
	for sc.Scan() {
		n++
		line, _, _ := strings.Cut(sc.Text(), "#")
		fields := strings.Fields(line)
		switch len(fields) {
		case 0:
			continue
		case 1:
		default:
			return nil, fmt.Errorf("line %d: %w: %d hosts on one line: want one per line", n, ErrTarget, len(fields))
		}
		t, err := ParseTarget(fields[0])
		if err != nil {
			return nil, fmt.Errorf("line %d: %w", n, err)
		}
		if first, dup := seen[t]; dup {
			return nil, fmt.Errorf("line %d: %w %q: already on line %d", n, ErrTarget, fields[0], first)
		}
		seen[t] = n
		targets = append(targets, t)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("line %d: %w", n+1, err)
	}
	return targets, nil
}
