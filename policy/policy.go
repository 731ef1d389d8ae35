package policy

import (
	"cmp"
	"errors"
	"fmt"
	"math"
	"path"
	"slices"
	"strings"
	"time"
)

// The policy is a pure function, like etcd-io/raft's core: Decide reads no
// clock, does no I/O and draws no random numbers. Time comes in with the
// observations, the memory of earlier polls comes in as State, and the
// result is a Plan (what to do and why) plus the next State for the caller
// to persist. The same inputs always give the same plan.
//
// Levels, holding and hysteresis, per heap:
//
//   - the CRIT condition is "free of max below CritBelow" or "exhaustion
//     predicted within Predict"; the WARN condition is "free of max below
//     WarnBelow" or the CRIT condition; the clear condition is "free of max
//     above ClearAbove and no exhaustion predicted within Predict".
//   - each condition has its own counter of consecutive polls; a level is
//     entered only when its condition has held for HoldPolls polls, and a
//     WARNING or CRITICAL heap returns to OK only when the clear condition
//     has held for HoldPolls polls. Between the thresholds a heap keeps its
//     level: a CRITICAL heap that climbs to 15 % stays CRITICAL until it is
//     above ClearAbove (the leak is rarely given back, and it is the VMs that
//     still flap that matter). Polls blind to the heaps neither count nor
//     break the run, nor forget a heap: counts held across any gap are
//     what lets `check` from an hourly cron job hold a level.
//   - prediction is held like the thresholds: one noisy trend sample does
//     not make a heap CRITICAL, but a leak predicted to exhaust the heap
//     within Predict for HoldPolls polls does, even at 60 % free.
//   - hard evidence is not held: a heap the log says ran out since the
//     last sample, or that vsish prints at 0 % free of max
//     (HeapObs.Exhausted), is CRITICAL at once and cannot clear on that
//     poll. Holding is for sampled figures, not for failed allocations.
//
// Waiting for an effect: a planned vpxa restart is remembered in
// State.RestartPlannedAt and no other restart is planned for RestartSettle
// (default 2m), so a restart has time to work before the next is asked for;
// a planned power-off is remembered per VM in State.PowerOffPlannedAt for
// PowerOffSettle (default 5m, long enough for a graceful shutdown). Budgets
// (one vpxa restart per 15 minutes, N power-offs per window) are not judged
// here: remediate enforces them when the plan is carried out.

// Agent is the management agent heapguard restarts.
const Agent = "vpxa"

// ErrInvalidConfig is wrapped by every error of (Config).Validate.
var ErrInvalidConfig = errors.New("invalid config")

// Config holds the thresholds and lists the policy works with. Flag names in
// error messages and skip reasons are those of cmd/heapguard.
type Config struct {
	// WatchHeaps are globs (path.Match) of the heaps whose depletion
	// triggers remediation. A glob matches the heap name or its base name
	// without the vsish address suffix ("netGPHeap" matches
	// "netGPHeap-0x410001000000"). Other heaps only raise alerts.
	WatchHeaps []string
	// WarnBelow and CritBelow are percentages of free of max size below
	// which a heap becomes WARNING or CRITICAL; ClearAbove is the higher
	// percentage above which it returns to OK (hysteresis).
	WarnBelow  float64
	CritBelow  float64
	ClearAbove float64
	// HoldPolls is how many consecutive polls a condition must hold before
	// a heap changes level.
	HoldPolls int
	// Predict makes a heap CRITICAL when its trend predicts exhaustion
	// within this duration (held for HoldPolls polls); 0 disables it.
	Predict time.Duration
	// PowerOffAllow are case-insensitive globs (path.Match on the
	// lower-cased name) of the VM names that may be powered off. Empty:
	// nothing is powered off, the plan only says what would be.
	PowerOffAllow []string
	// RestartSettle is how long after planning a vpxa restart no other
	// restart is planned; PowerOffSettle the same for one VM's power-off.
	RestartSettle  time.Duration
	PowerOffSettle time.Duration
}

// DefaultConfig returns the defaults: watch netGPHeap, warn below 20 %,
// critical below 10 %, clear above 25 %, hold 3 polls, predict 15 minutes,
// power nothing off.
func DefaultConfig() Config {
	return Config{
		WatchHeaps:     []string{"netGPHeap"},
		WarnBelow:      20,
		CritBelow:      10,
		ClearAbove:     25,
		HoldPolls:      3,
		Predict:        15 * time.Minute,
		RestartSettle:  2 * time.Minute,
		PowerOffSettle: 5 * time.Minute,
	}
}

