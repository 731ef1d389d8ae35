package remediate

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/heapguard/heapguard/host"
	"github.com/heapguard/heapguard/policy"
)

// GuardsFile is the guards' state inside the state directory, and the
// name of the host-wide record beside the host lock.
const GuardsFile = "guards.json"

// Sentinels of a guard's refusal.
var (
	ErrBudgetSpent = errors.New("power-off budget spent")
	ErrCooldown    = errors.New("agent restart cooling down")
	ErrBreakerOpen = errors.New("circuit breaker open")
	// ErrGuardState is wrapped when the guards' state cannot be read or
	// persisted; heapguard then does not act, since a lost budget could
	// let it act more often than allowed.
	ErrGuardState = errors.New("guards state")
)

// GuardLimits are the safety limits; zero fields take their defaults.
type GuardLimits struct {
	// MaxPowerOffs is the number of power-offs allowed per PowerOffWindow.
	MaxPowerOffs   int
	PowerOffWindow time.Duration
	// AgentCooldown is the least time between two restarts of one agent.
	AgentCooldown time.Duration
	// BreakerAfter failed remediations in a row open the breaker.
	BreakerAfter int
}

// Default limits.
const (
	DefaultMaxPowerOffs   = 3
	DefaultPowerOffWindow = time.Hour
	DefaultAgentCooldown  = 15 * time.Minute
	DefaultBreakerAfter   = 3
)

func (l GuardLimits) withDefaults() GuardLimits {
	if l.MaxPowerOffs <= 0 {
		l.MaxPowerOffs = DefaultMaxPowerOffs
	}
	if l.PowerOffWindow <= 0 {
		l.PowerOffWindow = DefaultPowerOffWindow
	}
	if l.AgentCooldown <= 0 {
		l.AgentCooldown = DefaultAgentCooldown
	}
	if l.BreakerAfter <= 0 {
		l.BreakerAfter = DefaultBreakerAfter
	}
	return l
}

// guardState is what guards.json holds. Times are host time.
type guardState struct {
	Version int `json:"version"`
	// PowerOffs are the start times of power-offs within the window.
	PowerOffs []time.Time `json:"power_offs"`
	// AgentRestarts is the start time of each agent's last restart.
	AgentRestarts map[string]time.Time `json:"agent_restarts"`
	// FailureStreak counts failed remediations in a row.
	FailureStreak int       `json:"failure_streak"`
	BreakerOpen   bool      `json:"breaker_open"`
	BreakerSince  time.Time `json:"breaker_since,omitzero"`
	LastFailure   string    `json:"last_failure,omitempty"`
	// FailureAt is when the last failure was recorded; ResetAt when
	// "heapguard reset" last ran. A reset clears what any record holds
	// from before it, so another state folder's copy cannot reopen it.
	FailureAt time.Time `json:"failure_at,omitzero"`
	ResetAt   time.Time `json:"reset_at,omitzero"`
}

// merge folds another record of the same host into st: every power-off
// either knows, the latest restart of each agent, the longer failure
// streak and an open breaker if either is open.
func (st *guardState) merge(o guardState) {
	// A time either record holds n times is held max(n) times: power-offs
	// started in one second are distinct, copies of one are not.
	count := func(ts []time.Time, t time.Time) int {
		n := 0
		for _, u := range ts {
			if u.Equal(t) {
				n++
			}
		}
		return n
	}
	mine := slices.Clone(st.PowerOffs)
	for i, t := range o.PowerOffs {
		if count(o.PowerOffs[:i+1], t) > count(mine, t) {
			st.PowerOffs = append(st.PowerOffs, t)
		}
	}
	sort.Slice(st.PowerOffs, func(i, j int) bool { return st.PowerOffs[i].Before(st.PowerOffs[j]) })
	for k, t := range o.AgentRestarts {
		if t.After(st.AgentRestarts[k]) {
			st.AgentRestarts[k] = t
		}
	}
	if o.FailureStreak > st.FailureStreak {
		st.FailureStreak, st.LastFailure = o.FailureStreak, o.LastFailure
	}
	if o.BreakerOpen && (!st.BreakerOpen || o.BreakerSince.Before(st.BreakerSince)) {
		st.BreakerOpen, st.BreakerSince = true, o.BreakerSince
	}
	if o.FailureAt.After(st.FailureAt) {
		st.FailureAt = o.FailureAt
	}
	if o.ResetAt.After(st.ResetAt) {
		st.ResetAt = o.ResetAt
	}
	if st.ResetAt.IsZero() {
		return
	}
	if st.BreakerOpen && !st.BreakerSince.After(st.ResetAt) {
		st.BreakerOpen, st.BreakerSince = false, time.Time{}
	}
	if !st.FailureAt.After(st.ResetAt) {
		st.FailureStreak, st.LastFailure = 0, ""
	}
}

