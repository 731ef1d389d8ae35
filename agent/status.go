package agent

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/heapguard/heapguard/collector"
	"github.com/heapguard/heapguard/heap"
	"github.com/heapguard/heapguard/host"
	"github.com/heapguard/heapguard/policy"
	"github.com/heapguard/heapguard/remediate"
)

// `heapguard status` answers Nagios/NRPE from what check and run left in
// the state folder plus one fresh sample of the watched heaps. It takes
// no lock and writes nothing, so it answers while an instance acts and
// never gets in its way; its host commands share a budget well under the
// 2 s an NRPE check may be given, so a hung vsish makes it UNKNOWN, not late.

// Defaults of ReadStatus.
const (
	// DefaultStatusBudget bounds the fresh heap sample, every vsish call
	// together: vsish answers in milliseconds, and a whole status against
	// a hung vsish measured 1.4-1.9 s with 1.5 s here on a loaded
	// 2-core machine, too near the 2 s it must answer in.
	DefaultStatusBudget = 1200 * time.Millisecond
	// DefaultStaleAfter is the age past which the saved state is stale:
	// three polls of a cron check every 5 minutes.
	DefaultStaleAfter = 15 * time.Minute
)

// StatusOptions tune ReadStatus; zero fields take the defaults.
type StatusOptions struct {
	Budget     time.Duration
	StaleAfter time.Duration
}

// Status is what `heapguard status` reports (`--json` prints it).
type Status struct {
	// Nagios is the plugin line: status, text, performance data.
	Nagios string       `json:"nagios"`
	Status policy.Level `json:"status"`
	// Time is the host time of the answer.
	Time     time.Time  `json:"time"`
	StateDir string     `json:"state_dir"`
	Saved    SavedState `json:"saved_state"`
	// Heaps are the watched heaps as sampled now, judged as check would
	// judge them now (the saved levels and hold counts plus this sample).
	Heaps []policy.HeapVerdict `json:"heaps"`
	// HeapErr says why the heaps could not be read now.
	HeapErr string `json:"heap_error"`
	// SampleMS is how long the fresh sample took (wall time).
	SampleMS int64 `json:"sample_ms"`
	// Flapping are the ports flapping as of the saved state (status does
	// not read the log).
	Flapping    []policy.FlapObs `json:"flapping"`
	Budgets     Budgets          `json:"budgets"`
	Breaker     Breaker          `json:"breaker"`
	GuardsError string           `json:"guards_error"`
	Locks       []LockStatus     `json:"locks"`
	// LastPlan is the last plan the journal holds (of dry runs with
	// --dry-run, of live runs without); nil when none.
	LastPlan *PlanView `json:"last_plan"`
	// LastStop is the journal's last stop entry when it comes after the
	// last plan (the daemon stopped since); nil otherwise.
	LastStop    *StopView `json:"last_stop"`
	JournalPath string    `json:"journal_path"`
	// JournalError says why the journal could not be read.
	JournalError string `json:"journal_error"`
	// Reasons are what the status line says beyond the heaps and ports:
	// a stale or missing state, the breaker, a spent budget.
	Reasons []string `json:"reasons"`
}

// SavedState describes the state file check and run keep.
type SavedState struct {
	Path  string `json:"path"`
	Found bool   `json:"found"`
	// Error says why a state file that exists could not be read; check
	// then starts afresh.
	Error string    `json:"error"`
	Saved time.Time `json:"saved,omitzero"`
	// AgeSeconds is Time - Saved (negative: saved "in the future", the
	// host clock stepped back since).
	AgeSeconds        float64 `json:"age_seconds"`
	Stale             bool    `json:"stale"`
	StaleAfterSeconds float64 `json:"stale_after_seconds"`
}

// Budgets are the power-off budget and the vpxa restart cooldown, now.
type Budgets struct {
	PowerOffsInWindow int     `json:"power_offs_in_window"`
	MaxPowerOffs      int     `json:"max_power_offs"`
	PowerOffsLeft     int     `json:"power_offs_left"`
	WindowSeconds     float64 `json:"window_seconds"`
	// NextPowerOffAt is when one more power-off is allowed, while the
	// budget is spent.
	NextPowerOffAt time.Time `json:"next_power_off_at,omitzero"`
	// LastRestartAt is vpxa's last restart; RestartAllowedAt the end of
	// its cooldown, while it cools down.
	LastRestartAt    time.Time `json:"last_restart_at,omitzero"`
	RestartAllowedAt time.Time `json:"restart_allowed_at,omitzero"`
}