// Validate reports every problem of c, each wrapping ErrInvalidConfig. A
// config that fails validation must not be used: Decide does not panic on
// it, but it treats a bad glob as matching nothing.
func (c Config) Validate() error {
	var errs []error
	bad := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("%w: "+format, append([]any{ErrInvalidConfig}, args...)...))
	}
	pct := func(flag string, v float64) bool {
		if math.IsNaN(v) || v < 0 || v > 100 {
			bad("%s %v: want a percentage from 0 to 100", flag, v)
			return false
		}
		return true
	}
	warnOK, critOK, clearOK := pct("--warn-below", c.WarnBelow), pct("--crit-below", c.CritBelow), pct("--clear-above", c.ClearAbove)
	if warnOK && critOK && c.CritBelow > c.WarnBelow {
		bad("--crit-below %v is above --warn-below %v", c.CritBelow, c.WarnBelow)
	}
	if warnOK && clearOK && c.ClearAbove < c.WarnBelow {
		bad("--clear-above %v is below --warn-below %v: a warning could never clear", c.ClearAbove, c.WarnBelow)
	}
	if c.HoldPolls < 1 {
		bad("--hold-polls %d: want at least 1", c.HoldPolls)
	}
	if c.Predict < 0 {
		bad("--predict %v: want 0 (off) or more", c.Predict)
	}
	if c.RestartSettle < 0 || c.PowerOffSettle < 0 {
		bad("settle times %v, %v: want 0 or more", c.RestartSettle, c.PowerOffSettle)
	}
	globs := func(flag string, gs []string) {
		for _, g := range gs {
			if g == "" {
				bad("%s: empty pattern", flag)
				continue
			}
			if _, err := path.Match(strings.ToLower(g), ""); err != nil {
				errs = append(errs, fmt.Errorf("%w: %s %q: %w", ErrInvalidConfig, flag, g, err))
			}
		}
	}
	globs("--watch-heap", c.WatchHeaps)
	globs("--power-off-allow", c.PowerOffAllow)
	return errors.Join(errs...)
}

// Watched reports whether a heap matches a WatchHeaps glob, by its full
// name or its base name without the vsish address suffix ("netGPHeap" for
// "netGPHeap-0x410001000000"; package heap tells the two apart).
func (c Config) Watched(name, base string) bool {
	for _, g := range c.WatchHeaps {
		if ok, err := path.Match(g, name); err == nil && ok {
			return true
		}
		if ok, err := path.Match(g, base); err == nil && ok {
			return true
		}
	}
	return false
}

// allowed reports whether VM name may be powered off. A bad glob matches
// nothing: refusing is the safe side.
func (c Config) allowed(name string) bool {
	lower := strings.ToLower(name)
	for _, g := range c.PowerOffAllow {
		if ok, err := path.Match(strings.ToLower(g), lower); err == nil && ok {
			return true
		}
	}
	return false
}

// anyNames are VM names no pattern meant for some VMs matches all of:
// short and long, starting with letters, digits or punctuation, with
// spaces, non-ASCII.
var anyNames = []string{"a", "Z9", "x1", "42", "_tmp", "db-02", "web 01 (prod); $(x)", "Ærø.vm"}

// AllowsAny returns the PowerOffAllow patterns that match any VM name
// ("*", "**", "?*"...): with one of them every VM on the host whose port
// flaps may be powered off, which is rarely what was meant.
func (c Config) AllowsAny() []string {
	var out []string
	for _, g := range c.PowerOffAllow {
		all := true
		for _, name := range anyNames {
			all = all && Config{PowerOffAllow: []string{g}}.allowed(name)
		}
		if all {
			out = append(out, g)
		}
	}
	return out
}

// notInAllowList starts the skip reason of a VM the allow-list leaves out.
const notInAllowList = "not in "

// allowDesc is how skip reasons name the allow-list.
func (c Config) allowDesc() string {
	if len(c.PowerOffAllow) == 0 {
		return "--power-off-allow (empty)"
	}
	return "--power-off-allow [" + strings.Join(c.PowerOffAllow, ", ") + "]"
}

// Observations are what one poll saw. The caller builds them from the
// collector (flapping ports, vpxa crash lines), the heap package (samples
// and trends) and remediate's inventory (MAC -> VM).
type Observations struct {
	// Time is the host time of this poll.
	Time time.Time
	// Heaps holds every heap sampled this poll.
	Heaps []HeapObs
	// Flapping holds the ports flapping now, as the collector's flap
	// tracker decided.
	Flapping []FlapObs
	Vpxa     AgentObs
	// HeapErr is not empty when the heaps could not be read this poll; the
	// policy then acts on nothing but a vpxa that is down (a restart
	// needs no heap figure).
	HeapErr string
	// Guards is what the safety guards allow now; nil: not known (the
	// plan is then checked only when it is carried out).
	Guards *GuardObs
}

// GuardObs is what the guards (budgets, cooldown, breaker) allow at this
// poll. remediate enforces them again when the plan is carried out; the
// policy reads them so that a step they would refuse is planned as
// skipped with their reason, not planned, refused and planned again at
// every poll.
type GuardObs struct {
	// PowerOffsLeft in the budget window; NextPowerOffAt is when one more
	// is allowed once they are spent.
	PowerOffsLeft  int
	NextPowerOffAt time.Time
	// RestartAllowedAt is when a vpxa restart is allowed again (zero or
	// past: now).
	RestartAllowedAt time.Time
	// BreakerOpen: failed remediations opened the circuit breaker;
	// BreakerWhy says which.
	BreakerOpen bool
	BreakerWhy  string
}

