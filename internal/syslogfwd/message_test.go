package syslogfwd

import (
	"bytes"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/heapguard/heapguard/policy"
	"github.com/heapguard/heapguard/remediate"
)

var t0 = time.Date(2026, 7, 6, 1, 26, 46, 123456789, time.UTC)

func TestEncodeShapes(t *testing.T) {
	m := Message{Time: t0, Severity: SevNotice, MsgID: "power_off", Text: "plan=p1 action=power_off target=DSVA1"}
	for _, tc := range []struct {
		name     string
		f        Format
		hostname string
		want     string
	}{
		// PRI 29 = daemon (3) * 8 + notice (5); the day is space-padded.
		{"3164 remote", RFC3164, "esx01", "<29>Jul  6 01:26:46 esx01 heapguard[4242]: plan=p1 action=power_off target=DSVA1"},
		{"3164 local, no hostname", RFC3164, "", "<29>Jul  6 01:26:46 heapguard[4242]: plan=p1 action=power_off target=DSVA1"},
		{"5424", RFC5424, "esx01", "<29>1 2026-07-06T01:26:46.123456Z esx01 heapguard 4242 power_off - plan=p1 action=power_off target=DSVA1"},
		{"5424 no hostname", RFC5424, "", "<29>1 2026-07-06T01:26:46.123456Z - heapguard 4242 power_off - plan=p1 action=power_off target=DSVA1"},
		{"5424 hostname with a space", RFC5424, "esx 01", "<29>1 2026-07-06T01:26:46.123456Z esx01 heapguard 4242 power_off - plan=p1 action=power_off target=DSVA1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := string(Encode(tc.f, tc.hostname, 4242, m)); got != tc.want {
				t.Errorf("got  %q\nwant %q", got, tc.want)
			}
		})
	}
	// Text given to Encode directly loses its line breaks and controls.
	m.Text = "a\nb\r\u2028c\x00d\u0085e\xff"
	if got := string(Encode(RFC3164, "", 1, m)); !strings.HasSuffix(got, "]: a b  c d e\uFFFD") {
		t.Errorf("control characters kept: %q", got)
	}
	// Non-ASCII text in RFC 5424 is MSG-UTF8: opened by a BOM.
	m.Text = "target=Würzburg"
	if got := string(Encode(RFC5424, "h", 1, m)); !strings.HasSuffix(got, " - \uFEFFtarget=Würzburg") {
		t.Errorf("5424 UTF-8 text without its BOM: %q", got)
	}
}

func TestEntryMessage(t *testing.T) {
	e := remediate.Entry{
		Time: "2026-07-06T01:26:46.5Z", PlanID: "p1", Action: policy.ActPowerOff, Target: "DSVA1\nplan=forged action=restart_agent",
		VMID: "12", Result: remediate.ResultFailed, Error: "vim-cmd: timed out", Reason: "port 0x3000007 flapping 40 times in 2m",
	}
	m := EntryMessage(e)
	want := `plan=p1 action=power_off target="DSVA1\nplan=forged action=restart_agent" vmid=12 result=failed error="vim-cmd: timed out" reason="port 0x3000007 flapping 40 times in 2m"`
	if m.Text != want {
		t.Errorf("text\n got %s\nwant %s", m.Text, want)
	}
	if m.Severity != SevErr || m.MsgID != "power_off" || !m.Time.Equal(time.Date(2026, 7, 6, 1, 26, 46, 5e8, time.UTC)) {
		t.Errorf("severity %d, msgid %q, time %v", m.Severity, m.MsgID, m.Time)
	}
	for _, f := range []Format{RFC3164, RFC5424} {
		b := Encode(f, "esx01", 1, m)
		if bytes.ContainsAny(b, "\n\r") {
			t.Errorf("%s: a newline in the VM name broke the line: %q", f, b)
		}
	}
}

func TestEntrySeverity(t *testing.T) {
	for _, tc := range []struct {
		e    remediate.Entry
		want Severity
	}{
		{remediate.Entry{Action: remediate.ActDecide, Result: remediate.ResultOK}, SevInfo},
		{remediate.Entry{Action: policy.ActAlert, Result: remediate.ResultOK}, SevWarning},
		{remediate.Entry{Action: policy.ActPowerOff, Result: remediate.ResultStarted}, SevNotice},
		{remediate.Entry{Action: policy.ActPowerOff, Result: remediate.ResultOK, Mutated: true}, SevNotice},
		{remediate.Entry{Action: policy.ActPowerOff, Result: remediate.ResultDryRun, DryRun: true}, SevInfo},
		{remediate.Entry{Action: policy.ActPowerOff, Result: remediate.ResultSkipped}, SevInfo},
		{remediate.Entry{Action: policy.ActRestartAgent, Result: remediate.ResultFailed, Error: "exit 1"}, SevErr},
		{remediate.Entry{Action: policy.ActVerify, Result: remediate.ResultFailed, DryRun: true}, SevErr},
		{remediate.Entry{Action: remediate.ActStop, Result: remediate.ResultOK}, SevNotice},
	} {
		if got := EntrySeverity(tc.e); got != tc.want {
			t.Errorf("%s %s dry_run=%v: severity %d, want %d", tc.e.Action, tc.e.Result, tc.e.DryRun, got, tc.want)
		}
	}
}

