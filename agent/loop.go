package agent

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/heapguard/heapguard/collector"
	"github.com/heapguard/heapguard/collector/follow"
	"github.com/heapguard/heapguard/heap"
	"github.com/heapguard/heapguard/host"
	"github.com/heapguard/heapguard/metrics"
	"github.com/heapguard/heapguard/policy"
	"github.com/heapguard/heapguard/remediate"
)

// Options configure the agent for `heapguard run` and `heapguard check`.
type Options struct {
	// Root prefixes every host path and the host commands' PATH ("/" on a
	// real host; a simulated host's folder under esxsim).
	Root string
	// StateDir keeps the journal, the guards, the lock and the saved state.
	StateDir string
	// Interval is the host time between two polls (run mode).
	Interval time.Duration
	DryRun   bool
	// Heaps are globs of the heaps to sample; empty: every heap.
	Heaps  []string
	Policy policy.Config
	Guards remediate.GuardLimits
	// FlapCycles within FlapWindow of log time make a port flapping.
	FlapCycles int
	FlapWindow time.Duration
	// ShutdownTimeout is how long a graceful shutdown may take before the
	// VM is powered off hard; CommandTimeout bounds each host command.
	ShutdownTimeout time.Duration
	CommandTimeout  time.Duration
	// Year of 4.x syslog dates (0: from the log's modification time).
	Year int
	// Textfile, when set, is a folder where each poll writes the metrics'
	// exposition (heapguard.prom) for node_exporter's textfile collector.
	Textfile string
	// Build names the binary in the metrics (heapguard_build_info).
	Build metrics.BuildInfo
	// Replace stops the instance holding the host lock (SIGTERM: it
	// finishes the action under way) and waits for it before taking the
	// lock: an upgraded daemon takes over from the old one
	// (remediate.StopHolder says when a holder is not signalled).
	Replace bool

	Logger *zap.Logger
	Clock  host.Clock
	Runner host.Runner
	// JournalObserver, when set, is given every journal entry after it is
	// written and synced (remediate.Journal.SetObserver): it must not block.
	JournalObserver func(remediate.Entry)
}

// Defaults of the loop.
const (
	DefaultInterval = 10 * time.Second
	// statusTimeout bounds each read-only host command unless
	// --command-timeout says otherwise.
	statusTimeout = 10 * time.Second
)

// savedState is what the agent keeps in StateDir between runs, so that a
// cron `check` continues where the last one stopped and a restarted daemon
// forgets neither trends nor flaps.
type savedState struct {
	Version  int                 `json:"version"`
	Position follow.Position     `json:"position"`
	Flaps    collector.FlapState `json:"flaps"`
	Trends   heap.Trends         `json:"trends"`
	Policy   policy.State        `json:"policy"`
	// Reported is the signature of the last plan journaled, so a plan
	// that only repeats it (the same alert every poll) is not journaled again.
	Reported string    `json:"reported,omitempty"`
	Saved    time.Time `json:"saved"`
	// LastSample is the host time of the last poll that sampled the
	// heaps: a heap-exhausted log line after it is hard evidence.
	LastSample time.Time `json:"last_sample,omitzero"`
	// Exhausted is the evidence read since LastSample, by heap base name:
	// a cron check whose poll could not sample the heaps has moved the log
	// position past those lines, so the next check must find it here.
	Exhausted map[string]*exhaustion `json:"exhausted,omitempty"`
	// FlapTotals, Actions ("kind result") and TextfileErrors are the
	// metrics' counters: running totals since the agent started watching
	// the host, which must not go back when it restarts.
	FlapTotals     map[string]*portTotal `json:"flap_totals,omitempty"`
	Actions        map[string]uint64     `json:"actions,omitempty"`
	TextfileErrors uint64                `json:"textfile_errors,omitempty"`
}

// Watcher watches one host: it reads the log, samples the heaps, decides and
// acts. It is a thin driver around the pure Decide, like raft's Node
// around its core.
type Watcher struct {
	opt     Options
	layout  host.Layout
	logPath string
	log     *zap.Logger

	journal *remediate.Journal
	guards  *remediate.Guards
	// hostLock is taken by every acting instance on the host, whatever
	// its state folder; lock keeps the state folder to one instance.
	hostLock *remediate.Lock
	lock     *remediate.Lock
	// lockAt is when the lock's uptime was last refreshed (real time: it
	// is compared with the host's uptime); lockLost says another instance
	// holds it now.
	lockAt   time.Time
	lockLost bool
	// textfile writes --textfile's exposition within a bounded wait.
	textfile textfileWriter
	exec     remediate.Executor

	statePath  string
	st         savedState
	tracker    *collector.FlapTracker
	flapWindow time.Duration
	parser     *collector.Parser
	// inv is the last inventory (VMs and their .vmx claims), loaded at
	// invAt (host time); invComplete says it had no error.
	inv         *remediate.Inventory
	invAt       time.Time
	invComplete bool
	// vpxaCrash is set when a vpxa dump line was read since the last poll.
	vpxaCrash bool
	// lines and unparsed count log lines since start, and logStats what
	// reading the log met (rotations, gaps, oversized lines), for the logs.
	lines, unparsed int64
	logStats        follow.Stats
	// heapMetrics are the heaps of the last poll and logErr what reading
	// the log last met, for the metrics.
	heapMetrics []metrics.Heap
	logErr      string
	// heaps is the last listing of the heaps, made at heapsAt (host
	// time): readHeaps uses it for heapsListed.
	heaps   []heap.Entry
	heapsAt time.Time
	// readAt is when each listed heap was last read (host time) at a poll
	// that judged it, lastObs and lastMetric its figures then: a quiet
	// heap that is not watched is read once per otherHeapsEvery
	// (readDue), and judged on its last figures in between. A poll's
	// nextReadAt and nextObs replace them once the poll is judged.
	readAt           map[string]time.Time
	lastObs, nextObs map[string]policy.HeapObs
	lastMetric       map[string]metrics.Heap
	nextReadAt       map[string]time.Time
	// savedAt (host time), savedPolicy and savedTextfileErrors are what
	// the last saveState wrote, for quiet.
	savedAt             time.Time
	savedPolicy         []byte
	savedTextfileErrors uint64
}

