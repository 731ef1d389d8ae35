package report

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/heapguard/heapguard/collector"
	"github.com/heapguard/heapguard/heap"
	"github.com/heapguard/heapguard/policy"
	"github.com/heapguard/heapguard/remediate"
)

// Timeline is what the report's page draws on one time axis: free of max
// per heap, flap cycles per port, and marks for what happened at a moment.
// It is not in the report's JSON.
type Timeline struct {
	// Journal is the journal read, "" when none was.
	Journal string
	Heaps   []HeapSeries
	Ports   []PortSeries
	Marks   []Mark
	// PortsLeftOut counts ports with cycles not drawn (see maxPortSeries).
	PortsLeftOut int
}

// Ports drawn: every flapping one and the busiest others, up to
// maxPortSeries lines; a host sees hundreds of ports go down and up once
// (VM reboots, vMotion), and a chart of them all says nothing.
const (
	maxPortSeries   = 16
	quietPortSeries = 3
)

// HeapSeries is one heap's free-of-max figures over time.
type HeapSeries struct {
	Name   string // without the address suffix: "netGPHeap"
	Points []HeapPoint
}

// HeapPoint is one figure and where it comes from: SourceJournal (a
// decision or step heapguard journaled), LiveSource, or a --heap-stats file.
type HeapPoint struct {
	Time             time.Time
	PercentFreeOfMax float64
	Source           string
}

// SourceJournal is the source of heap figures read from heapguard's journal.
const SourceJournal = "journal"

// PortSeries is one port's flap cycles per minute of log time.
type PortSeries struct {
	Port    string // "0x3000007"
	Label   string // "DSVA03 (0x3000007)", or the port alone when no VM is known
	Minutes []collector.MinuteCount
}

// Mark kinds.
const (
	MarkHeapMaxed = "heap_maxed" // "already at its maximum size" lines in one minute
	MarkCrash     = "crash"      // an agent's or process's core dump
	MarkPowerOff  = "power_off"  // a journaled power-off
	MarkRestart   = "restart"    // a journaled agent restart
)

// Mark is one moment worth a line on the time axis.
type Mark struct {
	Time   time.Time
	Kind   string
	Label  string // what it is, in a few words: "power off DSVA03"
	Reason string
	Result string // journaled actions: ok, failed, dry_run, skipped, started
	DryRun bool
	Count  int // heap-maxed lines in the minute; 1 otherwise
}

// timelineOf takes the log's series out of a merged summary: cycles per
// minute of every port that had one, heap-maxed lines per minute, crashes.
// sorted are the summary's ports in the order ports were made from them.
func timelineOf(sum *collector.Summary, sorted []*collector.PortSummary, ports []Port, crashes []Crash) Timeline {
	var tl Timeline
	quiet := 0
	for i, p := range ports {
		ps := sorted[i]
		if len(ps.Minutes) == 0 {
			continue
		}
		if len(tl.Ports) >= maxPortSeries || !p.Flapping && quiet >= quietPortSeries {
			tl.PortsLeftOut++
			continue
		}
		if !p.Flapping {
			quiet++
		}
		label := p.Port
		if p.VM != "" {
			label = p.VM + " (" + p.Port + ")"
		}
		tl.Ports = append(tl.Ports, PortSeries{Port: p.Port, Label: label, Minutes: sortedMinutes(ps.Minutes)})
	}
	for _, h := range sum.Heaps {
		if h.Kind != collector.KindHeapMaxed {
			continue
		}
		for _, m := range sortedMinutes(h.Minutes) {
			tl.Marks = append(tl.Marks, Mark{Time: m.Time(), Kind: MarkHeapMaxed, Count: m.Count,
				Label: fmt.Sprintf("%s at its maximum size (%s)", h.Heap, plural(m.Count, "line"))})
		}
	}
	for _, c := range crashes {
		if c.Time.IsZero() {
			continue
		}
		who := c.Agent
		if who == "" {
			who = strings.Join(c.Processes, ", ")
		}
		tl.Marks = append(tl.Marks, Mark{Time: c.Time, Kind: MarkCrash, Count: 1,
			Label: fmt.Sprintf("%s core dump (%s)", who, strings.Join(c.Processes, ", "))})
	}
	return tl
}

// sortedMinutes merges a series into time order: a log whose clock went
// back has a minute twice.
func sortedMinutes(ms []collector.MinuteCount) []collector.MinuteCount {
	if slices.IsSortedFunc(ms, func(a, b collector.MinuteCount) int { return cmp.Compare(a.Minute, b.Minute) }) {
		return ms
	}
	out := slices.Clone(ms)
	slices.SortStableFunc(out, func(a, b collector.MinuteCount) int { return cmp.Compare(a.Minute, b.Minute) })
	merged := out[:0]
	for _, m := range out {
		if n := len(merged); n > 0 && merged[n-1].Minute == m.Minute {
			merged[n-1].Count += m.Count
			continue
		}
		merged = append(merged, m)
	}
	return merged
}

