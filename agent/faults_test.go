package agent

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/heapguard/heapguard/esxsim"
	"github.com/heapguard/heapguard/host"
	"github.com/heapguard/heapguard/policy"
	"github.com/heapguard/heapguard/remediate"
)

// The fault matrix (issue 17, point 2): the seed incident on esxsim, one
// fault per row, the agent polling as cron's `heapguard check` does with
// the simulated clock moving only while it waits. After each row one
// checker (faultFix.verify) asserts what must hold whatever the fault:
//
//  1. the agent kept polling, and every error it returned names the cause;
//  2. nothing unsafe: no power operation on a VM that is not flapping and
//     allowed, none on a VM whose state is unknown, none while the heaps
//     could not be read, and every host change journaled before it ran;
//  3. nothing twice: no command that changes the host succeeded twice on
//     one target within the budget window (esxsim's action log), no more
//     VMs powered off than the budget;
//  4. the journal parses whole after every poll, its entry count never
//     goes down, and no step is left started once the agent is closed.
//
// Hangs are bounded by the commands' timeouts (short ones here), never by
// sleeps of the test. Two rows run the real binary in cmd/heapguard:
// SIGTERM and SIGKILL (TestFaultMatrixSignals) and a state folder without
// flock (TestFaultMatrixNoFlock, strace answering EOPNOTSUPP).

// The seed incident's flapping appliances, by vmid.
var seedFlappers = map[string]string{"DSVA01": "1", "DSVA03": "3", "DSVA04": "4"}

type faultRow struct {
	name string
	// advance is the host time before the agent starts (default 108m:
	// under 10 % free, the three DSVA ports flapping: the first poll acts).
	advance   time.Duration
	configure func(o *Options)
	// setup runs before Open (a state folder to prepare, a file to block).
	setup func(fx *faultFix)
	// opened runs after Open, with the watcher (to wrap its executor).
	opened func(fx *faultFix)
	// poll runs before poll i (0-based) of each phase.
	poll func(fx *faultFix, i int)
	// watch is the host time of each phase (default 2m30s).
	watch time.Duration
	// restart, when set, closes the agent after the first phase, runs,
	// and opens it again for a second phase.
	restart func(fx *faultFix)
	// openErr: Open must fail with an error naming this (an exit with a
	// clear reason), and the host be left untouched.
	openErr string
	// reopenErr: after restart, Open must fail naming this.
	reopenErr string
	// pollErr: every error a poll returns must contain one of these; none
	// given, a poll must not fail.
	pollErr []string
	// wantOff must be powered off at the end: the agent kept working
	// through the fault (or after it ended).
	wantOff []string
	// unknown are VMs whose state heapguard cannot know: never acted on.
	unknown []string
	check   func(fx *faultFix)
	// pollBound is the most wall time one poll may take (default 15 s):
	// the hangs last a minute, so a poll that waits for one instead of
	// giving up at its command's timeout shows here.
	pollBound time.Duration
	// integrator names a known product bug this row meets: the row is
	// skipped, with its failures, when it fails.
	integrator string
}

// faultFix is one row's simulated host and agent. fail records a
// failure; verify and the row's check report through it, so a row meeting
// a known bug can be skipped with what failed.
type faultFix struct {
	t        *testing.T
	row      faultRow
	h        *esxsim.Host
	clock    *esxsim.StepClock
	opt      Options
	w        *Watcher
	stateDir string
	before   *esxsim.State
	results  []Result
	errs     []error
	polls    int
	entries  int // journal entries seen at the last poll
	// journalBad: a parse failure was reported.
	journalBad bool
	// saved and release are a row's own: a file's old text, an outage's end.
	saved   []byte
	release func()

	mu       sync.Mutex
	failures []string
}

func (fx *faultFix) fail(format string, args ...any) {
	fx.mu.Lock()
	defer fx.mu.Unlock()
	fx.failures = append(fx.failures, fmt.Sprintf(format, args...))
}

func (fx *faultFix) logPath() string { return fx.h.Path(fx.h.State().Ver().LogPath()) }

// hookRunner calls before (when set) ahead of each command it runs, and
// fails the commands fail picks (when set) with exit 1, as vim-cmd does
// when hostd does not answer. The executor runs power-offs side by side,
// so both must be safe for that.
type hookRunner struct {
	host.Runner
	before func(argv []string)
	fail   func(argv []string) bool
}

func (r *hookRunner) Run(ctx context.Context, timeout time.Duration, argv ...string) (host.Result, error) {
	if r.before != nil {
		r.before(argv)
	}
	if r.fail != nil && r.fail(argv) {
		const msg = "vim-cmd: Failed to connect to hostd"
		return host.Result{Argv: argv, ExitCode: 1, Stderr: []byte(msg + "\n")},
			&host.CommandError{Argv: argv, ExitCode: 1, Stderr: msg}
	}
	return r.Runner.Run(ctx, timeout, argv...)
}

