package collector

import (
	"cmp"
	"slices"
	"time"
)

// Summary is what a scan found. Lines = Events + BeforeSince + Other +
// Unparsed + Oversized; Continuation counts the part of Other that continues
// a record on an untimed line.
type Summary struct {
	Lines        int64 `json:"lines"`
	Events       int64 `json:"events"`
	BeforeSince  int64 `json:"before_since"`
	Other        int64 `json:"other"`
	Continuation int64 `json:"continuation"`
	Unparsed     int64 `json:"unparsed"`
	Oversized    int64 `json:"oversized"`
	// Untimed counts the part of Events read from lines whose time could
	// not be read (see untimedEvent): counted everywhere, in no window.
	Untimed int64 `json:"untimed"`
	// Log is which program's log this is, judged from its lines (see
	// DetectLog).
	Log LogKind `json:"log"`
	// GuessedYear is the year the first 4.x syslog date (which carries
	// none) was put in when no year was given: from the file's
	// modification time (ScanFile) or the current year (Scan). 0 when the
	// year was given or carried from an older copy, or no 4.x line was read.
	GuessedYear int `json:"guessed_year,omitempty"`

	// First and Last are the times of the first and last counted event
	// whose time is known.
	First time.Time `json:"first,omitzero"`
	Last  time.Time `json:"last,omitzero"`

	FlapCycles int           `json:"flap_cycles"`
	FlapWindow time.Duration `json:"flap_window_ns"`

	Ports     map[Port]*PortSummary `json:"ports"`
	Heaps     []HeapSummary         `json:"heaps"`
	Processes []ProcessSummary      `json:"processes"`
	// Crashes are the crashes the dump lines report, each once (see
	// Crash), in log order; CrashesDropped counts those past maxCrashes.
	Crashes        []Crash `json:"crashes"`
	CrashesDropped int     `json:"crashes_dropped,omitempty"`
	// droppedTail holds the newest dropped crashes, so that a dropped
	// crash's second line joins it instead of counting as one more.
	droppedTail []Crash
}

// PortSummary is one port seen in a disabled or enabled line. A cycle is one
// enabled event: the incident's counts (grep 'enabled port' | uniq -c) are
// enabled lines.
type PortSummary struct {
	Port Port `json:"port"`
	// MAC is the last one seen in an enabled line; MACChanges counts changes.
	MAC        MAC  `json:"mac"`
	MACKnown   bool `json:"mac_known"`
	MACChanges int  `json:"mac_changes"`
	Disabled   int  `json:"disabled"`
	Enabled    int  `json:"enabled"`
	// Untimed counts the port's lines whose time is unknown: in neither
	// Disabled nor Enabled, as no window can hold them.
	Untimed int       `json:"untimed"`
	First   time.Time `json:"first"`
	Last    time.Time `json:"last"`
	// PeakCyclesPerMinute is the most enabled events within one calendar
	// minute of log time.
	PeakCyclesPerMinute int `json:"peak_cycles_per_minute"`
	// Flapping is true if FlapCycles cycles ever happened within FlapWindow;
	// FlappingSince is the log time when that was first seen.
	Flapping      bool      `json:"flapping"`
	FlappingSince time.Time `json:"flapping_since,omitzero"`
	// Minutes counts the cycles (enabled events) per calendar minute of
	// log time, in log order, minutes without a cycle left out: the
	// series a report draws.
	Minutes []MinuteCount `json:"-"`

	// State for exact merging of consecutive summaries.
	firstMAC      MAC
	firstMACKnown bool
	head          []time.Time // first FlapCycles cycle times
	ring          cycleRing   // last FlapCycles cycle times
}

// Cycles is the number of flap cycles (enabled events).
func (p *PortSummary) Cycles() int { return p.Enabled }

// HeapSummary counts one kind of heap failure (KindHeapMaxed or
// KindHeapAlignFailed) of one heap.
type HeapSummary struct {
	Heap  string `json:"heap"`
	Kind  Kind   `json:"kind"`
	Count int    `json:"count"`
	// Untimed is the part of Count whose time is unknown; First and Last
	// are of the others (zero when all are untimed).
	Untimed int       `json:"untimed"`
	First   time.Time `json:"first"`
	Last    time.Time `json:"last"`
	// Minutes counts the timed lines per calendar minute, as
	// PortSummary.Minutes does.
	Minutes []MinuteCount `json:"-"`
}

// MinuteCount is how many events one calendar minute of log time held.
type MinuteCount struct {
	Minute int64 // Unix time / 60, rounded down
	Count  int
}

// Time is the start of the minute, in UTC.
func (m MinuteCount) Time() time.Time { return time.Unix(m.Minute*60, 0).UTC() }