// HeapObs is one heap's sample and trend.
type HeapObs struct {
	// Name is the heap's name as package heap reports it ("netGPHeap" or
	// the vsish entry "netGPHeap-0x410001000000"); it keys the State.
	// Base is the name without the address suffix ("netGPHeap"); "" when
	// Name has none.
	Name             string
	Base             string
	PercentFreeOfMax float64
	MaxBytes         int64
	AllocatedBytes   int64
	// BytesPerSecond is the trend of allocated bytes (positive: leaking).
	BytesPerSecond float64
	// TimeToExhaustion is meaningful only when HasPrediction is true.
	TimeToExhaustion time.Duration
	HasPrediction    bool
	// Exhausted is hard evidence that the heap ran out since the last
	// sample, in words: the log said it is at its maximum size (or an
	// aligned allocation failed), or vsish printed 0 % free of max. It
	// makes the heap CRITICAL at once: holding is for noisy percentages,
	// not for the host's own word that allocations fail.
	Exhausted string
}

func (h HeapObs) base() string {
	if h.Base == "" {
		return h.Name
	}
	return h.Base
}

// FlapObs is one flapping port.
type FlapObs struct {
	// Port is the port id in log form ("0x3000007").
	Port   string        `json:"port"`
	MAC    string        `json:"mac,omitempty"`
	Cycles int           `json:"cycles"`
	Window time.Duration `json:"window_ns"`
	// VM is the VM the host confirms owns the port (powered on), or its
	// only claimant confirmed powered off; nil when no VM is confirmed.
	VM *VMRef `json:"vm,omitempty"`
	// Unconfirmed says why no VM is confirmed (the port list disagrees
	// with the .vmx claims, the owner is ambiguous, …); Claimants are
	// every VM NIC that declares the MAC; Ambiguous: more than one could
	// own the port.
	Unconfirmed string   `json:"unconfirmed,omitempty"`
	Claimants   []string `json:"claimants,omitempty"`
	Ambiguous   bool     `json:"ambiguous,omitempty"`
	// Notes are facts about a confirmed owner worth keeping (another VM
	// declaring the same MAC, no live port list on this host).
	Notes []string `json:"notes,omitempty"`
}

// VMRef is a VM of the inventory.
type VMRef struct {
	ID        string `json:"vmid"`
	Name      string `json:"name"`
	VMX       string `json:"vmx,omitempty"`
	PoweredOn bool   `json:"powered_on"`
}

// AgentObs is what is known of the vpxa agent this poll.
type AgentObs struct {
	// Known is false when its state could not be read; nothing is then
	// planned for it.
	Known   bool `json:"known"`
	Running bool `json:"running"`
	// CrashSeen: a vpxa UserDump/wantCoreDump line was logged since the
	// last poll.
	CrashSeen bool `json:"crash_seen,omitempty"`
}

func (a AgentObs) down() bool { return a.Known && (!a.Running || a.CrashSeen) }

// State is what the policy remembers between polls. It is JSON-serialisable:
// `heapguard check` (cron) saves it between runs.
type State struct {
	Heaps map[string]HeapState `json:"heaps,omitempty"`
	// RestartPlannedAt is when the last vpxa restart was planned.
	RestartPlannedAt time.Time `json:"restart_planned_at,omitzero"`
	// PowerOffPlannedAt maps a VM (vmid, else .vmx path, else name) to when
	// its power-off was last planned.
	PowerOffPlannedAt map[string]time.Time `json:"power_off_planned_at,omitempty"`
}

// HeapState is one heap's level and its hold counters.
type HeapState struct {
	Level Level `json:"level"`
	// Since is when the heap entered Level (zero: since first seen at OK).
	Since time.Time `json:"since,omitzero"`
	// CritPolls, WarnPolls and ClearPolls count the consecutive polls on
	// which the CRIT, WARN and clear conditions held.
	CritPolls  int       `json:"crit_polls,omitempty"`
	WarnPolls  int       `json:"warn_polls,omitempty"`
	ClearPolls int       `json:"clear_polls,omitempty"`
	LastSeen   time.Time `json:"last_seen,omitzero"`
}

// Advance is told which of a plan's actions started (a guard refused the
// others, or heapguard was stopping) and returns the state to keep. The
// "planned at" mark of a step that never started is taken back, so the
// next poll plans it again instead of waiting for it. Like raft's Advance,
// the driver reports and the policy changes its own state.
func Advance(st State, actions []Action, started []bool) State {
	next := st.clone()
	for i, a := range actions {
		if a.Skipped != "" || i < len(started) && started[i] {
			continue
		}
		switch a.Kind {
		case ActPowerOff:
			delete(next.PowerOffPlannedAt, vmKey(VMRef{ID: a.VMID}))
		case ActRestartAgent:
			next.RestartPlannedAt = time.Time{}
		}
	}
	if len(next.PowerOffPlannedAt) == 0 {
		next.PowerOffPlannedAt = nil
	}
	return next
}