// wrapExecutor puts a hook in front of the executor's runner only (the
// watcher's own reads are left alone).
func (fx *faultFix) wrapExecutor(before func(argv []string)) {
	l := fx.w.exec.(*remediate.Live)
	l.Runner = &hookRunner{Runner: l.Runner, before: before}
}

func isCall(argv []string, words ...string) bool {
	for i, w := range words {
		if i >= len(argv) || !strings.HasSuffix(argv[i], w) {
			return false
		}
	}
	return true
}

func TestFaultMatrix(t *testing.T) {
	t.Parallel()
	for _, row := range faultRows() {
		t.Run(row.name, func(t *testing.T) {
			t.Parallel()
			fx := runFaultRow(t, row)
			if len(fx.failures) == 0 {
				return
			}
			if row.integrator != "" {
				t.Skipf("needs integrator fix: %s; failures:\n%s", row.integrator, strings.Join(fx.failures, "\n"))
			}
			for _, f := range fx.failures {
				t.Error(f)
			}
		})
	}
}

func runFaultRow(t *testing.T, row faultRow) *faultFix {
	h := newSim(t, "seed-incident")
	h.Advance(cmpOr(row.advance, 108*time.Minute))
	fx := &faultFix{t: t, row: row, h: h, clock: esxsim.NewStepClock(h.Root()), stateDir: filepath.Join(t.TempDir(), "state")}
	fx.opt = agentOptions(h, fx.stateDir, fx.clock)
	fx.opt.Policy.PowerOffAllow, fx.opt.Policy.HoldPolls = []string{"DSVA*"}, 1
	fx.opt.CommandTimeout = time.Second
	if row.configure != nil {
		row.configure(&fx.opt)
	}
	fx.before = h.State()
	if row.setup != nil {
		row.setup(fx)
	}
	if !fx.open(row.openErr) {
		fx.verify()
		return fx
	}
	fx.watch()
	if row.restart != nil {
		fx.close()
		row.restart(fx)
		if fx.open(row.reopenErr) {
			fx.watch()
		}
	}
	fx.close()
	fx.verify()
	return fx
}

func cmpOr[T comparable](v, def T) T {
	var zero T
	if v == zero {
		return def
	}
	return v
}

// open opens the watcher; false when it refused (as the row expects:
// want names the reason; or not: then it is a failure).
func (fx *faultFix) open(want string) bool {
	w, err := Open(fx.opt)
	switch {
	case err != nil && want != "" && strings.Contains(err.Error(), want):
		return false
	case err != nil:
		fx.fail("open: %v", err)
		return false
	case want != "":
		w.Close()
		fx.fail("open succeeded, want an error naming %q", want)
		return false
	}
	fx.w = w
	if fx.row.opened != nil {
		fx.row.opened(fx)
	}
	return true
}

func (fx *faultFix) close() {
	if fx.w == nil {
		return
	}
	if err := fx.w.Close(); err != nil && len(fx.row.pollErr) == 0 {
		fx.fail("close: %v", err)
	}
	fx.w = nil
}

// watch polls for one phase, checking the journal after every poll.
func (fx *faultFix) watch() {
	ctx := context.Background()
	// Counted in polls, not by the clock: rows step it.
	n := int(cmpOr(fx.row.watch, 150*time.Second) / fx.opt.Interval)
	for i := 0; i < n; i++ {
		if fx.row.poll != nil {
			fx.row.poll(fx, i)
		}
		if err := fx.clock.Sleep(ctx, fx.opt.Interval); err != nil {
			fx.t.Fatal(err)
		}
		began := time.Now()
		res, err := fx.w.Check(ctx)
		if took := time.Since(began); took > cmpOr(fx.row.pollBound, 15*time.Second) {
			fx.fail("poll %d took %s: a hang was not cut short by its command's timeout", fx.polls+1, took.Round(time.Second))
		}
		fx.polls++
		fx.results = append(fx.results, res)
		if err != nil {
			fx.errs = append(fx.errs, err)
		}
		fx.checkJournal(fmt.Sprintf("after poll %d", fx.polls))
	}
}

// readJournal parses the whole journal file (not only its tail).
func (fx *faultFix) readJournal() (entries []remediate.Entry, bad int, err error) {
	b, err := os.ReadFile(filepath.Join(fx.stateDir, remediate.JournalFile))
	if errors.Is(err, os.ErrNotExist) {
		return nil, 0, nil
	}
	if err != nil {
		return nil, 0, err
	}
	return remediate.ReadJournal(bytes.NewReader(b))
}

