package collector

import (
	"cmp"
	"maps"
	"slices"
	"sort"
	"time"
)

// flapSkew is how far after the reference time a cycle may lie and still be
// kept: writers reach the log slightly out of order, but a cycle later than
// that was logged before the clock stepped back.
const flapSkew = time.Minute

// FlapTracker follows ports as events arrive and tells which flap.
//
// A cycle is one enabled event (the incident's counts, from
// grep 'enabled port', are enabled lines); disabled events only move a
// port's Last time. Ports are judged at a reference time R = max(now, L),
// where now is the caller's clock and L the time of the last line observed
// in log order (every kind of event moves it): a line that arrives late is
// placed by its own time, and a log whose clock stepped back takes R back
// with it, even when the flapping ports wrote nothing since.
//
// A time c is within the window ending at R when R-window <= c <= R (both
// ends inclusive). A port flaps at R when at least cycles of its cycle
// times are within the window, and Cycles reports that count, so a
// flapping port never shows fewer. A port whose newest event is more than
// window before R is forgotten. Cycle times after R+flapSkew (R+flapSkew
// itself is kept) were logged before a clock step back: Status drops them
// for good, so they do not count again when the clock catches up.
//
// Each port keeps its cycle times sorted: the newest at or before the
// reference time, as many as the threshold, and at most as many later ones
// (left there by late lines or a clock step back until Status judges
// them). The state is thus small and bounded, and the cron mode saves it
// between runs with Snapshot and RestoreFlapTracker.
type FlapTracker struct {
	cycles   int
	window   time.Duration
	ports    map[Port]*flapPort
	logTime  time.Time // the last line's time, in log order
	observed int
	seq      uint64 // port lines observed: their place in the log
}

type flapPort struct {
	mac      MAC
	macKnown bool
	first    time.Time // the port's first event in log order
	last     time.Time // its newest event by time
	// down: its newest line in log order is a disable (at disabled).
	// enabled is the time of its newest enable in log order, enabledSeq
	// that enable's place in the log (FlapTracker.seq). Log order, not
	// time: 4.x syslog stamps have whole seconds, and a clock stepped back
	// stamps newer lines earlier.
	down              bool
	enabled, disabled time.Time
	enabledSeq        uint64
	times             []time.Time
	// since and until bound the current flapping run, for reporting only:
	// whether the port flaps is counted afresh at each judgement.
	since, until time.Time
}

// PortStatus is one port's state at a given time.
type PortStatus struct {
	Port     Port `json:"port"`
	MAC      MAC  `json:"mac"`
	MACKnown bool `json:"mac_known"`
	// Cycles is the number of cycles within the window ending at the
	// reference time (at most the tracker's cycles setting: no more are kept).
	Cycles        int       `json:"cycles"`
	First         time.Time `json:"first"`
	Last          time.Time `json:"last"`
	Flapping      bool      `json:"flapping"`
	FlappingSince time.Time `json:"flapping_since,omitzero"`
	// Down: the port's newest event is the disable at DownSince, with no
	// enable at or after it. A flap's two lines are ~3 ms apart
	// (vmkernel-4x-messages.log), so a port seen down is disconnected (its
	// VM powered off or unregistered, its NIC removed) or read between the
	// two lines of one cycle: either way not known to be up.
	Down      bool      `json:"down,omitempty"`
	DownSince time.Time `json:"down_since,omitzero"`
	// MovedTo is the port that enabled this port's MAC last, at MovedAt,
	// when that is another port and after this port's newest enable: the
	// MAC came up elsewhere since (it moved to another NIC).
	MovedTo Port      `json:"moved_to,omitempty"`
	MovedAt time.Time `json:"moved_at,omitzero"`
}

// Moved says whether the port's MAC came up on another port since the
// port's newest enable (MovedTo, MovedAt).
func (s PortStatus) Moved() bool { return !s.MovedAt.IsZero() }

// NewFlapTracker returns a tracker; cycles <= 0 and window <= 0 take the
// defaults (10 cycles in 5 minutes).
func NewFlapTracker(cycles int, window time.Duration) *FlapTracker {
	if cycles <= 0 {
		cycles = DefaultFlapCycles
	}
	if window <= 0 {
		window = DefaultFlapWindow
	}
	return &FlapTracker{cycles: cycles, window: window, ports: map[Port]*flapPort{}}
}

