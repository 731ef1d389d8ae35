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
	"strconv"
	"strings"
	"time"

	"github.com/heapguard/heapguard/heap"
	"github.com/heapguard/heapguard/host"
	"github.com/heapguard/heapguard/policy"
	"github.com/heapguard/heapguard/remediate"
	"github.com/heapguard/heapguard/report"
)

type reportOptions struct {
	json      bool
	heapStats stringList
	root      string
	noLive    bool
	heaps     stringList
	year      int
	since     string
	html      string
	stateDir  string
}

func init() {
	register(&command{
		name:    "report",
		summary: "read-only report: flapping ports, heaps that ran out, agent crashes",
		usage:   "[--json] [--html FILE] [--state-dir DIR] [--heap-stats FILE]... [--root DIR [--no-live] [--heaps GLOB]...] [--year N] [--since T] [LOGFILE... | BUNDLE.tgz]",
		help: `Reads vmkernel logs (4.x /var/log/messages, 5.1-7.x and 8.x vmkernel.log, rotated .gz
files too) and vsish heap statistics, and tells which ports flap, which MACs and VMs they belong
to, which heaps ran out and which agents crashed. It changes nothing.

With --root DIR (an ESXi root: / on the host, a simulated host, or an extracted vm-support
bundle), MACs are mapped to VMs from DIR/vmfs/volumes/*/*/*.vmx, when no LOGFILE is given the
host's logs are looked for where each version keeps them (/var/run/log on 6.5 and later,
/scratch/log, /var/log) and read with their rotated copies, each file once (links are resolved
inside DIR), and every heap (or those matching --heaps) is sampled now with vsish, read-only, as
check does: the live figures join the verdict. A heap vsish cannot list or read is an error
(UNKNOWN) naming the reason; the others are still reported. --no-live reads the files only
(a copied root, an extracted support bundle). The report lists the files it read and those
it found but did not read, with why: vmkwarning.log repeats the vmkernel log's warnings and is
read only when there is no vmkernel log. hostd, vpxa and vobd logs found there are read too.

A vm-support bundle (a .tgz or .tar.gz argument) is read as a stream, never extracted: its
vmkernel, hostd, vpxa and vobd logs and rotated .gz copies under var/run/log, var/log and scratch/log (pieces named
.FRAG-NNNNN joined in order, a file collected under two paths counted once), the host's version
from commands/vmware_-vl.txt, and its .vmx files. Its VSI dump (commands/vsi_traverse_-s.txt) is
a vsish cache and is not read: give heap stats with --heap-stats. A damaged or truncated bundle
is an error (UNKNOWN) and what was read before the damage is reported.

hostd.log, vpxa.log and vobd.log (rotated and .gz too) may be given beside them: which log a
file is, is judged from its lines, not its name, and their crash lines (vobd's
[vob.uw.core.dumped], "… crashed (N time(s) so far) and a core file …") count with the
vmkernel's dumps, each crash once. A core dump named by a thread or helper (vpxa-worker,
hostd-worker, vix-async-pipe) is its agent's crash.

A log file whose lines are all in no known vmkernel log format is an error (UNKNOWN): there
is nothing to judge in it; so is an empty one, unless another log had known lines (the live log
is empty just after a rotation). A file with some known lines keeps its verdict and the report
says how many of its lines were skipped. 4.x dates carry no year: without --year, each file's
modification year is taken, and the report says so.

--html FILE also writes the report as one HTML page that needs nothing else (no network, no
script; - writes it to stdout instead of the text): on one time axis in UTC, free of max per
heap, flap cycles per minute per port (named by VM where known), and marks for the log's
heap-maxed lines, core dumps, and the power-offs and restarts heapguard journaled (dry-run
ones hollow); then the report's tables. The heap figures come from heapguard's own samples:
its journal and the trend window check and run save in their state folder (--state-dir; by
default the one they use, when it exists), and the live sample. A host never checked has
no heap curve, only the live point.

Examples:
  heapguard report /var/log/vmkernel.log
  heapguard report --root /
  heapguard report --root / --no-live --heap-stats netgp.txt
  heapguard report esx-esx01-2026-04-10--08.27-2099421.tgz
  heapguard report --root esx-esx01-2026-04-10--08.27-2099421 --no-live
  heapguard report --json --year 2012 messages messages.0.gz
  heapguard report --root / --html /vmfs/volumes/datastore1/report.html

EXIT STATUS:
  0 nothing wrong
  1 flapping ports, or a heap below 20% free of max
  2 a heap reached its maximum or is below 10% free of max, or vpxa/hostd crashed
  3 bad usage, unreadable input, a log in no known format or empty, a damaged bundle, a heap
    that vsish could not list or read (the other inputs are still reported)`,
		flags: func(fs *flag.FlagSet) any {
			o := &reportOptions{}
			fs.BoolVar(&o.json, "json", false, "print one JSON object (schema: docs/json.md)")
			fs.Var(&o.heapStats, "heap-stats", "`FILE` with vsish heap stats output (repeatable)")
			fs.StringVar(&o.root, "root", "", "ESXi root `DIR` for .vmx files, default logs and live heap samples")
			fs.BoolVar(&o.noLive, "no-live", false, "with --root, do not sample heaps with vsish: judge the files only")
			fs.Var(&o.heaps, "heaps", "with --root, sample only heaps matching `GLOB` (repeatable; default every heap)")
			fs.IntVar(&o.year, "year", 0, "year `N` of the oldest 4.x syslog date of each log; its newer rotated copies go on from it, across New Year (default: each file's modification year)")
			fs.StringVar(&o.html, "html", "", "also write the report as one self-contained HTML page with a timeline chart to `FILE` (- for stdout, instead of the text)")
			fs.StringVar(&o.stateDir, "state-dir", "", "heapguard's state `DIR`, whose journal puts its decisions and actions on the page's timeline (default: the one check and run use, when it exists)")
			fs.StringVar(&o.since, "since", "", "ignore events before `T` (RFC 3339, YYYY-MM-DD, or a duration ago like 6h, 2d, 1d12h)")
			return o
		},
		run: runReport,
	})
}

