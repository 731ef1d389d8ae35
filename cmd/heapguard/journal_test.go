package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/heapguard/heapguard/policy"
	"github.com/heapguard/heapguard/remediate"
)

// journalLines are the journal's lines as in the file.
func journalLines(t *testing.T, state string) []string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(state, remediate.JournalFile))
	if err != nil {
		t.Fatal(err)
	}
	return strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
}

// TestJournalFilters: on a journal real checks wrote (three power-offs,
// a restart, a verification), the text has one line per entry, --action
// keeps what it names, --json gives the file's own lines, --since cuts
// by host time, and an unknown action is a usage error naming the
// valid ones.
func TestJournalFilters(t *testing.T) {
	h, state := spendBudget(t)
	entries := readJournal(t, state)
	lines := journalLines(t, state)
	journal := func(args ...string) (int, string, string) {
		return runCLI(t, append([]string{"journal", "--state-dir", state, "--root", h.Root()}, args...)...)
	}

	code, out, stderr := journal()
	got := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	if code != exitOK || len(got) != len(entries) || stderr != "" {
		t.Fatalf("journal: exit %d, %d lines for %d entries, stderr %q", code, len(got), len(entries), stderr)
	}
	for i, e := range entries {
		if !strings.HasPrefix(got[i], e.Time[:19]+"Z  "+e.PlanID[len(e.PlanID)-8:]+"  "+string(e.Action)) {
			t.Errorf("line %d %q does not start with the entry's time, short plan id and action (%+v)", i, got[i], e)
		}
	}

	count := func(pred func(remediate.Entry) bool) int {
		n := 0
		for _, e := range entries {
			if pred(e) {
				n++
			}
		}
		return n
	}
	for _, tc := range []struct {
		action string
		kinds  []policy.ActionKind
	}{
		{"power-off", []policy.ActionKind{policy.ActPowerOff}},
		{"restart,verify", []policy.ActionKind{policy.ActRestartAgent, policy.ActVerify}},
		{"decision", []policy.ActionKind{remediate.ActDecide}},
	} {
		code, out, _ := journal("--action", tc.action)
		want := count(func(e remediate.Entry) bool { return policyKindIn(e.Action, tc.kinds) })
		got := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
		if code != exitOK || want == 0 || len(got) != want {
			t.Errorf("--action %s: exit %d, %d lines, want %d", tc.action, code, len(got), want)
		}
		for _, l := range got {
			if f := strings.Fields(l); len(f) < 3 || !policyKindIn(policy.ActionKind(f[2]), tc.kinds) {
				t.Errorf("--action %s printed %q", tc.action, l)
			}
		}
		if tc.action == "decision" && (!strings.Contains(out, "HEAPGUARD CRITICAL: ") || strings.Contains(out, "|")) {
			t.Errorf("decision lines should carry the summary without perfdata:\n%s", out)
		}
	}

	code, out, _ = journal("--json", "--action", "power_off")
	var want []string
	for i, e := range entries {
		if e.Action == policy.ActPowerOff {
			want = append(want, lines[i])
		}
	}
	if code != exitOK || out != strings.Join(want, "\n")+"\n" {
		t.Errorf("--json --action power_off: exit %d, want the file's %d power_off lines, got\n%s", code, len(want), out)
	}

	// --since by host time: the verification came last.
	var lastVerify time.Time
	for _, e := range entries {
		if e.Action == policy.ActVerify {
			lastVerify, _ = time.Parse(time.RFC3339Nano, e.Time)
		}
	}
	since := lastVerify.Truncate(time.Second).Format(time.RFC3339)
	code, out, _ = journal("--since", since, "--action", "verify")
	if n := strings.Count(out, "\n"); code != exitOK || n < 1 || n > 2 {
		t.Errorf("--since %s --action verify: exit %d, %d lines:\n%s", since, code, n, out)
	}
	h.Advance(2 * time.Hour)
	if code, out, _ := journal("--since", "1h"); code != exitOK || out != "" {
		t.Errorf("--since 1h, two hours of host time later: exit %d, %q", code, out)
	}
	if code, out, _ := journal("--since", "3h"); code != exitOK || strings.Count(out, "\n") != len(entries) {
		t.Errorf("--since 3h: exit %d, %d lines, want %d", code, strings.Count(out, "\n"), len(entries))
	}

	code, _, stderr = journal("--action", "reboot")
	if code != exitUnknown || !strings.Contains(stderr, `--action "reboot": unknown action (want one of decide, alert, power_off, restart_agent, verify, stop`) ||
		!strings.Contains(stderr, "Usage: heapguard journal") {
		t.Errorf("--action reboot: exit %d, stderr %q", code, stderr)
	}
	if code, _, stderr := journal("--since", "yesterday"); code != exitUnknown || !strings.Contains(stderr, `--since "yesterday"`) {
		t.Errorf("--since yesterday: exit %d, stderr %q", code, stderr)
	}
}