// Observe takes one event: its time moves the log clock (L), and port
// events are tracked; other kinds are not.
func (t *FlapTracker) Observe(ev Event) {
	if !ev.Time.IsZero() {
		t.logTime = ev.Time
	}
	if ev.Kind != KindPortDisabled && ev.Kind != KindPortEnabled || ev.Time.IsZero() {
		// A port line whose time is unknown fits in no window.
		return
	}
	p := t.ports[ev.Port]
	if p == nil {
		p = &flapPort{first: ev.Time}
		t.ports[ev.Port] = p
	}
	if ev.Time.After(p.last) {
		p.last = ev.Time
	}
	t.seq++
	if ev.Kind == KindPortDisabled {
		p.down, p.disabled = true, ev.Time
	}
	if ev.Kind == KindPortEnabled {
		if ev.MACKnown {
			if p.macKnown && p.mac != ev.MAC {
				// The port id was given to another NIC (a VM powered on or
				// moved in): the old NIC's flaps are not the new one's.
				*p = flapPort{first: ev.Time, last: ev.Time}
			}
			p.mac, p.macKnown = ev.MAC, true
		}
		p.down, p.enabled, p.enabledSeq = false, ev.Time, t.seq
		i, _ := slices.BinarySearchFunc(p.times, ev.Time, time.Time.Compare)
		p.times = slices.Insert(p.times, i, ev.Time)
		p.trim(ev.Time, t.cycles)
		// Judging at each cycle follows a run through many cycles between
		// two Status calls (a cron run reads minutes of log at once).
		t.judge(p, ev.Time)
	}
	t.observed++
	if t.observed%1024 == 0 {
		t.forget(t.logTime)
	}
}

// Forget drops a port's history, so it counts as flapping again only after
// new cycles: the agent calls it once the port's VM is powered off, so that
// a VM an admin powers back on is not taken for a flapping one on the
// strength of what it did before.
func (t *FlapTracker) Forget(port Port) { delete(t.ports, port) }

// Tracked is how many ports the tracker holds (flapping or not).
func (t *FlapTracker) Tracked() int { return len(t.ports) }

// stale reports whether x lies more than the window before r: the one
// lower bound of the window, for cycles and ports alike.
func (t *FlapTracker) stale(x, r time.Time) bool { return r.Sub(x) > t.window }

// forget drops the ports whose newest event is stale at r.
func (t *FlapTracker) forget(r time.Time) {
	for id, p := range t.ports {
		if t.stale(p.last, r) {
			delete(t.ports, id)
		}
	}
}

// after returns the index of p's first cycle time after r.
func (p *flapPort) after(r time.Time) int {
	return sort.Search(len(p.times), func(i int) bool { return p.times[i].After(r) })
}

// trim keeps the newest n cycle times at or before ref and the newest n
// after it: the later ones may yet be dropped as logged before a clock
// step back, and must not push out the cycles that count at ref.
func (p *flapPort) trim(ref time.Time, n int) {
	k := p.after(ref)
	if extra := len(p.times) - k - n; extra > 0 {
		p.times = slices.Delete(p.times, k, k+extra)
	}
	if k > n {
		p.times = slices.Delete(p.times, 0, k-n)
	}
}

// dropAfter drops the cycle times after limit and the run they were part
// of; a first or last event after limit is taken as at limit, so that the
// port is forgotten a window after the step if nothing new comes.
func (p *flapPort) dropAfter(limit time.Time) {
	if k := p.after(limit); k < len(p.times) || p.since.After(limit) {
		p.times = p.times[:k]
		p.since, p.until = time.Time{}, time.Time{}
	}
	if p.first.After(limit) {
		p.first = limit
	}
	if p.last.After(limit) {
		p.last = limit
	}
	if p.enabled.After(limit) {
		p.enabled = limit
	}
	if p.disabled.After(limit) {
		p.disabled = limit
	}
}