// validate checks the options both Open and ReadStatus need.
func (opt Options) validate() error {
	if err := opt.Policy.Validate(); err != nil {
		return err
	}
	if err := heap.ValidGlobs(opt.Heaps); err != nil {
		return fmt.Errorf("--heaps: %w", err)
	}
	if opt.StateDir == "" {
		return errors.New("no state folder (--state-dir)")
	}
	return nil
}

// Open prepares a watcher: it checks the config, takes the lock (unless it
// is a dry run, which never acts), opens the journal and guards and loads
// the saved state. Close releases them.
func Open(opt Options) (*Watcher, error) {
	if err := opt.validate(); err != nil {
		return nil, err
	}
	if opt.Interval <= 0 {
		opt.Interval = DefaultInterval
	}
	if opt.Logger == nil {
		opt.Logger = zap.NewNop()
	}
	if opt.Clock == nil {
		opt.Clock = host.SystemClock{}
	}
	if opt.Runner == nil {
		opt.Runner = host.Exec{Root: opt.Root}
	}
	if err := remediate.CreateStateDir(opt.StateDir); err != nil {
		return nil, err
	}
	if err := remediate.CheckStateDir(opt.StateDir); err != nil {
		// Whoever can write the journal or the guards can steer what an
		// acting heapguard does; a dry run acts on nothing, so it says so
		// and goes on.
		if !opt.DryRun {
			return nil, err
		}
		opt.Logger.Warn("the state folder is not private: run and check refuse to start until it is fixed", zap.Error(err))
	}
	w := &Watcher{opt: opt, layout: host.DetectLayout(opt.Root), log: opt.Logger}
	w.logPath = host.Path(opt.Root, w.layout.LogPath)
	w.statePath = filepath.Join(opt.StateDir, "state.json")
	if opt.DryRun {
		// A dry run must not move the live state on (a later live check
		// would miss the lines it read), so it keeps its own.
		w.statePath = filepath.Join(opt.StateDir, "state.dry-run.json")
	}
	var err error
	hostDir := host.Path(opt.Root, remediate.HostDir)
	if !opt.DryRun {
		if opt.Replace {
			pid, err := remediate.StopHolder(hostDir, remediate.StopOptions{})
			if err != nil {
				return nil, fmt.Errorf("replace the running instance: %w", err)
			}
			if pid > 0 {
				opt.Logger.Info("stopped the instance holding the host lock", zap.Int("pid", pid))
			}
		}
		if w.hostLock, err = acquireHostLock(hostDir, opt.StateDir); err != nil {
			return nil, err
		}
		if w.lock, err = remediate.AcquireLock(opt.StateDir); err != nil {
			w.Close()
			return nil, err
		}
		w.lockAt = time.Now()
		// A pid-file lock is weaker than flock (a stale file is judged by
		// pid and boot time): the admin should know which one guards.
		for _, l := range []struct {
			what string
			lock *remediate.Lock
		}{{"host lock", w.hostLock}, {"state lock", w.lock}} {
			if l.lock.Method != "flock" {
				w.log.Warn("flock is not available: a pid file locks instead", zap.String("lock", l.what), zap.String("method", l.lock.Method))
			}
		}
	}
	if !opt.DryRun {
		// Only with the state folder's lock: the repair truncates.
		torn, err := remediate.RepairJournal(opt.StateDir)
		if err != nil {
			w.Close()
			return nil, err
		}
		if torn.Bytes > 0 {
			w.log.Warn("the journal's last line was cut short by a crash: moved to the side, the journal goes on from its last whole entry",
				zap.Int64("bytes", torn.Bytes), zap.String("kept_in", torn.Path))
		}
	}
	if w.journal, err = remediate.OpenJournal(opt.StateDir, opt.Clock); err != nil {
		w.Close()
		return nil, err
	}
	w.journal.SetObserver(opt.JournalObserver)
	if w.guards, err = remediate.OpenHostGuards(opt.StateDir, hostDir, opt.Guards); err != nil {
		w.Close()
		return nil, err
	}
	if opt.DryRun {
		w.exec = &remediate.DryRun{Layout: w.layout}
	} else {
		w.exec = &remediate.Live{
			Runner: opt.Runner, Layout: w.layout, Clock: opt.Clock,
			Timeout: opt.CommandTimeout, ShutdownTimeout: opt.ShutdownTimeout,
			HeapCheck: w.heapCheck,
		}
	}
	if err := w.loadState(); err != nil {
		w.Close()
		return nil, err
	}
	if !opt.DryRun {
		if err := w.recover(); err != nil {
			w.Close()
			return nil, err
		}
	}
	w.parser = collector.NewParser(opt.Year, opt.Clock.Now())
	return w, nil
}

// Close releases the lock and closes the journal.
func (w *Watcher) Close() error {
	var errs []error
	if w.journal != nil {
		errs = append(errs, w.journal.Close())
	}
	if w.lock != nil {
		errs = append(errs, w.lock.Release())
	}
	if w.hostLock != nil {
		errs = append(errs, w.hostLock.Release())
	}
	return errors.Join(errs...)
}

// holderFile, beside the host lock, names the state folder of the
// instance that holds it, so a refused instance can say who acts.
const holderFile = "holder"

