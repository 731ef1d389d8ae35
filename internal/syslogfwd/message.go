// Package syslogfwd sends a copy of heapguard's journal to syslog: one
// message per entry, RFC 3164 or RFC 5424, at most 1 KiB each (ESXi's
// default limit for forwarded messages), from a bounded queue that never
// makes the agent wait. The journal on disk stays the record.
package syslogfwd

import (
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/heapguard/heapguard/remediate"
)

// Severity is a syslog severity (RFC 5424 6.2.1).
type Severity int

// The severities heapguard uses.
const (
	SevErr     Severity = 3
	SevWarning Severity = 4
	SevNotice  Severity = 5
	SevInfo    Severity = 6
)

// FacilityDaemon is the facility of every message, as `logger -p daemon.*`.
const FacilityDaemon = 3

// Tag is the program name in every message (APP-NAME in RFC 5424).
const Tag = "heapguard"

// MaxMessage is the most bytes one message takes, header included:
// ESXi truncates longer forwarded messages by default.
const MaxMessage = 1024

// truncMarker ends a message that was shortened to MaxMessage.
const truncMarker = "…[truncated]"

// Format is the wire format of a message.
type Format int

// The formats: BSD syslog, the default, and the structured RFC 5424.
const (
	RFC3164 Format = iota
	RFC5424
)

// ParseFormat reads "3164" or "5424" (an "rfc" prefix is allowed).
func ParseFormat(s string) (Format, error) {
	switch strings.TrimPrefix(strings.ToLower(strings.TrimSpace(s)), "rfc") {
	case "3164":
		return RFC3164, nil
	case "5424":
		return RFC5424, nil
	}
	return 0, fmt.Errorf("syslog format %q: want 3164 or 5424", s)
}

func (f Format) String() string {
	if f == RFC5424 {
		return "5424"
	}
	return "3164"
}

// Message is one syslog message before encoding.
type Message struct {
	Time     time.Time
	Severity Severity
	// MsgID is RFC 5424's MSGID (the journal action); unused in RFC 3164.
	MsgID string
	Text  string
}

// errorBudget bounds an entry's error text so the reason, after it, keeps
// room within MaxMessage.
const errorBudget = 256

// EntryMessage renders a journal entry as one readable line:
//
//	plan=p1 action=power_off target=DSVA1 vmid=12 result=failed error="..." reason="..."
//
// Values that hold spaces, quotes, control characters or invalid UTF-8
// are quoted Go-style, so a VM name with a newline stays on its line.
// The reason comes last: it is the longest, and what Encode shortens.
func EntryMessage(e remediate.Entry) Message {
	t, err := time.Parse(time.RFC3339Nano, e.Time)
	if err != nil {
		t = time.Now()
	}
	var b strings.Builder
	field := func(name, value string) {
		if b.Len() > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(name)
		b.WriteByte('=')
		b.WriteString(quoteIfNeeded(value))
	}
	if e.PlanID != "" {
		field("plan", e.PlanID)
	}
	field("action", string(e.Action))
	if e.Target != "" {
		field("target", e.Target)
	}
	if e.VMID != "" {
		field("vmid", e.VMID)
	}
	field("result", e.Result)
	if e.DryRun {
		field("dry_run", "true")
	}
	if e.Error != "" {
		field("error", shorten(e.Error, errorBudget))
	}
	if e.Reason != "" {
		field("reason", e.Reason)
	}
	return Message{Time: t, Severity: EntrySeverity(e), MsgID: string(e.Action), Text: b.String()}
}

// EntrySeverity: a failure is err; an alert warning; a live power-off,
// agent restart or stop notice (the host changes or the guard goes away);
// decisions, verifications, skipped steps and anything in a dry run info.
func EntrySeverity(e remediate.Entry) Severity {
	switch {
	case e.Result == remediate.ResultFailed || e.Error != "":
		return SevErr
	case e.DryRun:
		return SevInfo
	case e.Action == "alert":
		return SevWarning
	case e.Result == remediate.ResultSkipped:
		return SevInfo
	case e.Action == "power_off" || e.Action == "restart_agent" || e.Action == remediate.ActStop:
		return SevNotice
	}
	return SevInfo
}

// quoteIfNeeded leaves plain words alone and quotes the rest.
func quoteIfNeeded(s string) string {
	if s == "" {
		return `""`
	}
	for _, r := range s {
		if r == utf8.RuneError || r == ' ' || r == '"' || r == '=' || r == '\\' || !unicode.IsPrint(r) {
			return strconv.Quote(s)
		}
	}
	return s
}

// shorten cuts s to at most max bytes on a rune boundary, marking the cut.
func shorten(s string, max int) string {
	if len(s) <= max {
		return s
	}
	return cutRunes(s, max-len("…")) + "…"
}

// cutRunes is the longest prefix of s of at most n bytes that does not
// end inside a UTF-8 sequence.
func cutRunes(s string, n int) string {
	if n <= 0 {
		return ""
	}
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

// cleanText makes s safe for one line: valid UTF-8, control characters
// (C0, DEL, C1) and line or paragraph separators replaced by a space.
func cleanText(s string) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	return strings.Map(func(r rune) rune {
		if unicode.IsControl(r) || r == '\u2028' || r == '\u2029' {
			return ' '
		}
		return r
	}, s)
}

// headerToken makes s a header field: printable ASCII without spaces (RFC
// 5424 PRINTUSASCII), at most max bytes, "-" when nothing is left.
func headerToken(s string, max int) string {
	s = strings.Map(func(r rune) rune {
		if r < 33 || r > 126 {
			return -1
		}
		return r
	}, s)
	if len(s) > max {
		s = s[:max]
	}
	if s == "" {
		return "-"
	}
	return s
}

// Encode renders m: facility daemon, tag heapguard[pid]. hostname "" leaves
// the RFC 3164 HOSTNAME out, as syslog(3) does on the local socket, where
// the daemon adds its own. The result is one line (no newline: framing is
// the transport's) of at most MaxMessage bytes of valid UTF-8; a text that
// does not fit is cut on a character boundary and ends with "…[truncated]".
func Encode(f Format, hostname string, pid int, m Message) []byte {
	pri := FacilityDaemon*8 + int(m.Severity)
	t := m.Time.UTC()
	var hdr string
	text := cleanText(m.Text)
	if f == RFC5424 {
		// MSG is MSG-UTF8, opened by a BOM, only when it is not plain ASCII.
		bom := ""
		for i := 0; i < len(text); i++ {
			if text[i] >= utf8.RuneSelf {
				bom = "\uFEFF"
				break
			}
		}
		hdr = fmt.Sprintf("<%d>1 %s %s %s %d %s - %s", pri, t.Format("2006-01-02T15:04:05.000000Z"),
			headerToken(hostname, 255), Tag, pid, headerToken(m.MsgID, 32), bom)
	} else {
		host := ""
		if h := headerToken(hostname, 255); h != "-" {
			host = h + " "
		}
		hdr = fmt.Sprintf("<%d>%s %s%s[%d]: ", pri, t.Format(time.Stamp), host, Tag, pid)
	}
	if len(hdr)+len(text) > MaxMessage {
		text = cutRunes(text, MaxMessage-len(hdr)-len(truncMarker)) + truncMarker
	}
	return append([]byte(hdr), text...)
}