// Started is a step the journal says was started, and when.
type Started struct {
	Kind   ActionKind
	Target string
	VMID   string
	At     time.Time
}

// Resume returns the state to start from after a restart: the "planned
// at" marks are those of the steps the journal says started within their
// settle times, whatever the saved state held, so a damaged or stale
// state file can neither hide a power-off under way nor keep a step that
// never started waiting.
func Resume(st State, cfg Config, now time.Time, started []Started) State {
	next := st.clone()
	next.PowerOffPlannedAt, next.RestartPlannedAt = nil, time.Time{}
	for _, s := range started {
		switch {
		case s.Kind == ActPowerOff && within(now, s.At, cfg.PowerOffSettle):
			if next.PowerOffPlannedAt == nil {
				next.PowerOffPlannedAt = map[string]time.Time{}
			}
			next.PowerOffPlannedAt[vmKey(VMRef{ID: s.VMID})] = s.At
		case s.Kind == ActRestartAgent && s.Target == Agent && within(now, s.At, cfg.RestartSettle) && s.At.After(next.RestartPlannedAt):
			next.RestartPlannedAt = s.At
		}
	}
	return next
}

// forgetAfter drops the state of a heap not sampled for this long while
// others are (its address changed after a reboot, or it was removed).
const forgetAfter = time.Hour

// maxCount caps the poll counters so that they cannot overflow.
const maxCount = 1 << 30

func (s State) clone() State {
	n := State{RestartPlannedAt: s.RestartPlannedAt}
	if len(s.Heaps) > 0 {
		n.Heaps = make(map[string]HeapState, len(s.Heaps))
		for k, v := range s.Heaps {
			n.Heaps[k] = v
		}
	}
	if len(s.PowerOffPlannedAt) > 0 {
		n.PowerOffPlannedAt = make(map[string]time.Time, len(s.PowerOffPlannedAt))
		for k, v := range s.PowerOffPlannedAt {
			n.PowerOffPlannedAt[k] = v
		}
	}
	return n
}

// within reports whether now is less than d away from t (either way: a
// clock that jumped back does not end the wait early by a wide margin, nor
// make it last forever).
func within(now, t time.Time, d time.Duration) bool {
	if t.IsZero() {
		return false
	}
	e := now.Sub(t)
	return e < d && e > -d
}

// Decide turns one poll's observations into a Plan, given the State left by
// the previous poll, and returns the State to keep for the next one. It is
// pure; see the comment at the top of this file for the rules.
func Decide(cfg Config, st State, obs Observations) (Plan, State) {
	now := obs.Time.UTC()
	next := st.clone()
	d := &decision{cfg: cfg, now: now, obs: obs, next: &next}
	d.plan = Plan{
		Time:       now,
		Status:     OK,
		Heaps:      []HeapVerdict{}, // JSON [] rather than null
		Actions:    []Action{},      // idem
		Thresholds: Thresholds{WarnBelow: cfg.WarnBelow, CritBelow: cfg.CritBelow, ClearAbove: cfg.ClearAbove},
		Flapping:   sortedFlaps(obs.Flapping),
		Vpxa:       obs.Vpxa,
	}
	for _, f := range d.plan.Flapping {
		if f.VM != nil && !f.VM.PoweredOn {
			d.plan.Forget = append(d.plan.Forget, f.Port)
			d.note("port %s: its VM is off, so its flaps are over and forgotten; powered on again, it must flap anew", f.Port)
		}
	}
	if obs.HeapErr != "" {
		// A poll that saw no heap forgets none: the next one that does
		// judges them on the counts they had.
		d.blind()
		d.verify()
		d.prune(false)
		return d.plan, next
	}
	d.heaps()
	d.status()
	d.act()
	d.prune(true)
	return d.plan, next
}

type decision struct {
	cfg  Config
	now  time.Time
	obs  Observations
	next *State
	plan Plan
	// trigger is the watched CRITICAL heap with the least free space.
	trigger *HeapVerdict
}

func (d *decision) note(format string, args ...any) {
	d.plan.Notes = append(d.plan.Notes, fmt.Sprintf(format, args...))
}

// blind: the heaps could not be read, so no VM is powered off and no heap
// state changes; the notes say what was seen anyway. A vpxa that is down
// is CRITICAL whatever the heaps say, and its restart needs no heap
// figure: it is planned (within its cooldown) and verified on the agent
// alone.
func (d *decision) blind() {
	d.plan.Status = Unknown
	d.plan.HeapErr = d.obs.HeapErr
	d.note("heaps could not be read (%s): no VM is powered off without heap figures", d.obs.HeapErr)
	for _, f := range d.plan.Flapping {
		d.note("%s: not acted on while heaps cannot be read", flapText(f))
	}
	if d.obs.Vpxa.down() {
		if !d.obs.Vpxa.Running {
			d.plan.Status = Crit
		}
		d.restart(vpxaText(d.obs.Vpxa)+"; the heaps cannot be read, but a restart needs no heap figure", nil)
	}
}