// acquireHostLock takes the host-wide lock in hostDir. Refused, the error
// names the holder's pid and state folder.
func acquireHostLock(hostDir, stateDir string) (*remediate.Lock, error) {
	if err := remediate.CreateStateDir(hostDir); err != nil {
		return nil, fmt.Errorf("host lock folder: %w", err)
	}
	if err := remediate.CheckPrivate(hostDir, filepath.Join(hostDir, remediate.GuardsFile)); err != nil {
		return nil, fmt.Errorf("host lock folder: %w", err)
	}
	l, err := remediate.AcquireLock(hostDir)
	if errors.Is(err, remediate.ErrLocked) {
		if b, rerr := os.ReadFile(filepath.Join(hostDir, holderFile)); rerr == nil && len(b) > 0 {
			err = fmt.Errorf("%w, state folder %s", err, strings.TrimSpace(string(b)))
		}
	}
	if err != nil {
		return nil, err
	}
	if abs, aerr := filepath.Abs(stateDir); aerr == nil {
		stateDir = abs
	}
	if err := host.WriteFileAtomic(filepath.Join(hostDir, holderFile), []byte(stateDir+"\n"), 0o600); err != nil {
		l.Release()
		return nil, fmt.Errorf("host lock: %w", err)
	}
	return l, nil
}

// recover reads the journal back before anything else is done. Steps a
// killed heapguard left started are resolved against the host and
// journaled, and what the journal says was spent is restored into the
// guards. The policy resumes from the steps the journal says started, so
// a damaged or stale state.json cannot hide a power-off under way.
func (w *Watcher) recover() error {
	entries, err := remediate.ReadJournalTail(w.opt.StateDir)
	if err != nil {
		return err
	}
	if steps := remediate.Unfinished(entries); len(steps) > 0 {
		w.log.Warn("steps left started by an earlier heapguard: resolving them against the host", zap.Int("steps", len(steps)))
		ctx := context.Background()
		done, err := remediate.ResolveUnfinished(ctx, w.journal, steps, w.opt.Runner, w.layout, w.commandTimeout())
		if err != nil {
			return err
		}
		entries = append(entries, done...)
	}
	now := w.opt.Clock.Now()
	if err := w.guards.Recover(entries, now); err != nil {
		return err
	}
	var started []policy.Started
	for _, e := range entries {
		t, err := time.Parse(time.RFC3339Nano, e.Time)
		if !e.DryRun && e.Result == remediate.ResultStarted && err == nil {
			started = append(started, policy.Started{Kind: e.Action, Target: e.Target, VMID: e.VMID, At: t})
		}
	}
	w.st.Policy = policy.Resume(w.st.Policy, w.opt.Policy, now, started)
	return nil
}

func (w *Watcher) loadState() error {
	b, err := os.ReadFile(w.statePath)
	switch {
	case errors.Is(err, os.ErrNotExist):
		w.st = savedState{Version: 1}
	case err != nil:
		return fmt.Errorf("read state %s: %w", w.statePath, err)
	default:
		if err := json.Unmarshal(b, &w.st); err != nil {
			// A damaged state file must not stop the guard: budgets live in
			// guards.json; trends, flaps, the log position and the policy's
			// holds start again (the guards still bound what follows).
			w.log.Warn("state file unreadable, starting afresh", zap.String("path", w.statePath), zap.Error(err))
			w.st = savedState{Version: 1}
		}
	}
	w.tracker = collector.RestoreFlapTracker(withFlapLimits(w.st.Flaps, w.opt.FlapCycles, w.opt.FlapWindow))
	w.flapWindow = w.tracker.Snapshot().Window
	return nil
}

func (w *Watcher) saveState() error {
	if w.lockLost {
		return nil // the state is another instance's now
	}
	w.st.Version = 1
	w.st.Flaps = w.tracker.Snapshot()
	w.st.Saved = w.opt.Clock.Now()
	b, err := json.Marshal(w.st)
	if err != nil {
		return fmt.Errorf("save state: %w", err)
	}
	if err := host.WriteFileAtomic(w.statePath, b, 0o600); err != nil {
		return fmt.Errorf("save state: %w", err)
	}
	w.savedAt, w.savedTextfileErrors = w.st.Saved, w.st.TextfileErrors
	w.savedPolicy, _ = materialPolicy(w.st.Policy)
	return nil
}

// consume parses one log line into the flap tracker and the crash flag.
func (w *Watcher) consume(text []byte) {
	w.lines++
	ev, err := w.parser.Parse(text)
	if err != nil {
		w.unparsed++
		return
	}
	// Every line moves the tracker's log clock; port lines are tracked.
	w.tracker.Observe(ev)
	w.countCycle(ev)
	switch ev.Kind {
	case collector.KindCoreDump, collector.KindUserDump:
		// Dumps are named by the thread that dumped ("vpxa-worker"). A
		// line whose time cannot be read says nothing of when: it may
		// restart no agent.
		if collector.AgentOf(ev.Process) == policy.Agent && !ev.Time.IsZero() {
			w.vpxaCrash = true
			w.log.Warn("vpxa crash in the log", zap.Time("log_time", ev.Time), zap.ByteString("line", text))
		}
	case collector.KindHeapMaxed, collector.KindHeapAlignFailed:
		w.sawExhausted(ev)
	}
}

// exhaustion counts the log lines saying one heap ran out (at its maximum
// size, or an aligned allocation failed) newer than the last sample: hard
// evidence for the policy.
type exhaustion struct {
	Lines int       `json:"lines"`
	Last  time.Time `json:"last"`
}

