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
	"slices"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/heapguard/heapguard/collector"
	"github.com/heapguard/heapguard/collector/follow"
	"github.com/heapguard/heapguard/heap"
	"github.com/heapguard/heapguard/host"
	"github.com/heapguard/heapguard/remediate"
)

// Options configure the agent for `heapguard run` and `heapguard check`.
type Options struct {
	// Root prefixes every host path and the host commands' PATH ("/" on a
	// real host; a simulated host's folder under esxsim).
	Root string
	// StateDir keeps the journal, the guards, the lock and the saved state.
	StateDir string
	// Interval is the host time between two heap samples (run mode).
	Interval time.Duration
	// LogPoll is how often the log is checked for new lines (run mode).
	LogPoll time.Duration
	DryRun  bool
	// Heaps are globs of the heaps to sample; empty: every heap.
	Heaps  []string
	Policy Config
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

	Logger *zap.Logger
	Clock  host.Clock
	Runner host.Runner
}

// Defaults of the loop.
const (
	DefaultInterval = 10 * time.Second
	DefaultLogPoll  = time.Second
	// statusTimeout bounds `vpxa status`; vsishTimeout bounds one heap read.
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
	Policy   State               `json:"policy"`
	Status   Level               `json:"status"`
	// Reported is the signature of the last plan journaled, so a plan
	// that only repeats it (the same alert every poll) is not journaled again.
	Reported string    `json:"reported,omitempty"`
	Saved    time.Time `json:"saved"`
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
	lock    *remediate.Lock
	exec    remediate.Executor

	statePath  string
	st         savedState
	tracker    *collector.FlapTracker
	flapWindow time.Duration
	parser     *collector.Parser
	// vpxaCrash is set when a vpxa dump line was read since the last poll.
	vpxaCrash bool
	// parsed counts log lines by outcome since start, for the logs.
	lines, unparsed int64
}

