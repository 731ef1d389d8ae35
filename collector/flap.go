package collector

import (
	"cmp"
	"slices"
	"time"
)

// FlapTracker follows ports as events arrive and tells which flap.
//
// A cycle is one enabled event (the incident's counts, from
// grep 'enabled port', are enabled lines); disabled events only move a
// port's Last time. A port is flapping once it has had at least cycles
// cycles within window of log time, and stops flapping when window passes
// (by the caller's clock) without a cycle. Windows are measured on event
// times; only the end of a flap is measured on now, since a port that went
// quiet writes no line.
//
// The tracker's state is small and bounded (at most cycles timestamps per
// port; ports idle for longer than window are forgotten), so the cron mode
// can save it between runs with Snapshot and RestoreFlapTracker.
type FlapTracker struct {
	cycles   int
	window   time.Duration
	ports    map[Port]*flapPort
	latest   time.Time // newest event time seen
	observed int
}

type flapPort struct {
	mac           MAC
	macKnown      bool
	first, last   time.Time // any port event
	lastCycle     time.Time
	flappingSince time.Time
	ring          cycleRing
}

// PortStatus is one port's state at a given time.
type PortStatus struct {
	Port     Port `json:"port"`
	MAC      MAC  `json:"mac"`
	MACKnown bool `json:"mac_known"`
	// Cycles is the number of cycles within the window before now (at most
	// the tracker's cycles setting: older ones are not kept).
	Cycles        int       `json:"cycles"`
	First         time.Time `json:"first"`
	Last          time.Time `json:"last"`
	Flapping      bool      `json:"flapping"`
	FlappingSince time.Time `json:"flapping_since,omitzero"`
}

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

// Observe takes one event; kinds other than the port kinds are ignored.
func (t *FlapTracker) Observe(ev Event) {
	if ev.Kind != KindPortDisabled && ev.Kind != KindPortEnabled {
		return
	}
	if ev.Time.After(t.latest) {
		t.latest = ev.Time
	}
	p := t.ports[ev.Port]
	if p == nil {
		p = &flapPort{first: ev.Time}
		t.ports[ev.Port] = p
	}
	p.last = ev.Time
	if ev.Kind == KindPortEnabled {
		if ev.MACKnown {
			if p.macKnown && p.mac != ev.MAC {
				// The port id was given to another NIC (a VM powered on or
				// moved in): the old NIC's flaps are not the new one's.
				*p = flapPort{first: ev.Time, last: ev.Time}
			}
			p.mac, p.macKnown = ev.MAC, true
		}
		if !p.flappingSince.IsZero() && ev.Time.Sub(p.lastCycle) > t.window {
			p.flappingSince = time.Time{} // the last flap ended; this may start a new one
		}
		p.lastCycle = ev.Time
		p.ring.push(ev.Time, t.cycles)
		if p.flappingSince.IsZero() && p.ring.full(t.cycles) && ev.Time.Sub(p.ring.oldest()) <= t.window {
			p.flappingSince = ev.Time
		}
	}
	t.observed++
	if t.observed%1024 == 0 {
		t.forget(t.latest)
	}
}

// Forget drops a port's history, so it counts as flapping again only after
// new cycles: the agent calls it once the port's VM is powered off, so that
// a VM an admin powers back on is not taken for a flapping one on the
// strength of what it did before.
func (t *FlapTracker) Forget(port Port) { delete(t.ports, port) }

// forget drops ports without an event for longer than the window before now.
func (t *FlapTracker) forget(now time.Time) {
	for id, p := range t.ports {
		if now.Sub(p.last) > t.window {
			delete(t.ports, id)
		}
	}
}

// Status returns the ports with an event within the window before now,
// sorted by port id.
func (t *FlapTracker) Status(now time.Time) []PortStatus {
	out := make([]PortStatus, 0, len(t.ports))
	for id, p := range t.ports {
		if now.Sub(p.last) > t.window {
			continue
		}
		st := PortStatus{Port: id, MAC: p.mac, MACKnown: p.macKnown, First: p.first, Last: p.last}
		for _, c := range p.ring.times {
			if now.Sub(c) < t.window {
				st.Cycles++
			}
		}
		if !p.flappingSince.IsZero() && now.Sub(p.lastCycle) <= t.window {
			st.Flapping, st.FlappingSince = true, p.flappingSince
		}
		out = append(out, st)
	}
	slices.SortFunc(out, func(a, b PortStatus) int { return cmp.Compare(a.Port, b.Port) })
	return out
}

// FlapState is a FlapTracker's saved state, for JSON.
type FlapState struct {
	Cycles int             `json:"cycles"`
	Window time.Duration   `json:"window_ns"`
	Latest time.Time       `json:"latest,omitzero"`
	Ports  []FlapPortState `json:"ports"`
}

// FlapPortState is one port in a FlapState. CycleTimes are the last cycles,
// oldest first.
type FlapPortState struct {
	Port          Port        `json:"port"`
	MAC           MAC         `json:"mac"`
	MACKnown      bool        `json:"mac_known"`
	First         time.Time   `json:"first"`
	Last          time.Time   `json:"last"`
	LastCycle     time.Time   `json:"last_cycle,omitzero"`
	FlappingSince time.Time   `json:"flapping_since,omitzero"`
	CycleTimes    []time.Time `json:"cycle_times,omitempty"`
}

// Snapshot returns the state to save; ports idle for longer than the window
// (by log time) are left out.
func (t *FlapTracker) Snapshot() FlapState {
	t.forget(t.latest)
	st := FlapState{Cycles: t.cycles, Window: t.window, Latest: t.latest, Ports: []FlapPortState{}}
	for id, p := range t.ports {
		st.Ports = append(st.Ports, FlapPortState{
			Port: id, MAC: p.mac, MACKnown: p.macKnown, First: p.first, Last: p.last,
			LastCycle: p.lastCycle, FlappingSince: p.flappingSince, CycleTimes: p.ring.ordered(),
		})
	}
	slices.SortFunc(st.Ports, func(a, b FlapPortState) int { return cmp.Compare(a.Port, b.Port) })
	return st
}

// RestoreFlapTracker rebuilds a tracker from a saved state. A state from an
// older version or edited by hand is made safe: missing settings take the
// defaults and extra cycle times are dropped (the newest are kept).
func RestoreFlapTracker(st FlapState) *FlapTracker {
	t := NewFlapTracker(st.Cycles, st.Window)
	t.latest = st.Latest
	for _, ps := range st.Ports {
		p := &flapPort{mac: ps.MAC, macKnown: ps.MACKnown, first: ps.First, last: ps.Last,
			lastCycle: ps.LastCycle, flappingSince: ps.FlappingSince}
		times := ps.CycleTimes
		if len(times) > t.cycles {
			times = times[len(times)-t.cycles:]
		}
		for _, c := range times {
			p.ring.push(c, t.cycles)
		}
		if p.last.After(t.latest) {
			t.latest = p.last
		}
		t.ports[ps.Port] = p
	}
	return t
}
