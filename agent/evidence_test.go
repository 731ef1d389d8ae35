package agent

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/heapguard/heapguard/collector"
	"github.com/heapguard/heapguard/heap"
	"github.com/heapguard/heapguard/host"
	"github.com/heapguard/heapguard/policy"
	"github.com/heapguard/heapguard/remediate"
)

// TestEvidence: which heap-exhausted lines count as hard evidence, and the
// printed 0 % that counts too.
func TestEvidence(t *testing.T) {
	now := time.Date(2026, 4, 10, 8, 0, 0, 0, time.UTC)
	maxed := func(heapName string, at time.Time) collector.Event {
		return collector.Event{Kind: collector.KindHeapMaxed, Heap: heapName, Time: at}
	}
	printed := func(pct int64) heap.Sample {
		return heap.Sample{Name: "netGPHeap", Fields: []heap.Field{{Key: heap.KeyPercentFreeOfMax, Num: pct, IsNum: true}}}
	}
	for _, tc := range []struct {
		name       string
		lastSample time.Time
		events     []collector.Event
		sample     heap.Sample
		want       string // "" or a part of the evidence
	}{
		{"no line", now.Add(-time.Minute), nil, printed(12), ""},
		{"newer than the last sample", now.Add(-time.Minute), []collector.Event{maxed("netGPHeap", now.Add(-30*time.Second))}, printed(12), "ran out: 1 line since the last sample"},
		{"as old as the last sample", now.Add(-time.Minute), []collector.Event{maxed("netGPHeap", now.Add(-time.Minute))}, printed(12), ""},
		{"another heap", now.Add(-time.Minute), []collector.Event{maxed("vmfs3", now)}, printed(12), ""},
		{"no time on the line", now.Add(-time.Minute), []collector.Event{maxed("netGPHeap", time.Time{})}, printed(12), ""},
		{"first sample, recent line", time.Time{}, []collector.Event{maxed("netGPHeap", now.Add(-14*time.Minute))}, printed(12), "1 line since the last sample"},
		{"first sample, old line", time.Time{}, []collector.Event{maxed("netGPHeap", now.Add(-16*time.Minute))}, printed(12), ""},
		{"counted, last kept", now.Add(-time.Minute), []collector.Event{
			maxed("netGPHeap", now.Add(-10*time.Second)),
			{Kind: collector.KindHeapAlignFailed, Heap: "netGPHeap", Time: now.Add(-20 * time.Second)},
		}, printed(12), "2 lines since the last sample, the last at 2026-04-10T07:59:50Z"},
		{"after a long stop, old line", now.Add(-2 * time.Hour), []collector.Event{maxed("netGPHeap", now.Add(-30*time.Minute))}, printed(12), ""},
		{"after a long stop, recent line", now.Add(-2 * time.Hour), []collector.Event{maxed("netGPHeap", now.Add(-5*time.Minute))}, printed(12), "1 line since"},
		{"last sample in the future (clock stepped back)", now.Add(time.Hour), []collector.Event{maxed("netGPHeap", now.Add(-time.Minute))}, printed(12), "1 line since"},
		{"vsish prints 0%", now.Add(-time.Minute), nil, printed(0), "vsish prints 0% free of max"},
		{"vsish prints 1%", now.Add(-time.Minute), nil, printed(1), ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := &Watcher{opt: Options{Clock: host.NewManualClock(now)}}
			w.st.LastSample = tc.lastSample
			for _, ev := range tc.events {
				w.sawExhausted(ev)
			}
			got := w.evidence("netGPHeap", tc.sample)
			if tc.want == "" && got != "" || !strings.Contains(got, tc.want) {
				t.Errorf("evidence = %q, want %q", got, tc.want)
			}
		})
	}
}

// TestEvidenceAfterAPlan: lines logged while a plan's steps ran (a
// shutdown may take two minutes) are not evidence at the next poll; lines
// after the plan ended are. A plan whose steps were all skipped changed
// nothing, so what is logged after its sample still counts.
func TestEvidenceAfterAPlan(t *testing.T) {
	poll := time.Date(2026, 4, 10, 8, 0, 0, 0, time.UTC)
	maxed := func(at time.Time) collector.Event {
		return collector.Event{Kind: collector.KindHeapMaxed, Heap: "netGPHeap", Time: at}
	}
	ran := []remediate.Outcome{{Action: policy.Action{Kind: policy.ActPowerOff}, Result: remediate.ResultOK}}
	skipped := []remediate.Outcome{{Action: policy.Action{Kind: policy.ActPowerOff}, Result: remediate.ResultSkipped}}
	for _, tc := range []struct {
		name string
		outs []remediate.Outcome
		line time.Time
		want bool
	}{
		{"logged during the plan", ran, poll.Add(time.Minute), false},
		{"logged after the plan", ran, poll.Add(3 * time.Minute), true},
		{"all skipped, logged after the sample", skipped, poll.Add(time.Minute), true},
		{"no plan, logged after the sample", nil, poll.Add(time.Minute), true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			clock := host.NewManualClock(poll)
			w := &Watcher{opt: Options{Clock: clock}}
			clock.Advance(2 * time.Minute) // the plan's steps take two minutes
			w.judged(poll, tc.outs)
			clock.Advance(3 * time.Minute) // the next poll reads the log
			w.sawExhausted(maxed(tc.line))
			if got := w.evidence("netGPHeap", heap.Sample{}) != ""; got != tc.want {
				t.Errorf("evidence %v, want %v", got, tc.want)
			}
		})
	}
}

// TestEvidenceKeptOverABlindPoll: a check whose poll could not sample the
// heaps has read the lines past its saved log position; the evidence
// goes with the saved state to the next check, and ages out as new lines
// do.
func TestEvidenceKeptOverABlindPoll(t *testing.T) {
	now := time.Date(2026, 4, 10, 8, 0, 0, 0, time.UTC)
	clock := host.NewManualClock(now)
	w := &Watcher{opt: Options{Clock: clock}}
	w.st.LastSample = now.Add(-5 * time.Minute)
	w.sawExhausted(collector.Event{Kind: collector.KindHeapMaxed, Heap: "netGPHeap", Time: now.Add(-time.Minute)})
	// The blind poll does not call judged; the state is saved and read
	// back by the next check.
	b, err := json.Marshal(w.st)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		after time.Duration
		want  bool
	}{{5 * time.Minute, true}, {20 * time.Minute, false}} {
		next := &Watcher{opt: Options{Clock: host.NewManualClock(now.Add(tc.after))}}
		if err := json.Unmarshal(b, &next.st); err != nil {
			t.Fatal(err)
		}
		if got := next.evidence("netGPHeap", heap.Sample{}) != ""; got != tc.want {
			t.Errorf("next check %s later: evidence %v, want %v", tc.after, got, tc.want)
		}
	}
}
