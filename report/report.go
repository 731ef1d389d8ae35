package report

import (
	"bufio"
	"cmp"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/heapguard/heapguard/collector"
	"github.com/heapguard/heapguard/heap"
	"github.com/heapguard/heapguard/host"
	"github.com/heapguard/heapguard/policy"
)

// Report thresholds: the report judges a heap sample on its own, with no
// history to hold a level for, so it uses the policy's default levels.
const (
	reportWarnBelow = 20.0
	reportCritBelow = 10.0
)

// Options say what `heapguard report` reads.
type Options struct {
	Logs []string // log files, plain or .gz, in any order
	// WarningLogs (vmkwarning) are read only when Logs is empty: their
	// lines are copies of vmkernel's. AgentLogs (hostd, vpxa, vobd) are
	// read for their crash lines.
	WarningLogs []string
	AgentLogs   []string
	// Pieces are logs left in .FRAG-NNNNN pieces (see HostFiles.Pieces):
	// a path in Logs or WarningLogs found here is read from its pieces.
	Pieces map[string][]string
	// Version is the host's version when the caller knows it (an
	// extracted bundle's commands/vmware_-vl.txt).
	Version string
	// Bundle is a vm-support archive (.tgz) read as a stream, its logs
	// joining Logs; its .vmx files map MACs when VMs is nil.
	Bundle    string
	HeapStats []string // files holding `vsish -e cat|get …/stats` output
	// Year is the year of the oldest 4.x syslog date of each log: its
	// copies are read oldest first (see olderFirst), each going on from
	// the year where the one before ended. 0: each file takes its own
	// modification year.
	Year  int
	Since time.Time
	// FlapCycles within FlapWindow make a port flapping (defaults 10 in 5m).
	FlapCycles int
	FlapWindow time.Duration
	// VMs maps MACs to VMs (from the host's .vmx files); may be nil.
	VMs map[string]policy.VMRef
	// Live holds the heaps sampled from the running host with vsish (the
	// caller samples; this package only judges), like HeapStats samples.
	// LiveErrors says what could not be sampled: each makes the verdict
	// UNKNOWN, the samples that were read are still judged.
	Live       []heap.Sample
	LiveErrors []string
	// Warnings are the caller's own about its inputs (VM files that could
	// not be read); they join the report's.
	Warnings []string
}

// LiveSource is the source of a heap sampled from the running host.
const LiveSource = "live"

// Report is what `heapguard report` prints; its JSON form is documented in
// docs/json.md and scripts rely on its keys.
type Report struct {
	Files   []string `json:"files"`
	NotRead []string `json:"not_read"`
	// HostVersion is the version the bundle's own files state.
	HostVersion string       `json:"host_version,omitempty"`
	AgentLogs   []AgentLog   `json:"agent_logs"`
	Ports       []Port       `json:"ports"`
	HeapEvents  []HeapEvent  `json:"heap_events"`
	Dumps       []Dump       `json:"dumps"`
	Crashes     []Crash      `json:"crashes"`
	Heaps       []Heap       `json:"heaps"`
	Lines       int64        `json:"lines"`
	Unparsed    int64        `json:"unparsed"`
	Oversized   int64        `json:"oversized"`
	Errors      []string     `json:"errors"`
	Warnings    []string     `json:"warnings"`
	Verdict     string       `json:"verdict"`
	Reasons     []string     `json:"reasons"`
	Status      policy.Level `json:"-"`
	// Timeline is what the HTML page draws (see WriteHTML); AddJournal and
	// AddHeapSamples add what the logs do not hold.
	Timeline Timeline `json:"-"`
}

// AgentLog is a file read as an agent's log (hostd.log, vpxa.log,
// vobd.log), judged from its lines, not its name.
type AgentLog struct {
	File string `json:"file"`
	Log  string `json:"log"` // "hostd", "vpxa" or "vobd"
}

// Port is one port seen in a NetPort (or Uplink) line.
type Port struct {
	Port         string    `json:"port"`
	MAC          string    `json:"mac"`
	VM           string    `json:"vm"`
	VMX          string    `json:"vmx,omitempty"`
	Disabled     int       `json:"disabled"`
	Enabled      int       `json:"enabled"`
	Untimed      int       `json:"untimed"`
	First        time.Time `json:"first"`
	Last         time.Time `json:"last"`
	CyclesPerMin int       `json:"cycles_per_min"`
	Flapping     bool      `json:"flapping"`
}