// checkJournal: the journal parses whole and has not lost entries.
func (fx *faultFix) checkJournal(when string) []remediate.Entry {
	entries, bad, err := fx.readJournal()
	if (err != nil || bad > 0) && !fx.journalBad {
		fx.journalBad = true // said once
		fx.fail("journal %s: %v, %d lines that do not parse", when, err, bad)
	}
	if len(entries) < fx.entries {
		fx.fail("journal %s: %d entries, %d before: entries lost", when, len(entries), fx.entries)
	}
	fx.entries = len(entries)
	return entries
}

// hostChange is a command esxsim logged as changing the host.
type hostChange struct {
	verb, target string // "vmsvc/power.off" "3"; "restart" "vpxa"
	act          esxsim.Action
}

func hostChanges(acts []esxsim.Action) []hostChange {
	var out []hostChange
	for _, a := range acts {
		if len(a.Argv) < 2 {
			continue
		}
		out = append(out, hostChange{verb: a.Argv[1], target: a.Target, act: a})
	}
	return out
}

// verify is the matrix's checker.
func (fx *faultFix) verify() {
	row := fx.row
	acts := fx.h.Actions()

	// 1. Kept polling, or stopped with a clear reason.
	for _, err := range fx.errs {
		if !slices.ContainsFunc(row.pollErr, func(s string) bool { return strings.Contains(err.Error(), s) }) {
			fx.fail("poll error %q does not name the cause (want one of %q)", err, row.pollErr)
		}
	}
	if row.openErr != "" {
		if len(acts) != 0 {
			fx.fail("refused to start, yet the host was changed: %+v", acts)
		}
		return
	}
	if fx.polls == 0 {
		fx.fail("no poll ran")
	}

	// 2. Nothing unsafe.
	mayOff := map[string]bool{}
	for name, id := range seedFlappers {
		mayOff[id] = !slices.Contains(row.unknown, name)
	}
	entries := fx.checkJournal("at the end")
	started := map[string][]time.Time{} // vmid or agent -> journaled starts
	for _, e := range entries {
		if e.Result != remediate.ResultStarted || e.DryRun {
			continue
		}
		at, err := time.Parse(time.RFC3339Nano, e.Time)
		if err != nil {
			fx.fail("journal entry with a bad time: %+v", e)
			continue
		}
		switch e.Action {
		case policy.ActPowerOff:
			started[e.VMID] = append(started[e.VMID], at)
			// A start is journaled before the executor reads the power
			// state, so only VMs that are not flapping and allowed count.
			if _, ok := mayOff[e.VMID]; !ok {
				fx.fail("journal: power-off of %s (vmid %s) started; it is not a flapping allowed VM", e.Target, e.VMID)
			}
		case policy.ActRestartAgent:
			started[e.Target] = append(started[e.Target], at)
		}
	}
	changes := hostChanges(acts)
	for _, c := range changes {
		switch {
		case c.act.Tool == "vim-cmd" && strings.HasPrefix(c.verb, "vmsvc/power.") && c.verb != "vmsvc/power.on":
			if !mayOff[c.target] {
				fx.fail("unsafe: %s on vmid %s, not a flapping allowed VM of known state", c.verb, c.target)
			}
		case c.act.Tool == "vim-cmd":
			fx.fail("unsafe: %s on vmid %s", c.verb, c.target)
		}
		if !slices.ContainsFunc(started[c.target], func(at time.Time) bool { return !at.After(c.act.Time) }) {
			fx.fail("%s %s %s ran at %s with no start journaled before it", c.act.Tool, c.verb, c.target, c.act.Time.Format(time.TimeOnly))
		}
	}
	for _, res := range fx.results {
		if res.Plan.HeapErr == "" {
			continue
		}
		for _, o := range res.Outcomes {
			if o.Action.Kind == policy.ActPowerOff && o.Result != remediate.ResultSkipped {
				fx.fail("power-off of %s ran on a plan that could not read the heaps (%s)", o.Action.Target, res.Plan.HeapErr)
			}
		}
	}

	// 3. Nothing twice. The rows run for less than the budget window
	// (1h) and the agent cooldown (15m): one success per step and target.
	succeeded := map[string]int{}
	offVMs := map[string]bool{}
	for _, c := range changes {
		if c.act.Exit == 0 && !strings.HasPrefix(c.act.Result, "fault") {
			succeeded[c.act.Tool+" "+c.verb+" "+c.target]++
		}
		if c.act.Tool == "vim-cmd" {
			offVMs[c.target] = true
		}
	}
	for k, n := range succeeded {
		if n > 1 {
			fx.fail("done %d times within the budget window: %s", n, k)
		}
	}
	if budget := cmpOr(fx.opt.Guards.MaxPowerOffs, remediate.DefaultMaxPowerOffs); len(offVMs) > budget {
		fx.fail("%d VMs got power operations, budget %d", len(offVMs), budget)
	}

	// 4. No step left started, and none journaled done that is not.
	end := fx.h.State()
	for _, e := range entries {
		if e.Action == policy.ActPowerOff && e.Result == remediate.ResultOK && !e.DryRun {
			if id, err := strconv.Atoi(e.VMID); err == nil && end.VM(id) != nil && end.VM(id).PoweredOn {
				fx.fail("journal says %s (vmid %s) was powered off, yet it runs", e.Target, e.VMID)
			}
		}
	}
	if open := remediate.Unfinished(entries); len(open) != 0 {
		fx.fail("steps left started in the journal: %+v", open)
	}

	// Kept working.
	st := fx.h.State()
	for _, name := range row.wantOff {
		if vm := st.VMByName(name); vm == nil || vm.PoweredOn {
			fx.fail("%s still powered on (or gone): the agent did not get its work done through the fault", name)
		}
	}
	if row.check != nil {
		row.check(fx)
	}
}

