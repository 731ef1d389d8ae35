package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"runtime"
	"runtime/debug"

	"github.com/heapguard/heapguard/agent"
)

type runOptions struct {
	*agentFlags
	fs *flag.FlagSet
}

func init() {
	register(&command{
		name:    "run",
		summary: "guard the host: follow the log, sample heaps, act when a heap runs out",
		noArgs:  true,
		usage:   "[flags]",
		help: `The daemon. It waits --interval, reads the vmkernel log from where it stopped (across
rotations; no inotify needed), samples the heaps (a watched heap at every poll, another one once a
minute while it is OK) and tracks flapping ports, and when a watched heap (netGPHeap) is
CRITICAL while ports flap, powers off the flapping VMs that --power-off-allow names, restarts
vpxa and verifies. Every decision and action goes to <state-dir>/journal.jsonl first.
Stops cleanly on SIGTERM or SIGINT, finishing the action under way.

Examples:
  heapguard run --power-off-allow 'DSVA*'
  heapguard run --dry-run --for 10m
  heapguard run --root /tmp/esx --state-dir /tmp/esx-state --interval 10s

EXIT STATUS:
  0 stopped cleanly
  2 the journal could not be written (no action was taken)
  3 bad usage, another instance holds the lock, or the host could not be read`,
		flags: func(fs *flag.FlagSet) any { return &runOptions{agentFlags: addAgentFlags(fs, true), fs: fs} },
		run:   runRun,
	})
}

func runRun(ctx context.Context, e env, opts any, args []string) int {
	o := opts.(*runOptions)
	w, done, code, _ := openWatcher(e, "run", o.fs, o.agentFlags)
	if w == nil {
		return code
	}
	defer done()
	err := w.Run(ctx, o.forDur, func(r agent.Result) {
		// People watching see what was journaled: plans that act or change.
		if !r.Reported {
			return
		}
		if o.json {
			json.NewEncoder(e.stdout).Encode(newPlanOutput(r, r.Plan.NagiosLine()))
			return
		}
		r.Plan.WriteText(e.stdout)
		fmt.Fprintln(e.stdout)
	})
	if err != nil {
		fmt.Fprintf(e.stderr, "heapguard run: %v\n", err)
		return exitCodeOf(err)
	}
	return exitOK
}

// daemonRuntime tunes the Go runtime for the daemon, which main calls
// before `heapguard run` (tests that call run in-process keep theirs).
// An environment variable of the same name wins.
func daemonRuntime(getenv func(string) string) {
	if getenv("GOGC") == "" {
		// The daemon's live heap is well under 1 MB; the default GC goal
		// (4 MB minimum) would let garbage double its resident size on a
		// host where memory is the scarce thing. Measured: 3.3 MB of heap and
		// stacks instead of 6.5 MB, for no measurable CPU (make bench).
		debug.SetGCPercent(25)
	}
	if getenv("GOMAXPROCS") == "" {
		// One goroutine does the daemon's work. With a second P the runtime
		// spends more than it saves: sysmon polls every 20 us for 10 ms
		// while a P waits in a syscall (each host command's wait) before
		// handing it off, and the GC runs idle mark workers on the other P.
		// Measured with make bench: about a quarter less CPU per poll.
		runtime.GOMAXPROCS(1)
	}
}