// HeapEvent counts one kind of heap failure of one heap.
type HeapEvent struct {
	Heap    string    `json:"heap"`
	Kind    string    `json:"kind"` // "maxed" or "align_failed"
	Count   int       `json:"count"`
	Untimed int       `json:"untimed"` // of Count, lines whose time is unknown
	First   time.Time `json:"first"`
	Last    time.Time `json:"last"`
}

// Dump counts one process's core dumps (UserDump lines).
type Dump struct {
	Process   string    `json:"process"`
	Agent     string    `json:"agent"` // "hostd", "vpxa", or "" (see collector.AgentOf)
	Count     int       `json:"count"`
	CoreDumps int       `json:"want_core_dump"`
	Last      time.Time `json:"last"`
}

// Crash is one crash, however many lines report it (see collector.Crash).
type Crash struct {
	Agent     string    `json:"agent"`
	Processes []string  `json:"processes"`
	Time      time.Time `json:"time"` // zero when no line's time is known
	Lines     int       `json:"lines"`
}

// Heap is one heap sample.
type Heap struct {
	Name             string           `json:"name"`
	FullName         string           `json:"full_name,omitempty"`
	PercentFreeOfMax *float64         `json:"percent_free_of_max"` // null when the sample has no figures for it
	FreeSource       string           `json:"free_source"`
	LowestFreeEver   *int64           `json:"lowest_percent_free_ever"` // null when the stats lack it
	Fields           map[string]int64 `json:"fields"`
	Incomplete       bool             `json:"incomplete"`
	// Source is the --heap-stats file as given, or LiveSource; Live tells
	// the two apart whatever a file is called.
	Source string `json:"source"`
	Live   bool   `json:"live"`
}