// evidenceMaxAge bounds how old a heap-exhausted line may be to count,
// whatever the last sample: with no sample before (first run, state lost),
// after a long stop, or with a last sample "in the future" (the clock
// stepped back), older lines tell of a past the heap may have recovered
// from.
const evidenceMaxAge = 15 * time.Minute

// sawExhausted records a heap-exhausted line when it is newer than the
// last sample. One line per heap is logged at the next poll, with the
// count: a heap that ran out writes such lines by the hundred.
func (w *Watcher) sawExhausted(ev collector.Event) {
	now := w.opt.Clock.Now()
	since := now.Add(-evidenceMaxAge)
	if ls := w.st.LastSample; ls.After(since) && !ls.After(now) {
		since = ls
	}
	if ev.Heap == "" || ev.Time.IsZero() || !ev.Time.After(since) {
		return
	}
	if w.st.Exhausted == nil {
		w.st.Exhausted = map[string]*exhaustion{}
	}
	x := w.st.Exhausted[ev.Heap]
	if x == nil {
		x = &exhaustion{}
		w.st.Exhausted[ev.Heap] = x
	}
	x.Lines++
	if ev.Time.After(x.Last) {
		x.Last = ev.Time
	}
}

// evidence is the hard evidence that heap base ran out since the last
// sample, in words, or "".
func (w *Watcher) evidence(base string, s heap.Sample) string {
	// Evidence kept over blind polls ages out as new lines do.
	if x := w.st.Exhausted[base]; x != nil && !x.Last.Before(w.opt.Clock.Now().Add(-evidenceMaxAge)) {
		return fmt.Sprintf("the log says %s ran out: %s since the last sample, the last at %s",
			base, plural(x.Lines, "line"), x.Last.UTC().Format(time.RFC3339))
	}
	if p, ok := s.PrintedPercentFreeOfMax(); ok && p <= 0 {
		return "vsish prints 0% free of max"
	}
	return ""
}

// Result is what one poll decided and did.
type Result struct {
	Plan     policy.Plan
	Outcomes []remediate.Outcome
	// Reported is true when the plan was journaled (and so worth showing):
	// it acts, or it differs from the last reported plan.
	Reported bool
}

// signature names what a plan says, without its changing figures: its
// status and each action's kind, target and whether it is skipped.
func signature(p policy.Plan) string {
	var b strings.Builder
	b.WriteString(p.Status.String())
	for _, act := range p.Actions {
		fmt.Fprintf(&b, "|%s %s %t", act.Kind, act.Target, act.Skipped != "")
	}
	return b.String()
}

// acts reports whether a plan has a step that changes the host.
func acts(p policy.Plan) bool {
	for _, act := range p.LiveActions() {
		if act.Kind != policy.ActAlert {
			return true
		}
	}
	return false
}

// Poll samples the host, decides and acts: one step of the loop. The log
// lines must have been consumed before.
func (w *Watcher) Poll(ctx context.Context) (Result, error) {
	if err := w.refreshLock(); err != nil {
		return Result{}, fmt.Errorf("not acting: %w", err)
	}
	now := w.opt.Clock.Now()
	obs := policy.Observations{Time: now}
	obs.Heaps, obs.HeapErr = w.sampleHeaps(ctx, now)
	for heapName, x := range w.st.Exhausted {
		w.log.Warn("heap ran out (log)", zap.String("heap", heapName), zap.Int("lines", x.Lines), zap.Time("last_log_time", x.Last))
	}
	obs.Vpxa = w.vpxaStatus(ctx)
	obs.Vpxa.CrashSeen = w.vpxaCrash
	obs.Flapping = w.flapping(ctx, now)
	if err := ctx.Err(); err != nil {
		// Stopping: what was observed meanwhile (commands cut short) is
		// not the host's state, so nothing is decided or journaled.
		return Result{}, err
	}
	gs := w.guards.Status(now)
	obs.Guards = &policy.GuardObs{
		PowerOffsLeft: max(gs.MaxPowerOffs-gs.PowerOffsInWindow, 0), NextPowerOffAt: gs.NextPowerOffAt,
		RestartAllowedAt: gs.CooldownUntil[policy.Agent], BreakerOpen: gs.BreakerOpen, BreakerWhy: gs.LastFailure,
	}

	plan, next := policy.Decide(w.opt.Policy, w.st.Policy, obs)
	w.st.Policy = next
	for _, p := range plan.Forget {
		if port, err := collector.ParsePort(p); err == nil {
			w.tracker.Forget(port)
		}
	}
	res := Result{Plan: plan}

	var err error
	if sig := signature(plan); acts(plan) || sig != w.st.Reported {
		res.Reported = true
		// Save before acting, so the log position never goes back after a
		// kill -9 mid-action; which steps started, the next run learns from
		// the journal (recover). Another instance may have taken a pid-file
		// lock over (remediate.Lock.Check): this one must then neither act
		// nor write the state the other now keeps.
		if acts(plan) {
			if lerr := w.checkLocks(); lerr != nil {
				return res, fmt.Errorf("not acting: %w", lerr)
			}
		}
		if serr := w.saveState(); serr != nil {
			return res, fmt.Errorf("not acting: %w", serr)
		}
		w.log.Info("decision", zap.String("status", plan.Status.String()), zap.String("summary", plan.NagiosLine()),
			zap.Int("actions", len(plan.Actions)), zap.Bool("dry_run", w.opt.DryRun))
		res.Outcomes, err = remediate.Apply(ctx, plan.Actions, remediate.ApplyOptions{
			Executor: w.exec, Journal: w.journal, Guards: w.guards, Clock: w.opt.Clock,
			DryRun: w.opt.DryRun, PlanID: newPlanID(now), Summary: plan.NagiosLine(),
		})
		if err == nil {
			w.st.Reported = sig
		}
		started := make([]bool, len(res.Outcomes))
		for i, o := range res.Outcomes {
			started[i] = o.Result != remediate.ResultSkipped
		}
		w.st.Policy = policy.Advance(w.st.Policy, plan.Actions, started)
		w.countOutcomes(res.Outcomes)
		for _, o := range res.Outcomes {
			w.log.Info("action", zap.String("action", string(o.Action.Kind)), zap.String("target", o.Action.Target),
				zap.String("result", o.Result), zap.String("error", o.Err), zap.Bool("dry_run", w.opt.DryRun))
		}
	}
	// The crash has been shown to the policy once; a restart answers it.
	w.vpxaCrash = false
	if obs.HeapErr == "" {
		w.judged(now, res.Outcomes)
	}
	// After the steps: writing the metrics may fail, and the textfile
	// waits at most textfileTimeout; neither holds up acting.
	w.writeMetrics(now, obs)
	if !w.quiet(now, res) {
		if serr := w.saveState(); serr != nil {
			err = errors.Join(err, serr)
		}
	}
	return res, err
}