func runReport(ctx context.Context, e env, opts any, args []string) int {
	o := opts.(*reportOptions)
	r, err := buildReport(ctx, o, args)
	if err != nil {
		fmt.Fprintf(e.stderr, "heapguard report: %v\n", err)
		if ue, ok := errors.AsType[*reportUsageError](err); ok {
			return ue.code
		}
		return exitUnknown
	}
	for _, msg := range r.Errors {
		fmt.Fprintf(e.stderr, "heapguard report: %s\n", msg)
	}
	for _, msg := range r.Warnings {
		fmt.Fprintf(e.stderr, "heapguard report: warning: %s\n", msg)
	}
	if o.html != "" {
		if err := writeHTMLFile(o.html, r, e.stdout); err != nil {
			fmt.Fprintf(e.stderr, "heapguard report: %v\n", err)
			return exitUnknown
		}
		if o.html == "-" {
			return r.Status.ExitCode()
		}
	}
	if o.json {
		enc := json.NewEncoder(e.stdout)
		enc.SetIndent("", "  ")
		err = enc.Encode(r)
	} else {
		err = r.WriteText(e.stdout)
	}
	if err != nil {
		fmt.Fprintf(e.stderr, "heapguard report: write: %v\n", err)
		return exitUnknown
	}
	return r.Status.ExitCode()
}

// writeReportHTML gathers the report o and args ask for, as `heapguard
// report --html` does, and writes its page to w. Problems with the inputs
// are in the page (errors, warnings, an UNKNOWN verdict); the error is for
// arguments that make no report at all, and for w failing.
func writeReportHTML(ctx context.Context, w io.Writer, o *reportOptions, args []string) error {
	r, err := buildReport(ctx, o, args)
	if err != nil {
		return err
	}
	return r.WriteHTML(w)
}