// Build reads every input. An input that cannot be read is named in
// Errors and makes the status UNKNOWN; the others are still reported.
func Build(opt Options) *Report {
	r := &Report{Files: []string{}, NotRead: []string{}, AgentLogs: []AgentLog{}, Ports: []Port{}, HeapEvents: []HeapEvent{},
		Dumps: []Dump{}, Crashes: []Crash{}, Heaps: []Heap{}, Errors: []string{}, Warnings: []string{}, Reasons: []string{}}
	r.Warnings = append(r.Warnings, opt.Warnings...)
	scan := collector.ScanOptions{Year: opt.Year, Since: opt.Since, FlapCycles: opt.FlapCycles, FlapWindow: opt.FlapWindow}
	logs := opt.Logs
	if len(logs) == 0 && opt.Bundle == "" {
		logs = opt.WarningLogs
	} else {
		r.NotRead = append(r.NotRead, byLog(opt.WarningLogs, warningsRepeat)...)
	}
	logs = r.uniqueLogs(append(logs, opt.AgentLogs...))
	var joined []collector.FileSummary
	logs = slices.DeleteFunc(logs, func(p string) bool {
		pieces, ok := opt.Pieces[p]
		if ok {
			joined = append(joined, scanPieces(p, pieces, scan))
		}
		return ok
	})
	files, warnings := collector.ScanLogs(logs, scan)
	r.Warnings = append(r.Warnings, warnings...)
	files = append(files, joined...)
	r.HostVersion = opt.Version
	if opt.Bundle != "" {
		in := readBundle(opt.Bundle, scan)
		files = append(files, in.files...)
		r.NotRead = append(r.NotRead, in.notRead...)
		r.Errors = append(r.Errors, in.errors...)
		r.HostVersion = in.version
		if opt.VMs == nil {
			opt.VMs = in.vms
			if in.vmxError != nil {
				r.Warnings = append(r.Warnings, fmt.Sprintf("some VMs not mapped to MACs: %v", in.vmxError))
			}
		}
	}
	var parts []*collector.Summary
	for _, f := range files {
		if f.Err != nil {
			r.Errors = append(r.Errors, fmt.Sprintf("read log %s: %v", f.Path, collector.PathCause(f.Err)))
			if f.Summary == nil {
				continue
			}
		}
		s, p := f.Summary, f.Path
		r.Files = append(r.Files, p)
		if s.Log != collector.LogVmkernel {
			r.AgentLogs = append(r.AgentLogs, AgentLog{File: p, Log: s.Log.String()})
		}
		parts = append(parts, s)
	}
	r.judgeInput(files)
	// Merge in time order whatever order the files were given in (rotated
	// copies are often listed newest first): windows and "last" need it.
	slices.SortStableFunc(parts, func(a, b *collector.Summary) int { return a.First.Compare(b.First) })
	sum := collector.NewSummary(opt.FlapCycles, opt.FlapWindow)
	for _, s := range parts {
		sum.Merge(s)
	}
	for _, p := range opt.HeapStats {
		samples, err := readStatsFile(p)
		if err != nil {
			r.Errors = append(r.Errors, err.Error())
		}
		for _, s := range samples {
			r.Heaps = append(r.Heaps, heapReport(s, p))
		}
	}
	for _, s := range opt.Live {
		h := heapReport(s, LiveSource)
		h.Live = true
		r.Heaps = append(r.Heaps, h)
	}
	r.Errors = append(r.Errors, opt.LiveErrors...)
	r.Lines, r.Unparsed, r.Oversized = sum.Lines, sum.Unparsed, sum.Oversized
	sorted := sum.SortedPorts()
	for _, p := range sorted {
		pr := Port{Port: p.Port.String(), Disabled: p.Disabled, Enabled: p.Enabled, Untimed: p.Untimed,
			First: p.First, Last: p.Last, CyclesPerMin: p.PeakCyclesPerMinute, Flapping: p.Flapping}
		if p.MACKnown {
			pr.MAC = p.MAC.String()
			if vm, ok := opt.VMs[pr.MAC]; ok {
				pr.VM, pr.VMX = vm.Name, vm.VMX
			}
		}
		r.Ports = append(r.Ports, pr)
	}
	for _, h := range sum.Heaps {
		kind := "maxed"
		if h.Kind == collector.KindHeapAlignFailed {
			kind = "align_failed"
		}
		r.HeapEvents = append(r.HeapEvents, HeapEvent{Heap: h.Heap, Kind: kind, Count: h.Count, Untimed: h.Untimed, First: h.First, Last: h.Last})
	}
	for _, d := range sum.Processes {
		r.Dumps = append(r.Dumps, Dump{Process: d.Process, Agent: collector.AgentOf(d.Process), Count: d.UserDumps, CoreDumps: d.CoreDumps, Last: d.Last})
	}
	for _, c := range sum.Crashes {
		r.Crashes = append(r.Crashes, Crash{Agent: c.Agent, Processes: c.Processes, Time: c.Time, Lines: c.Lines})
	}
	r.Timeline = timelineOf(sum, sorted, r.Ports, r.Crashes)
	if sum.CrashesDropped > 0 {
		r.Warnings = append(r.Warnings, fmt.Sprintf("%s past the first %d not listed (counted in dumps)", plural(sum.CrashesDropped, "crash"), len(sum.Crashes)))
	}
	r.judge()
	return r
}