// quietSave is how long (host time) the state file may go unwritten while
// every poll is quiet: it saves the host a write and two fsyncs of the
// state folder at most polls. A kill -9 then costs at most this much of
// trend points and log position (the lines are read again, against the
// flap tracker saved with that position).
const quietSave = time.Minute

// quiet tells whether the poll's state need not be saved yet: saved by
// this process less than quietSave ago, nothing journaled, the status OK
// with no worse level pending, no port tracked, no heap-exhausted
// evidence kept, and the policy state (materialPolicy) and counters as
// saved.
func (w *Watcher) quiet(now time.Time, res Result) bool {
	age := now.Sub(w.savedAt)
	if w.savedAt.IsZero() || age < 0 || age >= quietSave || res.Reported || len(res.Outcomes) > 0 {
		return false
	}
	p := res.Plan
	if p.Status != policy.OK || len(p.Flapping) > 0 || w.tracker.Tracked() > 0 || len(w.st.Exhausted) > 0 ||
		w.st.TextfileErrors != w.savedTextfileErrors {
		return false
	}
	for _, h := range p.Heaps {
		if h.Level != policy.OK || h.Pending != policy.OK {
			return false
		}
	}
	b, err := materialPolicy(w.st.Policy)
	return err == nil && bytes.Equal(b, w.savedPolicy)
}

// materialPolicy is the policy state without what a quiet poll moves on
// and a restart can do without: the clear count and last-seen time of a
// heap at OK with no CRITICAL or WARNING count (the clear count only
// matters on the way down from a worse level, and it restarts from 0 at
// any poll the clear condition fails; last-seen only forgets a heap not
// seen for an hour).
func materialPolicy(st policy.State) ([]byte, error) {
	heaps := make(map[string]policy.HeapState, len(st.Heaps))
	for name, hs := range st.Heaps {
		if hs.Level == policy.OK && hs.CritPolls == 0 && hs.WarnPolls == 0 {
			hs.ClearPolls, hs.LastSeen = 0, time.Time{}
		}
		heaps[name] = hs
	}
	st.Heaps = heaps
	return json.Marshal(st)
}

// judged marks the heap evidence as used by the sample taken at now (a
// blind poll keeps it). When steps ran, lines logged meanwhile tell of
// the heap before the fix took hold, and the verification judged it
// after: they count no more.
func (w *Watcher) judged(now time.Time, outs []remediate.Outcome) {
	w.st.LastSample, w.st.Exhausted = now, nil
	// The heaps read at this poll were judged: only now do they wait
	// otherHeapsEvery (a blind poll reads them again at the next one).
	w.readAt, w.lastObs = w.nextReadAt, w.nextObs
	if remediate.Ran(outs) > 0 {
		w.st.LastSample = w.opt.Clock.Now()
	}
}

func newPlanID(now time.Time) string {
	var b [4]byte
	rand.Read(b[:])
	return now.UTC().Format("20060102T150405Z") + "-" + hex.EncodeToString(b[:])
}