var allFlappers = []string{"DSVA01", "DSVA03", "DSVA04"}

// beforeActing starts the agent about a minute before the heap falls
// under 10 %, for faults that must hit before the plan acts.
const beforeActing = 107 * time.Minute

// longHang is how long a hanging command hangs: far longer than any
// command timeout, so only the timeout ends the wait.
const longHang = esxsim.Duration(time.Minute)

// budgetTwo leaves one of the three flapping VMs to the budget: it must
// stay on through the row's fault.
func budgetTwo(o *Options) { o.Guards.MaxPowerOffs = 2 }

// twoOff: exactly two VMs powered off, the third refused for the budget.
func twoOff(fx *faultFix) {
	if n := len(powerOps(fx.h.Actions())); n != 2 {
		fx.fail("%d VMs got power operations with a budget of 2, want 2", n)
	}
}

// vsishHeapsListing is `vsish -e ls /system/heaps/` as the host prints it now.
func vsishHeapsListing(fx *faultFix) string {
	out, errOut, code := fx.h.Call("vsish", "-e", "ls", "/system/heaps/")
	if code != 0 {
		fx.t.Fatalf("vsish ls: %d %s", code, errOut)
	}
	return out
}

// netGPHeapStats are vsish's arguments to read the watched heap's stats.
func netGPHeapStats(fx *faultFix) []string {
	return []string{"-e", "cat", "/system/heaps/" + fx.h.State().Heap("netGPHeap").FullName() + "/stats"}
}

func addFaultAt(i, at int, fx *faultFix, f esxsim.Fault) {
	if i == at {
		fx.h.AddFault(f)
	}
}

// mountTmpfs mounts a small tmpfs on dir (flags: syscall.MS_RDONLY, …);
// the row is skipped where mounting is not allowed.
func mountTmpfs(fx *faultFix, dir string, flags uintptr, size string) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		fx.t.Fatal(err)
	}
	if err := syscall.Mount("tmpfs", dir, "tmpfs", flags, "size="+size+",mode=0700"); err != nil {
		fx.t.Skipf("cannot mount a tmpfs here (needs CAP_SYS_ADMIN): %v", err)
	}
	fx.t.Cleanup(func() {
		if err := syscall.Unmount(dir, syscall.MNT_DETACH); err != nil {
			fx.t.Errorf("unmount %s: %v", dir, err)
		}
	})
}