// judgeInput says what each log file held that was not what it seemed. A
// file with lines in no known format is not a vmkernel log (or not one
// heapguard can read): it is an error, so that the verdict is UNKNOWN and
// never an OK about nothing. A file with some known lines keeps its verdict
// and is noted with its count of unknown lines. An empty file is an error
// only when no log given had a known line: the live log is empty for a
// moment after each rotation, while its rotated copies hold the lines.
func (r *Report) judgeInput(files []collector.FileSummary) {
	anyKnown := slices.ContainsFunc(files, func(f collector.FileSummary) bool {
		return f.Summary != nil && f.Summary.Lines-f.Summary.Unparsed-f.Summary.Oversized > 0
	})
	for _, f := range files {
		s, p := f.Summary, f.Path
		if s == nil {
			continue
		}
		known := s.Lines - s.Unparsed - s.Oversized
		switch {
		case f.Err != nil:
			// Already an error; the part read is judged with the rest.
		case s.Lines == 0 && anyKnown:
			r.Warnings = append(r.Warnings, fmt.Sprintf("%s is empty", p))
		case s.Lines == 0:
			r.Errors = append(r.Errors, fmt.Sprintf("%s is empty: no log line to judge", p))
		case known == 0:
			r.Errors = append(r.Errors, fmt.Sprintf("%s: %s in no known %s log format: nothing to judge (is it a vmkernel log?)", p, ofLines(s.Unparsed, s.Lines), s.Log))
		case s.Unparsed > 0:
			r.Warnings = append(r.Warnings, fmt.Sprintf("%s: %s in no known %s log format (skipped)", p, ofLines(s.Unparsed, s.Lines), s.Log))
		}
		if s.Oversized > 0 {
			r.Warnings = append(r.Warnings, fmt.Sprintf("%s: %s longer than 1 MiB skipped", p, plural(int(s.Oversized), "line")))
		}
		if s.GuessedYear != 0 {
			// A copied log's modification time is the copy's: a 2012 log
			// read today would be dated today's year without a word.
			from := "the file's modification time"
			if fi, err := os.Stat(p); err == nil {
				from += " (" + fi.ModTime().UTC().Format("2006-01-02") + ")"
			}
			r.Warnings = append(r.Warnings, fmt.Sprintf("%s: its 4.x dates carry no year: took %d from %s; give --year N if the log is from another year",
				p, s.GuessedYear, from))
		}
	}
}

// ofLines says "5 of 6 lines are", "1 of 6 lines is", "its only line is"
// or "all 771 lines are".
func ofLines(n, total int64) string {
	switch {
	case n == total && n == 1:
		return "its only line is"
	case n == total:
		return fmt.Sprintf("all %d lines are", n)
	case n == 1:
		return fmt.Sprintf("1 of %d lines is", total)
	}
	return fmt.Sprintf("%d of %d lines are", n, total)
}

func readStatsFile(p string) ([]heap.Sample, error) {
	f, err := os.Open(p)
	if err != nil {
		return nil, fmt.Errorf("read heap stats %s: %w", p, collector.PathCause(err))
	}
	defer f.Close()
	fi, err := f.Stat()
	switch {
	case err != nil:
		return nil, fmt.Errorf("read heap stats %s: %w", p, collector.PathCause(err))
	case !fi.Mode().IsRegular():
		return nil, fmt.Errorf("read heap stats %s: not a regular file", p)
	case fi.Size() == 0:
		return nil, fmt.Errorf("read heap stats %s: the file is empty", p)
	}
	samples, err := heap.ParseStats(f)
	if len(samples) == 0 {
		// Not a blank-named row per line of some other file: say what it is not.
		return nil, fmt.Errorf("read heap stats %s: not vsish heap stats output (no heap's stats block or field in it)", p)
	}
	if err != nil {
		return samples, fmt.Errorf("read heap stats %s: %w", p, err)
	}
	return samples, nil
}

func heapReport(s heap.Sample, source string) Heap {
	hr := Heap{Name: s.Name, FullName: s.FullName, Fields: map[string]int64{}, Incomplete: s.Incomplete, Source: source}
	if pct, src, ok := s.FreeOfMax(); ok {
		hr.PercentFreeOfMax, hr.FreeSource = &pct, string(src)
	}
	if v, ok := s.LowestPercentFreeEver(); ok {
		hr.LowestFreeEver = &v
	}
	for _, f := range s.Fields {
		if f.IsNum {
			hr.Fields[f.Key] = f.Num
		}
	}
	return hr
}