// judge returns how many of p's newest cycle times at or before r are
// within the window ending at r (at most t.cycles) and, when they make a
// flap, records it in p's run.
func (t *FlapTracker) judge(p *flapPort, r time.Time) int {
	k := p.after(r) // later cycles are not in the window yet
	j := k
	for j > 0 && k-j < t.cycles && !t.stale(p.times[j-1], r) {
		j--
	}
	if k-j >= t.cycles {
		// These cycles keep the port flapping from the newest of them
		// until the oldest leaves the window.
		p.noteFlap(p.times[k-1], p.times[j].Add(t.window))
	}
	return k - j
}

// noteFlap records that p flaps at every time from from to until. A run
// that overlaps or touches the current one extends it; any other becomes
// the current run.
func (p *flapPort) noteFlap(from, until time.Time) {
	if p.since.IsZero() || from.After(p.until) || until.Before(p.since) {
		p.since, p.until = from, until
		return
	}
	if from.Before(p.since) {
		p.since = from
	}
	if until.After(p.until) {
		p.until = until
	}
}

// Status judges the ports at R = max(now, the last line's log time)
// and returns those not forgotten, sorted by port id. It also forgets
// stale ports and drops cycle times logged before a clock step back.
func (t *FlapTracker) Status(now time.Time) []PortStatus {
	r := now
	if t.logTime.After(r) {
		r = t.logTime
	}
	out := make([]PortStatus, 0, len(t.ports))
	for id, p := range t.ports {
		if t.stale(p.last, r) {
			delete(t.ports, id)
			continue
		}
		p.dropAfter(r.Add(flapSkew))
		p.trim(r, t.cycles)
		st := PortStatus{Port: id, MAC: p.mac, MACKnown: p.macKnown, First: p.first, Last: p.last}
		st.Cycles = t.judge(p, r)
		if st.Cycles >= t.cycles {
			st.Flapping, st.FlappingSince = true, p.since
		}
		if p.down {
			st.Down, st.DownSince = true, p.disabled
		}
		out = append(out, st)
	}
	t.moves(out)
	slices.SortFunc(out, func(a, b PortStatus) int { return cmp.Compare(a.Port, b.Port) })
	return out
}

// moves sets MovedTo and MovedAt of each port in out whose MAC another
// tracked port enabled last, after the port's own newest enable in log
// order.
func (t *FlapTracker) moves(out []PortStatus) {
	newest := map[MAC]Port{}
	for _, st := range out {
		if !st.MACKnown {
			continue
		}
		if q, ok := newest[st.MAC]; !ok || t.ports[st.Port].enabledSeq > t.ports[q].enabledSeq {
			newest[st.MAC] = st.Port
		}
	}
	for i := range out {
		st := &out[i]
		if !st.MACKnown {
			continue
		}
		q := newest[st.MAC]
		if q != st.Port && t.ports[q].enabledSeq > t.ports[st.Port].enabledSeq {
			st.MovedTo, st.MovedAt = q, t.ports[q].enabled
		}
	}
}

// FlapState is a FlapTracker's saved state, for JSON.
type FlapState struct {
	Cycles int           `json:"cycles"`
	Window time.Duration `json:"window_ns"`
	// LogTime is the last line's time in log order. States saved without
	// it leave R to the caller's clock until the next line.
	LogTime time.Time `json:"log_time,omitzero"`
	// Seq counts the port lines observed, in log order (see
	// FlapPortState.EnabledSeq); states saved without it have none.
	Seq   uint64          `json:"seq,omitempty"`
	Ports []FlapPortState `json:"ports"`
}

// FlapPortState is one port in a FlapState. CycleTimes are the kept cycle
// times, oldest first.
type FlapPortState struct {
	Port          Port        `json:"port"`
	MAC           MAC         `json:"mac"`
	MACKnown      bool        `json:"mac_known"`
	First         time.Time   `json:"first"`
	Last          time.Time   `json:"last"`
	FlappingSince time.Time   `json:"flapping_since,omitzero"`
	FlappingUntil time.Time   `json:"flapping_until,omitzero"`
	CycleTimes    []time.Time `json:"cycle_times,omitempty"`
	// Enabled is the newest enable in log order, EnabledSeq its place in
	// the log; Down says the newest line is a disable, at Disabled.
	// States saved without them are judged by time (RestoreFlapTracker).
	Enabled    time.Time `json:"enabled,omitzero"`
	EnabledSeq uint64    `json:"enabled_seq,omitempty"`
	Down       bool      `json:"down,omitempty"`
	Disabled   time.Time `json:"disabled,omitzero"`
}