// Guards enforce the power-off budget, the agent restart cooldown and the
// circuit breaker. Every change is persisted (write, fsync, rename) before
// the call returns, so restarting heapguard never resets them.
type Guards struct {
	// paths are the records kept in step: the state folder's and, when
	// given, the host-wide one. None for an in-memory copy (dry run).
	paths  []string
	limits GuardLimits

	mu sync.Mutex
	st guardState
	// open are the charges of steps started and not yet ended, so a step
	// that ends failed without running a mutating command is refunded.
	open map[string]charge
	// inPlan and planFailed make one plan's failures count once toward
	// the breaker; breakerAtStart is the breaker as the plan began.
	inPlan, planFailed, breakerAtStart bool
}

// charge is what starting a step spent: a power-off's time in the
// budget, or an agent restart's cooldown (and the restart time before it).
type charge struct {
	at, prev time.Time
}

// OpenHostGuards loads <stateDir>/guards.json and, when hostDir is not
// "", the host-wide record beside the host lock, shared by every instance
// on the host whatever its state folder: budgets and the breaker are the
// host's. The records are merged on open and all written on every change,
// so the state folder's copy survives a reboot and the host's sees every
// instance. A missing record is empty; one that cannot be read or parsed
// is an error wrapping ErrGuardState, since starting empty would hand
// back a spent budget.
func OpenHostGuards(stateDir, hostDir string, lim GuardLimits) (*Guards, error) {
	g := &Guards{limits: lim.withDefaults(), open: map[string]charge{}}
	g.st = guardState{Version: 1, AgentRestarts: map[string]time.Time{}}
	g.paths = []string{filepath.Join(stateDir, GuardsFile)}
	if hostDir != "" {
		g.paths = append(g.paths, filepath.Join(hostDir, GuardsFile))
	}
	for _, p := range g.paths {
		st, err := readGuardState(p)
		if err != nil {
			return nil, err
		}
		g.st.merge(st)
	}
	return g, nil
}

// readGuardState reads one record; a missing file is an empty record.
func readGuardState(p string) (guardState, error) {
	st := guardState{Version: 1}
	b, err := os.ReadFile(p)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return st, nil
	case err != nil:
		return st, fmt.Errorf("%w: read %s: %w", ErrGuardState, p, err)
	}
	st = guardState{}
	err = checkKeys(b, st)
	if err == nil {
		err = json.Unmarshal(b, &st)
	}
	if err != nil {
		return st, fmt.Errorf("%w: parse %s (fix or remove it: without it the budgets spent are rebuilt from the journal and the circuit breaker starts closed): %w", ErrGuardState, p, err)
	}
	// "{}" or another program's JSON is not an empty budget.
	if st.Version != 1 {
		return st, fmt.Errorf("%w: %s has version %d, want 1: not a heapguard guards file (fix or remove it: without it the budgets spent are rebuilt from the journal and the circuit breaker starts closed)", ErrGuardState, p, st.Version)
	}
	return st, nil
}