// writeHTMLFile writes r's page to path (stdout for "-") whole or not at
// all: a page cut short would hide the tables under a chart.
func writeHTMLFile(path string, r *report.Report, stdout io.Writer) error {
	var buf bytes.Buffer
	if err := r.WriteHTML(&buf); err != nil {
		return err
	}
	if path == "-" {
		if _, err := stdout.Write(buf.Bytes()); err != nil {
			return fmt.Errorf("write report page: %w", err)
		}
		return nil
	}
	if err := host.WriteFileAtomic(path, buf.Bytes(), 0o644); err != nil {
		return fmt.Errorf("--html: %w", err)
	}
	return nil
}

// reportUsageError is a report that cannot be made from its arguments;
// code is the exit status.
type reportUsageError struct {
	code int
	msg  string
}

func (e *reportUsageError) Error() string { return e.msg }

func reportArgError(format string, a ...any) error {
	return &reportUsageError{code: exitUnknown, msg: fmt.Sprintf(format, a...)}
}

// buildReport reads everything o and args name: logs, bundle, heap stats,
// the live host, and heapguard's journal for the timeline.
func buildReport(ctx context.Context, o *reportOptions, args []string) (*report.Report, error) {
	since, err := parseSince(o.since, time.Now())
	if err != nil {
		return nil, reportArgError("%v", err)
	}
	logs := args
	if len(logs) == 0 && o.root == "" && len(o.heapStats) == 0 {
		return nil, &reportUsageError{code: usageError, msg: "give LOGFILE arguments, --heap-stats or --root"}
	}
	globs := splitList(o.heaps)
	if err := heap.ValidGlobs(globs); err != nil {
		return nil, reportArgError("--heaps: %v", err)
	}
	if o.root == "" && (o.noLive || len(globs) > 0) {
		return nil, reportArgError("--no-live and --heaps go with --root")
	}
	if o.root != "" {
		// A typo in --root would otherwise read as a host without logs.
		if fi, err := os.Stat(o.root); err != nil || !fi.IsDir() {
			return nil, reportArgError("--root %s: not a directory", o.root)
		}
	}
	var bundles []string
	logs = slices.DeleteFunc(slices.Clone(logs), func(p string) bool {
		if isBundleName(p) {
			bundles = append(bundles, p)
			return true
		}
		return false
	})
	if len(bundles) > 0 && o.root != "" {
		// The bundle carries its own .vmx files and no live host.
		return nil, reportArgError("a vm-support bundle goes without --root (extracted, give its folder as --root instead)")
	}
	if len(bundles) > 1 {
		return nil, reportArgError("give one vm-support bundle at a time, not %d", len(bundles))
	}
	ro := report.Options{Logs: logs, HeapStats: o.heapStats, Year: o.year, Since: since}
	if o.root != "" {
		ro.Version = report.RootVersion(o.root)
	}
	if len(bundles) == 1 {
		ro.Bundle = bundles[0]
	}
	if len(args) == 0 && o.root != "" {
		hf := report.FindHostLogs(o.root)
		ro.Logs, ro.WarningLogs, ro.AgentLogs, ro.Pieces = hf.Kernel, hf.Warning, hf.Agent, hf.Pieces
		if len(hf.Kernel)+len(hf.Warning) == 0 {
			// Reading the layout's log says what is missing.
			ro.Logs = report.HostLogs(o.root)
		}
	}
	var sampledAt time.Time
	if o.root != "" {
		refs, err := remediate.ScanVMX(os.DirFS(o.root))
		if err != nil {
			// Some unreadable .vmx files do not spoil the others.
			ro.Warnings = append(ro.Warnings, vmxProblem(o.root, err))
		}
		ro.VMs = make(map[string]policy.VMRef, len(refs))
		for mac, ref := range refs {
			ro.VMs[mac] = policy.VMRef{Name: ref.Name, VMX: ref.VMX}
		}
		if !o.noLive {
			runner := host.Exec{Root: o.root}
			// The host's clock dates the sample: a simulated host's is
			// not the machine's.
			clock, err := host.ClockFromEnv(os.Getenv, o.root, runner)
			if err != nil {
				return nil, reportArgError("%v", err)
			}
			ro.Live, ro.LiveErrors = sampleLive(ctx, runner, globs)
			sampledAt = clock.Now()
		}
	}
	r := report.Build(ro)
	r.Warnings = append(r.Warnings, addHeapguardState(r, o.stateDir, since)...)
	var live []report.Heap
	for _, h := range r.Heaps {
		if h.Live {
			live = append(live, h)
		}
	}
	r.Timeline.AddHeapSamples(live, sampledAt)
	return r, nil
}