// judge sets the verdict: 0 nothing wrong; 1 flapping ports or a heap below
// 20 % free of max; 2 a heap maxed or below 10 %, or a vpxa/hostd dump;
// 3 input that could not be read or judged (a heap that could not be
// sampled, a file in no known format).
func (r *Report) judge() {
	raise := func(l policy.Level, why string) {
		r.Status = worse(r.Status, l)
		r.Reasons = append(r.Reasons, why)
	}
	var flapping []string
	for _, p := range r.Ports {
		if p.Flapping {
			flapping = append(flapping, p.Port)
		}
	}
	if n := len(flapping); n > 0 {
		raise(policy.Warn, fmt.Sprintf("%s flapping (%s)", plural(n, "port"), strings.Join(flapping, ", ")))
	}
	for _, e := range r.HeapEvents {
		if e.Kind == "maxed" {
			raise(policy.Crit, fmt.Sprintf("%s reached its maximum size (%s, %s)", e.Heap, plural(e.Count, "line"), lastOf(e.Last, e.Untimed)))
		}
	}
	for _, why := range agentCrashes(r.Crashes) {
		raise(policy.Crit, why)
	}
	for _, h := range r.Heaps {
		if h.PercentFreeOfMax == nil {
			continue
		}
		where := ""
		if h.Live {
			where = ", sampled live"
		}
		switch pct := *h.PercentFreeOfMax; {
		case pct < reportCritBelow:
			raise(policy.Crit, fmt.Sprintf("%s %.1f%% free of max (below %g%%%s)", h.Name, pct, reportCritBelow, where))
		case pct < reportWarnBelow:
			raise(policy.Warn, fmt.Sprintf("%s %.1f%% free of max (below %g%%%s)", h.Name, pct, reportWarnBelow, where))
		}
	}
	for _, e := range r.Errors {
		raise(policy.Unknown, e)
	}
	r.Verdict = r.Status.String()
}

// worse ranks CRITICAL above UNKNOWN above WARNING above OK, as Nagios
// does for a worst-of status: a heap that ran out must not hide behind one
// unreadable rotated file.
func worse(a, b policy.Level) policy.Level {
	rank := func(l policy.Level) int {
		switch l {
		case policy.Crit:
			return 3
		case policy.Unknown:
			return 2
		case policy.Warn:
			return 1
		}
		return 0
	}
	if rank(b) > rank(a) {
		return b
	}
	return a
}

// agentCrashes says, per management agent (whose crash disconnects the
// host), how often it crashed and which threads or helpers dumped:
// "vpxa crashed (core dump by vpxa-worker, last T)". A process of no known
// agent is not guessed: it stays in the dumps, not in the verdict.
func agentCrashes(crashes []Crash) []string {
	type agg struct {
		n, untimed int
		by         []string
		last       time.Time
	}
	var order []string
	per := map[string]*agg{}
	for _, c := range crashes {
		if c.Agent == "" {
			continue
		}
		a := per[c.Agent]
		if a == nil {
			a = &agg{}
			per[c.Agent] = a
			order = append(order, c.Agent)
		}
		a.n++
		for _, p := range c.Processes {
			if !slices.Contains(a.by, p) {
				a.by = append(a.by, p)
			}
		}
		if c.Time.IsZero() {
			a.untimed++
		} else if c.Time.After(a.last) {
			a.last = c.Time
		}
	}
	slices.Sort(order)
	var out []string
	for _, name := range order {
		a := per[name]
		times := ""
		if a.n > 1 {
			times = " " + strconv.Itoa(a.n) + " times"
		}
		dumps := "core dump"
		if len(a.by) > 1 || a.n > 1 {
			dumps = "core dumps"
		}
		out = append(out, fmt.Sprintf("%s crashed%s (%s by %s, %s)", name, times, dumps, strings.Join(a.by, ", "), lastOf(a.last, a.untimed)))
	}
	return out
}

// lastOf says when the last of some lines was, untimed of them having no
// time that could be read: "last T", "last T; 2 time unknown", "time unknown".
func lastOf(last time.Time, untimed int) string {
	switch {
	case last.IsZero() && untimed > 0:
		return "time unknown"
	case untimed > 0:
		return fmt.Sprintf("last %s; %d time unknown", stamp(last), untimed)
	}
	return "last " + stampOrDash(last)
}

// stampOrUnknown is stamp for a time that may not be known.
func stampOrUnknown(t time.Time) string {
	if t.IsZero() {
		return "time unknown"
	}
	return stamp(t)
}

// stampOrDash is stamp for a time that may be missing.
func stampOrDash(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return stamp(t)
}