func faultRows() []faultRow {
	return []faultRow{
		{name: "no fault", wantOff: allFlappers, check: func(fx *faultFix) {
			if len(fx.h.Actions()) == 0 {
				fx.fail("the control row changed nothing on the host")
			}
		}},

		// vsish.
		{name: "vsish hangs", wantOff: allFlappers, poll: func(fx *faultFix, i int) {
			// heap.Timeout (5 s) bounds it; once, to keep the row short.
			addFaultAt(i, 0, fx, esxsim.Fault{Command: "vsish", Hang: true, HangFor: longHang, Times: 1})
		}, check: wantBlindPlans(1)},
		{name: "vsish prints garbage", wantOff: allFlappers, poll: func(fx *faultFix, i int) {
			addFaultAt(i, 0, fx, esxsim.Fault{Command: "vsish", ArgsPrefix: netGPHeapStats(fx),
				Stdout: "\x00\xffVSI_Get: \x1b[31mgarbage\nmaxSize:-1\npercent free of max size:not-a-number\n", Times: 3})
		}, check: wantBlindPlans(3)},
		{name: "vsish truncates", wantOff: allFlappers, poll: func(fx *faultFix, i int) {
			addFaultAt(i, 0, fx, esxsim.Fault{Command: "vsish", ArgsPrefix: netGPHeapStats(fx), Truncate: 120, Times: 3})
		}, check: wantBlindPlans(3)},
		{name: "heap vanishes", wantOff: allFlappers, poll: func(fx *faultFix, i int) {
			if i != 0 {
				return
			}
			var kept []string
			for _, l := range strings.SplitAfter(vsishHeapsListing(fx), "\n") {
				if !strings.HasPrefix(l, "netGPHeap-") {
					kept = append(kept, l)
				}
			}
			fx.h.AddFault(esxsim.Fault{Command: "vsish", ArgsPrefix: []string{"-e", "ls"}, Stdout: strings.Join(kept, ""), Times: 3})
		}, check: wantBlindPlans(3)},
		{name: "heap renamed with a new address suffix", wantOff: allFlappers, poll: func(fx *faultFix, i int) {
			if i == 2 {
				fx.h.Mutate(func(st *esxsim.State) { st.Heap("netGPHeap").Address = "0x430007a00000" })
			}
		}},

		// vim-cmd.
		{name: "vim-cmd fails", setup: func(fx *faultFix) {
			fx.h.AddFault(esxsim.Fault{Command: "vim-cmd", ExitCode: 1, Stderr: "vim-cmd: Failed to connect to hostd: connection refused\n"})
		}, check: wantNoPowerOps},
		{name: "vim-cmd hangs", wantOff: allFlappers, setup: func(fx *faultFix) {
			// --command-timeout (1 s) bounds each; three calls hang.
			fx.h.AddFault(esxsim.Fault{Command: "vim-cmd", Hang: true, HangFor: longHang, Times: 3})
		}},
		{name: "VM vanishes between listing and acting", wantOff: []string{"DSVA01", "DSVA04"}, opened: func(fx *faultFix) {
			var once sync.Once
			fx.wrapExecutor(func(argv []string) {
				if isCall(argv, "vim-cmd", "vmsvc/power.getstate", "3") {
					once.Do(func() { fx.h.Unregister(3) })
				}
			})
		}, check: func(fx *faultFix) {
			if ops := powerOps(fx.h.Actions()); len(ops["3"]) != 0 {
				fx.fail("power operations on the vanished vmid 3: %v", ops["3"])
			}
			wantJournaled(fx, "DSVA03", remediate.ResultFailed)
		}},
		{name: "shutdown never completes", wantOff: allFlappers, setup: func(fx *faultFix) {
			fx.h.Mutate(func(st *esxsim.State) { st.VM(1).ShutdownTime = esxsim.Duration(10 * time.Hour) })
		}, check: func(fx *faultFix) {
			if got := powerOps(fx.h.Actions())["1"]; !slices.Equal(got, []string{"vmsvc/power.shutdown", "vmsvc/power.off"}) {
				fx.fail("DSVA01: %v, want one shutdown then one hard power-off", got)
			}
		}},
		{name: "power.off fails", wantOff: []string{"DSVA03", "DSVA04"}, setup: func(fx *faultFix) {
			fx.h.Mutate(func(st *esxsim.State) { st.VM(1).ShutdownTime = esxsim.Duration(10 * time.Hour) })
			fx.h.AddFault(esxsim.Fault{Command: "vim-cmd", ArgsPrefix: []string{"vmsvc/power.off", "1"}, ExitCode: 1,
				Stdout: "(vim.fault.TaskInProgress) {\n   msg = \"The operation is not allowed in the current state.\"\n}\n"})
		}, check: func(fx *faultFix) {
			wantJournaled(fx, "DSVA01", remediate.ResultFailed)
		}},
		{name: "getstate fails", wantOff: []string{"DSVA01", "DSVA04"}, unknown: []string{"DSVA03"},
			setup: func(fx *faultFix) {
				fx.h.AddFault(esxsim.Fault{Command: "vim-cmd", ArgsPrefix: []string{"vmsvc/power.getstate", "3"}, ExitCode: 1,
					Stderr: "vim-cmd: Failed to connect to hostd\n"})
			}, check: func(fx *faultFix) {
				if g := fx.guards(); g.PowerOffsInWindow > 2 {
					fx.fail("%d power-offs spent; DSVA03's state is unknown, want at most 2", g.PowerOffsInWindow)
				}
			}},

		// Only the watcher's reads fail: the executor would find DSVA03 on,
		// so nothing but the confirmation keeps it from being acted on.
		{name: "getstate fails for the confirmation", wantOff: []string{"DSVA01", "DSVA04"}, unknown: []string{"DSVA03"},
			opened: func(fx *faultFix) {
				fx.w.opt.Runner = &hookRunner{Runner: fx.w.opt.Runner, fail: func(argv []string) bool {
					return isCall(argv, "vim-cmd", "vmsvc/power.getstate", "3")
				}}
			}, check: func(fx *faultFix) {
				for _, res := range fx.results {
					for _, f := range res.Plan.Flapping {
						if f.Port == "0x3000007" && f.VM != nil {
							fx.fail("poll at %s: port 0x3000007 confirmed as %s although its power state could not be read", res.Plan.Time.Format(time.TimeOnly), f.VM.Name)
						}
					}
				}
			}},
		// The watcher confirmed the owners; every getstate of the
		// executor fails: the power-offs are not run blind, cost nothing.
		{name: "getstate fails while acting", unknown: allFlappers, opened: func(fx *faultFix) {
			l := fx.w.exec.(*remediate.Live)
			l.Runner = &failGetstate{Runner: l.Runner, on: true}
		}, check: func(fx *faultFix) {
			wantNoPowerOps(fx)
			if g := fx.guards(); g.PowerOffsInWindow != 0 {
				fx.fail("%d power-offs spent on VMs whose state could not be read", g.PowerOffsInWindow)
			}
		}},

		// The init script and vpxa.
		{name: "init script fails", wantOff: allFlappers, setup: func(fx *faultFix) {
			fx.h.Mutate(func(st *esxsim.State) { st.Agent("vpxa").Running = false })
			fx.h.AddFault(esxsim.Fault{Command: "vpxa", ArgsPrefix: []string{"restart"}, ExitCode: 1, Stderr: "vpxa: start failed\n"})
		}, check: func(fx *faultFix) {
			wantJournaled(fx, remediate.AgentVpxa, remediate.ResultFailed)
			wantRestartAttempts(fx, 1)
		}},
		{name: "init script hangs", wantOff: allFlappers, opened: func(fx *faultFix) {
			fx.h.Mutate(func(st *esxsim.State) { st.Agent("vpxa").Running = false })
			fx.w.exec.(*remediate.Live).AgentTimeout = time.Second
			fx.h.AddFault(esxsim.Fault{Command: "vpxa", ArgsPrefix: []string{"restart"}, Hang: true, HangFor: longHang})
		}, check: func(fx *faultFix) {
			wantJournaled(fx, remediate.AgentVpxa, remediate.ResultFailed)
			wantRestartAttempts(fx, 1)
		}},
		{name: "vpxa dies again right after the restart", wantOff: allFlappers, opened: func(fx *faultFix) {
			l := fx.w.exec.(*remediate.Live)
			l.Runner = &afterRunner{Runner: l.Runner, after: func(argv []string) {
				if isCall(argv, "vpxa", "restart") {
					fx.h.Mutate(func(st *esxsim.State) { st.Agent("vpxa").Running = false })
				}
			}}
		}, check: func(fx *faultFix) { wantRestartAttempts(fx, 1) }},

		// The vmkernel log.
		{name: "log rotated", advance: beforeActing, wantOff: allFlappers, setup: func(fx *faultFix) {
			fx.h.Mutate(func(st *esxsim.State) { st.Scenario.Log.RotateBytes = 4 << 10 })
		}},
		{name: "log truncated", advance: beforeActing, wantOff: allFlappers, poll: func(fx *faultFix, i int) {
			if i == 2 {
				if err := os.Truncate(fx.logPath(), 0); err != nil {
					fx.t.Fatal(err)
				}
			}
		}},
		{name: "log deleted", advance: beforeActing, wantOff: allFlappers, poll: func(fx *faultFix, i int) {
			if i == 2 {
				if err := os.Remove(fx.logPath()); err != nil {
					fx.t.Fatal(err)
				}
				fx.h.StallLog(true) // and nobody writes it again
			}
		}},
		{name: "log recreated", advance: beforeActing, wantOff: allFlappers, poll: func(fx *faultFix, i int) {
			if i == 2 {
				if err := os.Remove(fx.logPath()); err != nil {
					fx.t.Fatal(err)
				}
				if err := os.WriteFile(fx.logPath(), nil, 0o644); err != nil {
					fx.t.Fatal(err)
				}
			}
		}},
		{name: "log replaced by an older file", wantOff: allFlappers, setup: func(fx *faultFix) {
			b, err := os.ReadFile(fx.logPath())
			if err != nil {
				fx.t.Fatal(err)
			}
			fx.saved = b
		}, poll: func(fx *faultFix, i int) {
			// After the power-offs: the old lines' flaps must not start them again.
			if i == 6 {
				if err := host.WriteFileAtomic(fx.logPath(), fx.saved, 0o644); err != nil {
					fx.t.Fatal(err)
				}
			}
		}},
		{name: "log stops growing", setup: func(fx *faultFix) {
			fx.h.StallLog(true)
			fx.h.Advance(5 * time.Minute) // the flaps logged before leave the window
		}, check: wantNoPowerOps},

		// The state folder.
		{name: "state folder full", pollErr: []string{"no space left on device"}, setup: func(fx *faultFix) {
			mountTmpfs(fx, fx.stateDir, 0, "64k")
		}, opened: func(fx *faultFix) {
			f, err := os.Create(filepath.Join(fx.stateDir, "filler"))
			if err != nil {
				fx.t.Fatal(err)
			}
			for err == nil {
				_, err = f.Write(make([]byte, 4096))
			}
			f.Close()
			if !errors.Is(err, syscall.ENOSPC) {
				fx.t.Fatalf("filling the state folder: %v", err)
			}
		}, check: func(fx *faultFix) {
			if acts := fx.h.Actions(); len(acts) != 0 {
				fx.fail("acted with a full state folder: %+v", acts)
			}
			if len(fx.errs) == 0 {
				fx.fail("no poll said the state folder is full")
			}
		}},
		{name: "state folder read-only", openErr: "read-only file system", setup: func(fx *faultFix) {
			mountTmpfs(fx, fx.stateDir, syscall.MS_RDONLY, "64k")
		}},
		// Turned read-only under the running agent (a bind mount made
		// read-only): the open journal may still take lines, nothing new
		// can be written; no action without its saved state.
		{name: "state folder turns read-only", pollErr: []string{"read-only file system"}, setup: func(fx *faultFix) {
			mountTmpfs(fx, fx.stateDir, 0, "1m")
		}, opened: func(fx *faultFix) {
			if err := syscall.Mount(fx.stateDir, fx.stateDir, "", syscall.MS_BIND, ""); err != nil {
				fx.t.Skipf("bind mount: %v", err)
			}
			fx.t.Cleanup(func() { syscall.Unmount(fx.stateDir, syscall.MNT_DETACH) })
			if err := syscall.Mount("", fx.stateDir, "", syscall.MS_REMOUNT|syscall.MS_BIND|syscall.MS_RDONLY, ""); err != nil {
				fx.t.Skipf("remount read-only: %v", err)
			}
		}, check: func(fx *faultFix) {
			wantNoPowerOps(fx)
			if len(fx.errs) == 0 {
				fx.fail("no poll said the state folder is read-only")
			}
		}},
		{name: "state damaged", configure: budgetTwo, check: twoOff, restart: func(fx *faultFix) {
			damage(fx, "state.json", "{\"version\": 1, \"position\": {\"off")
		}},
		// Refused with the file named: a guessed budget could act too often.
		{name: "guards damaged", configure: budgetTwo, check: twoOff, reopenErr: "guards.json (fix or remove it", restart: func(fx *faultFix) {
			damage(fx, remediate.GuardsFile, "{\"power_offs\": [\"2026-")
			if err := os.WriteFile(fx.h.Path(remediate.HostDir+"/"+remediate.GuardsFile), []byte("\x00\x00"), 0o600); err != nil {
				fx.t.Fatal(err)
			}
		}},
		{name: "journal's last line torn by a crash", configure: budgetTwo,
			restart: func(fx *faultFix) {
				torn := `{"time":"2026-01-01T00:00:00Z","plan_id":"torn","action":"power-off","target":"DSVA0`
				f, err := os.OpenFile(filepath.Join(fx.stateDir, remediate.JournalFile), os.O_WRONLY|os.O_APPEND, 0)
				if err != nil {
					fx.t.Fatal(err)
				}
				f.WriteString(torn)
				f.Close()
				fx.saved = []byte(torn)
			}, check: func(fx *faultFix) {
				twoOff(fx)
				if !stateDirHolds(fx, fx.saved, remediate.JournalFile) {
					fx.fail("the torn entry was not kept aside in the state folder")
				}
			}},

		// The clock.
		{name: "clock jumps forward", watch: 3 * time.Minute, wantOff: allFlappers, poll: func(fx *faultFix, i int) {
			if i == 0 {
				fx.h.StepClock(2 * time.Hour)
			}
		}},
		{name: "clock jumps back", configure: budgetTwo, check: twoOff, poll: func(fx *faultFix, i int) {
			if i == 6 { // after the power-offs
				fx.h.StepClock(-time.Hour)
			}
		}},

		// Two instances.
		{name: "two instances", wantOff: allFlappers, poll: func(fx *faultFix, i int) {
			if i != 1 {
				return
			}
			if w, err := Open(fx.opt); !errors.Is(err, remediate.ErrLocked) {
				if w != nil {
					w.Close()
				}
				fx.fail("second instance on the same state folder: %v, want ErrLocked", err)
			}
			other := fx.opt
			other.StateDir = filepath.Join(fx.t.TempDir(), "other")
			if w, err := Open(other); !errors.Is(err, remediate.ErrLocked) || !strings.Contains(err.Error(), fx.stateDir) {
				if w != nil {
					w.Close()
				}
				fx.fail("second instance with another state folder: %v, want ErrLocked naming %s", err, fx.stateDir)
			}
		}},

		// A datastore in all-paths-down: the first inventory's .vmx scan
		// stalls (remediate.VMXScanTimeout); nothing is confirmed meanwhile.
		{name: "vmx read blocks", pollBound: 35 * time.Second, wantOff: allFlappers, setup: func(fx *faultFix) {
			fx.release = fx.h.BlockVMX("DSVA03")
			fx.t.Cleanup(fx.release)
		}, poll: func(fx *faultFix, i int) {
			if i == 1 {
				fx.release()
			}
		}, check: func(fx *faultFix) {
			if len(fx.results) == 0 {
				return
			}
			for _, o := range fx.results[0].Outcomes {
				if o.Action.Kind != policy.ActAlert {
					fx.fail("the poll whose .vmx scan stalled acted: %s %s", o.Action.Kind, o.Action.Target)
				}
			}
			for _, f := range fx.results[0].Plan.Flapping {
				if f.VM != nil || !strings.Contains(f.Unconfirmed, "could not be read") {
					fx.fail("port %s with the .vmx files unread: VM %v, unconfirmed %q; want unconfirmed, saying why", f.Port, f.VM, f.Unconfirmed)
				}
			}
		}},
	}
}