// heaps updates each heap's counters and level and fills Plan.Heaps.
func (d *decision) heaps() {
	cfg := d.cfg
	hold := max(cfg.HoldPolls, 1)
	seen := map[string]bool{}
	for _, h := range d.obs.Heaps {
		if seen[h.Name] {
			d.note("heap %s sampled twice in one poll: the second sample is ignored", h.Name)
			continue
		}
		seen[h.Name] = true
		hs, known := d.next.Heaps[h.Name]
		if !known {
			hs = HeapState{Level: OK}
		}
		v := HeapVerdict{
			HeapFigures:      figures(h),
			Watched:          cfg.Watched(h.Name, h.base()),
			Base:             h.base(),
			HasPrediction:    h.HasPrediction,
			TimeToExhaustion: h.TimeToExhaustion,
		}
		p := h.PercentFreeOfMax
		if math.IsNaN(p) || p < 0 || p > 100 {
			// A reading that cannot be a percentage changes nothing.
			v.Level = hs.Level
			v.Why = fmt.Sprintf("unusable reading %v%% free of max; level kept", p)
			v.PercentFreeOfMax = 0
			d.note("heap %s: unusable reading %v%% free of max, ignored", h.Name, p)
			d.plan.Heaps = append(d.plan.Heaps, v)
			continue
		}
		predicted := cfg.Predict > 0 && h.HasPrediction && h.TimeToExhaustion <= cfg.Predict
		exhausted := h.Exhausted != ""
		crit := p < cfg.CritBelow || predicted || exhausted
		warn := crit || p < cfg.WarnBelow
		clear := !predicted && !exhausted && p > cfg.ClearAbove
		hs.CritPolls = count(hs.CritPolls, crit)
		hs.WarnPolls = count(hs.WarnPolls, warn)
		hs.ClearPolls = count(hs.ClearPolls, clear)
		if exhausted {
			// Hard evidence needs no holding.
			hs.CritPolls, hs.WarnPolls = max(hs.CritPolls, hold), max(hs.WarnPolls, hold)
		}
		prev := hs.Level
		switch {
		case hs.CritPolls >= hold:
			hs.Level = Crit
		case hs.WarnPolls >= hold && hs.Level < Warn:
			hs.Level = Warn
		case hs.ClearPolls >= hold:
			hs.Level = OK
		}
		if hs.Level != prev {
			hs.Since = d.now
			v.Changed = true
		}
		hs.LastSeen = d.now
		if d.next.Heaps == nil {
			d.next.Heaps = map[string]HeapState{}
		}
		d.next.Heaps[h.Name] = hs
		v.Level = hs.Level
		switch {
		case crit && hs.Level < Crit:
			v.Pending = Crit
		case warn && hs.Level < Warn:
			v.Pending = Warn
		}
		v.Why = why(cfg, h, hs, prev, crit, warn)
		d.plan.Heaps = append(d.plan.Heaps, v)
	}
	slices.SortStableFunc(d.plan.Heaps, func(a, b HeapVerdict) int {
		// Worst first, then least free, then by name: stable output.
		if c := cmp.Compare(b.Level, a.Level); c != 0 {
			return c
		}
		if c := cmp.Compare(a.PercentFreeOfMax, b.PercentFreeOfMax); c != 0 {
			return c
		}
		return strings.Compare(a.Name, b.Name)
	})
	for i := range d.plan.Heaps {
		if v := &d.plan.Heaps[i]; v.Watched && v.Level == Crit {
			d.trigger = v
			break
		}
	}
}

func count(n int, held bool) int {
	if !held {
		return 0
	}
	return min(n+1, maxCount)
}

// why explains a heap's level in words and numbers.
func why(cfg Config, h HeapObs, hs HeapState, prev Level, crit, warn bool) string {
	hold := max(cfg.HoldPolls, 1)
	if h.Exhausted != "" {
		// Always CRITICAL: the evidence is the reason, no poll count.
		return h.Exhausted + "; CRITICAL at once"
	}
	critWhy := func() string {
		if h.PercentFreeOfMax < cfg.CritBelow {
			return "below " + num(cfg.CritBelow) + "%"
		}
		return "exhaustion predicted within " + short(cfg.Predict)
	}
	switch hs.Level {
	case Crit:
		if crit {
			return fmt.Sprintf("%s for %s", critWhy(), polls(hs.CritPolls))
		}
		return fmt.Sprintf("CRITICAL until above %s%% for %s, %d so far", num(cfg.ClearAbove), polls(hold), hs.ClearPolls)
	case Warn:
		switch {
		case crit:
			return fmt.Sprintf("%s for %d of %d polls, not yet CRITICAL", critWhy(), hs.CritPolls, hold)
		case warn:
			return fmt.Sprintf("below %s%% for %s", num(cfg.WarnBelow), polls(hs.WarnPolls))
		}
		return fmt.Sprintf("WARNING until above %s%% for %s, %d so far", num(cfg.ClearAbove), polls(hold), hs.ClearPolls)
	}
	switch {
	case crit:
		return fmt.Sprintf("%s for %d of %d polls, not yet CRITICAL", critWhy(), hs.CritPolls, hold)
	case warn:
		return fmt.Sprintf("below %s%% for %d of %d polls, not yet WARNING", num(cfg.WarnBelow), hs.WarnPolls, hold)
	case prev != OK:
		return fmt.Sprintf("above %s%% for %s", num(cfg.ClearAbove), polls(hs.ClearPolls))
	}
	return ""
}