// WriteText renders the report for people.
func (r *Report) WriteText(w io.Writer) error {
	bw := bufio.NewWriter(w)
	fmt.Fprintf(bw, "heapguard report: %s, %d lines read, %d unparsed, %d oversized\n",
		plural(len(r.Files), "file"), r.Lines, r.Unparsed, r.Oversized)
	if r.HostVersion != "" {
		fmt.Fprintf(bw, "Host: %s\n", r.HostVersion)
	}
	agentLog := map[string]string{}
	for _, a := range r.AgentLogs {
		agentLog[a.File] = a.Log
	}
	for _, f := range r.Files {
		if l := agentLog[f]; l != "" {
			fmt.Fprintf(bw, "  read %s (as the %s log)\n", f, l)
			continue
		}
		fmt.Fprintf(bw, "  read %s\n", f)
	}
	for _, f := range r.NotRead {
		fmt.Fprintf(bw, "  not read %s\n", f)
	}

	var flapping, quiet []Port
	for _, p := range r.Ports {
		if p.Flapping {
			flapping = append(flapping, p)
		} else {
			quiet = append(quiet, p)
		}
	}
	fmt.Fprintf(bw, "\nFlapping ports, by cycles:\n")
	if len(flapping) == 0 {
		fmt.Fprintf(bw, "  none\n")
	} else {
		fmt.Fprintf(bw, "  %-11s %-17s %7s %8s %8s  %-20s  %-20s  %s\n", "PORT", "MAC", "CYCLES", "DISABLED", "PEAK/MIN", "FIRST", "LAST", "VM")
		for _, p := range flapping {
			fmt.Fprintf(bw, "  %-11s %-17s %7d %8d %8d  %-20s  %-20s  %s\n", p.Port, orDash(p.MAC), p.Enabled, p.Disabled,
				p.CyclesPerMin, stampOrDash(p.First), stampOrDash(p.Last), portVM(p))
		}
	}
	if len(quiet) > 0 {
		fmt.Fprintf(bw, "Other ports seen (not flapping):")
		for _, p := range quiet {
			fmt.Fprintf(bw, " %s (%d/%d", p.Port, p.Enabled, p.Disabled)
			if p.Untimed > 0 {
				fmt.Fprintf(bw, ", %d time unknown", p.Untimed)
			}
			fmt.Fprintf(bw, ")")
		}
		fmt.Fprintf(bw, "\n")
	}

	fmt.Fprintf(bw, "\nHeap events:\n")
	if len(r.HeapEvents) == 0 {
		fmt.Fprintf(bw, "  none\n")
	}
	for _, e := range r.HeapEvents {
		if e.Untimed == e.Count {
			fmt.Fprintf(bw, "  %-16s %-12s %6d  time unknown\n", e.Heap, e.Kind, e.Count)
			continue
		}
		fmt.Fprintf(bw, "  %-16s %-12s %6d  first %s  last %s", e.Heap, e.Kind, e.Count, stampOrDash(e.First), stampOrDash(e.Last))
		if e.Untimed > 0 {
			fmt.Fprintf(bw, "  (%d time unknown)", e.Untimed)
		}
		fmt.Fprintf(bw, "\n")
	}

	fmt.Fprintf(bw, "\nProcess dumps:\n")
	if len(r.Dumps) == 0 {
		fmt.Fprintf(bw, "  none\n")
	}
	for _, d := range r.Dumps {
		agent := ""
		if d.Agent != "" && d.Agent != d.Process {
			agent = " (" + d.Agent + ")"
		}
		fmt.Fprintf(bw, "  %-16s %s (%d wantCoreDump), last %s%s\n", d.Process, plural(d.Count, "dump"), d.CoreDumps, stampOrDash(d.Last), agent)
	}
	if len(r.Crashes) > 0 {
		fmt.Fprintf(bw, "Crashes (each once, however many lines report it):\n")
		for _, c := range r.Crashes {
			who := c.Agent
			if who == "" {
				who = "-"
			}
			fmt.Fprintf(bw, "  %-16s %-20s %s (%s)\n", who, stampOrUnknown(c.Time), strings.Join(c.Processes, ", "), plural(c.Lines, "line"))
		}
	}

	if len(r.Heaps) > 0 {
		fmt.Fprintf(bw, "\nHeap samples:\n")
		shown, hidden := r.heapsToShow()
		width := 34
		for _, h := range shown {
			width = max(width, len(h.displayName()))
		}
		for _, h := range shown {
			name := h.displayName()
			free := "free of max unknown"
			if h.PercentFreeOfMax != nil {
				free = fmt.Sprintf("%6.2f%% free of max", *h.PercentFreeOfMax)
			}
			extra := ""
			if h.LowestFreeEver != nil {
				extra = fmt.Sprintf(", lowest ever %d%%", *h.LowestFreeEver)
			}
			if h.Incomplete {
				extra += ", incomplete"
			}
			source := h.Source
			if h.Live {
				source = "live, vsish"
			}
			fmt.Fprintf(bw, "  %-*s %s%s  (%s)\n", width, name, free, extra, source)
		}
		if hidden > 0 {
			fmt.Fprintf(bw, "  … and %s sampled live, each at least %g%% free of max (--json lists every heap)\n", plural(hidden, "more heap"), liveShowBelow)
		}
	}
	for _, w := range r.Warnings {
		fmt.Fprintf(bw, "\nwarning: %s\n", w)
	}
	for _, e := range r.Errors {
		fmt.Fprintf(bw, "\nerror: %s\n", e)
	}
	fmt.Fprintf(bw, "\nVerdict: %s", r.Verdict)
	if len(r.Reasons) > 0 {
		fmt.Fprintf(bw, ": %s", strings.Join(r.Reasons, "; "))
	}
	fmt.Fprintf(bw, "\n")
	return bw.Flush()
}