// Breaker is the circuit breaker.
type Breaker struct {
	Open          bool      `json:"open"`
	Since         time.Time `json:"since,omitzero"`
	FailureStreak int       `json:"failure_streak"`
	After         int       `json:"breaker_after"`
	LastFailure   string    `json:"last_failure"`
}

// LockStatus is one of the two locks an acting instance takes.
type LockStatus struct {
	// Lock is "state_folder" or "host".
	Lock string `json:"lock"`
	remediate.LockHolder
	// HolderStateDir is, for the host lock, the state folder its holder
	// named (the last holder's when it is free).
	HolderStateDir string `json:"holder_state_dir,omitempty"`
	Error          string `json:"error,omitempty"`
}

// PlanView is a plan as the journal tells it.
type PlanView struct {
	PlanID string    `json:"plan_id"`
	Time   time.Time `json:"time"`
	// Status is the level its summary starts with ("" when it has none).
	Status  string     `json:"status"`
	Summary string     `json:"summary"`
	DryRun  bool       `json:"dry_run"`
	Steps   []StepView `json:"steps"`
}

// StepView is one step of a plan and its last journaled result:
// "started" (running, or killed: the next start resolves it), "ok",
// "failed", "skipped", "dry_run", or "not_reached" (never journaled).
type StepView struct {
	Action policy.ActionKind `json:"action"`
	Target string            `json:"target"`
	VMID   string            `json:"vmid,omitempty"`
	Result string            `json:"result"`
	Error  string            `json:"error"`
	Time   time.Time         `json:"time,omitzero"`
}

// StopView is a stop entry: when and why the daemon stopped.
type StopView struct {
	Time   time.Time `json:"time"`
	Reason string    `json:"reason"`
	Result string    `json:"result"`
	Error  string    `json:"error"`
}

// ResultNotReached is a planned step with no journal entry of its own.
const ResultNotReached = "not_reached"

// ReadStatus reads the saved state, the guards, the locks and the
// journal of opt.StateDir, samples the watched heaps once, all within the
// budget, and judges as check would judge now, without acting: no lock
// is taken and nothing is written. An error is returned for options that
// cannot be used and for a state folder that does not answer within the
// budget; what cannot be read otherwise is said in the Status.
func ReadStatus(ctx context.Context, opt Options, so StatusOptions) (*Status, error) {
	if err := opt.validate(); err != nil {
		return nil, err
	}
	if so.Budget <= 0 {
		so.Budget = DefaultStatusBudget
	}
	if so.StaleAfter <= 0 {
		so.StaleAfter = DefaultStaleAfter
	}
	if opt.Clock == nil {
		opt.Clock = host.SystemClock{}
	}
	if opt.Runner == nil {
		opt.Runner = host.Exec{Root: opt.Root}
	}
	now := opt.Clock.Now().UTC()
	s := &Status{
		Time: now, StateDir: opt.StateDir, Heaps: []policy.HeapVerdict{}, Flapping: []policy.FlapObs{},
		Locks: []LockStatus{}, Reasons: []string{}, JournalPath: filepath.Join(opt.StateDir, remediate.JournalFile),
	}
	// The state folder may sit on a datastore that stops answering (NFS
	// down, all paths down): its reads share the budget with the sample,
	// so a hung read makes status UNKNOWN with the reason, not late.
	deadline := time.Now().Add(so.Budget)
	read := make(chan savedState, 1)
	go func() {
		st := s.readSaved(opt, so.StaleAfter)
		s.readGuards(opt, now)
		s.readLocks(opt)
		s.readJournal(opt)
		read <- st
	}()
	var st savedState
	select {
	case st = <-read:
	case <-time.After(so.Budget):
		return nil, fmt.Errorf("state folder %s not read within %s: is its datastore answering?", opt.StateDir, so.Budget)
	case <-ctx.Done():
		return nil, ctx.Err()
	}

	// The flaps as the last check saw them: status reads no log.
	tracker := collector.RestoreFlapTracker(withFlapLimits(st.Flaps, opt.FlapCycles, opt.FlapWindow))
	at := st.Saved
	if at.IsZero() {
		at = now
	}
	var flaps []policy.FlapObs
	for _, p := range tracker.Status(at) {
		if !p.Flapping {
			continue
		}
		f := policy.FlapObs{Port: p.Port.String(), Cycles: p.Cycles, Window: tracker.Snapshot().Window,
			Unconfirmed: "status does not look up VMs (check does)"}
		if p.MACKnown {
			f.MAC = p.MAC.String()
		}
		flaps = append(flaps, f)
	}

	// What the reads left of the budget, in round figures for messages.
	left := time.Until(deadline).Truncate(10 * time.Millisecond)
	sctx, cancel := context.WithTimeout(ctx, left)
	start := time.Now()
	heaps, heapErr := sampleWatched(sctx, host.CapTimeout(opt.Runner, left), opt, &st.Trends, now)
	s.SampleMS = time.Since(start).Milliseconds()
	cancel()

	obs := policy.Observations{Time: now, Heaps: heaps, HeapErr: heapErr, Flapping: flaps}
	if s.GuardsError == "" {
		obs.Guards = &policy.GuardObs{
			PowerOffsLeft: s.Budgets.PowerOffsLeft, NextPowerOffAt: s.Budgets.NextPowerOffAt,
			RestartAllowedAt: s.Budgets.RestartAllowedAt, BreakerOpen: s.Breaker.Open, BreakerWhy: s.Breaker.LastFailure,
		}
	}
	cfg := opt.Policy
	if !s.Saved.Found || s.Saved.Error != "" {
		// No polls to hold over: this sample is all there is to judge.
		cfg.HoldPolls = 1
	}
	plan, _ := policy.Decide(cfg, st.Policy, obs)
	s.judge(plan, st)
	return s, nil
}