// afterRunner calls after once each command it runs has returned.
type afterRunner struct {
	host.Runner
	after func(argv []string)
}

func (r *afterRunner) Run(ctx context.Context, timeout time.Duration, argv ...string) (host.Result, error) {
	res, err := r.Runner.Run(ctx, timeout, argv...)
	r.after(argv)
	return res, err
}

func damage(fx *faultFix, name, text string) {
	if err := os.WriteFile(filepath.Join(fx.stateDir, name), []byte(text), 0o600); err != nil {
		fx.t.Fatal(err)
	}
}

// stateDirHolds reports whether a file of the state folder other than
// skip holds b.
func stateDirHolds(fx *faultFix, b []byte, skip string) bool {
	ents, _ := os.ReadDir(fx.stateDir)
	for _, e := range ents {
		if e.Name() == skip || e.IsDir() {
			continue
		}
		if c, err := os.ReadFile(filepath.Join(fx.stateDir, e.Name())); err == nil && bytes.Contains(c, b) {
			return true
		}
	}
	return false
}

// guards are the guards as the state folder keeps them.
func (fx *faultFix) guards() remediate.GuardStatus {
	g, err := remediate.ReadGuardStatus(fx.stateDir, fx.h.Path(remediate.HostDir), fx.opt.Guards, fx.clock.Now())
	if err != nil {
		fx.fail("guards: %v", err)
	}
	return g
}