func polls(n int) string {
	if n == 1 {
		return "1 poll"
	}
	return fmt.Sprintf("%d polls", n)
}

// status: the worst of the heaps, flapping ports and vpxa.
func (d *decision) status() {
	s := OK
	for _, v := range d.plan.Heaps {
		s = max(s, v.Level)
	}
	if len(d.plan.Flapping) > 0 {
		s = max(s, Warn)
	}
	if a := d.obs.Vpxa; a.Known {
		if !a.Running {
			s = max(s, Crit)
		} else if a.CrashSeen {
			s = max(s, Warn)
		}
	}
	d.plan.Status = s
}

// act plans the actions, in order: the remediation for a watched CRITICAL
// heap, alerts for other CRITICAL heaps, a vpxa restart when it is down and
// the heap allows it, and a verification after any live step.
func (d *decision) act() {
	switch {
	case d.trigger != nil && len(d.plan.Flapping) > 0:
		d.remediate()
	case d.trigger != nil:
		for _, v := range d.plan.Heaps {
			if v.Watched && v.Level == Crit {
				d.add(Action{
					Kind:   ActAlert,
					Target: v.Name,
					Reason: heapReason(v) + "; no flapping port to blame; powering off VMs blindly is not safe",
					Heap:   ptr(v.HeapFigures),
				})
			}
		}
		if d.obs.Vpxa.down() {
			d.note("%s, but %s is CRITICAL with no flapping port to blame: a restart would likely fail again; not restarted", vpxaText(d.obs.Vpxa), d.trigger.Name)
		}
	default:
		for _, v := range d.plan.Heaps {
			if v.Watched && v.Level == Warn {
				if len(d.plan.Flapping) > 0 {
					d.note("%s is WARNING with %s flapping: no action until it is CRITICAL", v.Name, plural(len(d.plan.Flapping), "port"))
				} else {
					d.note("%s is WARNING: no action until it is CRITICAL", v.Name)
				}
			}
		}
		for _, v := range d.plan.Heaps {
			if v.Watched && v.Level < Warn && v.Pending > v.Level && len(d.plan.Flapping) > 0 {
				d.note("%s flapping and %s %s: no action until it is CRITICAL", plural(len(d.plan.Flapping), "port"), v.Name, v.Why)
			}
		}
		if len(d.plan.Flapping) > 0 && !d.anyWatched(Warn) && !d.anyPending() {
			d.note("%s flapping but no watched heap is low: no action (flapping without a leak)", plural(len(d.plan.Flapping), "port"))
		}
		if d.obs.Vpxa.down() {
			d.restart(vpxaText(d.obs.Vpxa), d.lowestWatched())
		}
	}
	for _, v := range d.plan.Heaps {
		if !v.Watched && v.Level == Crit {
			d.add(Action{
				Kind:   ActAlert,
				Target: v.Name,
				Reason: heapReason(v) + "; not a watched heap (--watch-heap), so heapguard only alerts",
				Heap:   ptr(v.HeapFigures),
			})
		}
	}
	d.verify()
}

func (d *decision) anyWatched(at Level) bool {
	for _, v := range d.plan.Heaps {
		if v.Watched && v.Level >= at {
			return true
		}
	}
	return false
}

// anyPending: a watched heap is low, but not yet for enough polls.
func (d *decision) anyPending() bool {
	for _, v := range d.plan.Heaps {
		if v.Watched && v.Pending > v.Level {
			return true
		}
	}
	return false
}

func (d *decision) lowestWatched() *HeapVerdict {
	var low *HeapVerdict
	for i := range d.plan.Heaps {
		v := &d.plan.Heaps[i]
		if v.Watched && (low == nil || v.PercentFreeOfMax < low.PercentFreeOfMax) {
			low = v
		}
	}
	return low
}

func (d *decision) add(a Action) { d.plan.Actions = append(d.plan.Actions, a) }

// candidate is one VM behind one or more flapping ports.
type candidate struct {
	key   string
	vm    VMRef
	flaps []FlapObs
}

func vmKey(vm VMRef) string {
	switch {
	case vm.ID != "":
		return "vmid:" + vm.ID
	case vm.VMX != "":
		return "vmx:" + vm.VMX
	}
	return "name:" + vm.Name
}