// countMinute adds one event in minute m to a series kept in log order.
func countMinute(ms []MinuteCount, m int64) []MinuteCount {
	if n := len(ms); n > 0 && ms[n-1].Minute == m {
		ms[n-1].Count++
		return ms
	}
	return append(ms, MinuteCount{Minute: m, Count: 1})
}

// joinMinutes appends the series b, which follows a in time, to a; a
// minute the two share is counted once, with both counts.
func joinMinutes(a, b []MinuteCount) []MinuteCount {
	if len(b) == 0 {
		return a
	}
	if n := len(a); n > 0 && a[n-1].Minute == b[0].Minute {
		a[n-1].Count += b[0].Count
		b = b[1:]
	}
	return append(a, b...)
}

// ProcessSummary counts the dumps of one process: UserDumps are "Dumping
// cartel … to file" lines, CoreDumps are "wantCoreDump" lines.
type ProcessSummary struct {
	Process   string `json:"process"`
	UserDumps int    `json:"user_dumps"`
	CoreDumps int    `json:"core_dumps"`
	// Untimed is the part of the dumps whose time is unknown.
	Untimed int       `json:"untimed"`
	First   time.Time `json:"first"`
	Last    time.Time `json:"last"`
}

// NewSummary returns an empty summary with flap defaults filled in.
func NewSummary(flapCycles int, flapWindow time.Duration) *Summary {
	if flapCycles <= 0 {
		flapCycles = DefaultFlapCycles
	}
	if flapWindow <= 0 {
		flapWindow = DefaultFlapWindow
	}
	return &Summary{FlapCycles: flapCycles, FlapWindow: flapWindow, Ports: map[Port]*PortSummary{}}
}

// SortedPorts returns the ports by cycles, most first; ties by port id.
func (s *Summary) SortedPorts() []*PortSummary {
	out := make([]*PortSummary, 0, len(s.Ports))
	for _, p := range s.Ports {
		out = append(out, p)
	}
	slices.SortStableFunc(out, func(a, b *PortSummary) int {
		if c := cmp.Compare(b.Enabled, a.Enabled); c != 0 {
			return c
		}
		return cmp.Compare(a.Port, b.Port)
	})
	return out
}

// add counts one event that passed the Since filter.
func (s *Summary) add(ev *Event) {
	s.Events++
	untimed := ev.Time.IsZero()
	if untimed {
		s.Untimed++
	} else {
		if s.First.IsZero() {
			s.First = ev.Time
		}
		s.Last = ev.Time
	}
	switch ev.Kind {
	case KindPortDisabled, KindPortEnabled:
		p := s.Ports[ev.Port]
		if p == nil {
			p = &PortSummary{Port: ev.Port}
			s.Ports[ev.Port] = p
		}
		if untimed {
			// Counted and its MAC kept, but outside every window.
			p.Untimed++
			if ev.Kind == KindPortEnabled && ev.MACKnown && !p.MACKnown {
				p.MAC, p.MACKnown = ev.MAC, true
			}
			return
		}
		if p.First.IsZero() {
			p.First = ev.Time
		}
		p.Last = ev.Time
		if ev.Kind == KindPortDisabled {
			p.Disabled++
			return
		}
		if ev.MACKnown {
			if !p.firstMACKnown {
				p.firstMAC, p.firstMACKnown = ev.MAC, true
			} else if p.MAC != ev.MAC {
				p.MACChanges++
			}
			p.MAC, p.MACKnown = ev.MAC, true
		}
		s.cycle(p, ev.Time)
	case KindHeapMaxed, KindHeapAlignFailed:
		h := s.heap(ev.Heap, ev.Kind)
		h.Count++
		if untimed {
			h.Untimed++
			return
		}
		if h.First.IsZero() {
			h.First = ev.Time
		}
		h.Last = ev.Time
		h.Minutes = countMinute(h.Minutes, minuteOf(ev.Time))
	case KindCoreDump, KindUserDump:
		d := s.process(ev.Process)
		if ev.Kind == KindUserDump {
			d.UserDumps++
		} else {
			d.CoreDumps++
		}
		s.addCrash(crashOf(ev))
		if untimed {
			d.Untimed++
			return
		}
		if d.First.IsZero() {
			d.First = ev.Time
		}
		d.Last = ev.Time
	case KindAgentCrash:
		s.addCrash(crashOf(ev))
	}
}

// cycle records one enabled event of p at t.
func (s *Summary) cycle(p *PortSummary, t time.Time) {
	p.Enabled++
	p.Minutes = countMinute(p.Minutes, minuteOf(t))
	p.PeakCyclesPerMinute = max(p.PeakCyclesPerMinute, p.Minutes[len(p.Minutes)-1].Count)
	if len(p.head) < s.FlapCycles {
		p.head = append(p.head, t)
	}
	s.ringPush(p, t)
}

