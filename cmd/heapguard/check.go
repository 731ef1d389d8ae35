package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"strings"

	"github.com/heapguard/heapguard/agent"
	"github.com/heapguard/heapguard/heap"
	"github.com/heapguard/heapguard/policy"
	"github.com/heapguard/heapguard/remediate"
)

type checkOptions struct {
	*agentFlags
	fs *flag.FlagSet
}

func init() {
	register(&command{
		name:    "check",
		summary: "one pass for cron or Nagios: read new log lines, sample heaps, decide, act, one status line",
		noArgs:  true,
		usage:   "[flags]",
		help: `One pass: reads the log from where the last check stopped (rotated copies included),
takes one heap sample and adds it to the saved trend, decides, acts like run does, and prints
one Nagios plugin line (or, with --json, the plan). State, budgets and the journal live in
--state-dir, so checks from cron every minute behave like the daemon.

` + checkTime() + `

Examples:
  heapguard check --power-off-allow 'DSVA*'
  heapguard check --dry-run --json

EXIT STATUS (Nagios):
  0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN (bad usage, the lock is held, heaps unreadable)`,
		flags: func(fs *flag.FlagSet) any { return &checkOptions{agentFlags: addAgentFlags(fs, false), fs: fs} },
		run:   runCheck,
	})
}

// checkTime says how long a check that acts may take with the defaults
// (remediate.Live.WorstPlanTime; the verification's heap read lists the
// heaps then reads one).
func checkTime() string {
	w := (&remediate.Live{}).WorstPlanTime(2 * heap.Timeout)
	prompt := remediate.DefaultShutdownTimeout + remediate.DefaultPollInterval + remediate.DefaultVerifyInterval
	return fmt.Sprintf(`TIME: a check that acts shuts the VMs down side by side, so they share one
--shutdown-timeout, then restarts vpxa and verifies. With the defaults: about %s plus
vpxa's restart when the guests ignore the shutdown; at most %s when every host command also
runs to its timeout (power-offs %s, vpxa restart %s, verification %s; %s more on 4.x),
plus the reads before acting. Run check from cron: under NRPE it would need command_timeout
(nrpe.cfg) and check_nrpe -t above that, and NRPE's usual 10-60 s kills it mid-action.`,
		prompt, w.Total(), w.PowerOffs, w.Restart, w.Verify, remediate.DefaultAgentCommandTimeout)
}

func runCheck(ctx context.Context, e env, opts any, args []string) int {
	o := opts.(*checkOptions)
	w, done, code, err := openWatcher(e, "check", o.fs, o.agentFlags)
	if w == nil {
		// Nagios shows stdout only: the reason goes on the status line too.
		fmt.Fprintln(e.stdout, statusLine(code, "could not start: "+err.Error()))
		return code
	}
	defer done()
	res, err := w.Check(ctx)
	res, line, code := checkVerdict(res, err)
	plan := res.Plan
	if o.json {
		enc := json.NewEncoder(e.stdout)
		enc.SetIndent("", "  ")
		enc.Encode(newPlanOutput(res, line))
	} else {
		fmt.Fprintln(e.stdout, line)
		if o.dryRun && len(plan.Actions) > 0 {
			// A dry run is a preview: show the plan it journaled.
			plan.WriteText(e.stdout)
		}
	}
	if err != nil {
		fmt.Fprintf(e.stderr, "heapguard check: %v\n", err)
	}
	return code
}

// checkVerdict is check's status line and exit code for a poll's result
// and error; a result with no decision gets a plan that says why.
func checkVerdict(res agent.Result, err error) (agent.Result, string, int) {
	plan := res.Plan
	line := plan.NagiosLine()
	code := plan.Status.ExitCode()
	switch {
	case err != nil && plan.Time.IsZero():
		// Stopped or refused before deciding: nothing was judged, so
		// no plan's line (it would read OK) but the reason.
		code, line = exitUnknown, statusLine(exitUnknown, err.Error())
		res.Plan = policy.Plan{Status: policy.Unknown, Heaps: []policy.HeapVerdict{}, Actions: []policy.Action{}, Notes: []string{err.Error()}}
	case err != nil && !errors.Is(err, remediate.ErrJournal) && len(res.Outcomes) == 0 && len(plan.LiveActions()) > 0:
		// Decided to act but did not (the lock was lost, the state
		// could not be saved): the line must not say it is acting.
		code, line = exitCritical, plan.NagiosLineNotActing(err.Error())
	case errors.Is(err, remediate.ErrJournal):
		code = exitCritical
		why := "journal cannot be written, no action taken"
		if ran := remediate.Ran(res.Outcomes); ran > 0 {
			why = fmt.Sprintf("journal cannot be written, stopped after %d step(s)", ran)
		}
		line = plan.NagiosLineNotActing(why)
	}
	return res, line, code
}

// exitCodeOf maps an error to the Nagios codes: a journal that cannot be
// written is critical (heapguard is blind to its own actions), anything
// else unknown.
func exitCodeOf(err error) int {
	switch {
	case err == nil:
		return exitOK
	case errors.Is(err, remediate.ErrJournal):
		return exitCritical
	}
	return exitUnknown
}

// statusLine is a Nagios line for a run that produced no plan: the level
// of code and the reason, on one line, cut short and without "|" (which
// would start performance data).
func statusLine(code int, why string) string {
	level := "UNKNOWN"
	if code == exitCritical {
		level = "CRITICAL"
	}
	why = strings.Map(func(r rune) rune {
		switch r {
		case '|':
			return '/'
		case '\n', '\r':
			return ' '
		}
		return r
	}, why)
	if len(why) > 300 {
		why = why[:300] + "…"
	}
	return "HEAPGUARD " + level + ": " + why
}