// dryCopy returns an in-memory copy whose changes are never persisted, so
// a dry run can tell what the guards would say at each step of a plan.
func (g *Guards) dryCopy() *Guards {
	g.mu.Lock()
	defer g.mu.Unlock()
	c := &Guards{limits: g.limits, st: g.st, open: map[string]charge{}}
	c.st.PowerOffs = append([]time.Time(nil), g.st.PowerOffs...)
	c.st.AgentRestarts = make(map[string]time.Time, len(g.st.AgentRestarts))
	for k, v := range g.st.AgentRestarts {
		c.st.AgentRestarts[k] = v
	}
	return c
}

// acting reports whether an action changes the host (and so is guarded).
func acting(k policy.ActionKind) bool { return k == policy.ActPowerOff || k == policy.ActRestartAgent }

// BeginPlan starts a plan: until EndPlan its failures count once toward
// the breaker, and the breaker is judged as it was now, so a plan's own
// failures never refuse its later steps (its restart and verification).
func (g *Guards) BeginPlan() {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.inPlan, g.planFailed, g.breakerAtStart = true, false, g.st.BreakerOpen
}

// EndPlan ends what BeginPlan started.
func (g *Guards) EndPlan() {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.inPlan, g.planFailed = false, false
}

// Check says whether a may start at now. Alerts and verifications are
// always allowed; they change nothing.
func (g *Guards) Check(a policy.Action, now time.Time) error {
	if !acting(a.Kind) {
		return nil
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	breaker := g.st.BreakerOpen
	if g.inPlan {
		breaker = g.breakerAtStart
	}
	if breaker {
		return fmt.Errorf("%w: %d failed remediations in a row (last: %s) since %s; run \"heapguard reset\" after checking the host",
			ErrBreakerOpen, g.st.FailureStreak, g.st.LastFailure, fmtTime(g.st.BreakerSince))
	}
	switch a.Kind {
	case policy.ActPowerOff:
		recent := g.recentPowerOffs(now)
		if len(recent) >= g.limits.MaxPowerOffs {
			next := recent[len(recent)-g.limits.MaxPowerOffs].Add(g.limits.PowerOffWindow)
			return fmt.Errorf("%w: %d power-offs in the last %s (max %d), next allowed at %s",
				ErrBudgetSpent, len(recent), fmtWindow(g.limits.PowerOffWindow), g.limits.MaxPowerOffs, fmtTime(next))
		}
	case policy.ActRestartAgent:
		if last, ok := g.st.AgentRestarts[a.Target]; ok {
			// A restart recorded in the future (clock stepped back) counts as
			// recent, but no longer than one cooldown from now.
			if c := clampFuture(last, now, g.limits.AgentCooldown); c != last {
				last, g.st.AgentRestarts[a.Target] = c, c
			}
			if now.Sub(last) < g.limits.AgentCooldown {
				return fmt.Errorf("%w: %s restarted at %s, less than %s ago, next allowed at %s",
					ErrCooldown, a.Target, fmtTime(last), g.limits.AgentCooldown, fmtTime(last.Add(g.limits.AgentCooldown)))
			}
		}
	}
	return nil
}

// clampFuture keeps a time recorded ahead of now (the host clock stepped
// back since) from holding a budget or cooldown for longer than one window:
// anything further ahead than window counts as recorded now. Callers store
// the clamped time (in memory; the next Record persists it), so it then
// expires like any other.
func clampFuture(t, now time.Time, window time.Duration) time.Time {
	if t.After(now.Add(window)) {
		return now
	}
	return t
}

// recentPowerOffs returns, oldest first, the power-offs inside the window
// ending at now (including any recorded in the future, see clampFuture).
func (g *Guards) recentPowerOffs(now time.Time) []time.Time {
	var r []time.Time
	for i, t := range g.st.PowerOffs {
		t = clampFuture(t, now, g.limits.PowerOffWindow)
		g.st.PowerOffs[i] = t
		if now.Sub(t) < g.limits.PowerOffWindow {
			r = append(r, t)
		}
	}
	sort.Slice(r, func(i, j int) bool { return r[i].Before(r[j]) })
	return r
}

// Record notes what happened to a. With o.Result == ResultStarted it spends
// the budget (power-off) or starts the cooldown (agent restart): this must
// be called, and succeed, before the action's first command runs, so a
// crash mid-action cannot hand the budget back. A step that then fails
// without having run a mutating command (o.Mutated false) is refunded: it
// changed nothing on the host. With the final outcome it updates the
// failure streak: a failure of an acting step or of a verification
// extends it (once per plan, see BeginPlan) and may open the breaker; a
// successful verification closes it.
// Errors wrap ErrGuardState.
func (g *Guards) Record(a policy.Action, o Outcome, now time.Time) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	changed := false
	key := string(a.Kind) + "\x00" + a.Target + "\x00" + a.VMID
	switch o.Result {
	case ResultStarted:
		switch a.Kind {
		case policy.ActPowerOff:
			g.st.PowerOffs = append(g.recentPowerOffs(now), now)
			g.open[key] = charge{at: now}
			changed = true
		case policy.ActRestartAgent:
			g.open[key] = charge{at: now, prev: g.st.AgentRestarts[a.Target]}
			g.st.AgentRestarts[a.Target] = now
			changed = true
		}
	case ResultOK:
		delete(g.open, key)
		// Only a verified recovery closes the streak: a power-off or a
		// restart that "worked" while the host never recovered is still a
		// failed remediation, and every acting plan ends with a verification.
		if a.Kind == policy.ActVerify {
			changed = g.st.FailureStreak != 0
			g.st.FailureStreak = 0
			// A breaker this very plan opened closes again: the host
			// recovered after all.
			if g.inPlan && !g.breakerAtStart && g.st.BreakerOpen {
				g.st.BreakerOpen, g.st.BreakerSince = false, time.Time{}
				changed = true
			}
		}
	case ResultFailed:
		if c, ok := g.open[key]; ok && !o.Mutated {
			g.refund(a, c)
			changed = true
		}
		delete(g.open, key)
		if (acting(a.Kind) || a.Kind == policy.ActVerify) && !(g.inPlan && g.planFailed) {
			g.planFailed = g.inPlan
			g.st.FailureStreak++
			g.st.LastFailure = fmt.Sprintf("%s %s at %s: %s", a.Kind, a.Target, fmtTime(now), o.Err)
			g.st.FailureAt = now
			if g.st.FailureStreak >= g.limits.BreakerAfter && !g.st.BreakerOpen {
				g.st.BreakerOpen, g.st.BreakerSince = true, now
			}
			changed = true
		}
	}
	if !changed {
		return nil
	}
	return g.persist()
}