// wantBlindPlans: the first n polls could not read the heaps and said so.
func wantBlindPlans(n int) func(fx *faultFix) {
	return func(fx *faultFix) {
		for i := 0; i < n && i < len(fx.results); i++ {
			if fx.results[i].Plan.HeapErr == "" {
				fx.fail("poll %d: no heap error reported under the fault", i+1)
			}
		}
	}
}

func wantNoPowerOps(fx *faultFix) {
	if ops := powerOps(fx.h.Actions()); len(ops) != 0 {
		fx.fail("power operations: %v, want none", ops)
	}
}

// wantJournaled: a final entry for target has that result, with the error.
func wantJournaled(fx *faultFix, target, result string) {
	entries, _, _ := fx.readJournal()
	for _, e := range entries {
		if e.Target == target && e.Result == result && (result != remediate.ResultFailed || e.Error != "") {
			return
		}
	}
	fx.fail("no journal entry for %s with result %s and its error", target, result)
}

// wantRestartAttempts: vpxa's init script was asked to restart n times.
func wantRestartAttempts(fx *faultFix, n int) {
	got := 0
	for _, a := range fx.h.Actions() {
		if a.Tool == "vpxa" && len(a.Argv) > 1 && a.Argv[1] == "restart" {
			got++
		}
	}
	if got != n {
		fx.fail("vpxa restarted %d times, want %d within the cooldown", got, n)
	}
}