func (s *Summary) ringPush(p *PortSummary, t time.Time) {
	p.ring.push(t, s.FlapCycles)
	if !p.Flapping && p.ring.full(s.FlapCycles) && t.Sub(p.ring.oldest()) <= s.FlapWindow {
		p.Flapping, p.FlappingSince = true, t
	}
}

func minuteOf(t time.Time) int64 {
	u := t.Unix()
	if u < 0 {
		return (u - 59) / 60
	}
	return u / 60
}

func (s *Summary) heap(name string, k Kind) *HeapSummary {
	for i := range s.Heaps {
		if s.Heaps[i].Heap == name && s.Heaps[i].Kind == k {
			return &s.Heaps[i]
		}
	}
	s.Heaps = append(s.Heaps, HeapSummary{Heap: name, Kind: k})
	slices.SortFunc(s.Heaps, func(a, b HeapSummary) int {
		return cmp.Or(cmp.Compare(a.Heap, b.Heap), cmp.Compare(a.Kind, b.Kind))
	})
	return s.heap(name, k)
}

func (s *Summary) process(name string) *ProcessSummary {
	for i := range s.Processes {
		if s.Processes[i].Process == name {
			return &s.Processes[i]
		}
	}
	s.Processes = append(s.Processes, ProcessSummary{Process: name})
	slices.SortFunc(s.Processes, func(a, b ProcessSummary) int { return cmp.Compare(a.Process, b.Process) })
	return s.process(name)
}

// Merge adds other to s, as if the two logs had been scanned as one. The
// earlier summary (by first event) is taken as the first part, so rotated
// files (vmkernel.1.gz, vmkernel.0.gz, vmkernel.log) can be merged in any
// order as long as they do not overlap in time. Both must use the same flap
// settings; s's are kept.
func (s *Summary) Merge(other *Summary) {
	if other == nil {
		return
	}
	if s.Ports == nil {
		s.Ports = map[Port]*PortSummary{}
	}
	if s.FlapCycles <= 0 || s.FlapWindow <= 0 {
		// A zero Summary{} takes other's settings (or the defaults).
		d := NewSummary(other.FlapCycles, other.FlapWindow)
		s.FlapCycles, s.FlapWindow = d.FlapCycles, d.FlapWindow
	}
	if !s.First.IsZero() && !other.First.IsZero() && other.First.Before(s.First) {
		// other comes first: merge s onto a copy of other, keep the result in s.
		merged := other.clone()
		merged.FlapCycles, merged.FlapWindow = s.FlapCycles, s.FlapWindow
		merged.appendSummary(s)
		*s = *merged
		return
	}
	s.appendSummary(other)
}

// appendSummary adds o, which follows s in time.
func (s *Summary) appendSummary(o *Summary) {
	s.Lines += o.Lines
	s.BeforeSince += o.BeforeSince
	s.Other += o.Other
	s.Continuation += o.Continuation
	s.Unparsed += o.Unparsed
	s.Oversized += o.Oversized
	s.Untimed += o.Untimed
	if s.GuessedYear == 0 {
		s.GuessedYear = o.GuessedYear
	}
	if !o.First.IsZero() {
		if s.First.IsZero() {
			s.First = o.First
		}
		s.Last = o.Last
	}
	s.Events += o.Events
	for _, op := range o.Ports {
		p := s.Ports[op.Port]
		if p == nil {
			cp := op.clone()
			s.Ports[op.Port] = &cp
			continue
		}
		s.appendPort(p, op)
	}
	for _, oh := range o.Heaps {
		h := s.heap(oh.Heap, oh.Kind)
		h.Count += oh.Count
		h.Untimed += oh.Untimed
		mergeSpan(&h.First, &h.Last, oh.First, oh.Last)
		h.Minutes = joinMinutes(h.Minutes, oh.Minutes)
	}
	for _, od := range o.Processes {
		d := s.process(od.Process)
		d.UserDumps += od.UserDumps
		d.CoreDumps += od.CoreDumps
		d.Untimed += od.Untimed
		mergeSpan(&d.First, &d.Last, od.First, od.Last)
	}
	// A crash may straddle the two: addCrash joins its lines.
	for _, c := range o.Crashes {
		c.Processes = slices.Clone(c.Processes)
		s.addCrash(c)
	}
	// o's dropped crashes come after its maxCrashes listed ones, so s is
	// full by now and they stay dropped; they were joined within o. Its
	// newest become s's, for the lines that follow.
	s.CrashesDropped += o.CrashesDropped
	for _, c := range o.droppedTail {
		c.Processes = slices.Clone(c.Processes)
		s.droppedTail = append(s.droppedTail, c)
	}
	if n := len(s.droppedTail) - crashLookBack; n > 0 {
		s.droppedTail = slices.Delete(s.droppedTail, 0, n)
	}
}

