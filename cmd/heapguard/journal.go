package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/heapguard/heapguard/agent"
	"github.com/heapguard/heapguard/host"
	"github.com/heapguard/heapguard/policy"
	"github.com/heapguard/heapguard/remediate"
)

type journalOptions struct {
	stateDir, root string
	since          string
	actions        stringList
	json, follow   bool
}

// followEvery is how often --follow looks for new entries.
const followEvery = time.Second

func init() {
	register(&command{
		name:    "journal",
		noArgs:  true,
		summary: "print the journal of decisions and actions, readably or as JSON lines; --follow for new ones",
		usage:   "[--state-dir DIR] [--root DIR] [--since T] [--action A]... [--json] [--follow]",
		help: `Prints <state-dir>/journal.jsonl, one line per entry: host time, the plan's short id, the
action, its target, the result, and the error or the reason (for a decision, the plan's summary).
It only reads: no lock is taken, so it works while heapguard acts.

--action keeps the entries of the named actions (repeatable, or comma-separated): decide
(decision), alert, power_off (power-off), restart_agent (restart), verify, stop. --since keeps the
entries from that host time on. --json prints the kept entries as they are in the file, one JSON
object a line (schema: docs/json.md). --follow then keeps printing entries as they are appended,
until SIGINT or SIGTERM; a journal truncated or replaced meanwhile is read again from its start.
Damaged lines (a crash mid-write) are skipped and counted on stderr.

Examples:
  heapguard journal --since 6h
  heapguard journal --action power-off,restart --since 2026-05-01
  heapguard journal --json --action decide | jq -r .summary
  heapguard journal --follow

EXIT STATUS:
  0 printed (also when no entry matched, or there is no journal yet)
  1 printed, but damaged lines were skipped
  3 bad usage, or the journal cannot be read`,
		flags: func(fs *flag.FlagSet) any {
			o := &journalOptions{}
			fs.StringVar(&o.stateDir, "state-dir", "", "`DIR` holding journal.jsonl (default: heapguard-state/HOSTNAME beside the binary)")
			fs.StringVar(&o.root, "root", "/", "ESXi root `DIR` (a simulated host: its clock judges --since)")
			fs.StringVar(&o.since, "since", "", "only entries from `T` on (RFC 3339, YYYY-MM-DD, or a duration ago like 6h)")
			fs.Var(&o.actions, "action", "only entries of action `A` (repeatable or comma-separated; see below)")
			fs.BoolVar(&o.json, "json", false, "print the entries as JSON lines, as in the file")
			fs.BoolVar(&o.follow, "follow", false, "keep printing new entries until SIGINT/SIGTERM")
			return o
		},
		run: func(ctx context.Context, e env, opts any, args []string) int {
			o := opts.(*journalOptions)
			clock, err := host.ClockFromEnv(os.Getenv, o.root, host.Exec{Root: o.root})
			if err != nil {
				fmt.Fprintf(e.stderr, "heapguard journal: %v\n", err)
				return exitUnknown
			}
			// --since is host time; --follow polls a file, on the wall clock.
			return runJournal(ctx, e, o, clock.Now(), host.SystemClock{}, followEvery)
		},
	})
}

// actionAliases are the names people type for the journal's actions.
var actionAliases = map[string]policy.ActionKind{
	"decision": remediate.ActDecide, "restart": policy.ActRestartAgent, "poweroff": policy.ActPowerOff,
}

// parseActions reads --action values; an unknown one is an error naming
// the valid ones.
func parseActions(vals []string) (map[policy.ActionKind]bool, error) {
	if len(vals) == 0 {
		return nil, nil
	}
	want := map[policy.ActionKind]bool{}
	for _, v := range splitList(vals) {
		name := strings.ReplaceAll(strings.ToLower(v), "-", "_")
		k, ok := actionAliases[name]
		if !ok {
			k = policy.ActionKind(name)
			ok = slices.Contains(remediate.JournalActions, k)
		}
		if !ok {
			var valid []string
			for _, a := range remediate.JournalActions {
				valid = append(valid, string(a))
			}
			return nil, fmt.Errorf("--action %q: unknown action (want one of %s; also decision, restart, power-off)", v, strings.Join(valid, ", "))
		}
		want[k] = true
	}
	return want, nil
}

// journalPrinter filters and prints entries, and counts damaged lines.
type journalPrinter struct {
	w       io.Writer
	json    bool
	since   time.Time
	actions map[policy.ActionKind]bool
	bad     int
}

