package remediate

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// ErrBadOutput is wrapped when a command's output is not what the parser
// knows (a different tool, an error message, garbage).
var ErrBadOutput = errors.New("unrecognised command output")

// maxParseLine bounds one line of command output or .vmx file.
const maxParseLine = 256 << 10

// scanLines calls fn for every line of r, without its line ending ("\r\n"
// too), and returns the first read error (a line longer than maxParseLine
// included).
func scanLines(r io.Reader, fn func(line string)) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 4096), maxParseLine)
	for sc.Scan() {
		fn(strings.TrimSuffix(sc.Text(), "\r"))
	}
	return sc.Err()
}

// quoteClip quotes s for an error message, shortened.
func quoteClip(s string) string {
	const n = 80
	if len(s) > n {
		s = s[:n] + "…"
	}
	return strconv.Quote(s)
}

// NormalizeMAC returns a MAC address as six lower-case, two-digit hex
// octets separated by ":" ("00:50:56:84:5a:b4"). It accepts ":" or "-"
// separators, either case and one-digit octets; ok is false otherwise.
func NormalizeMAC(s string) (string, bool) {
	s = strings.TrimSpace(s)
	sep := ":"
	if !strings.Contains(s, ":") {
		sep = "-"
	}
	parts := strings.Split(s, sep)
	if len(parts) != 6 {
		return "", false
	}
	var b strings.Builder
	for i, p := range parts {
		if len(p) < 1 || len(p) > 2 {
			return "", false
		}
		v, err := strconv.ParseUint(p, 16, 8)
		if err != nil {
			return "", false
		}
		if i > 0 {
			b.WriteByte(':')
		}
		fmt.Fprintf(&b, "%02x", v)
	}
	return b.String(), true
}