// remediate plans the incident's fix: power off the flapping VMs that are
// allowed (list the others as skipped), restart vpxa, verify.
func (d *decision) remediate() {
	t := d.trigger
	triggerFigures := ptr(t.HeapFigures)
	base := heapReason(*t)
	var cands []*candidate
	byKey := map[string]*candidate{}
	noVM := 0
	for _, f := range d.plan.Flapping {
		if f.VM == nil {
			noVM++
			d.add(Action{
				Kind:   ActAlert,
				Target: t.Name,
				Port:   f.Port,
				MAC:    f.MAC,
				Reason: base + "; " + flapText(f) + ", but " + unconfirmedText(f),
				Heap:   triggerFigures,
			})
			continue
		}
		k := vmKey(*f.VM)
		c := byKey[k]
		if c == nil {
			c = &candidate{key: k, vm: *f.VM}
			byKey[k] = c
			cands = append(cands, c)
		}
		c.flaps = append(c.flaps, f)
	}
	live, waiting, skipped, refused, off := 0, 0, 0, 0, 0
	for _, c := range cands {
		var ports []string
		for _, f := range c.flaps {
			ports = append(ports, flapText(f))
		}
		who := vmText(c.vm)
		at := d.next.PowerOffPlannedAt[c.key]
		switch {
		case !c.vm.PoweredOn:
			off++
			d.note("%s is already powered off (%s): no power-off planned", who, strings.Join(ports, "; "))
			continue
		case within(d.now, at, d.cfg.PowerOffSettle):
			waiting++
			d.note("power-off of %s planned at %s: waiting for it until %s", who, stamp(at), stamp(at.Add(d.cfg.PowerOffSettle)))
			continue
		}
		a := Action{
			Kind:   ActPowerOff,
			Target: c.vm.Name,
			VMID:   c.vm.ID,
			Port:   c.flaps[0].Port,
			MAC:    c.flaps[0].MAC,
			Reason: base + "; " + strings.Join(ports, "; "),
			Heap:   triggerFigures,
		}
		switch why := d.guardRefuses(ActPowerOff, live); {
		case !d.cfg.allowed(c.vm.Name):
			skipped++
			a.Skipped = notInAllowList + d.cfg.allowDesc()
		case why != "":
			refused++
			a.Skipped = why
		default:
			live++
			if d.next.PowerOffPlannedAt == nil {
				d.next.PowerOffPlannedAt = map[string]time.Time{}
			}
			d.next.PowerOffPlannedAt[c.key] = d.now
		}
		d.add(a)
	}
	pending := within(d.now, d.next.RestartPlannedAt, d.cfg.RestartSettle)
	switch {
	case live > 0 || d.obs.Vpxa.down():
		why := vpxaText(d.obs.Vpxa)
		if !d.obs.Vpxa.down() {
			why = Agent + " may be hung or have lost allocations while the heap was low"
		}
		if live > 0 {
			why = "after powering off " + plural(live, "VM") + ": " + why
		}
		d.restart(why+"; "+base, t)
	case pending:
		d.noteRestartWait()
	case skipped > 0 || refused > 0:
		// Say what the whole remediation would be.
		d.add(Action{
			Kind:    ActRestartAgent,
			Target:  Agent,
			Reason:  "after powering off the flapping VMs; " + base,
			Skipped: "no VM is being powered off and " + Agent + " is running: a restart would not free heap",
			Heap:    triggerFigures,
		})
	}
	if live == 0 && waiting == 0 {
		var why []string
		if skipped > 0 {
			why = append(why, plural(skipped, "flapping VM")+" not in "+d.cfg.allowDesc())
		}
		if refused > 0 {
			why = append(why, plural(refused, "power-off")+" refused by the guards")
		}
		if noVM > 0 {
			why = append(why, plural(noVM, "flapping port")+" with no confirmed VM")
		}
		if off > 0 && len(why) == 0 {
			why = append(why, "the flapping VMs are already off and the heap is still low")
		}
		d.add(Action{
			Kind:   ActAlert,
			Target: t.Name,
			Reason: base + "; nothing is powered off: " + strings.Join(why, ", ") + "; hands needed",
			Heap:   triggerFigures,
		})
	}
}

// unconfirmedText says why a flapping port has no VM to act on, naming
// every claimant of its MAC.
func unconfirmedText(f FlapObs) string {
	var s string
	switch {
	case f.Ambiguous:
		s = "its owner is ambiguous: " + f.Unconfirmed
	case f.Unconfirmed != "":
		s = "no VM is confirmed as its owner: " + f.Unconfirmed
	default:
		s = "its MAC belongs to no known VM"
	}
	switch len(f.Claimants) {
	case 0:
		s += "; no .vmx file declares the MAC"
	default:
		s += "; MAC declared by " + strings.Join(f.Claimants, ", ")
	}
	return s + ": find it by hand (net-stats -l where the host has it, the .vmx files)"
}