func policyKindIn(k policy.ActionKind, kinds []policy.ActionKind) bool {
	for _, x := range kinds {
		if k == x {
			return true
		}
	}
	return false
}

func entryLine(t *testing.T, e remediate.Entry) string {
	t.Helper()
	b, err := json.Marshal(e)
	if err != nil {
		t.Fatal(err)
	}
	return string(b) + "\n"
}

// TestJournalDamagedLines: lines a crash or a hand left behind are
// skipped and counted, exit 1, and every good entry is still printed; a
// last entry without its newline is one of them.
func TestJournalDamagedLines(t *testing.T) {
	state := t.TempDir()
	good := func(target string) string {
		return entryLine(t, remediate.Entry{Time: "2026-05-01T10:00:00Z", PlanID: "20260501T100000Z-00000001", Action: policy.ActAlert, Target: target, Result: "ok", Reason: "r"})
	}
	body := good("one") + "garbage\n" + `{"time":"2026-05-01T10:00:01Z","action":"power_o` + "\n" + "{}\n" + "null\n" + "\n" + `{"time":"2026-05-01T10:00:03Z","target":"no action"}` + "\n" +
		`{"time":"yesterday","action":"alert","target":"x"}` + "\n" + `{"time":"2026-05-01T10:00:02Z","action":"alert","target":` + strings.Repeat("x", maxJournalLine+10) + "\n" +
		good("two") + "\x00\x01\xff\n" + strings.TrimSuffix(good("three"), "\n")
	os.WriteFile(filepath.Join(state, remediate.JournalFile), []byte(body), 0o600)
	code, out, stderr := runCLI(t, "journal", "--state-dir", state)
	if code != exitWarning || strings.Count(out, "\n") != 3 || !strings.Contains(out, "alert          one") ||
		!strings.Contains(out, "alert          two") || !strings.Contains(out, "alert          three") {
		t.Errorf("exit %d, out:\n%s", code, out)
	}
	if !strings.Contains(stderr, "heapguard journal: 8 damaged lines skipped in ") {
		t.Errorf("stderr %q, want 8 damaged lines counted", stderr)
	}
	code, out, stderr = runCLI(t, "journal", "--state-dir", state, "--json")
	if code != exitWarning || out != good("one")+good("two")+good("three") || !strings.Contains(stderr, "8 damaged lines") {
		t.Errorf("--json: exit %d, out %q, stderr %q", code, out, stderr)
	}
	// No journal yet: nothing to print, and that is said.
	code, out, stderr = runCLI(t, "journal", "--state-dir", t.TempDir())
	if code != exitOK || out != "" || !strings.Contains(stderr, "no journal yet at ") {
		t.Errorf("no journal: exit %d, out %q, stderr %q", code, out, stderr)
	}
}

// scriptClock is a host clock for --follow: each Sleep moves it on and
// runs the test's next step; when none is left it ends the follow as
// SIGINT would.
type scriptClock struct {
	now    time.Time
	steps  []func()
	cancel context.CancelFunc
	slept  []time.Duration
}

func (c *scriptClock) Now() time.Time { return c.now }

func (c *scriptClock) Sleep(ctx context.Context, d time.Duration) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	c.now = c.now.Add(d)
	c.slept = append(c.slept, d)
	if len(c.steps) == 0 {
		c.cancel()
		return ctx.Err()
	}
	step := c.steps[0]
	c.steps = c.steps[1:]
	step()
	return nil
}