// AddJournal adds what heapguard's journal holds: the heap figures of its
// decisions and steps, and one mark per power-off and agent restart (the
// step's last entry: its result, or "started" when nothing followed).
// Entries before since are left out, as the log's events are. It returns
// how many entries had a time that could not be read (skipped).
func (tl *Timeline) AddJournal(entries []remediate.Entry, since time.Time) (badTime int) {
	type stepKey struct{ plan, action, target, vmid string }
	last := map[stepKey]int{}
	var order []stepKey
	heaps := map[string]map[time.Time]float64{}
	for i, e := range entries {
		t, err := time.Parse(time.RFC3339Nano, e.Time)
		if err != nil {
			badTime++
			continue
		}
		if t.Before(since) {
			continue
		}
		if e.Heap != nil && e.Heap.Name != "" {
			name := heap.BaseName(e.Heap.Name)
			if heaps[name] == nil {
				heaps[name] = map[time.Time]float64{}
			}
			// A plan's entries repeat its figures: one point per time.
			heaps[name][t.UTC()] = e.Heap.PercentFreeOfMax
		}
		if e.Action != policy.ActPowerOff && e.Action != policy.ActRestartAgent {
			continue
		}
		k := stepKey{e.PlanID, string(e.Action), e.Target, e.VMID}
		if _, ok := last[k]; !ok {
			order = append(order, k)
		}
		last[k] = i
	}
	for name, pts := range heaps {
		for t, pct := range pts {
			tl.addHeapPoint(name, HeapPoint{Time: t, PercentFreeOfMax: pct, Source: SourceJournal})
		}
	}
	for _, k := range order {
		e := entries[last[k]]
		t, _ := time.Parse(time.RFC3339Nano, e.Time)
		m := Mark{Time: t.UTC(), Reason: e.Reason, Result: e.Result, DryRun: e.DryRun, Count: 1}
		if e.Action == policy.ActPowerOff {
			m.Kind, m.Label = MarkPowerOff, "power off "+e.Target
		} else {
			m.Kind, m.Label = MarkRestart, "restart "+e.Target
		}
		if e.DryRun {
			m.Label += " (dry run)"
		}
		tl.Marks = append(tl.Marks, m)
	}
	tl.sort()
	return badTime
}

// SourceState is the source of heap figures from the trend window check
// and run save in their state file (their recent samples).
const SourceState = "state"

// AddTrends adds the samples of a saved trend window (the state file of
// check or run): free of max is (max - allocated) / max, as the trend
// sees it. Heaps are chosen as AddHeapSamples chooses them; points before
// since are left out.
func (tl *Timeline) AddTrends(tr heap.Trends, since time.Time) {
	for _, s := range tr.Heaps {
		if s == nil || len(s.Points) == 0 {
			continue
		}
		name := heap.BaseName(s.Heap)
		var pts []HeapPoint
		lowest := 100.0
		for _, p := range s.Points {
			if p.Max <= 0 || p.T.IsZero() || p.T.Before(since) {
				continue
			}
			pct := float64(p.Max-p.Allocated) / float64(p.Max) * 100
			lowest = min(lowest, pct)
			pts = append(pts, HeapPoint{Time: p.T.UTC(), PercentFreeOfMax: pct, Source: SourceState})
		}
		if len(pts) == 0 || !tl.worthDrawing(name, lowest) {
			continue
		}
		for _, p := range pts {
			tl.addHeapPoint(name, p)
		}
	}
	tl.sort()
}

// worthDrawing: a heap the timeline already draws, netGPHeap, or one that
// fell below liveShowBelow % free of max; a host's hundred comfortable
// heaps would bury the one that matters.
func (tl *Timeline) worthDrawing(name string, lowest float64) bool {
	drawn := slices.ContainsFunc(tl.Heaps, func(s HeapSeries) bool { return s.Name == name })
	return drawn || name == "netGPHeap" || lowest < liveShowBelow
}

// AddHeapSamples adds the figures of heaps sampled at t (the live
// sample) that are worth drawing (see worthDrawing).
func (tl *Timeline) AddHeapSamples(heaps []Heap, t time.Time) {
	for _, h := range heaps {
		if h.PercentFreeOfMax == nil || t.IsZero() {
			continue
		}
		name := heap.BaseName(h.Name)
		if !tl.worthDrawing(name, *h.PercentFreeOfMax) {
			continue
		}
		tl.addHeapPoint(name, HeapPoint{Time: t.UTC(), PercentFreeOfMax: *h.PercentFreeOfMax, Source: h.Source})
	}
	tl.sort()
}

func (tl *Timeline) addHeapPoint(name string, p HeapPoint) {
	i := slices.IndexFunc(tl.Heaps, func(s HeapSeries) bool { return s.Name == name })
	if i < 0 {
		tl.Heaps = append(tl.Heaps, HeapSeries{Name: name})
		i = len(tl.Heaps) - 1
	}
	// The journal, the state and the live sample may hold one sample
	// twice (a check journals the figures it saved): the first kept.
	if slices.ContainsFunc(tl.Heaps[i].Points, func(q HeapPoint) bool { return q.Time.Equal(p.Time) }) {
		return
	}
	tl.Heaps[i].Points = append(tl.Heaps[i].Points, p)
}

// sort puts series by name and points and marks by time, so the page is
// the same for the same input.
func (tl *Timeline) sort() {
	slices.SortFunc(tl.Heaps, func(a, b HeapSeries) int { return cmp.Compare(a.Name, b.Name) })
	for i := range tl.Heaps {
		slices.SortStableFunc(tl.Heaps[i].Points, func(a, b HeapPoint) int { return a.Time.Compare(b.Time) })
	}
	slices.SortStableFunc(tl.Marks, func(a, b Mark) int { return a.Time.Compare(b.Time) })
}

// Span is the first and last time anything on the timeline happened; ok is
// false when nothing has a time.
func (tl *Timeline) Span() (first, last time.Time, ok bool) {
	see := func(t time.Time) {
		if t.IsZero() {
			return
		}
		if !ok || t.Before(first) {
			first = t
		}
		if !ok || t.After(last) {
			last = t
		}
		ok = true
	}
	for _, h := range tl.Heaps {
		for _, p := range h.Points {
			see(p.Time)
		}
	}
	for _, p := range tl.Ports {
		if n := len(p.Minutes); n > 0 {
			see(p.Minutes[0].Time())
			see(p.Minutes[n-1].Time().Add(time.Minute))
		}
	}
	for _, m := range tl.Marks {
		see(m.Time)
	}
	return first, last, ok
}