// restart plans a vpxa restart unless one was planned less than
// RestartSettle ago.
func (d *decision) restart(reason string, h *HeapVerdict) {
	if within(d.now, d.next.RestartPlannedAt, d.cfg.RestartSettle) {
		d.noteRestartWait()
		return
	}
	a := Action{Kind: ActRestartAgent, Target: Agent, Reason: reason}
	if h != nil {
		a.Heap = ptr(h.HeapFigures)
	}
	if a.Skipped = d.guardRefuses(ActRestartAgent, 0); a.Skipped == "" {
		d.next.RestartPlannedAt = d.now
	}
	d.add(a)
}

// guardRefuses says why the guards would refuse an acting step now ("":
// they allow it); planned is how many power-offs this plan already holds.
func (d *decision) guardRefuses(kind ActionKind, planned int) string {
	g := d.obs.Guards
	if g == nil {
		return ""
	}
	if g.BreakerOpen {
		return "circuit breaker open (" + g.BreakerWhy + "): run \"heapguard reset\" after checking the host"
	}
	switch kind {
	case ActPowerOff:
		if planned >= g.PowerOffsLeft {
			return "power-off budget spent: next allowed at " + stamp(g.NextPowerOffAt)
		}
	case ActRestartAgent:
		if g.RestartAllowedAt.After(d.now) {
			return Agent + " restart cooling down: next allowed at " + stamp(g.RestartAllowedAt)
		}
	}
	return ""
}

func (d *decision) noteRestartWait() {
	at := d.next.RestartPlannedAt
	d.note("%s restart planned at %s: waiting for its effect until %s before planning another",
		Agent, stamp(at), stamp(at.Add(d.cfg.RestartSettle)))
}

// verify closes a plan that does anything.
func (d *decision) verify() {
	var did []string
	for _, a := range d.plan.Actions {
		if a.Skipped != "" {
			continue
		}
		switch a.Kind {
		case ActPowerOff:
			did = append(did, "powering off "+quoteName(a.Target))
		case ActRestartAgent:
			did = append(did, "restarting "+a.Target)
		}
	}
	if len(did) == 0 {
		return
	}
	h := d.trigger
	if h == nil {
		h = d.lowestWatched()
	}
	a := Action{Kind: ActVerify, Target: Agent, AgentOnly: d.obs.HeapErr != ""}
	if h != nil {
		a.Heap = ptr(h.HeapFigures)
		a.Reason = fmt.Sprintf("after %s: check that %s runs and %s stops falling (now %s)", strings.Join(did, ", "), Agent, h.Name, heapText(*h))
	} else {
		a.Reason = fmt.Sprintf("after %s: check that %s runs", strings.Join(did, ", "), Agent)
	}
	d.add(a)
}

// prune forgets power-offs and a restart whose wait is over and, with
// heaps, heaps not seen for forgetAfter, so the state stays small.
func (d *decision) prune(heaps bool) {
	for k, hs := range d.next.Heaps {
		if heaps && !hs.LastSeen.IsZero() && d.now.Sub(hs.LastSeen) > forgetAfter {
			delete(d.next.Heaps, k)
		}
	}
	for k, t := range d.next.PowerOffPlannedAt {
		if !within(d.now, t, d.cfg.PowerOffSettle) {
			delete(d.next.PowerOffPlannedAt, k)
		}
	}
	if len(d.next.PowerOffPlannedAt) == 0 {
		d.next.PowerOffPlannedAt = nil
	}
	if len(d.next.Heaps) == 0 {
		d.next.Heaps = nil
	}
	if !d.next.RestartPlannedAt.IsZero() && !within(d.now, d.next.RestartPlannedAt, d.cfg.RestartSettle) {
		d.next.RestartPlannedAt = time.Time{}
	}
}

// sortedFlaps orders flapping ports worst first (most cycles), then by
// port and MAC, so the plan does not depend on the collector's map order.
func sortedFlaps(in []FlapObs) []FlapObs {
	if len(in) == 0 {
		return nil
	}
	out := slices.Clone(in)
	for i := range out {
		if out[i].VM != nil {
			vm := *out[i].VM // the plan must not alias the caller's data
			out[i].VM = &vm
		}
	}
	slices.SortStableFunc(out, func(a, b FlapObs) int {
		if c := cmp.Compare(b.Cycles, a.Cycles); c != 0 {
			return c
		}
		if c := strings.Compare(a.Port, b.Port); c != 0 {
			return c
		}
		return strings.Compare(a.MAC, b.MAC)
	})
	return out
}

func figures(h HeapObs) HeapFigures {
	f := HeapFigures{
		Name:             h.Name,
		PercentFreeOfMax: h.PercentFreeOfMax,
		MaxBytes:         h.MaxBytes,
		AllocatedBytes:   h.AllocatedBytes,
		BytesPerSecond:   h.BytesPerSecond,
	}
	if h.HasPrediction && h.TimeToExhaustion > 0 {
		f.SecondsToExhaustion = h.TimeToExhaustion.Seconds()
	}
	if math.IsNaN(f.BytesPerSecond) || math.IsInf(f.BytesPerSecond, 0) {
		f.BytesPerSecond = 0
	}
	return f
}

func ptr[T any](v T) *T { return &v }