// Open prepares a watcher: it checks the config, takes the lock (unless it
// is a dry run, which never acts), opens the journal and guards and loads
// the saved state. Close releases them.
func Open(opt Options) (*Watcher, error) {
	if err := opt.Policy.Validate(); err != nil {
		return nil, err
	}
	if err := heap.ValidGlobs(opt.Heaps); err != nil {
		return nil, fmt.Errorf("--heaps: %w", err)
	}
	if opt.StateDir == "" {
		return nil, errors.New("no state folder (--state-dir)")
	}
	if opt.Interval <= 0 {
		opt.Interval = DefaultInterval
	}
	if opt.LogPoll <= 0 {
		opt.LogPoll = DefaultLogPoll
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
	if err := os.MkdirAll(opt.StateDir, 0o700); err != nil {
		return nil, fmt.Errorf("state folder: %w", err)
	}
	a := &Watcher{opt: opt, layout: host.DetectLayout(opt.Root), log: opt.Logger}
	a.logPath = host.Path(opt.Root, a.layout.LogPath)
	a.statePath = filepath.Join(opt.StateDir, "state.json")
	if opt.DryRun {
		// A dry run must not move the live state on (a later live check
		// would miss the lines it read), so it keeps its own.
		a.statePath = filepath.Join(opt.StateDir, "state.dry-run.json")
	}
	var err error
	if !opt.DryRun {
		if a.lock, err = remediate.AcquireLock(opt.StateDir); err != nil {
			return nil, err
		}
	}
	if a.journal, err = remediate.OpenJournal(opt.StateDir, opt.Clock); err != nil {
		a.Close()
		return nil, err
	}
	if a.guards, err = remediate.OpenGuards(opt.StateDir, opt.Guards); err != nil {
		a.Close()
		return nil, err
	}
	if opt.DryRun {
		a.exec = &remediate.DryRun{Layout: a.layout}
	} else {
		a.exec = &remediate.Live{
			Runner: opt.Runner, Layout: a.layout, Clock: opt.Clock,
			Timeout: opt.CommandTimeout, ShutdownTimeout: opt.ShutdownTimeout,
			HeapCheck: a.heapCheck,
		}
	}
	if err := a.loadState(); err != nil {
		a.Close()
		return nil, err
	}
	a.parser = collector.NewParser(opt.Year, opt.Clock.Now())
	return a, nil
}

// Close releases the lock and closes the journal.
func (a *Watcher) Close() error {
	var errs []error
	if a.journal != nil {
		errs = append(errs, a.journal.Close())
	}
	if a.lock != nil {
		errs = append(errs, a.lock.Release())
	}
	return errors.Join(errs...)
}

func (a *Watcher) loadState() error {
	b, err := os.ReadFile(a.statePath)
	switch {
	case errors.Is(err, os.ErrNotExist):
		a.st = savedState{Version: 1}
	case err != nil:
		return fmt.Errorf("read state %s: %w", a.statePath, err)
	default:
		if err := json.Unmarshal(b, &a.st); err != nil {
			// A damaged state file must not stop the guard; budgets live
			// in guards.json, so only trends and the log position are lost.
			a.log.Warn("state file unreadable, starting afresh", zap.String("path", a.statePath), zap.Error(err))
			a.st = savedState{Version: 1}
		}
	}
	a.tracker = collector.RestoreFlapTracker(a.st.Flaps)
	if a.opt.FlapCycles > 0 || a.opt.FlapWindow > 0 {
		a.tracker = collector.RestoreFlapTracker(withFlapLimits(a.st.Flaps, a.opt.FlapCycles, a.opt.FlapWindow))
	}
	a.flapWindow = a.tracker.Snapshot().Window
	return nil
}

func (a *Watcher) saveState() error {
	a.st.Version = 1
	a.st.Flaps = a.tracker.Snapshot()
	a.st.Saved = a.opt.Clock.Now()
	b, err := json.Marshal(a.st)
	if err != nil {
		return fmt.Errorf("save state: %w", err)
	}
	if err := host.WriteFileAtomic(a.statePath, b, 0o600); err != nil {
		return fmt.Errorf("save state: %w", err)
	}
	return nil
}

// consume parses one log line into the flap tracker and the crash flag.
func (a *Watcher) consume(text []byte) {
	a.lines++
	ev, err := a.parser.Parse(text)
	if err != nil {
		a.unparsed++
		return
	}
	switch ev.Kind {
	case collector.KindPortDisabled, collector.KindPortEnabled:
		a.tracker.Observe(ev)
	case collector.KindCoreDump, collector.KindUserDump:
		if ev.Process == Agent {
			a.vpxaCrash = true
			a.log.Warn("vpxa crash in the log", zap.Time("log_time", ev.Time), zap.ByteString("line", text))
		}
	case collector.KindHeapMaxed:
		a.log.Warn("heap at its maximum size", zap.String("heap", ev.Heap), zap.Time("log_time", ev.Time))
	}
}

// Result is what one poll decided and did.
type Result struct {
	Plan     Plan
	Outcomes []remediate.Outcome
	// Reported is true when the plan was journaled (and so worth showing):
	// it acts, or it differs from the last reported plan.
	Reported bool
}

// signature names what a plan says, without its changing figures: its
// status and each action's kind, target and whether it is skipped.
func signature(p Plan) string {
	var b strings.Builder
	b.WriteString(p.Status.String())
	for _, act := range p.Actions {
		fmt.Fprintf(&b, "|%s %s %t", act.Kind, act.Target, act.Skipped != "")
	}
	return b.String()
}

// acts reports whether a plan has a step that changes the host.
func acts(p Plan) bool {
	for _, act := range p.LiveActions() {
		if act.Kind != remediate.ActAlert {
			return true
		}
	}
	return false
}

// Poll samples the host, decides and acts: one step of the loop. The log
// lines must have been consumed before.
func (a *Watcher) Poll(ctx context.Context) (Result, error) {
	now := a.opt.Clock.Now()
	obs := Observations{Time: now}
	obs.Heaps, obs.HeapErr = a.sampleHeaps(ctx, now)
	obs.Vpxa = a.vpxaStatus(ctx)
	obs.Vpxa.CrashSeen = a.vpxaCrash
	obs.Flapping = a.flapping(ctx, now)

	plan, next := Decide(a.opt.Policy, a.st.Policy, obs)
	a.st.Policy = next
	a.st.Status = plan.Status
	res := Result{Plan: plan}

	var err error
	if sig := signature(plan); acts(plan) || sig != a.st.Reported {
		res.Reported = true
		// Persist what was planned before acting: after a kill -9 mid-action
		// the next run knows the power-offs and restart are under way (the
		// policy's settle times) and does not repeat them.
		if serr := a.saveState(); serr != nil {
			return res, fmt.Errorf("not acting: %w", serr)
		}
		a.log.Info("decision", zap.String("status", plan.Status.String()), zap.String("summary", plan.NagiosLine()),
			zap.Int("actions", len(plan.Actions)), zap.Bool("dry_run", a.opt.DryRun))
		res.Outcomes, err = remediate.Apply(ctx, plan.Actions, remediate.ApplyOptions{
			Executor: a.exec, Journal: a.journal, Guards: a.guards, Clock: a.opt.Clock,
			DryRun: a.opt.DryRun, PlanID: newPlanID(now), Summary: plan.NagiosLine(),
		})
		if err == nil {
			a.st.Reported = sig
		}
		for _, o := range res.Outcomes {
			a.log.Info("action", zap.String("action", string(o.Action.Kind)), zap.String("target", o.Action.Target),
				zap.String("result", o.Result), zap.String("error", o.Err), zap.Bool("dry_run", a.opt.DryRun))
		}
	}
	// The crash has been shown to the policy once; a restart answers it.
	a.vpxaCrash = false
	if serr := a.saveState(); serr != nil {
		err = errors.Join(err, serr)
	}
	return res, err
}

func newPlanID(now time.Time) string {
	var b [4]byte
	rand.Read(b[:])
	return now.UTC().Format("20060102T150405Z") + "-" + hex.EncodeToString(b[:])
}

// sampleHeaps lists the heaps and reads those that match --heaps. The
// policy must never act blind: a failed listing, or a watched heap that
// could not be read, is reported as HeapErr.
func (a *Watcher) sampleHeaps(ctx context.Context, now time.Time) ([]HeapObs, string) {
	entries, err := heap.List(ctx, a.opt.Runner)
	if err != nil {
		return nil, err.Error()
	}
	var out []HeapObs
	var problems []string
	for _, e := range entries {
		if len(a.opt.Heaps) > 0 && !heap.Match(a.opt.Heaps, e.Base) {
			continue
		}
		s, err := heap.Read(ctx, a.opt.Runner, e)
		if err != nil {
			if a.opt.Policy.watched(e.Full) {
				problems = append(problems, err.Error())
			} else {
				a.log.Warn("heap unreadable", zap.String("heap", e.Full), zap.Error(err))
			}
			continue
		}
		pct, _, ok := s.FreeOfMax()
		if !ok {
			if a.opt.Policy.watched(e.Full) {
				problems = append(problems, fmt.Sprintf("%s: no free-of-max figures in its stats", e.Full))
			}
			continue
		}
		obs := HeapObs{Name: e.Full, PercentFreeOfMax: pct}
		obs.MaxBytes, _ = s.MaxSize()
		obs.AllocatedBytes, _ = s.Allocated()
		if s.FullName == "" {
			s.FullName = e.Full
		}
		if tr, err := a.st.Trends.Observe(now, s); err == nil {
			obs.BytesPerSecond = tr.BytesPerSecond
			obs.HasPrediction = tr.Predicted
			obs.TimeToExhaustion = tr.TimeToExhaustion
		}
		out = append(out, obs)
	}
	if len(problems) > 0 {
		return out, strings.Join(problems, "; ")
	}
	return out, ""
}

// heapCheck reads the watched heap's percent free of max, for verification.
func (a *Watcher) heapCheck(ctx context.Context) (float64, error) {
	entries, err := heap.List(ctx, a.opt.Runner)
	if err != nil {
		return 0, err
	}
	for _, e := range entries {
		if !a.opt.Policy.watched(e.Full) {
			continue
		}
		s, err := heap.Read(ctx, a.opt.Runner, e)
		if err != nil {
			return 0, err
		}
		if pct, _, ok := s.FreeOfMax(); ok {
			return pct, nil
		}
	}
	return 0, errors.New("verify: no watched heap could be read")
}

// vpxaStatus asks the init script. Exit 0 is running; another exit status
// is not running; no answer at all (timeout, no script) is unknown.
func (a *Watcher) vpxaStatus(ctx context.Context) AgentObs {
	if a.layout.VpxaInit == "" {
		return AgentObs{}
	}
	res, err := a.opt.Runner.Run(ctx, statusTimeout, a.layout.VpxaInit, "status")
	if err == nil {
		return AgentObs{Known: true, Running: true}
	}
	if res.ExitCode > 0 {
		return AgentObs{Known: true, Running: false}
	}
	a.log.Warn("vpxa status unknown", zap.Error(err))
	return AgentObs{}
}

// flapping maps the tracker's flapping ports to VMs. The inventory costs
// a few commands, so it is only loaded when something flaps.
func (a *Watcher) flapping(ctx context.Context, now time.Time) []FlapObs {
	var out []FlapObs
	for _, p := range a.tracker.Status(now) {
		if !p.Flapping {
			continue
		}
		f := FlapObs{Port: p.Port.String(), Cycles: p.Cycles, Window: a.flapWindow}
		if p.MACKnown {
			f.MAC = p.MAC.String()
		}
		out = append(out, f)
	}
	if len(out) == 0 {
		return nil
	}
	inv, err := remediate.LoadInventory(ctx, a.opt.Runner, a.opt.Root)
	if err != nil {
		// Without vmids nothing can be powered off; the plan will say the
		// MACs map to no VM, which is the truth as far as we can tell.
		a.log.Warn("inventory incomplete", zap.Error(err))
	}
	for i := range out {
		f := &out[i]
		owner, ok := inv.ByMAC(f.MAC)
		if !ok || owner.VMID == "" || owner.Ambiguous {
			if ok && owner.Ambiguous {
				a.log.Warn("MAC belongs to several registered VMs: not mapping it", zap.String("mac", f.MAC), zap.Strings("others", owner.Others))
			}
			continue
		}
		vm := &VMRef{ID: owner.VMID, Name: owner.Name, VMX: owner.VMX, PoweredOn: true}
		if st, err := a.powerState(ctx, owner.VMID); err == nil {
			vm.PoweredOn = st == remediate.PoweredOn
		}
		f.VM = vm
		// A powered-off VM has no port in net-stats; only a running one
		// can contradict the log.
		if port, perr := collector.ParsePort(f.Port); perr == nil && vm.PoweredOn {
			if cerr := inv.CheckPort(uint32(port), f.MAC); cerr != nil && !errors.Is(cerr, remediate.ErrNoNetStats) {
				a.log.Warn("port and MAC disagree with net-stats", zap.Error(cerr))
			}
		}
	}
	return out
}

func (a *Watcher) powerState(ctx context.Context, vmid string) (remediate.PowerState, error) {
	res, err := a.opt.Runner.Run(ctx, statusTimeout, "vim-cmd", "vmsvc/power.getstate", vmid)
	if err != nil {
		return "", err
	}
	return remediate.ParsePowerState(bytes.NewReader(res.Stdout))
}

// Check is one pass for cron: the log from the saved position, one heap
// sample plus the saved trend, decide, act.
func (a *Watcher) Check(ctx context.Context) (Result, error) {
	r := follow.ReadFrom(a.logPath, a.st.Position, follow.Options{Logger: a.log, Clock: a.opt.Clock})
	for l := range r.Lines() {
		if l.Err != nil {
			a.log.Warn("log", zap.Error(l.Err))
			continue
		}
		a.consume(l.Text)
	}
	if err := r.Err(); err != nil {
		a.log.Warn("reading the log", zap.String("path", a.logPath), zap.Error(err))
	}
	a.st.Position = r.Pos()
	return a.Poll(ctx)
}

// Run is the daemon loop: it follows the log and polls every Interval of
// host time until ctx is done or, when forDur > 0, that much host time has
// passed. onPoll, when not nil, sees every poll's result.
func (a *Watcher) Run(ctx context.Context, forDur time.Duration, onPoll func(Result)) error {
	start := a.opt.Clock.Now()
	f, err := follow.New(a.logPath, a.st.Position, follow.Options{Poll: a.opt.LogPoll, Logger: a.log, Clock: a.opt.Clock})
	if err != nil {
		return fmt.Errorf("follow %s: %w", a.logPath, err)
	}
	defer f.Stop()
	a.log.Info("watching", zap.String("log", a.logPath), zap.Duration("interval", a.opt.Interval),
		zap.Bool("dry_run", a.opt.DryRun), zap.Strings("power_off_allow", a.opt.Policy.PowerOffAllow))

	tick := make(chan struct{})
	tickCtx, stopTicks := context.WithCancel(ctx)
	defer stopTicks()
	go func() {
		for a.opt.Clock.Sleep(tickCtx, a.opt.Interval) == nil {
			select {
			case tick <- struct{}{}:
			case <-tickCtx.Done():
				return
			}
		}
	}()
	for {
		select {
		case <-ctx.Done():
			return a.stop(nil)
		case l, ok := <-f.Lines():
			if !ok {
				return a.stop(errors.New("log follower stopped"))
			}
			if l.Err != nil {
				a.log.Warn("log", zap.Error(l.Err))
				continue
			}
			a.consume(l.Text)
			a.st.Position = l.Pos
		case <-tick:
			a.drain(f)
			res, err := a.Poll(ctx)
			if onPoll != nil {
				onPoll(res)
			}
			if err != nil {
				if errors.Is(err, remediate.ErrJournal) {
					a.log.Error("journal cannot be written: taking no action until it can", zap.Error(err))
				} else if ctx.Err() == nil {
					a.log.Error("poll", zap.Error(err))
				}
			}
			if forDur > 0 && a.opt.Clock.Now().Sub(start) >= forDur {
				return a.stop(nil)
			}
		}
	}
}

// drain consumes the lines already waiting, so a poll sees the log up to now.
func (a *Watcher) drain(f *follow.Follower) {
	for {
		select {
		case l, ok := <-f.Lines():
			if !ok {
				return
			}
			if l.Err == nil {
				a.consume(l.Text)
				a.st.Position = l.Pos
			}
		default:
			return
		}
	}
}

func (a *Watcher) stop(err error) error {
	if serr := a.saveState(); serr != nil {
		err = errors.Join(err, serr)
	}
	a.log.Info("stopped", zap.Int64("lines", a.lines), zap.Int64("unparsed", a.unparsed))
	return err
}

// withFlapLimits overrides the cycles and window of a saved tracker state.
func withFlapLimits(st collector.FlapState, cycles int, window time.Duration) collector.FlapState {
	if cycles > 0 {
		st.Cycles = cycles
	}
	if window > 0 {
		st.Window = window
	}
	st.Ports = slices.Clone(st.Ports)
	return st
}