func (s *Summary) appendPort(p, o *PortSummary) {
	if !o.First.IsZero() {
		if p.First.IsZero() {
			p.First = o.First
		}
		p.Last = o.Last
	}
	p.Untimed += o.Untimed
	if !p.MACKnown && o.MACKnown && !o.firstMACKnown {
		p.MAC, p.MACKnown = o.MAC, true // known from an untimed line only
	}
	p.Disabled += o.Disabled
	if o.firstMACKnown {
		if !p.firstMACKnown {
			p.firstMAC, p.firstMACKnown = o.firstMAC, true
		} else if p.MAC != o.firstMAC {
			p.MACChanges++
		}
		p.MAC, p.MACKnown = o.MAC, true
	}
	p.MACChanges += o.MACChanges
	// A minute the two share holds cycles of both: it may be the peak.
	shared := -1
	if n := len(p.Minutes); n > 0 && len(o.Minutes) > 0 && p.Minutes[n-1].Minute == o.Minutes[0].Minute {
		shared = n - 1
	}
	p.Minutes = joinMinutes(p.Minutes, o.Minutes)
	if o.Enabled == 0 {
		return
	}
	if p.Enabled == 0 {
		p.PeakCyclesPerMinute = o.PeakCyclesPerMinute
		p.head = append(p.head[:0], o.head...)
		p.ring = o.ring.clone()
		p.Enabled = o.Enabled
		p.Flapping, p.FlappingSince = o.Flapping, o.FlappingSince
		return
	}
	p.PeakCyclesPerMinute = max(p.PeakCyclesPerMinute, o.PeakCyclesPerMinute)
	if shared >= 0 {
		p.PeakCyclesPerMinute = max(p.PeakCyclesPerMinute, p.Minutes[shared].Count)
	}
	// Flapping: a window that spans the boundary holds fewer than FlapCycles
	// cycles of o, all of them in o's head; replaying the head finds it.
	for _, t := range o.head {
		if len(p.head) < s.FlapCycles {
			p.head = append(p.head, t)
		}
		s.ringPush(p, t)
	}
	if !p.Flapping && o.Flapping {
		p.Flapping, p.FlappingSince = true, o.FlappingSince
	}
	if o.Enabled > len(o.head) || o.Enabled >= s.FlapCycles {
		p.ring = o.ring.clone()
	}
	p.Enabled += o.Enabled
}

func (p PortSummary) clone() PortSummary {
	p.head = slices.Clone(p.head)
	p.ring = p.ring.clone()
	p.Minutes = slices.Clone(p.Minutes)
	return p
}

func (s *Summary) clone() *Summary {
	c := *s
	c.Ports = make(map[Port]*PortSummary, len(s.Ports))
	for k, v := range s.Ports {
		cp := v.clone()
		c.Ports[k] = &cp
	}
	c.Heaps = slices.Clone(s.Heaps)
	for i := range c.Heaps {
		c.Heaps[i].Minutes = slices.Clone(c.Heaps[i].Minutes)
	}
	c.Processes = slices.Clone(s.Processes)
	c.Crashes = slices.Clone(s.Crashes)
	for i := range c.Crashes {
		c.Crashes[i].Processes = slices.Clone(c.Crashes[i].Processes)
	}
	c.droppedTail = slices.Clone(s.droppedTail)
	for i := range c.droppedTail {
		c.droppedTail[i].Processes = slices.Clone(c.droppedTail[i].Processes)
	}
	return &c
}

// cycleRing keeps the last n cycle times, oldest first at start.
type cycleRing struct {
	times []time.Time
	start int
}

func (r *cycleRing) push(t time.Time, n int) {
	if len(r.times) < n {
		r.times = append(r.times, t)
		return
	}
	r.times[r.start] = t
	r.start = (r.start + 1) % len(r.times)
}

func (r *cycleRing) full(n int) bool { return len(r.times) >= n }

func (r *cycleRing) oldest() time.Time { return r.times[r.start] }

// ordered returns the times oldest first.
func (r *cycleRing) ordered() []time.Time {
	out := make([]time.Time, 0, len(r.times))
	out = append(out, r.times[r.start:]...)
	return append(out, r.times[:r.start]...)
}

func (r cycleRing) clone() cycleRing {
	return cycleRing{times: r.ordered()}
}

// mergeSpan widens first..last by a later summary's span (its timed lines
// come after: Merge takes summaries in time order); a span with no timed
// line changes nothing.
func mergeSpan(first, last *time.Time, oFirst, oLast time.Time) {
	if oFirst.IsZero() {
		return
	}
	if first.IsZero() {
		*first = oFirst
	}
	*last = oLast
}