// addHeapguardState puts what check and run saved on r's timeline: the
// journal's decisions and actions and the heap samples of the saved trend
// windows, from dir, or when dir is "" from the folder check and run use
// by default, if there is one. It returns warnings: a journal named but
// missing or unreadable, lines that could not be read.
func addHeapguardState(r *report.Report, dir string, since time.Time) []string {
	named := dir != ""
	if !named {
		d, err := defaultStateDir()
		if err != nil {
			return nil // No default folder on this host: nothing to add.
		}
		dir = d
	}
	var warnings []string
	if err := remediate.CheckStateDir(dir); err != nil {
		warnings = append(warnings, fmt.Sprintf("%v (run and check refuse to start until it is fixed)", err))
	}
	p := filepath.Join(dir, remediate.JournalFile)
	f, err := os.Open(p)
	switch {
	case err != nil && !named && errors.Is(err, fs.ErrNotExist):
		return warnings
	case err != nil:
		return append(warnings, fmt.Sprintf("heapguard's journal not on the timeline: %v", err))
	}
	defer f.Close()
	entries, bad, err := remediate.ReadJournal(f)
	if err != nil {
		warnings = append(warnings, fmt.Sprintf("%s: %v (the entries before are on the timeline)", p, err))
	}
	if bad > 0 {
		lines := "lines that are"
		if bad == 1 {
			lines = "line that is"
		}
		warnings = append(warnings, fmt.Sprintf("%s: skipped %d %s not a journal entry", p, bad, lines))
	}
	if n := r.Timeline.AddJournal(entries, since); n > 0 {
		warnings = append(warnings, fmt.Sprintf("%s: %d entries with an unreadable time skipped", p, n))
	}
	r.Timeline.Journal = p
	for _, name := range []string{"state.json", "state.dry-run.json"} {
		if w := addTrends(r, filepath.Join(dir, name), since); w != "" {
			warnings = append(warnings, w)
		}
	}
	return warnings
}

// addTrends adds the trend windows of a state file check or run saved; a
// missing one is no news (a dry run keeps its own), an unreadable one a
// warning.
func addTrends(r *report.Report, path string, since time.Time) string {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return ""
	}
	var st struct {
		Trends heap.Trends `json:"trends"`
	}
	if err == nil {
		err = json.Unmarshal(b, &st)
	}
	if err != nil {
		return fmt.Sprintf("heap samples of %s not on the timeline: %v", path, err)
	}
	r.Timeline.AddTrends(st.Trends, since)
	return ""
}

// liveBudget bounds the whole live sampling; each vsish call also has its
// own heap.Timeout. A host whose vsish hangs must not hold the report for
// one timeout per heap, and a hundred heaps are listed on a real host.
const liveBudget = 60 * time.Second

