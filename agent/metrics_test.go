package agent

import (
	"errors"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/heapguard/heapguard/collector"
	"github.com/heapguard/heapguard/metrics"
	"github.com/heapguard/heapguard/policy"
	"github.com/heapguard/heapguard/remediate"
)

// TestMetricsCounters: what the running totals count, and what resets a
// port's series or drops it.
func TestMetricsCounters(t *testing.T) {
	now := time.Date(2026, 4, 10, 8, 0, 0, 0, time.UTC)
	macA, _ := collector.ParseMAC("00:50:56:84:5a:a1")
	macB, _ := collector.ParseMAC("00:50:56:84:5a:b2")
	enabled := func(port collector.Port, mac collector.MAC, at time.Time) collector.Event {
		return collector.Event{Kind: collector.KindPortEnabled, Port: port, MAC: mac, MACKnown: true, Time: at}
	}
	w := &Watcher{tracker: collector.NewFlapTracker(0, 0)}
	for i := range 3 {
		w.countCycle(enabled(0x10, macA, now.Add(time.Duration(i-60)*time.Second)))
		w.countCycle(collector.Event{Kind: collector.KindPortDisabled, Port: 0x10, Time: now.Add(-time.Minute)})
	}
	w.countCycle(enabled(0x10, macA, time.Time{}))                                        // no time: in no window, not counted
	w.countCycle(collector.Event{Kind: collector.KindPortEnabled, Port: 0x11, Time: now}) // MAC masked
	w.countCycle(enabled(0x12, macA, now.Add(-25*time.Hour)))                             // quiet too long
	w.countCycle(enabled(0x13, macA, now.Add(-26*time.Hour)))                             // old, but flapping now
	w.countOutcomes([]remediate.Outcome{
		{Action: policy.Action{Kind: policy.ActPowerOff}, Result: remediate.ResultOK},
		{Action: policy.Action{Kind: policy.ActPowerOff}, Result: remediate.ResultOK},
		{Action: policy.Action{Kind: policy.ActPowerOff}, Result: remediate.ResultSkipped},
	})
	obs := policy.Observations{
		Flapping: []policy.FlapObs{
			{Port: "0x13", MAC: "00:50:56:84:5a:a1", Cycles: 10, VM: &policy.VMRef{Name: `DSVA "01"`}},
			{Port: "0x14", MAC: "00:50:56:84:5a:a4", Cycles: 12}, // tracked before the totals were kept
		},
		HeapErr: "vsish: timed out",
		Guards:  &policy.GuardObs{PowerOffsLeft: 1, BreakerOpen: true},
	}
	w.logErr = "permission denied"
	s := w.snapshot(now, obs)
	want := []metrics.Port{
		{Port: "0x10", MAC: "00:50:56:84:5a:a1", Cycles: 3},
		{Port: "0x11", Cycles: 1},
		{Port: "0x13", MAC: "00:50:56:84:5a:a1", VM: `DSVA "01"`, Cycles: 1, Flapping: true},
		{Port: "0x14", MAC: "00:50:56:84:5a:a4", Cycles: 12, Flapping: true},
	}
	if d := cmp.Diff(want, s.Ports); d != "" {
		t.Errorf("ports (-want +got):\n%s", d)
	}
	if d := cmp.Diff([]metrics.ActionCount{{Action: "power_off", Result: "ok", Count: 2}, {Action: "power_off", Result: "skipped", Count: 1}}, s.Actions); d != "" {
		t.Errorf("actions (-want +got):\n%s", d)
	}
	if d := cmp.Diff([]metrics.SourceError{{Source: "heaps", Error: "vsish: timed out"}, {Source: "log", Error: "permission denied"}}, s.Errors); d != "" {
		t.Errorf("errors (-want +got):\n%s", d)
	}
	if s.PowerOffsLeft != 1 || !s.BreakerOpen || !s.Time.Equal(now) {
		t.Errorf("guards and time: %+v", s)
	}

	// The port id given to another NIC: a new series from 0. The VM stays
	// on a port no longer looked up.
	w.countCycle(enabled(0x10, macB, now))
	w.countCycle(enabled(0x13, macA, now))
	s = w.snapshot(now.Add(time.Minute), policy.Observations{})
	want = []metrics.Port{
		{Port: "0x10", MAC: "00:50:56:84:5a:b2", Cycles: 1},
		{Port: "0x11", Cycles: 1},
		{Port: "0x13", MAC: "00:50:56:84:5a:a1", VM: `DSVA "01"`, Cycles: 2},
		{Port: "0x14", MAC: "00:50:56:84:5a:a4", Cycles: 12},
	}
	if d := cmp.Diff(want, s.Ports); d != "" {
		t.Errorf("after a new NIC (-want +got):\n%s", d)
	}
}

// TestTextfileWriteBounded: a textfile write that hangs (a datastore that
// stopped answering) holds the poll up only until the wait expires; while
// it hangs, later writes are skipped at once, not queued; once it ends,
// writing resumes.
func TestTextfileWriteBounded(t *testing.T) {
	release, started := make(chan struct{}), make(chan struct{}, 4)
	var tw textfileWriter
	tw.writeFn = func(string, metrics.Snapshot) error {
		started <- struct{}{}
		<-release
		return nil
	}
	expire := make(chan time.Time)
	result := make(chan error, 1)
	go func() { result <- tw.write("dir", metrics.Snapshot{}, expire) }()
	<-started
	close(expire) // the wait is over while the write still hangs
	if err := <-result; err == nil || !strings.Contains(err.Error(), "not done in time") {
		t.Fatalf("hung write: %v, want a timeout error", err)
	}
	if err := tw.write("dir", metrics.Snapshot{}, nil); !errors.Is(err, errTextfileBusy) {
		t.Fatalf("second write while the first hangs: %v, want errTextfileBusy at once", err)
	}
	release <- struct{}{}
	for deadline := time.Now().Add(5 * time.Second); tw.busy.Load(); runtime.Gosched() { // the hung write ends by itself
		if time.Now().After(deadline) {
			t.Fatal("the writer still counts as busy after its write ended")
		}
	}
	go func() { result <- tw.write("dir", metrics.Snapshot{}, nil) }()
	<-started
	release <- struct{}{}
	if err := <-result; err != nil {
		t.Fatalf("write after the folder answered again: %v", err)
	}
}