// readSaved loads the saved state, as loadState does but without
// creating or repairing anything.
func (s *Status) readSaved(opt Options, staleAfter time.Duration) savedState {
	name := "state.json"
	if opt.DryRun {
		name = "state.dry-run.json"
	}
	sv := &s.Saved
	sv.Path = filepath.Join(opt.StateDir, name)
	sv.StaleAfterSeconds = staleAfter.Seconds()
	var st savedState
	b, err := os.ReadFile(sv.Path)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return savedState{Version: 1}
	case err != nil:
		sv.Found, sv.Error = true, err.Error()
		return savedState{Version: 1}
	}
	sv.Found = true
	if err := json.Unmarshal(b, &st); err != nil {
		sv.Error = fmt.Sprintf("%s: %v (the next check starts afresh)", sv.Path, err)
		return savedState{Version: 1}
	}
	sv.Saved = st.Saved.UTC()
	if !st.Saved.IsZero() {
		age := s.Time.Sub(st.Saved)
		sv.AgeSeconds = age.Seconds()
		sv.Stale = age > staleAfter
	}
	return st
}

func (s *Status) readGuards(opt Options, now time.Time) {
	lim := opt.Guards
	gs, err := remediate.ReadGuardStatus(opt.StateDir, host.Path(opt.Root, remediate.HostDir), lim, now)
	if err != nil {
		s.GuardsError = err.Error()
		return
	}
	window := lim.PowerOffWindow
	if window <= 0 {
		window = remediate.DefaultPowerOffWindow
	}
	after := lim.BreakerAfter
	if after <= 0 {
		after = remediate.DefaultBreakerAfter
	}
	s.Budgets = Budgets{
		PowerOffsInWindow: gs.PowerOffsInWindow, MaxPowerOffs: gs.MaxPowerOffs, PowerOffsLeft: gs.PowerOffsLeft(),
		WindowSeconds: window.Seconds(), NextPowerOffAt: gs.NextPowerOffAt.UTC(),
		LastRestartAt: gs.AgentRestarts[policy.Agent].UTC(), RestartAllowedAt: gs.CooldownUntil[policy.Agent].UTC(),
	}
	s.Breaker = Breaker{Open: gs.BreakerOpen, Since: gs.BreakerSince.UTC(), FailureStreak: gs.FailureStreak,
		After: after, LastFailure: gs.LastFailure}
}

func (s *Status) readLocks(opt Options) {
	hostDir := host.Path(opt.Root, remediate.HostDir)
	for _, l := range []struct{ name, dir string }{{"state_folder", opt.StateDir}, {"host", hostDir}} {
		h, err := remediate.PeekLock(l.dir)
		ls := LockStatus{Lock: l.name, LockHolder: h}
		if err != nil {
			ls.Error = err.Error()
		}
		if l.name == "host" {
			if b, err := os.ReadFile(filepath.Join(hostDir, holderFile)); err == nil {
				ls.HolderStateDir = strings.TrimSpace(string(b))
			}
		}
		s.Locks = append(s.Locks, ls)
	}
}