// line handles one line of the journal (without its newline).
func (p *journalPrinter) line(b []byte) {
	b = bytes.TrimSpace(b)
	if len(b) == 0 {
		return
	}
	var e remediate.Entry
	if json.Unmarshal(b, &e) != nil || e.Action == "" {
		p.bad++
		return
	}
	t, err := time.Parse(time.RFC3339Nano, e.Time)
	if err != nil {
		p.bad++
		return
	}
	if !p.since.IsZero() && t.Before(p.since) || p.actions != nil && !p.actions[e.Action] {
		return
	}
	if p.json {
		fmt.Fprintf(p.w, "%s\n", b)
		return
	}
	fmt.Fprintln(p.w, entryText(e, t))
}

// entryText is one entry on one line: time, plan, action, target, result,
// then the error, else the reason (a decision's: its summary).
func entryText(e remediate.Entry, t time.Time) string {
	target := e.Target
	if e.VMID != "" {
		target += " (vmid " + e.VMID + ")"
	}
	detail := e.Reason
	switch {
	case e.Error != "":
		detail = e.Error
	case e.Action == remediate.ActDecide && e.Summary != "":
		detail, _, _ = strings.Cut(e.Summary, " | ") // without its perfdata
	}
	if e.DryRun && e.Action == remediate.ActDecide {
		detail = "(dry run) " + detail
	}
	line := fmt.Sprintf("%s  %-8s  %-13s  %-22s  %-8s  %s", t.UTC().Format(time.RFC3339), agent.ShortPlanID(e.PlanID),
		e.Action, target, e.Result, detail)
	return strings.Map(func(r rune) rune {
		if r == '\n' || r == '\r' {
			return ' '
		}
		return r
	}, strings.TrimRight(line, " "))
}

func runJournal(ctx context.Context, e env, o *journalOptions, now time.Time, clock host.Clock, every time.Duration) int {
	since, err := parseSince(o.since, now)
	if err != nil {
		fmt.Fprintf(e.stderr, "heapguard journal: %v\n", err)
		return usageError
	}
	actions, err := parseActions(o.actions)
	if err != nil {
		fmt.Fprintf(e.stderr, "heapguard journal: %v\n", err)
		return usageError
	}
	dir := o.stateDir
	if dir == "" {
		if dir, err = defaultStateDir(); err != nil {
			fmt.Fprintf(e.stderr, "heapguard journal: %v\n", err)
			return exitUnknown
		}
	}
	warnUnsafeState(e.stderr, "journal", dir)
	p := &journalPrinter{w: e.stdout, json: o.json, since: since, actions: actions}
	t := &journalTail{path: filepath.Join(dir, remediate.JournalFile), damaged: func() { p.bad++ }}
	defer t.close()
	warn := func() {
		if p.bad > 0 {
			fmt.Fprintf(e.stderr, "heapguard journal: %d damaged %s skipped in %s\n", p.bad, plural(p.bad, "line"), t.path)
		}
	}
	if _, err := t.read(p.line); err != nil {
		fmt.Fprintf(e.stderr, "heapguard journal: %v\n", err)
		return exitUnknown
	}
	if t.f == nil && !o.follow {
		fmt.Fprintf(e.stderr, "heapguard journal: no journal yet at %s\n", t.path)
	}
	if !o.follow {
		t.flush(p.line) // a last line without its newline (a crash mid-write)
		warn()
		if p.bad > 0 {
			return exitWarning
		}
		return exitOK
	}
	reported := p.bad
	warn()
	for {
		if err := clock.Sleep(ctx, every); err != nil {
			// SIGINT/SIGTERM: a follow ends cleanly.
			if p.bad > 0 {
				return exitWarning
			}
			return exitOK
		}
		what, err := t.read(p.line)
		if err != nil {
			// Perhaps passing (a datastore path down): say so, keep following.
			fmt.Fprintf(e.stderr, "heapguard journal: %v\n", err)
		}
		if what != "" {
			fmt.Fprintf(e.stderr, "heapguard journal: %s %s\n", t.path, what)
		}
		if p.bad > reported {
			fmt.Fprintf(e.stderr, "heapguard journal: %d damaged %s skipped (%d in all)\n", p.bad-reported, plural(p.bad-reported, "line"), p.bad)
			reported = p.bad
		}
	}
}