// sampleHeaps reads the heaps that match --heaps, from a recent listing
// (heapsListed). The policy must never act blind: a failed listing, or a
// watched heap that could not be read, is reported as HeapErr.
func (w *Watcher) sampleHeaps(ctx context.Context, now time.Time) ([]policy.HeapObs, string) {
	w.heapMetrics = nil
	entries, reads, err := w.readHeaps(ctx, now)
	if err != nil {
		return nil, err.Error()
	}
	var out []policy.HeapObs
	var problems []string
	sawWatched := false
	metricOf := make(map[string]metrics.Heap, len(entries))
	obsOf := make(map[string]policy.HeapObs, len(entries))
	for _, e := range entries {
		if !w.sampled(e) {
			continue
		}
		if w.opt.Policy.Watched(e.Full, e.Base) {
			sawWatched = true
		}
		r, read := reads[e.Full]
		if !read {
			// Not due this poll (readDue): quiet at its last read, whose
			// figures the policy and the metrics go by again (the policy
			// judges them as before: OK, no count moves; the trend is
			// not fed the same sample twice).
			if o, ok := w.lastObs[e.Full]; ok {
				obsOf[e.Full] = o
				out = append(out, o)
			}
			if m, ok := w.lastMetric[e.Full]; ok {
				metricOf[e.Full] = m
				w.heapMetrics = append(w.heapMetrics, m)
			}
			continue
		}
		s, err := r.sample, r.err
		if err != nil {
			if w.opt.Policy.Watched(e.Full, e.Base) {
				problems = append(problems, err.Error())
			} else {
				w.log.Warn("heap unreadable", zap.String("heap", e.Full), zap.Error(err))
			}
			continue
		}
		pct, _, ok := s.FreeOfMax()
		if !ok {
			if w.opt.Policy.Watched(e.Full, e.Base) {
				problems = append(problems, fmt.Sprintf("%s: no free-of-max figures in its stats", e.Full))
			}
			continue
		}
		obs := policy.HeapObs{Name: e.Full, Base: e.Base, PercentFreeOfMax: pct, Exhausted: w.evidence(e.Base, s)}
		obs.MaxBytes, _ = s.MaxSize()
		obs.AllocatedBytes, _ = s.Allocated()
		if s.FullName == "" {
			s.FullName = e.Full
		}
		if tr, err := w.st.Trends.Observe(now, s); err == nil {
			obs.BytesPerSecond = tr.BytesPerSecond
			obs.HasPrediction = tr.Predicted
			obs.TimeToExhaustion = tr.TimeToExhaustion
		}
		out = append(out, obs)
		obsOf[e.Full] = obs
		m := heapMetric(obs, s)
		metricOf[e.Full] = m
		w.heapMetrics = append(w.heapMetrics, m)
	}
	// Only heaps still listed are kept.
	w.lastMetric, w.nextObs = metricOf, obsOf
	if !sawWatched {
		// A listing without the watched heap (renamed on this build, or
		// filtered out by --heaps) must not read as "all is well".
		problems = append(problems, fmt.Sprintf("no heap matching --watch-heap %v among the %d listed", w.opt.Policy.WatchHeaps, len(entries)))
	}
	if len(problems) > 0 {
		return out, strings.Join(problems, "; ")
	}
	return out, ""
}

// sampled tells whether --heaps asks for a heap.
func (w *Watcher) sampled(e heap.Entry) bool {
	return len(w.opt.Heaps) == 0 || heap.Match(w.opt.Heaps, e.Base)
}

// heapsListed is how long (host time) a listing of the heaps is used
// before `vsish -e ls` is run again: the list only changes when a heap is
// created or destroyed, and each command costs a fork and an exec on the
// host at every poll. A listed heap that cannot be read (destroyed, or
// renamed with a new address suffix) makes the poll list again at once,
// so only a new heap waits, for heapsListed at most, to be sampled.
const heapsListed = time.Minute

// otherHeapsEvery is how often (host time) a heap that is not watched is
// read while it is quiet: such a heap never leads to a power-off or a
// restart (only to an alert and the status), and reading each one costs a
// vsish command per poll. The cost: going low just after a read, it is
// CRITICAL up to this much later. A watched heap is read at every poll.
const otherHeapsEvery = time.Minute

// heapRead is one heap's stats at this poll, or why they could not be read.
type heapRead struct {
	sample heap.Sample
	err    error
}

// readDue tells whether a heap that --heaps asks for is read at this poll:
// a watched heap always; another one when it was not read for
// otherHeapsEvery (or the clock went back), when its level is not OK or
// on its way to change, or when the log says it ran out since the last
// sample (that evidence is used by the next sample).
func (w *Watcher) readDue(e heap.Entry, now time.Time) bool {
	if w.opt.Policy.Watched(e.Full, e.Base) {
		return true
	}
	at, ok := w.readAt[e.Full]
	if age := now.Sub(at); !ok || age < 0 || age >= otherHeapsEvery {
		return true
	}
	if hs, ok := w.st.Policy.Heaps[e.Full]; ok && (hs.Level != policy.OK || hs.CritPolls > 0 || hs.WarnPolls > 0) {
		return true
	}
	return w.st.Exhausted[e.Base] != nil
}

// readHeaps returns the listing this poll goes by and the stats of the
// heaps of it that are due (readDue), each read once. A recent listing is
// used first; at the first heap it cannot read, or when it has no watched
// heap, the heaps are listed again and the rest read from the new listing,
// so the poll judges the same heaps as with a fresh listing.
func (w *Watcher) readHeaps(ctx context.Context, now time.Time) ([]heap.Entry, map[string]heapRead, error) {
	reads := map[string]heapRead{}
	readAt := map[string]time.Time{}
	read := func(entries []heap.Entry) (failed bool) {
		for _, e := range entries {
			if _, done := reads[e.Full]; done || !w.sampled(e) || !w.readDue(e, now) {
				continue
			}
			s, err := heap.Read(ctx, w.opt.Runner, e)
			reads[e.Full], readAt[e.Full] = heapRead{s, err}, now
			if err != nil {
				return true
			}
		}
		return false
	}
	// keep records the reads of this poll and forgets heaps no longer
	// listed.
	keep := func(entries []heap.Entry) {
		for _, e := range entries {
			if _, readNow := readAt[e.Full]; !readNow {
				if at, ok := w.readAt[e.Full]; ok {
					readAt[e.Full] = at
				}
			}
		}
		w.nextReadAt = readAt
	}
	if age := now.Sub(w.heapsAt); w.heaps != nil && age >= 0 && age < heapsListed && w.listsWatched(w.heaps) {
		if !read(w.heaps) {
			keep(w.heaps)
			return w.heaps, reads, nil
		}
	}
	entries, err := heap.List(ctx, w.opt.Runner)
	if err != nil {
		w.heaps = nil
		return nil, nil, err
	}
	w.heaps, w.heapsAt = entries, now
	for read(entries) {
		// One heap could not be read: the others still are.
	}
	keep(entries)
	return entries, reads, nil
}

// listsWatched tells whether a listing has a watched heap that --heaps
// samples.
func (w *Watcher) listsWatched(entries []heap.Entry) bool {
	for _, e := range entries {
		if w.sampled(e) && w.opt.Policy.Watched(e.Full, e.Base) {
			return true
		}
	}
	return false
}