// readJournal finds the last plan and a stop after it in the journal's tail.
func (s *Status) readJournal(opt Options) {
	entries, err := remediate.ReadJournalTail(opt.StateDir)
	if err != nil {
		s.JournalError = err.Error()
	}
	last := -1
	for i, e := range entries {
		if e.Action == remediate.ActDecide && e.DryRun == opt.DryRun {
			last = i
		}
	}
	if last >= 0 {
		s.LastPlan = planView(entries[last], entries[last+1:])
	}
	for i := len(entries) - 1; i > last; i-- {
		if e := entries[i]; e.Action == remediate.ActStop {
			s.LastStop = &StopView{Time: parseTime(e.Time), Reason: e.Reason, Result: e.Result, Error: e.Error}
			break
		}
	}
}

// planView pairs a decision's steps with the entries after it.
func planView(d remediate.Entry, after []remediate.Entry) *PlanView {
	pv := &PlanView{PlanID: d.PlanID, Time: parseTime(d.Time), Summary: d.Summary, DryRun: d.DryRun, Steps: []StepView{}}
	if lvl, _, ok := strings.Cut(strings.TrimPrefix(d.Summary, "HEAPGUARD "), ":"); ok && strings.HasPrefix(d.Summary, "HEAPGUARD ") {
		var l policy.Level
		if l.UnmarshalText([]byte(lvl)) == nil {
			pv.Status = l.String()
		}
	}
	used := make([]bool, len(after))
	for _, a := range d.Plan {
		sv := StepView{Action: a.Kind, Target: a.Target, VMID: a.VMID, Result: ResultNotReached}
		if a.Skipped != "" {
			sv.Result, sv.Error = remediate.ResultSkipped, a.Skipped
		}
		// The step's last entry of this plan is its result; a step listed
		// twice takes the entries in order.
		for i, e := range after {
			if used[i] || e.PlanID != d.PlanID || e.Action != a.Kind || e.Target != a.Target || e.VMID != a.VMID {
				continue
			}
			used[i] = true
			sv.Result, sv.Error, sv.Time = e.Result, e.Error, parseTime(e.Time)
			if e.Result != remediate.ResultStarted {
				break
			}
		}
		pv.Steps = append(pv.Steps, sv)
	}
	return pv
}

func parseTime(s string) time.Time {
	t, _ := time.Parse(time.RFC3339Nano, s)
	return t.UTC()
}

// sampleWatched lists the heaps and reads the watched ones that match
// --heaps: one vsish call per watched heap, not one per heap, so the
// sample fits the budget however many heaps the host has.
func sampleWatched(ctx context.Context, r host.Runner, opt Options, trends *heap.Trends, now time.Time) ([]policy.HeapObs, string) {
	entries, err := heap.List(ctx, r)
	if err != nil {
		return nil, err.Error()
	}
	var out []policy.HeapObs
	var problems []string
	for _, e := range entries {
		if !opt.Policy.Watched(e.Full, e.Base) || len(opt.Heaps) > 0 && !heap.Match(opt.Heaps, e.Base) {
			continue
		}
		s, err := heap.Read(ctx, r, e)
		if err != nil {
			problems = append(problems, err.Error())
			continue
		}
		pct, _, ok := s.FreeOfMax()
		if !ok {
			problems = append(problems, fmt.Sprintf("%s: no free-of-max figures in its stats", e.Full))
			continue
		}
		obs := policy.HeapObs{Name: e.Full, Base: e.Base, PercentFreeOfMax: pct}
		obs.MaxBytes, _ = s.MaxSize()
		obs.AllocatedBytes, _ = s.Allocated()
		if s.FullName == "" {
			s.FullName = e.Full
		}
		if tr, err := trends.Observe(now, s); err == nil {
			obs.BytesPerSecond = tr.BytesPerSecond
			obs.HasPrediction = tr.Predicted
			obs.TimeToExhaustion = tr.TimeToExhaustion
		}
		out = append(out, obs)
	}
	if len(out) == 0 && len(problems) == 0 {
		problems = append(problems, fmt.Sprintf("no heap matching --watch-heap %v among the %d listed", opt.Policy.WatchHeaps, len(entries)))
	}
	return out, strings.Join(problems, "; ")
}

