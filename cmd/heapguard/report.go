package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/heapguard/heapguard/policy"
	"github.com/heapguard/heapguard/remediate"
	"github.com/heapguard/heapguard/report"
)

type reportOptions struct {
	json      bool
	heapStats stringList
	root      string
	year      int
	since     string
}

func init() {
	register(&command{
		name:    "report",
		summary: "read-only report: flapping ports, heaps that ran out, agent crashes",
		usage:   "[--json] [--heap-stats FILE]... [--root DIR] [--year N] [--since T] [LOGFILE...]",
		help: `Reads vmkernel logs (4.x /var/log/messages, 5.1-7.x and 8.x vmkernel.log, rotated .gz
files too) and vsish heap statistics, and tells which ports flap, which MACs and VMs they belong
to, which heaps ran out and which agents crashed. It changes nothing.

With --root DIR (an ESXi root: / on the host, or a simulated host), MACs are mapped to VMs from
DIR/vmfs/volumes/*/*/*.vmx, and when no LOGFILE is given the host's log and its rotated copies
are read.

Examples:
  heapguard report /var/log/vmkernel.log
  heapguard report --root / --heap-stats netgp.txt
  heapguard report --json --year 2012 messages messages.0.gz

EXIT STATUS:
  0 nothing wrong
  1 flapping ports, or a heap below 20% free of max
  2 a heap reached its maximum or is below 10% free of max, or vpxa/hostd dumped core
  3 bad usage or unreadable input (the other inputs are still reported)`,
		flags: func(fs *flag.FlagSet) any {
			o := &reportOptions{}
			fs.BoolVar(&o.json, "json", false, "print one JSON object (schema: docs/json.md)")
			fs.Var(&o.heapStats, "heap-stats", "`FILE` with vsish heap stats output (repeatable)")
			fs.StringVar(&o.root, "root", "", "ESXi root `DIR` for .vmx files and default logs")
			fs.IntVar(&o.year, "year", 0, "year `N` of the oldest 4.x syslog date of each log; its newer rotated copies go on from it, across New Year (default: each file's modification year)")
			fs.StringVar(&o.since, "since", "", "ignore events before `T` (RFC 3339, YYYY-MM-DD, or a duration ago like 6h)")
			return o
		},
		run: runReport,
	})
}

func runReport(ctx context.Context, e env, opts any, args []string) int {
	o := opts.(*reportOptions)
	since, err := parseSince(o.since, time.Now())
	if err != nil {
		fmt.Fprintf(e.stderr, "heapguard report: %v\n", err)
		return exitUnknown
	}
	logs := args
	if len(logs) == 0 && o.root == "" && len(o.heapStats) == 0 {
		fmt.Fprintln(e.stderr, "heapguard report: give LOGFILE arguments, --heap-stats or --root")
		return usageError
	}
	if len(logs) == 0 && o.root != "" {
		logs = report.HostLogs(o.root)
	}
	ro := report.Options{Logs: logs, HeapStats: o.heapStats, Year: o.year, Since: since}
	if o.root != "" {
		refs, err := remediate.ScanVMX(os.DirFS(o.root))
		if err != nil {
			// Some unreadable .vmx files do not spoil the others.
			fmt.Fprintf(e.stderr, "heapguard report: %v\n", err)
		}
		ro.VMs = make(map[string]policy.VMRef, len(refs))
		for mac, ref := range refs {
			ro.VMs[mac] = policy.VMRef{Name: ref.Name, VMX: ref.VMX}
		}
	}
	r := report.Build(ro)
	for _, msg := range r.Errors {
		fmt.Fprintf(e.stderr, "heapguard report: %s\n", msg)
	}
	for _, msg := range r.Warnings {
		fmt.Fprintf(e.stderr, "heapguard report: warning: %s\n", msg)
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

// parseSince reads an RFC 3339 time, a date, or a duration before now.
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
	if d, err := time.ParseDuration(s); err == nil && d >= 0 {
		return now.Add(-d).UTC(), nil
	}
	return time.Time{}, fmt.Errorf("--since %q: want an RFC 3339 time, YYYY-MM-DD or a duration like 6h", s)
}

// stringList is a repeatable string flag.
type stringList []string

func (l *stringList) String() string { return strings.Join(*l, ",") }
func (l *stringList) Set(s string) error {
	*l = append(*l, s)
	return nil
}