// TestLongReasonsFit: a 5 KB reason, ASCII or of 2-, 3- and 4-byte
// characters at every alignment, ends within 1 KiB on a character
// boundary with the marker, in both formats.
func TestLongReasonsFit(t *testing.T) {
	reasons := map[string]string{"ascii": strings.Repeat("flap ", 1000)}
	for pad := range 4 {
		reasons["multibyte+"+strings.Repeat("x", pad)] = strings.Repeat("x", pad) + strings.Repeat("é日🙂", 400)
	}
	for name, reason := range reasons {
		e := remediate.Entry{Time: "2026-07-06T01:26:46Z", PlanID: "p1", Action: remediate.ActDecide, Target: "plan", Result: "ok", Reason: reason}
		for _, f := range []Format{RFC3164, RFC5424} {
			b := Encode(f, "esx01.example.com", 4242, EntryMessage(e))
			switch {
			case len(b) > MaxMessage:
				t.Errorf("%s %s: %d bytes, want at most %d", name, f, len(b), MaxMessage)
			case len(b) < MaxMessage-4:
				t.Errorf("%s %s: %d bytes, cut shorter than needed", name, f, len(b))
			case !utf8.Valid(b):
				t.Errorf("%s %s: invalid UTF-8 after shortening: %q", name, f, b[len(b)-20:])
			case !bytes.HasSuffix(b, []byte(truncMarker)):
				t.Errorf("%s %s: no truncation marker: %q", name, f, b[len(b)-20:])
			}
		}
	}
}

func TestParseFormat(t *testing.T) {
	for in, want := range map[string]Format{"3164": RFC3164, "5424": RFC5424, "RFC5424": RFC5424, " rfc3164 ": RFC3164} {
		if got, err := ParseFormat(in); err != nil || got != want {
			t.Errorf("ParseFormat(%q) = %v, %v", in, got, err)
		}
	}
	for _, in := range []string{"", "5425", "json"} {
		if _, err := ParseFormat(in); err == nil {
			t.Errorf("ParseFormat(%q): no error", in)
		}
	}
}

// FuzzEncodeEntry: any entry, in either format, is one line of valid
// UTF-8 within MaxMessage.
func FuzzEncodeEntry(f *testing.F) {
	f.Add("p1", "power_off", "DSVA1", "12", "failed", "boom", "flapping", "esx01", false)
	f.Add("", "", "", "", "", "", "", "", true)
	f.Add("p\n2", "de\x00cide", "VM\u2028x\r\n", "\xff\xfe", "ok", strings.Repeat("é", 700), strings.Repeat("日\x85", 900), "h o\nst", true)
	f.Add("p", "alert", "\"quoted\" \\name", "1", "ok", "", strings.Repeat("a", 5000), strings.Repeat("h", 300), false)
	f.Fuzz(func(t *testing.T, plan, action, target, vmid, result, errText, reason, hostname string, five bool) {
		e := remediate.Entry{PlanID: plan, Action: policy.ActionKind(action), Target: target, VMID: vmid, Result: result, Error: errText, Reason: reason}
		format := RFC3164
		if five {
			format = RFC5424
		}
		// An entry, and raw text given to Encode directly.
		for _, m := range []Message{EntryMessage(e), {Severity: SevInfo, MsgID: action, Text: reason}} {
			b := Encode(format, hostname, 4242, m)
			if len(b) > MaxMessage {
				t.Fatalf("%d bytes > %d", len(b), MaxMessage)
			}
			if !utf8.Valid(b) {
				t.Fatalf("invalid UTF-8: %q", b)
			}
			if bytes.ContainsAny(b, "\n\r\x00") || strings.ContainsAny(string(b), "\u2028\u2029\u0085") {
				t.Fatalf("line break or NUL in %q", b)
			}
			if !bytes.HasPrefix(b, []byte("<")) || !bytes.Contains(b, []byte(Tag)) {
				t.Fatalf("no header: %q", b)
			}
		}
	})
}