// heapCheck reads the watched heap's percent free of max, for verification.
func (w *Watcher) heapCheck(ctx context.Context) (float64, error) {
	entries, err := heap.List(ctx, w.opt.Runner)
	if err != nil {
		return 0, err
	}
	for _, e := range entries {
		if !w.opt.Policy.Watched(e.Full, e.Base) {
			continue
		}
		s, err := heap.Read(ctx, w.opt.Runner, e)
		if err != nil {
			return 0, err
		}
		if pct, _, ok := s.FreeOfMax(); ok {
			return pct, nil
		}
	}
	return 0, errors.New("verify: no watched heap could be read")
}

// vpxaStatus asks vpxa's init script whether it runs; no answer is unknown.
func (w *Watcher) vpxaStatus(ctx context.Context) policy.AgentObs {
	if w.layout.VpxaInit == "" {
		return policy.AgentObs{}
	}
	st, err := remediate.AgentStatus(ctx, w.opt.Runner, w.layout, policy.Agent, w.commandTimeout())
	if err != nil {
		w.log.Warn("vpxa status unknown", zap.Error(err))
	}
	return policy.AgentObs{Known: st.Known, Running: st.Running}
}

// flapping maps the tracker's flapping ports to the VMs that own them, as
// the host confirms at this poll (remediate.Inventory.OwnerOf): a fresh
// net-stats port list each poll, the .vmx claims of the cached inventory,
// and the candidates' power states read now. The inventory costs a few
// commands, so it is only loaded when something flaps.
func (w *Watcher) flapping(ctx context.Context, now time.Time) []policy.FlapObs {
	var out []policy.FlapObs
	var seen []remediate.PortLog // what the log says of out[i]'s port besides its flaps
	for _, p := range w.tracker.Status(now) {
		if !p.Flapping {
			continue
		}
		f := policy.FlapObs{Port: p.Port.String(), Cycles: p.Cycles, Window: w.flapWindow}
		if p.MACKnown {
			f.MAC = p.MAC.String()
		}
		out = append(out, f)
		seen = append(seen, remediate.PortLog{Down: p.Down, DownSince: p.DownSince, MovedTo: uint32(p.MovedTo), MovedAt: p.MovedAt})
	}
	if len(out) == 0 {
		return nil
	}
	inv := w.inventory(ctx, now, out)
	power := remediate.RunnerPower(w.opt.Runner, w.commandTimeout())
	for i := range out {
		f := &out[i]
		port, err := collector.ParsePort(f.Port)
		if err != nil {
			f.Unconfirmed = err.Error()
			continue
		}
		o := inv.OwnerOf(ctx, uint32(port), f.MAC, seen[i], power)
		switch {
		case o.Owner != nil:
			f.VM = &policy.VMRef{ID: o.Owner.VMID, Name: o.Owner.Name, VMX: o.Owner.VMX, PoweredOn: true}
			f.Notes = o.Notes
		case o.Off != nil:
			f.VM = &policy.VMRef{ID: o.Off.VMID, Name: o.Off.Name, VMX: o.Off.VMX}
		default:
			f.Unconfirmed, f.Ambiguous = o.Why, o.Ambiguous
			f.Claimants = o.Claimants()
			w.log.Warn("flapping port not confirmed live", zap.String("port", f.Port), zap.String("mac", f.MAC),
				zap.String("why", o.Why), zap.Strings("claimants", f.Claimants))
		}
	}
	return out
}

// commandTimeout bounds each read-only host command (--command-timeout).
func (w *Watcher) commandTimeout() time.Duration {
	if w.opt.CommandTimeout > 0 {
		return w.opt.CommandTimeout
	}
	return statusTimeout
}

// Reuse of the .vmx claims and registered VMs while ports flap (host
// time): loading them runs vim-cmd getallvms and reads every .vmx on every
// datastore, too much for each 10 s poll of a flap that can last hours.
// A MAC no VM claims reloads them sooner (a VM just registered), but not
// more often than inventoryRetry. The port list is read fresh every poll.
const (
	inventoryTTL   = 5 * time.Minute
	inventoryRetry = 30 * time.Second
)

// inventory returns a recent inventory with this poll's port list. An
// incomplete one (getallvms failed, .vmx files unreadable) is kept for
// inventoryRetry only, so a hung hostd is not asked again at every poll.
func (w *Watcher) inventory(ctx context.Context, now time.Time, flaps []policy.FlapObs) *remediate.Inventory {
	age := now.Sub(w.invAt)
	fresh := w.inv != nil && age >= 0 && age < inventoryTTL && (w.invComplete || age < inventoryRetry)
	if fresh && age >= inventoryRetry {
		for _, f := range flaps {
			if f.MAC != "" && !w.inv.Declares(f.MAC) {
				fresh = false
			}
		}
	}
	if fresh {
		ports, err := remediate.LoadPorts(ctx, w.opt.Runner, w.opt.CommandTimeout)
		if err != nil {
			w.log.Warn("port list", zap.Error(err))
		}
		inv := w.inv.WithPorts(ports, err)
		return &inv
	}
	inv, err := remediate.LoadInventory(ctx, w.opt.Runner, w.opt.Root, w.opt.CommandTimeout)
	if err != nil {
		// Without vmids or .vmx files nothing is confirmed, so nothing is
		// powered off: the plan says so, which is the truth as far as we
		// can tell.
		w.log.Warn("inventory incomplete", zap.Error(err))
	}
	w.inv, w.invAt, w.invComplete = &inv, now, err == nil
	return w.inv
}

