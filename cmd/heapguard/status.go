package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"time"

	"go.uber.org/zap/zapcore"

	"github.com/heapguard/heapguard/agent"
)

type statusOptions struct {
	*agentFlags
	staleAfter time.Duration
	fs         *flag.FlagSet
}

func init() {
	register(&command{
		name:    "status",
		noArgs:  true,
		summary: "read-only Nagios/NRPE check: saved state, budgets, breaker, locks, last plan, one fresh heap sample",
		usage:   "[flags]",
		help: `What Nagios or NRPE should call (cron calls check, which acts). status takes no lock and
writes nothing, so it answers while a run or check acts; it reads what they saved in --state-dir
(flapping ports, heap levels and trends, budgets, the breaker, the journal's last plan), samples
the watched heaps once through vsish, and judges them as check would now, without acting. Its
reads and vsish calls share a budget of 1.2 s: a hung vsish, or a state folder on a datastore
that stopped answering, makes it UNKNOWN with the reason, not late.

The first line is the Nagios status line with performance data; the lines after it are the
long output: each watched heap, the flapping ports as of the last check, the power-off budget
and the vpxa restart cooldown, the circuit breaker, who holds the state folder's and the host's
locks, the last plan with each step's result, and the saved state's age.

The status is the worst of the heaps (as check judges them) and the ports flapping at the last
check, raised to WARNING when heapguard is not acting: the saved state is older than
--stale-after (no check or run keeps it), the breaker is open, or the budgets cannot be read.
Without a saved state yet, the fresh sample alone is judged and the line says so. A spent
power-off budget is named on the line but does not change the status.

It takes the same flags as check (and the same --config file), so both judge alike; flags that
only matter when acting are accepted and ignored. With --dry-run it reads the dry runs' state.

Examples:
  heapguard status --config /vmfs/volumes/datastore1/heapguard/heapguard.conf
  heapguard status --json
  # NRPE: command[heapguard]=/vmfs/volumes/datastore1/heapguard/heapguard status

EXIT STATUS (Nagios):
  0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN (bad usage, the heaps cannot be read now)`,
		flags: func(fs *flag.FlagSet) any {
			o := &statusOptions{agentFlags: addAgentFlags(fs, false), fs: fs}
			fs.DurationVar(&o.staleAfter, "stale-after", agent.DefaultStaleAfter, "WARNING when the saved state is older than this (give it on the command line: check does not know it)")
			return o
		},
		run: runStatus,
	})
}

func runStatus(ctx context.Context, e env, opts any, args []string) int {
	o := opts.(*statusOptions)
	fail := func(err error) int {
		fmt.Fprintf(e.stderr, "heapguard status: %v\n", err)
		fmt.Fprintln(e.stdout, statusLine(exitUnknown, err.Error()))
		return exitUnknown
	}
	if o.staleAfter <= 0 {
		return fail(fmt.Errorf("--stale-after %s: want a positive duration", o.staleAfter))
	}
	if err := applyConfig(o.fs, o.config); err != nil {
		return fail(err)
	}
	opt, err := o.options(loggerFor(e, zapcore.Level(o.logLevel)))
	if err != nil {
		return fail(err)
	}
	warnUnsafeState(e.stderr, "status", opt.StateDir)
	s, err := agent.ReadStatus(ctx, opt, agent.StatusOptions{StaleAfter: o.staleAfter})
	if err != nil {
		return fail(err)
	}
	if o.json {
		enc := json.NewEncoder(e.stdout)
		enc.SetIndent("", "  ")
		err = enc.Encode(s)
	} else {
		err = s.WriteText(e.stdout)
	}
	if err != nil {
		fmt.Fprintf(e.stderr, "heapguard status: write: %v\n", err)
		return exitUnknown
	}
	return s.Status.ExitCode()
}