// TestJournalFollow: --follow prints entries as they are appended, a
// line written in two parts once whole, and goes on across a
// truncation, a rewrite, a rotation (the old file's last lines first)
// and a removal, saying each on stderr; damaged lines are counted as
// they come. Time is stepped, never slept.
func TestJournalFollow(t *testing.T) {
	state := t.TempDir()
	p := filepath.Join(state, remediate.JournalFile)
	entry := func(target string, action policy.ActionKind) string {
		return entryLine(t, remediate.Entry{Time: "2026-05-01T10:00:00Z", PlanID: "20260501T100000Z-0000abcd", Action: action, Target: target, Result: "ok", Reason: "why " + target})
	}
	appendTo := func(path, s string) {
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
		if err != nil {
			t.Fatal(err)
		}
		f.WriteString(s)
		f.Close()
	}
	appendTo(p, entry("old", policy.ActAlert)+entry("old-verify", policy.ActVerify))
	half := entry("split", policy.ActAlert)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	clock := &scriptClock{now: time.Date(2026, 5, 1, 10, 0, 0, 0, time.UTC), cancel: cancel}
	clock.steps = []func(){
		func() { appendTo(p, entry("a", policy.ActAlert)) },
		func() { appendTo(p, half[:20]) },
		func() { appendTo(p, half[20:]) },
		func() { appendTo(p, "not json\n") },
		func() { os.WriteFile(p, []byte(entry("after-truncate", policy.ActAlert)), 0o600) },
		func() {
			// Rewritten from its start and grown past where it was read.
			os.WriteFile(p, []byte(entry("rewritten", policy.ActAlert)+entry("rewritten-2", policy.ActAlert)), 0o600)
		},
		func() {
			appendTo(p, entry("before-rotation", policy.ActAlert))
			os.Rename(p, p+".1")
			appendTo(p, entry("after-rotation", policy.ActAlert))
		},
		func() { os.Remove(p) },
		func() {},
		func() { appendTo(p, entry("recreated", policy.ActVerify)) },
	}
	var out, errb bytes.Buffer
	code := runJournal(ctx, env{stdout: &out, stderr: &errb}, &journalOptions{stateDir: state, follow: true}, clock.now, clock, time.Second)
	var targets []string
	for _, l := range strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n") {
		targets = append(targets, strings.Fields(l)[3])
	}
	want := "old old-verify a split after-truncate rewritten rewritten-2 before-rotation after-rotation recreated"
	if strings.Join(targets, " ") != want {
		t.Errorf("followed %q\nwant     %q\n%s", strings.Join(targets, " "), want, out.String())
	}
	for _, w := range []string{"1 damaged line skipped (1 in all)", p + " was truncated: reading it from its start",
		p + " was replaced: reading the new one from its start", p + " was removed: waiting for a new one", p + " was created again: reading it from its start"} {
		if !strings.Contains(errb.String(), w) {
			t.Errorf("stderr lacks %q:\n%s", w, errb.String())
		}
	}
	if strings.Count(errb.String(), "was truncated") != 2 {
		t.Errorf("want the truncation and the rewrite each said once:\n%s", errb.String())
	}
	if code != exitWarning || len(clock.slept) != 11 || clock.slept[0] != time.Second {
		t.Errorf("exit %d (want 1: a damaged line), slept %v", code, clock.slept)
	}

	// With --action and --json the follow prints the kept lines as they are.
	ctx, cancel = context.WithCancel(context.Background())
	defer cancel()
	clock = &scriptClock{now: clock.now, cancel: cancel}
	clock.steps = []func(){func() { appendTo(p, entry("b", policy.ActAlert)+entry("c", policy.ActVerify)) }}
	out.Reset()
	errb.Reset()
	code = runJournal(ctx, env{stdout: &out, stderr: &errb}, &journalOptions{stateDir: state, follow: true, json: true, actions: stringList{"verify"}}, clock.now, clock, time.Second)
	if code != exitOK || out.String() != entry("recreated", policy.ActVerify)+entry("c", policy.ActVerify) {
		t.Errorf("--follow --json --action verify: exit %d, %q, stderr %q", code, out.String(), errb.String())
	}
}

// TestJournalFollowStopsOnSIGINT: the binary's --follow ends on SIGINT
// with exit 0, having printed what was there.
func TestJournalFollowStopsOnSIGINT(t *testing.T) {
	state := t.TempDir()
	os.WriteFile(filepath.Join(state, remediate.JournalFile),
		[]byte(entryLine(t, remediate.Entry{Time: "2026-05-01T10:00:00Z", Action: remediate.ActStop, Target: "heapguard", Result: "ok", Reason: "stopped by a signal"})), 0o600)
	cmd := exec.Command(heapguardBin(t), "journal", "--follow", "--state-dir", state)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil || !strings.Contains(line, "stop           heapguard") {
		t.Fatalf("first line %q, %v", line, err)
	}
	cmd.Process.Signal(syscall.SIGINT)
	if err := cmd.Wait(); err != nil {
		t.Errorf("after SIGINT: %v, want exit 0", err)
	}
}