// judge sets the status and its Nagios line: the plan's (what check
// would say now, without its actions: status acts on nothing), raised to
// WARNING when heapguard could not act (stale or unreadable state,
// breaker open), with what else matters said after it.
func (s *Status) judge(plan policy.Plan, st savedState) {
	s.Heaps = plan.Heaps
	s.HeapErr = plan.HeapErr
	if plan.Flapping != nil {
		s.Flapping = plan.Flapping
	}
	level := plan.Status
	var extra []string
	say := func(l policy.Level, text string) {
		level = max(level, l)
		extra = append(extra, text)
	}
	sv := s.Saved
	switch {
	case !sv.Found:
		say(policy.OK, "no saved state yet (no check has run with this state folder)")
	case sv.Error != "":
		say(policy.OK, "saved state unreadable")
	case sv.Stale:
		say(policy.Warn, fmt.Sprintf("saved state %s old: no check or run since %s", ago(time.Duration(sv.AgeSeconds*float64(time.Second))), stamp(sv.Saved)))
	}
	if plan.HeapErr != "" && sv.Found {
		// Blind now: say what the last check judged.
		if name, l, ok := worstSaved(st.Policy); ok && l != policy.OK {
			extra = append(extra, fmt.Sprintf("last check: %s %s", name, l))
		}
	}
	switch {
	case s.GuardsError != "":
		say(policy.Warn, "budgets unreadable: heapguard will not act")
	case s.Breaker.Open:
		say(policy.Warn, "circuit breaker open: heapguard will not act until heapguard reset")
	}
	if s.GuardsError == "" && s.Budgets.PowerOffsLeft == 0 {
		say(policy.OK, fmt.Sprintf("power-off budget spent (0 of %d left until %s)", s.Budgets.MaxPowerOffs, stamp(s.Budgets.NextPowerOffAt)))
	}
	s.Reasons = append(s.Reasons, extra...)
	plan.Status, plan.Actions = level, nil
	line := plan.NagiosLine()
	if len(extra) > 0 {
		text, perf, _ := strings.Cut(line, " | ")
		more := strings.Map(func(r rune) rune {
			if r == '|' || r == '\n' || r == '\r' {
				return '/'
			}
			return r
		}, strings.Join(extra, ", "))
		line = text + ", " + more
		if perf != "" {
			line += " | " + perf
		}
	}
	s.Status, s.Nagios = level, line
}

// worstSaved is the saved heap state with the worst level.
func worstSaved(ps policy.State) (string, policy.Level, bool) {
	names := slices.Sorted(maps.Keys(ps.Heaps))
	best, lvl, ok := "", policy.OK, false
	for _, n := range names {
		if l := ps.Heaps[n].Level; !ok || l > lvl {
			best, lvl, ok = n, l, true
		}
	}
	return best, lvl, ok
}

func stamp(t time.Time) string {
	if t.IsZero() {
		return "(unknown)"
	}
	return t.UTC().Format(time.RFC3339)
}

// ago rounds an age for people: 45s, 12m, 3h10m.
func ago(d time.Duration) string {
	switch {
	case d < 0:
		return "-" + ago(-d)
	case d < time.Minute:
		return d.Round(time.Second).String()
	case d < time.Hour:
		return fmt.Sprintf("%dm", int(d.Round(time.Minute)/time.Minute))
	}
	d = d.Round(time.Minute)
	if d%time.Hour == 0 {
		return fmt.Sprintf("%dh", int(d/time.Hour))
	}
	return fmt.Sprintf("%dh%02dm", int(d/time.Hour), int(d%time.Hour/time.Minute))
}