// refund takes back what starting a spent. Called with g.mu held.
func (g *Guards) refund(a policy.Action, c charge) {
	switch a.Kind {
	case policy.ActPowerOff:
		if i := slices.IndexFunc(g.st.PowerOffs, c.at.Equal); i >= 0 {
			g.st.PowerOffs = slices.Delete(g.st.PowerOffs, i, i+1)
		}
	case policy.ActRestartAgent:
		if g.st.AgentRestarts[a.Target].Equal(c.at) {
			if c.prev.IsZero() {
				delete(g.st.AgentRestarts, a.Target)
			} else {
				g.st.AgentRestarts[a.Target] = c.prev
			}
		}
	}
}

// Reset closes the circuit breaker and clears the failure streak (the
// "heapguard reset" command). Budgets and cooldowns are kept: they bound
// how often the host is touched whatever happened before.
func (g *Guards) Reset(now time.Time) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.st.BreakerOpen, g.st.BreakerSince = false, time.Time{}
	g.st.FailureStreak, g.st.LastFailure = 0, ""
	g.st.ResetAt = now
	return g.persist()
}

// GuardStatus is a read-only view of the guards, for reports and for the
// policy, which plans a step the guards would refuse as skipped.
type GuardStatus struct {
	PowerOffsInWindow int `json:"power_offs_in_window"`
	MaxPowerOffs      int `json:"max_power_offs"`
	// NextPowerOffAt is when the oldest power-off in the window leaves it
	// (zero while the window has room).
	NextPowerOffAt time.Time            `json:"next_power_off_at,omitzero"`
	AgentRestarts  map[string]time.Time `json:"agent_restarts"`
	// CooldownUntil is, per agent, when a restart is allowed again (only
	// agents still cooling down).
	CooldownUntil map[string]time.Time `json:"cooldown_until,omitempty"`
	FailureStreak int                  `json:"failure_streak"`
	BreakerOpen   bool                 `json:"breaker_open"`
	BreakerSince  time.Time            `json:"breaker_since,omitzero"`
	LastFailure   string               `json:"last_failure,omitempty"`
}