// Check is one pass for cron: the log from the saved position, one heap
// sample plus the saved trend, decide, act.
func (w *Watcher) Check(ctx context.Context) (Result, error) {
	r := follow.ReadFrom(w.logPath, w.st.Position, follow.Options{Logger: w.log, Clock: w.opt.Clock})
	for l := range r.Lines() {
		w.consume(l.Text)
	}
	w.logErr = ""
	if err := r.Err(); err != nil {
		w.logErr = err.Error()
		w.log.Warn("reading the log", zap.String("path", w.logPath), zap.Error(err))
	}
	st := r.Stats()
	w.logStats.Rotations += st.Rotations
	w.logStats.Truncations += st.Truncations
	w.logStats.Gaps += st.Gaps
	w.logStats.Oversized += st.Oversized
	w.st.Position = r.Pos()
	return w.Poll(ctx)
}

// Run is the daemon loop: it waits Interval of host time, reads the log
// from where it stopped and polls, as Check does, and waits again, until
// ctx is done or, when forDur > 0, that much host time has passed. A poll
// that acts takes host time of its own (guest shutdowns), so polls are at
// least Interval apart. onPoll, when not nil, sees every poll's result.
//
// One goroutine does everything, so each poll sees every line written
// before it, however late the last read was, and a stepped test clock
// moves the host only while the loop waits.
func (w *Watcher) Run(ctx context.Context, forDur time.Duration, onPoll func(Result)) error {
	start := w.opt.Clock.Now()
	w.log.Info("watching", zap.String("log", w.logPath), zap.Duration("interval", w.opt.Interval),
		zap.Bool("dry_run", w.opt.DryRun), zap.Strings("power_off_allow", w.opt.Policy.PowerOffAllow))
	const signalled = "stopped by a signal (SIGTERM or SIGINT)"
	for {
		if err := w.opt.Clock.Sleep(ctx, w.opt.Interval); err != nil {
			if ctx.Err() != nil {
				return w.stop(signalled, nil)
			}
			return w.stop("stopped: cannot wait for the next poll", fmt.Errorf("wait for the next poll: %w", err))
		}
		res, err := w.Check(ctx)
		if ctx.Err() != nil {
			return w.stop(signalled, nil)
		}
		if onPoll != nil {
			onPoll(res)
		}
		if err != nil {
			if errors.Is(err, remediate.ErrJournal) {
				// Blind to its own actions, the daemon stops rather than
				// idle: exit 2 tells a supervisor (or a person) at once.
				w.log.Error("journal cannot be written: stopping, no action taken", zap.Error(err))
				return w.stop("stopped: the journal cannot be written", err)
			}
			if errors.Is(err, remediate.ErrLocked) {
				w.log.Error("lock lost to another instance: stopping, no action taken", zap.Error(err))
				return w.stop("stopped: the lock was lost to another instance", err)
			}
			w.log.Error("poll", zap.Error(err))
		}
		if forDur > 0 && w.opt.Clock.Now().Sub(start) >= forDur {
			return w.stop(fmt.Sprintf("stopped: --for %s reached", forDur), nil)
		}
	}
}

// stop ends a run: it saves the state and journals why the daemon
// stopped, so that a clean stop reads as one, never as an UNKNOWN plan.
func (w *Watcher) stop(why string, err error) error {
	e := remediate.Entry{Action: remediate.ActStop, Target: "heapguard", Reason: why, Result: remediate.ResultOK, DryRun: w.opt.DryRun}
	if err != nil {
		e.Result, e.Error = remediate.ResultFailed, err.Error()
	}
	if jerr := w.journal.Append(e); jerr != nil && !errors.Is(err, remediate.ErrJournal) {
		err = errors.Join(err, jerr)
	}
	if serr := w.saveState(); serr != nil {
		err = errors.Join(err, serr)
	}
	w.log.Info("stopped", zap.Int64("lines", w.lines), zap.Int64("unparsed", w.unparsed),
		zap.Uint64("rotations", w.logStats.Rotations), zap.Uint64("truncations", w.logStats.Truncations),
		zap.Uint64("gaps", w.logStats.Gaps), zap.Uint64("oversized", w.logStats.Oversized))
	return err
}

// withFlapLimits applies the configured cycles and window to a saved
// tracker state (a changed --flap-window counts from the next start).
func withFlapLimits(st collector.FlapState, cycles int, window time.Duration) collector.FlapState {
	if cycles > 0 {
		st.Cycles = cycles
	}
	if window > 0 {
		st.Window = window
	}
	return st
}

// lockRefresh is how often a long-running watcher brings its pid-file lock
// up to date, so that a reboot soon after it dies is told apart.
const lockRefresh = 5 * time.Minute

// refreshLock refreshes both locks (the host's and the state folder's)
// when due. An error wrapping remediate.ErrLocked means a lock was lost:
// nothing may be done then.
func (w *Watcher) refreshLock() error {
	if w.lock == nil || time.Since(w.lockAt) < lockRefresh {
		return nil
	}
	w.lockAt = time.Now()
	for _, l := range []*remediate.Lock{w.hostLock, w.lock} {
		err := l.Refresh()
		if err != nil && !errors.Is(err, remediate.ErrLocked) {
			w.log.Warn("lock", zap.Error(err)) // a write error: still ours
			continue
		}
		if err != nil {
			w.lockLost = true
			return err
		}
	}
	return nil
}

// checkLocks tells whether both locks are still this instance's.
func (w *Watcher) checkLocks() error {
	for _, l := range []*remediate.Lock{w.hostLock, w.lock} {
		if err := l.Check(); err != nil {
			w.lockLost = true
			return err
		}
	}
	return nil
}

func plural(n int, what string) string {
	if n == 1 {
		return "1 " + what
	}
	return fmt.Sprintf("%d %ss", n, what)
}
