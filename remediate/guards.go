package remediate

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"time"

	"github.com/heapguard/heapguard/host"
)

// GuardsFile is the guards' state inside the state directory.
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
}

// Guards enforce the power-off budget, the agent restart cooldown and the
// circuit breaker. Every change is persisted (write, fsync, rename) before
// the call returns, so restarting heapguard never resets them.
type Guards struct {
	path   string // "" for an in-memory copy (dry run)
	limits GuardLimits

	mu sync.Mutex
	st guardState
}

// OpenGuards loads <stateDir>/guards.json, or starts empty when it does
// not exist. A file that exists but cannot be read or parsed is an error
// (wrapping ErrGuardState): starting empty would hand back a spent budget.
func OpenGuards(stateDir string, lim GuardLimits) (*Guards, error) {
	g := &Guards{path: filepath.Join(stateDir, GuardsFile), limits: lim.withDefaults()}
	b, err := os.ReadFile(g.path)
	switch {
	case errors.Is(err, os.ErrNotExist):
		g.st = guardState{Version: 1}
	case err != nil:
		return nil, fmt.Errorf("%w: read %s: %w", ErrGuardState, g.path, err)
	default:
		if err := json.Unmarshal(b, &g.st); err != nil {
			return nil, fmt.Errorf("%w: parse %s (fix or remove it; removing it resets the budgets): %w", ErrGuardState, g.path, err)
		}
	}
	if g.st.AgentRestarts == nil {
		g.st.AgentRestarts = map[string]time.Time{}
	}
	return g, nil
}

// Limits returns the limits in force.
func (g *Guards) Limits() GuardLimits { return g.limits }

// dryCopy returns an in-memory copy whose changes are never persisted, so
// a dry run can tell what the guards would say at each step of a plan.
func (g *Guards) dryCopy() *Guards {
	g.mu.Lock()
	defer g.mu.Unlock()
	c := &Guards{limits: g.limits, st: g.st}
	c.st.PowerOffs = append([]time.Time(nil), g.st.PowerOffs...)
	c.st.AgentRestarts = make(map[string]time.Time, len(g.st.AgentRestarts))
	for k, v := range g.st.AgentRestarts {
		c.st.AgentRestarts[k] = v
	}
	return c
}

// acting reports whether an action changes the host (and so is guarded).
func acting(k ActionKind) bool { return k == ActPowerOff || k == ActRestartAgent }

// Check says whether a may start at now. Alerts and verifications are
// always allowed; they change nothing.
func (g *Guards) Check(a Action, now time.Time) error {
	if !acting(a.Kind) {
		return nil
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.st.BreakerOpen {
		return fmt.Errorf("%w: %d failed remediations in a row (last: %s) since %s; run \"heapguard reset\" after checking the host",
			ErrBreakerOpen, g.st.FailureStreak, g.st.LastFailure, fmtTime(g.st.BreakerSince))
	}
	switch a.Kind {
	case ActPowerOff:
		recent := g.recentPowerOffs(now)
		if len(recent) >= g.limits.MaxPowerOffs {
			next := recent[len(recent)-g.limits.MaxPowerOffs].Add(g.limits.PowerOffWindow)
			return fmt.Errorf("%w: %d power-offs in the last %s (max %d), next allowed at %s",
				ErrBudgetSpent, len(recent), fmtWindow(g.limits.PowerOffWindow), g.limits.MaxPowerOffs, fmtTime(next))
		}
	case ActRestartAgent:
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
// crash mid-action cannot hand the budget back. With the final outcome it
// updates the failure streak: a failure of an acting step or of a
// verification extends it and may open the breaker; a successful
// verification closes it.
// Errors wrap ErrGuardState.
func (g *Guards) Record(a Action, o Outcome, now time.Time) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	changed := false
	switch o.Result {
	case ResultStarted:
		switch a.Kind {
		case ActPowerOff:
			g.st.PowerOffs = append(g.recentPowerOffs(now), now)
			changed = true
		case ActRestartAgent:
			g.st.AgentRestarts[a.Target] = now
			changed = true
		}
	case ResultOK:
		// Only a verified recovery closes the streak: a power-off or a
		// restart that "worked" while the host never recovered is still a
		// failed remediation, and every acting plan ends with a verification.
		if a.Kind == ActVerify {
			changed = g.st.FailureStreak != 0
			g.st.FailureStreak = 0
		}
	case ResultFailed:
		if acting(a.Kind) || a.Kind == ActVerify {
			g.st.FailureStreak++
			g.st.LastFailure = fmt.Sprintf("%s %s at %s: %s", a.Kind, a.Target, fmtTime(now), o.Err)
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

// Reset closes the circuit breaker and clears the failure streak (the
// "heapguard reset" command). Budgets and cooldowns are kept: they bound
// how often the host is touched whatever happened before.
func (g *Guards) Reset() error {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.st.BreakerOpen, g.st.BreakerSince = false, time.Time{}
	g.st.FailureStreak, g.st.LastFailure = 0, ""
	return g.persist()
}

// GuardStatus is a read-only view of the guards, for reports.
type GuardStatus struct {
	PowerOffsInWindow int                  `json:"power_offs_in_window"`
	MaxPowerOffs      int                  `json:"max_power_offs"`
	AgentRestarts     map[string]time.Time `json:"agent_restarts"`
	FailureStreak     int                  `json:"failure_streak"`
	BreakerOpen       bool                 `json:"breaker_open"`
	LastFailure       string               `json:"last_failure,omitempty"`
}

// Status returns the guards' state as seen at now.
func (g *Guards) Status(now time.Time) GuardStatus {
	g.mu.Lock()
	defer g.mu.Unlock()
	s := GuardStatus{
		PowerOffsInWindow: len(g.recentPowerOffs(now)),
		MaxPowerOffs:      g.limits.MaxPowerOffs,
		AgentRestarts:     map[string]time.Time{},
		FailureStreak:     g.st.FailureStreak,
		BreakerOpen:       g.st.BreakerOpen,
		LastFailure:       g.st.LastFailure,
	}
	for k, v := range g.st.AgentRestarts {
		s.AgentRestarts[k] = v
	}
	return s
}

// persist writes the state atomically: temp file, fsync, rename, fsync of
// the directory. Called with g.mu held.
func (g *Guards) persist() error {
	if g.path == "" {
		return nil
	}
	b, err := json.MarshalIndent(g.st, "", "  ")
	if err != nil {
		return fmt.Errorf("%w: encode: %w", ErrGuardState, err)
	}
	b = append(b, '\n')
	if err := host.WriteFileAtomic(g.path, b, 0o600); err != nil {
		return fmt.Errorf("%w: %w", ErrGuardState, err)
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
