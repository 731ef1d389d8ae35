package agent

import (
	"encoding/json"
	"math"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/heapguard/heapguard/collector"
	"github.com/heapguard/heapguard/heap"
	"github.com/heapguard/heapguard/policy"
)

// FuzzSavedState loads state.json with any content, as loadState does: a
// file that does not parse is replaced by a fresh state; one that parses
// (whatever its numbers say) must not break the flap tracker, the trends
// or the policy, and the tracker restored from it is a fixed point:
// saving and restoring it again changes nothing.
func FuzzSavedState(f *testing.F) {
	t0 := time.Date(2014, 6, 10, 6, 0, 0, 0, time.UTC)
	tr := collector.NewFlapTracker(0, 0)
	port, _ := collector.ParsePort("0x3000007")
	mac, _ := collector.ParseMAC("00:50:56:84:5a:b4")
	for i := range 12 {
		at := t0.Add(time.Duration(i) * 3 * time.Second)
		tr.Observe(collector.Event{Kind: collector.KindPortDisabled, Time: at, Port: port})
		tr.Observe(collector.Event{Kind: collector.KindPortEnabled, Time: at.Add(time.Second), Port: port, MAC: mac, MACKnown: true})
	}
	var trends heap.Trends
	ser := &heap.Series{Heap: "netGPHeap"}
	for i := range 10 {
		ser.Add(trends.Config, "netGPHeap-0x410001000000", heap.Point{T: t0.Add(time.Duration(i) * 10 * time.Second), Allocated: 40e6 + int64(i)*6e4, Max: 64 << 20})
	}
	trends.Heaps = map[string]*heap.Series{"netGPHeap": ser}
	_, pst := policy.Decide(policy.DefaultConfig(), policy.State{}, policy.Observations{Time: t0, Heaps: []policy.HeapObs{{Name: "netGPHeap", PercentFreeOfMax: 5}}})
	good, err := json.Marshal(savedState{Version: 1, Flaps: tr.Snapshot(), Trends: trends, Policy: pst, Saved: t0, LastSample: t0,
		Actions: map[string]uint64{"power_off ok": 1}})
	if err != nil {
		f.Fatal(err)
	}
	f.Add(good, false)
	f.Add([]byte(`{"version":1,"flaps":{"cycles":-1,"window_ns":-5,"ports":[{"port":"0x1","cycle_times":["2099-01-01T00:00:00Z","0001-01-01T00:00:00Z"]}]}}`), true)
	f.Add([]byte(`{"version":1,"trends":{"config":{"max_points":-3},"heaps":{"x":null,"y":{"points":[{"t":"2014-06-10T06:00:00Z","allocated":-1,"max":0}]}}}}`), false)
	f.Add([]byte(`{"policy":{"heaps":{"netGPHeap":{"level":"CRITICAL","crit_polls":-9}}}}`), false)
	f.Add([]byte("{"), false)
	f.Fuzz(func(t *testing.T, b []byte, limits bool) {
		var st savedState
		if json.Unmarshal(b, &st) != nil {
			return // loadState starts afresh
		}
		cycles, window := 0, time.Duration(0)
		if limits {
			cycles, window = 5, time.Minute
		}
		tr := collector.RestoreFlapTracker(withFlapLimits(st.Flaps, cycles, window))
		snap := tr.Snapshot()
		if diff := cmp.Diff(snap, collector.RestoreFlapTracker(snap).Snapshot()); diff != "" {
			t.Fatalf("restoring a restored tracker changed it (-first +second):\n%s", diff)
		}
		now := t0.Add(time.Hour)
		if !st.Flaps.LogTime.IsZero() {
			now = st.Flaps.LogTime.Add(time.Second)
		}
		tr.Observe(collector.Event{Kind: collector.KindPortDisabled, Time: now, Port: port})
		tr.Observe(collector.Event{Kind: collector.KindPortEnabled, Time: now.Add(time.Second), Port: port, MAC: mac, MACKnown: true})
		for _, ps := range tr.Status(now.Add(time.Second)) {
			if ps.Cycles < 0 || ps.Flapping && ps.Cycles == 0 {
				t.Fatalf("port status %+v", ps)
			}
		}
		for name, s := range st.Trends.Heaps {
			if s == nil {
				continue
			}
			s.Add(st.Trends.Config, name, heap.Point{T: now, Allocated: 1 << 20, Max: 64 << 20})
			got := s.Trend(st.Trends.Config)
			if math.IsNaN(got.BytesPerSecond) || math.IsInf(got.BytesPerSecond, 0) || got.TimeToExhaustion < 0 {
				t.Fatalf("trend of %s: %+v", name, got)
			}
		}
		cfg := policy.DefaultConfig()
		cfg.PowerOffAllow = []string{"DSVA*"}
		obs := policy.Observations{Time: now, Heaps: []policy.HeapObs{{Name: "netGPHeap", PercentFreeOfMax: 3}},
			Flapping: []policy.FlapObs{{Port: "0x3000007", Cycles: 12, VM: &policy.VMRef{ID: "3", Name: "other", PoweredOn: true}}}}
		p, _ := policy.Decide(cfg, st.Policy, obs)
		for _, a := range p.Actions {
			if a.Kind == policy.ActPowerOff && a.Skipped == "" {
				t.Fatalf("a damaged state let a VM outside the allow-list be powered off: %+v", a)
			}
		}
	})
}