// Status returns the guards' state as seen at now.
func (g *Guards) Status(now time.Time) GuardStatus {
	g.mu.Lock()
	defer g.mu.Unlock()
	recent := g.recentPowerOffs(now)
	s := GuardStatus{
		PowerOffsInWindow: len(recent),
		MaxPowerOffs:      g.limits.MaxPowerOffs,
		AgentRestarts:     map[string]time.Time{},
		FailureStreak:     g.st.FailureStreak,
		BreakerOpen:       g.st.BreakerOpen,
		BreakerSince:      g.st.BreakerSince,
		LastFailure:       g.st.LastFailure,
	}
	if len(recent) >= g.limits.MaxPowerOffs {
		s.NextPowerOffAt = recent[len(recent)-g.limits.MaxPowerOffs].Add(g.limits.PowerOffWindow)
	}
	for k, v := range g.st.AgentRestarts {
		s.AgentRestarts[k] = v
		if until := clampFuture(v, now, g.limits.AgentCooldown).Add(g.limits.AgentCooldown); until.After(now) {
			if s.CooldownUntil == nil {
				s.CooldownUntil = map[string]time.Time{}
			}
			s.CooldownUntil[k] = until
		}
	}
	return s
}

// persist writes every record atomically: temp file, fsync, rename,
// fsync of the directory. Called with g.mu held.
func (g *Guards) persist() error {
	if len(g.paths) == 0 {
		return nil
	}
	b, err := json.MarshalIndent(g.st, "", "  ")
	if err != nil {
		return fmt.Errorf("%w: encode: %w", ErrGuardState, err)
	}
	b = append(b, '\n')
	for _, p := range g.paths {
		if err := host.WriteFileAtomic(p, b, 0o600); err != nil {
			return fmt.Errorf("%w: %w", ErrGuardState, err)
		}
	}
	return nil
}

func fmtTime(t time.Time) string {
	if t.IsZero() {
		return "(unknown)"
	}
	return t.UTC().Format(time.RFC3339)
}

func fmtWindow(d time.Duration) string {
	if d == time.Hour {
		return "hour"
	}
	return d.String()
}

// ReadGuardStatus reads the guards' records as OpenHostGuards does (the
// state folder's and, when hostDir is not "", the host's) and returns
// their status at now, for `heapguard status` and `doctor`. It only
// reads: no record is written, and no lock is needed or taken.
func ReadGuardStatus(stateDir, hostDir string, lim GuardLimits, now time.Time) (GuardStatus, error) {
	g, err := OpenHostGuards(stateDir, hostDir, lim)
	if err != nil {
		return GuardStatus{}, err
	}
	return g.Status(now), nil
}

// PowerOffsLeft is how many power-offs the budget still allows now.
func (s GuardStatus) PowerOffsLeft() int { return max(s.MaxPowerOffs-s.PowerOffsInWindow, 0) }