// Snapshot returns the state to save; ports whose newest event is stale at
// the last log time are left out.
func (t *FlapTracker) Snapshot() FlapState {
	t.forget(t.logTime)
	st := FlapState{Cycles: t.cycles, Window: t.window, LogTime: t.logTime, Seq: t.seq, Ports: []FlapPortState{}}
	for id, p := range t.ports {
		st.Ports = append(st.Ports, FlapPortState{
			Port: id, MAC: p.mac, MACKnown: p.macKnown, First: p.first, Last: p.last,
			FlappingSince: p.since, FlappingUntil: p.until, CycleTimes: slices.Clone(p.times),
			Enabled: p.enabled, EnabledSeq: p.enabledSeq, Down: p.down, Disabled: p.disabled,
		})
	}
	slices.SortFunc(st.Ports, func(a, b FlapPortState) int { return cmp.Compare(a.Port, b.Port) })
	return st
}

// RestoreFlapTracker rebuilds a tracker from a saved state. A state from an
// older version or edited by hand is made safe: missing settings take the
// defaults, cycle times are sorted and trimmed as Observe keeps them, and a
// run without an end is kept only while the newest cycles still flap.
func RestoreFlapTracker(st FlapState) *FlapTracker {
	t := NewFlapTracker(st.Cycles, st.Window)
	t.logTime, t.seq = st.LogTime, st.Seq
	for _, ps := range st.Ports {
		p := &flapPort{mac: ps.MAC, macKnown: ps.MACKnown, first: ps.First, last: ps.Last,
			since: ps.FlappingSince, until: ps.FlappingUntil, enabled: ps.Enabled, disabled: ps.Disabled,
			down: ps.Down, enabledSeq: min(ps.EnabledSeq, st.Seq)}
		p.times = slices.SortedFunc(slices.Values(ps.CycleTimes), time.Time.Compare)
		if st.Seq == 0 {
			oldState(p, ps)
		}
		p.trim(t.logTime, t.cycles)
		if p.until.IsZero() {
			p.since = time.Time{}
			if n := len(p.times); n >= t.cycles && !t.stale(p.times[n-t.cycles], p.times[n-1]) {
				p.since, p.until = ps.FlappingSince, p.times[n-t.cycles].Add(t.window)
				if p.since.IsZero() || p.since.After(p.times[n-1]) {
					p.since = p.times[n-1]
				}
			}
		}
		t.ports[ps.Port] = p
	}
	if st.Seq == 0 {
		t.orderEnables()
	}
	return t
}

// oldState judges by time a port saved without log order: its newest
// enable is the newest of Enabled and the cycle times, and it is down
// when a disable, or a line newer than every enable (only port lines move
// Last; states saved before Enabled and Disabled), came after it.
func oldState(p *flapPort, ps FlapPortState) {
	if n := len(p.times); n > 0 && p.times[n-1].After(p.enabled) {
		p.enabled = p.times[n-1]
	}
	switch {
	case ps.Disabled.After(p.enabled):
		p.down = true
	case ps.Enabled.IsZero() && ps.Disabled.IsZero() && ps.Last.After(p.enabled):
		p.down, p.disabled = true, ps.Last
	}
}

// orderEnables gives the ports of a state saved without log order their
// enables' places by time; equal times share one, so that neither port
// is taken for the MAC's newer holder.
func (t *FlapTracker) orderEnables() {
	ports := slices.Collect(maps.Values(t.ports))
	slices.SortFunc(ports, func(a, b *flapPort) int { return a.enabled.Compare(b.enabled) })
	for i, p := range ports {
		if i == 0 || p.enabled.After(ports[i-1].enabled) {
			t.seq++
		}
		p.enabledSeq = t.seq
	}
}