// sampleLive reads the heaps matching globs (all without globs) from the
// host, read-only, as check does: one `vsish -e ls`, then one `vsish -e
// cat …/stats` per heap. It returns the samples read and one message per
// failure; a failed read does not stop the others.
func sampleLive(ctx context.Context, r host.Runner, globs []string) ([]heap.Sample, []string) {
	ctx, cancel := context.WithTimeout(ctx, liveBudget)
	defer cancel()
	entries, err := heap.List(ctx, r)
	if err != nil && len(entries) == 0 {
		return nil, []string{fmt.Sprintf("live heap sample: %v (--no-live judges the files only)", err)}
	}
	var problems []string
	if err != nil {
		// Some lines were not heap names; the ones that were are read.
		problems = append(problems, "live heap sample: "+err.Error())
	}
	var todo []heap.Entry
	for _, e := range entries {
		if heap.Match(globs, e.Base) {
			todo = append(todo, e)
		}
	}
	switch {
	case len(entries) == 0:
		return nil, append(problems, "live heap sample: vsish listed no heap under /system/heaps/")
	case len(todo) == 0:
		return nil, append(problems, fmt.Sprintf("live heap sample: no heap matches --heaps %s among the %d listed", strings.Join(globs, ","), len(entries)))
	}
	var samples []heap.Sample
	for i, e := range todo {
		if ctx.Err() != nil {
			why := "interrupted"
			if errors.Is(ctx.Err(), context.DeadlineExceeded) {
				why = fmt.Sprintf("the time for live sampling (at most %s) ran out", liveBudget)
			}
			problems = append(problems, fmt.Sprintf("live heap sample: %d of %d heaps not read: %s", len(todo)-i, len(todo), why))
			break
		}
		s, err := heap.Read(ctx, r, e)
		if err != nil {
			problems = append(problems, "live heap sample: "+err.Error())
			if !errors.Is(err, heap.ErrTruncated) {
				continue
			}
			// A cut-off block is shown, flagged incomplete.
		}
		samples = append(samples, s)
	}
	return samples, problems
}

// isBundleName tells a vm-support archive from a log by its name: logs
// rotate to .N.gz, bundles are .tgz (or .tar.gz).
func isBundleName(p string) bool {
	return strings.HasSuffix(p, ".tgz") || strings.HasSuffix(p, ".tar.gz")
}

// vmxProblem says why VMs could not all be mapped to MACs, naming paths on
// the host as given by --root, not inside it.
func vmxProblem(root string, err error) string {
	if pe, ok := errors.AsType[*fs.PathError](err); ok {
		return fmt.Sprintf("VMs not mapped to MACs: read %s: %v", host.Path(root, "/"+pe.Path), pe.Err)
	}
	return fmt.Sprintf("some VMs not mapped to MACs: %v", err)
}

// parseSince reads an RFC 3339 time, a date, or a duration before now:
// Go's (90m, 6h) with days in front (2d, 1d12h), since people count log
// history in days.
func parseSince(s string, now time.Time) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t.UTC(), nil
	}
	if t, err := time.Parse("2006-01-02", s); err == nil {
		return t, nil
	}
	if d, ok := parseAgo(s); ok {
		return now.Add(-d).UTC(), nil
	}
	return time.Time{}, fmt.Errorf("--since %q: want an RFC 3339 time, YYYY-MM-DD or a duration like 6h, 2d or 1d12h", s)
}

// parseAgo reads a Go duration, optionally led by whole days ("2d",
// "1d12h"); negative or overflowing durations are refused.
func parseAgo(s string) (time.Duration, bool) {
	var d time.Duration
	if days, rest, ok := strings.Cut(s, "d"); ok {
		n, err := strconv.Atoi(days)
		// Go durations have no "d", so the first one ends the days: at
		// most about 290 years fit in a Duration.
		if err != nil || n < 0 || n > 100*365 || days[0] == '+' {
			return 0, false
		}
		d = time.Duration(n) * 24 * time.Hour
		if rest == "" {
			return d, true
		}
		if rest[0] == '-' || rest[0] == '+' {
			return 0, false
		}
		s = rest
	}
	more, err := time.ParseDuration(s)
	if err != nil || more < 0 || d+more < d {
		return 0, false
	}
	return d + more, true
}

// stringList is a repeatable string flag.
type stringList []string

func (l *stringList) String() string { return strings.Join(*l, ",") }
func (l *stringList) Set(s string) error {
	*l = append(*l, s)
	return nil
}