// WriteText writes the status the way Nagios plugins do: the status line
// first, then the long output, one topic a line.
func (s *Status) WriteText(w io.Writer) error {
	bw := bufio.NewWriter(w)
	fmt.Fprintln(bw, s.Nagios)
	row := func(topic, format string, args ...any) {
		if topic != "" {
			topic += ":"
		}
		fmt.Fprintf(bw, "%-10s %s\n", topic, fmt.Sprintf(format, args...))
	}
	if s.HeapErr != "" {
		row("heaps", "not readable now: %s", s.HeapErr)
	}
	for _, v := range s.Heaps {
		if !v.Watched && v.Level == policy.OK {
			continue
		}
		text := fmt.Sprintf("%s %.1f%% free of max, %s (sampled now in %dms)", v.Name, v.PercentFreeOfMax, v.Level, s.SampleMS)
		if v.Why != "" {
			text += ": " + v.Why
		}
		row("heap", "%s", text)
	}
	switch {
	case len(s.Flapping) == 0:
		row("flapping", "none as of the last check")
	default:
		var ports []string
		for _, f := range s.Flapping {
			p := fmt.Sprintf("%s (%d cycles", f.Port, f.Cycles)
			if f.MAC != "" {
				p += ", " + f.MAC
			}
			ports = append(ports, p+")")
		}
		row("flapping", "%d ports as of the last check: %s", len(s.Flapping), strings.Join(ports, ", "))
	}
	if s.GuardsError != "" {
		row("budgets", "unreadable: %s", s.GuardsError)
	} else {
		b := s.Budgets
		text := fmt.Sprintf("power-offs %d of %d in the last %s, %d left", b.PowerOffsInWindow, b.MaxPowerOffs, ago(time.Duration(b.WindowSeconds*float64(time.Second))), b.PowerOffsLeft)
		if !b.NextPowerOffAt.IsZero() {
			text += ", next allowed at " + stamp(b.NextPowerOffAt)
		}
		row("budgets", "%s", text)
		switch {
		case !b.RestartAllowedAt.IsZero():
			row("cooldown", "%s restarted at %s; next restart allowed at %s", policy.Agent, stamp(b.LastRestartAt), stamp(b.RestartAllowedAt))
		case !b.LastRestartAt.IsZero():
			row("cooldown", "none: %s last restarted at %s", policy.Agent, stamp(b.LastRestartAt))
		default:
			row("cooldown", "none: %s never restarted by heapguard", policy.Agent)
		}
		br := s.Breaker
		if br.Open {
			row("breaker", "OPEN since %s after %d failed remediations in a row (opens at %d); last: %s; run heapguard reset after checking the host",
				stamp(br.Since), br.FailureStreak, br.After, br.LastFailure)
		} else {
			text := fmt.Sprintf("closed, %d failed remediations in a row (opens at %d)", br.FailureStreak, br.After)
			if br.LastFailure != "" {
				text += "; last: " + br.LastFailure
			}
			row("breaker", "%s", text)
		}
	}
	for _, l := range s.Locks {
		text := l.LockHolder.String()
		if l.HolderStateDir != "" {
			text += ", state folder " + l.HolderStateDir
		}
		if l.Error != "" {
			text = "unreadable: " + l.Error
		}
		row("lock", "%s %s: %s", strings.ReplaceAll(l.Lock, "_", " "), l.Path, text)
	}
	if p := s.LastPlan; p == nil {
		row("last plan", "none in %s", s.JournalPath)
	} else {
		kind := ""
		if p.DryRun {
			kind = " (dry run)"
		}
		summary, _, _ := strings.Cut(p.Summary, " | ") // its perfdata is old
		row("last plan", "%s %s%s: %s", stamp(p.Time), ShortPlanID(p.PlanID), kind, summary)
		for _, st := range p.Steps {
			text := fmt.Sprintf("%s %s", st.Action, st.Target)
			if st.VMID != "" {
				text += " (vmid " + st.VMID + ")"
			}
			text += ": " + st.Result
			if st.Error != "" {
				text += ": " + st.Error
			}
			row("", "  %s", text)
		}
	}
	if s.JournalError != "" {
		row("journal", "%s", s.JournalError)
	}
	if st := s.LastStop; st != nil {
		row("stopped", "%s: %s", stamp(st.Time), st.Reason)
	}
	sv := s.Saved
	switch {
	case !sv.Found:
		row("state", "no saved state yet in %s: judged from this sample alone", sv.Path)
	case sv.Error != "":
		row("state", "unreadable: %s", sv.Error)
	default:
		text := fmt.Sprintf("saved %s ago at %s (%s)", ago(time.Duration(sv.AgeSeconds*float64(time.Second))), stamp(sv.Saved), sv.Path)
		if sv.Stale {
			text += fmt.Sprintf("; STALE: older than %s, so no check or run is keeping it", ago(time.Duration(sv.StaleAfterSeconds*float64(time.Second))))
		}
		row("state", "%s", text)
	}
	return bw.Flush()
}

// ShortPlanID is the random part of a plan id, its time being shown
// apart ("20260501T100000Z-1a2b3c4d" -> "1a2b3c4d"); "-" for none.
func ShortPlanID(id string) string {
	if _, r, ok := strings.Cut(id, "-"); ok && r != "" {
		return r
	}
	if id == "" {
		return "-"
	}
	return id
}