func plural(n int, word string) string {
	if n == 1 {
		return word
	}
	return word + "s"
}

// maxJournalLine bounds one journal line; a longer one is damaged, and
// skipped up to its newline without being held in memory.
const maxJournalLine = 16 << 20

// journalTail reads a journal's complete lines from where it stopped,
// noticing when the file is truncated or replaced (rotated, or removed
// and written anew).
type journalTail struct {
	path string
	f    *os.File
	// off is how much of f has been read; pending is the line begun and
	// not yet ended by its newline; skipping: inside an overlong line.
	off      int64
	pending  []byte
	skipping bool
	// gone: the file was removed while followed.
	gone bool
	// head is the file's first bytes as read (up to headSize).
	head []byte
	// damaged is called for each line too long to be an entry.
	damaged func()
}

func (t *journalTail) close() {
	if t.f != nil {
		t.f.Close()
		t.f = nil
	}
}

// read hands every complete new line to fn. what says, when it is not
// "", that the file was truncated, replaced or removed since the last
// read, and what is done about it.
func (t *journalTail) read(fn func([]byte)) (what string, err error) {
	if t.f != nil {
		cur, serr := t.f.Stat()
		now, perr := os.Stat(t.path)
		switch {
		case errors.Is(perr, fs.ErrNotExist), perr == nil && serr == nil && !os.SameFile(cur, now):
			// Rotated or removed: finish the old file first, then go on
			// with the new one, if any.
			err = t.drain(fn)
			t.flush(fn)
			t.close()
			what = "was replaced: reading the new one from its start"
			if perr != nil {
				t.gone = true
				return "was removed: waiting for a new one", err
			}
		case serr == nil && (cur.Size() < t.off || !t.sameHead()):
			// Shorter than what was read, or rewritten from its start
			// and grown past it since the last read.
			t.off, t.pending, t.skipping, t.head = 0, nil, false, nil
			what = "was truncated: reading it from its start"
		}
	}
	if t.f == nil {
		f, oerr := os.Open(t.path)
		if errors.Is(oerr, fs.ErrNotExist) {
			return what, err
		}
		if oerr != nil {
			return what, errors.Join(err, fmt.Errorf("read journal: %w", oerr))
		}
		t.f, t.off, t.pending, t.skipping, t.head = f, 0, nil, false, nil
		if t.gone {
			t.gone = false
			what = "was created again: reading it from its start"
		}
	}
	return what, errors.Join(err, t.drain(fn))
}

// headSize is how much of the file's start is kept to notice a rewrite.
const headSize = 256

// sameHead reports whether the file still starts as it did.
func (t *journalTail) sameHead() bool {
	if len(t.head) == 0 {
		return true
	}
	b := make([]byte, len(t.head))
	n, _ := t.f.ReadAt(b, 0)
	return bytes.Equal(b[:n], t.head)
}

// drain reads f from off to its end.
func (t *journalTail) drain(fn func([]byte)) error {
	buf := make([]byte, 64<<10)
	for {
		n, err := t.f.ReadAt(buf, t.off)
		if t.off < headSize {
			t.head = append(t.head, buf[:min(n, headSize-int(t.off))]...)
		}
		t.off += int64(n)
		t.consume(buf[:n], fn)
		if errors.Is(err, io.EOF) || n == 0 {
			return nil
		}
		if err != nil {
			return fmt.Errorf("read journal %s: %w", t.path, err)
		}
	}
}

// consume splits b into lines, keeping an unfinished one for later.
func (t *journalTail) consume(b []byte, fn func([]byte)) {
	for len(b) > 0 {
		i := bytes.IndexByte(b, '\n')
		if i < 0 {
			if !t.skipping {
				t.pending = append(t.pending, b...)
				if len(t.pending) > maxJournalLine {
					t.pending, t.skipping = nil, true
					t.damaged()
				}
			}
			return
		}
		if t.skipping {
			t.skipping = false
		} else if len(t.pending)+i > maxJournalLine {
			t.damaged()
		} else if len(t.pending) > 0 {
			fn(append(t.pending, b[:i]...))
		} else {
			fn(b[:i])
		}
		t.pending = t.pending[:0]
		b = b[i+1:]
	}
}

// flush hands over a last line that has no newline.
func (t *journalTail) flush(fn func([]byte)) {
	if len(t.pending) > 0 && !t.skipping {
		fn(t.pending)
	}
	t.pending = nil
}