// displayName is the heap's name with its address suffix when known.
func (h Heap) displayName() string {
	if h.FullName != "" {
		return h.FullName
	}
	return h.Name
}

// liveShowBelow, liveShowAlways: a live host has a hundred heaps or more,
// so the text report shows the live heaps below liveShowBelow % free of
// max, those with no figures, netGPHeap, and at least the liveShowAlways
// lowest; one line counts the rest. Heaps from --heap-stats files are all
// shown: the user chose them.
const (
	liveShowBelow  = 50.0
	liveShowAlways = 5
)

// heapsToShow returns the heaps the text report lists, live ones lowest
// free first, and how many live heaps it leaves out.
func (r *Report) heapsToShow() ([]Heap, int) {
	var files, live []Heap
	for _, h := range r.Heaps {
		if h.Live {
			live = append(live, h)
		} else {
			files = append(files, h)
		}
	}
	free := func(h Heap) float64 {
		if h.PercentFreeOfMax == nil {
			return -1 // unknown first: it needs a look
		}
		return *h.PercentFreeOfMax
	}
	slices.SortStableFunc(live, func(a, b Heap) int { return cmp.Compare(free(a), free(b)) })
	shown := files
	hidden := 0
	for i, h := range live {
		if i < liveShowAlways || free(h) < liveShowBelow || h.Name == "netGPHeap" {
			shown = append(shown, h)
		} else {
			hidden++
		}
	}
	return shown, hidden
}

func portVM(p Port) string {
	switch {
	case p.VM != "" && p.VMX != "":
		return p.VM + " (" + p.VMX + ")"
	case p.VM != "":
		return p.VM
	}
	return "-"
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// HostLogs lists a host's vmkernel log and its rotated copies, oldest
// first (vmkernel.2.gz, vmkernel.1.gz, vmkernel.0.gz, vmkernel.log),
// wherever the version keeps them (see FindHostLogs); with none found,
// the live log of the detected layout, so that reading it says what is
// missing.
func HostLogs(root string) []string {
	if k := FindHostLogs(root).Kernel; len(k) > 0 {
		return k
	}
	return []string{host.Path(root, host.DetectLayout(root).LogPath)}
}

// uniqueLogs drops a file given again (under the same or another path):
// read twice, its events would count twice.
func (r *Report) uniqueLogs(paths []string) []string {
	var out []string
	var seen []os.FileInfo
	for _, p := range paths {
		fi, err := os.Stat(p)
		if err == nil {
			if j := slices.IndexFunc(seen, func(s os.FileInfo) bool { return os.SameFile(s, fi) }); j >= 0 {
				r.Warnings = append(r.Warnings, fmt.Sprintf("%s is given twice: read once", p))
				continue
			}
			seen = append(seen, fi)
		}
		out = append(out, p)
	}
	return out
}

func plural(n int, what string) string {
	if n == 1 {
		return "1 " + what
	}
	return strconv.Itoa(n) + " " + what + "s"
}

func stamp(t time.Time) string { return t.UTC().Format(time.RFC3339) }
