package collector

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

var t0 = time.Date(2012, 7, 26, 0, 0, 0, 0, time.UTC)

func enabled(port Port, at time.Duration) Event {
	return Event{Kind: KindPortEnabled, Time: t0.Add(at), Port: port, MAC: MAC{0, 0x50, 0x56, 0x84, 0x5a, byte(port)}, MACKnown: true}
}

func disabled(port Port, at time.Duration) Event {
	return Event{Kind: KindPortDisabled, Time: t0.Add(at), Port: port}
}

// every returns n enabled events (each after a disabled one) of port,
// period apart, from start.
func every(port Port, start, period time.Duration, n int) []Event {
	var evs []Event
	for i := range n {
		at := start + time.Duration(i)*period
		evs = append(evs, disabled(port, at-3*time.Millisecond), enabled(port, at))
	}
	return evs
}

func TestFlapTracker(t *testing.T) {
	mac7 := MAC{0, 0x50, 0x56, 0x84, 0x5a, 7}
	tests := []struct {
		name   string
		events []Event
		now    time.Duration
		want   []PortStatus
	}{
		{
			name:   "incident pace: 10 cycles in 27 s flap",
			events: every(7, 0, 3*time.Second, 10),
			now:    28 * time.Second,
			want:   []PortStatus{{Port: 7, MAC: mac7, MACKnown: true, Cycles: 10, First: t0.Add(-3 * time.Millisecond), Last: t0.Add(27 * time.Second), Flapping: true, FlappingSince: t0.Add(27 * time.Second)}},
		},
		{
			name:   "nine cycles are not enough",
			events: every(7, 0, 3*time.Second, 9),
			now:    28 * time.Second,
			want:   []PortStatus{{Port: 7, MAC: mac7, MACKnown: true, Cycles: 9, First: t0.Add(-3 * time.Millisecond), Last: t0.Add(24 * time.Second)}},
		},
		{
			name:   "slow cycles (one a minute) never flap",
			events: every(7, 0, time.Minute, 30),
			now:    29*time.Minute + time.Second,
			want:   []PortStatus{{Port: 7, MAC: mac7, MACKnown: true, Cycles: 5, First: t0.Add(-3 * time.Millisecond), Last: t0.Add(29 * time.Minute)}},
		},
		{
			name:   "still flapping just under W after the last cycle",
			events: every(7, 0, 3*time.Second, 12),
			now:    33*time.Second + 5*time.Minute - time.Millisecond,
			want:   []PortStatus{{Port: 7, MAC: mac7, MACKnown: true, Cycles: 1, First: t0.Add(-3 * time.Millisecond), Last: t0.Add(33 * time.Second), Flapping: true, FlappingSince: t0.Add(27 * time.Second)}},
		},
		{
			name:   "idle for longer than W: forgotten",
			events: every(7, 0, 3*time.Second, 12),
			now:    33*time.Second + 5*time.Minute + time.Millisecond,
			want:   []PortStatus{},
		},
		{
			name:   "disabled lines only: seen, no cycles",
			events: []Event{disabled(5, 0), disabled(5, time.Second), {Kind: KindHeapMaxed, Time: t0, Heap: "netGPHeap"}},
			now:    2 * time.Second,
			want:   []PortStatus{{Port: 5, First: t0, Last: t0.Add(time.Second)}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ft := NewFlapTracker(0, 0) // defaults: 10 in 5 minutes
			for _, ev := range tt.events {
				ft.Observe(ev)
			}
			if diff := cmp.Diff(tt.want, ft.Status(t0.Add(tt.now))); diff != "" {
				t.Errorf("Status (-want +got):\n%s", diff)
			}
		})
	}
}

// A flap that ended and starts again gets a new FlappingSince.
func TestFlapTrackerRestarts(t *testing.T) {
	ft := NewFlapTracker(3, time.Minute)
	for _, ev := range every(1, 0, time.Second, 3) {
		ft.Observe(ev)
	}
	for _, ev := range every(1, 10*time.Minute, time.Second, 3) {
		ft.Observe(ev)
	}
	st := ft.Status(t0.Add(10*time.Minute + 3*time.Second))
	if len(st) != 1 || !st[0].Flapping || !st[0].FlappingSince.Equal(t0.Add(10*time.Minute+2*time.Second)) {
		t.Errorf("status: %+v", st)
	}
}

// The state survives a save through JSON (the cron mode) and stays bounded.
func TestFlapTrackerSnapshot(t *testing.T) {
	ft := NewFlapTracker(10, 5*time.Minute)
	var evs []Event
	evs = append(evs, every(3, 0, 3*time.Second, 1618)...)
	evs = append(evs, every(9, 0, 3*time.Second, 2)...) // idle long before the end
	for _, ev := range evs {
		ft.Observe(ev)
	}
	snap := ft.Snapshot()
	if len(snap.Ports) != 1 || len(snap.Ports[0].CycleTimes) != 10 {
		t.Fatalf("snapshot not bounded: %d ports, %+v", len(snap.Ports), snap.Ports)
	}
	b, err := json.Marshal(snap)
	if err != nil {
		t.Fatal(err)
	}
	var back FlapState
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(snap, back); diff != "" {
		t.Errorf("JSON round trip (-want +got):\n%s", diff)
	}
	restored := RestoreFlapTracker(back)
	now := t0.Add(1618*3*time.Second + time.Second)
	if diff := cmp.Diff(ft.Status(now), restored.Status(now)); diff != "" {
		t.Errorf("restored Status (-want +got):\n%s", diff)
	}
	// The next run goes on where the last stopped.
	next := enabled(3, 1618*3*time.Second+2*time.Second)
	ft.Observe(next)
	restored.Observe(next)
	if diff := cmp.Diff(ft.Snapshot(), restored.Snapshot()); diff != "" {
		t.Errorf("after one more event (-want +got):\n%s", diff)
	}
}

func TestRestoreFlapTrackerSanitizes(t *testing.T) {
	var times []time.Time
	for i := range 50 {
		times = append(times, t0.Add(time.Duration(i)*time.Second))
	}
	ft := RestoreFlapTracker(FlapState{Ports: []FlapPortState{{Port: 1, Last: times[49], LastCycle: times[49], CycleTimes: times}}})
	snap := ft.Snapshot()
	if snap.Cycles != DefaultFlapCycles || snap.Window != DefaultFlapWindow {
		t.Errorf("defaults not applied: %d %v", snap.Cycles, snap.Window)
	}
	if got := snap.Ports[0].CycleTimes; len(got) != 10 || !got[9].Equal(times[49]) {
		t.Errorf("cycle times: %v", got)
	}
}

// TestFlapTrackerNewMACOnPort: a port id handed to another NIC does not
// pass the old NIC's flaps on to it (review finding: an innocent VM
// inheriting a flapping history).
func TestFlapTrackerNewMACOnPort(t *testing.T) {
	tr := NewFlapTracker(10, 5*time.Minute)
	for _, ev := range every(7, 0, 3*time.Second, 12) {
		tr.Observe(ev)
	}
	other := enabled(7, 40*time.Second)
	other.MAC[5] = 0x99
	tr.Observe(other)
	st := tr.Status(t0.Add(41 * time.Second))
	if len(st) != 1 || st[0].Flapping || st[0].Cycles != 1 || st[0].MAC != other.MAC {
		t.Fatalf("status %+v: want the new NIC with 1 cycle, not flapping", st)
	}
}

// TestFlapTrackerForget: a forgotten port needs new cycles to flap again.
func TestFlapTrackerForget(t *testing.T) {
	tr := NewFlapTracker(10, 5*time.Minute)
	for _, ev := range every(7, 0, 3*time.Second, 12) {
		tr.Observe(ev)
	}
	tr.Forget(7)
	if st := tr.Status(t0.Add(40 * time.Second)); len(st) != 0 {
		t.Fatalf("status %+v after Forget, want nothing", st)
	}
	for _, ev := range every(7, time.Minute, 3*time.Second, 3) {
		tr.Observe(ev)
	}
	if st := tr.Status(t0.Add(70 * time.Second)); len(st) != 1 || st[0].Flapping {
		t.Fatalf("status %+v: 3 new cycles must not flap", st)
	}
}

// TestFlapTrackerWindowEdges pins each comparison at exactly the window:
// cycles spanning exactly W start a flap, and a flap lasts until more than
// W passes without a cycle (both inclusive, as the doc says "within
// window" and "window passes"); Status's Cycles counts only cycles less
// than W before now.
func TestFlapTrackerWindowEdges(t *testing.T) {
	const w = time.Minute
	type got struct {
		Listed   bool
		Cycles   int
		Flapping bool
		Since    time.Duration
	}
	tests := []struct {
		name   string
		cycles []time.Duration
		now    time.Duration
		want   got
	}{
		// Fails if Observe starts a flap only when the cycles span less than W.
		{"3 cycles spanning exactly W flap", []time.Duration{0, 30 * time.Second, w}, w + time.Millisecond,
			got{true, 2, true, w}},
		{"3 cycles spanning just over W do not", []time.Duration{0, 30 * time.Second, w + 1}, w + time.Millisecond,
			got{true, 2, false, 0}},
		// Fails if Status counts a cycle exactly W before now.
		{"a cycle exactly W old is not counted", []time.Duration{0, 10 * time.Second}, w,
			got{true, 1, false, 0}},
		{"a cycle just under W old is", []time.Duration{0, 10 * time.Second}, w - 1,
			got{true, 2, false, 0}},
		// Fails if Status ends a flap when exactly W has passed since its last cycle.
		// (Flapping with 0 Cycles: the two Status comparisons differ at W.)
		{"still flapping exactly W after the last cycle", []time.Duration{0, time.Second, 2 * time.Second}, 2*time.Second + w,
			got{true, 0, true, 2 * time.Second}},
		{"gone just over W after the last cycle", []time.Duration{0, time.Second, 2 * time.Second}, 2*time.Second + w + 1,
			got{}},
		// Fails if Observe ends a flap at a cycle exactly W after the last one.
		{"a cycle exactly W after the last continues the flap", []time.Duration{0, time.Second, 2 * time.Second, 2*time.Second + w}, 2*time.Second + w,
			got{true, 1, true, 2 * time.Second}},
		{"a cycle just over W after the last does not", []time.Duration{0, time.Second, 2 * time.Second, 2*time.Second + w + 1}, 2*time.Second + w + 1,
			got{true, 1, false, 0}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ft := NewFlapTracker(3, w)
			for _, at := range tt.cycles {
				ft.Observe(enabled(7, at))
			}
			var g got
			if st := ft.Status(t0.Add(tt.now)); len(st) == 1 {
				g = got{Listed: true, Cycles: st[0].Cycles, Flapping: st[0].Flapping}
				if !st[0].FlappingSince.IsZero() {
					g.Since = st[0].FlappingSince.Sub(t0)
				}
			} else if len(st) > 1 {
				t.Fatalf("status %+v: want one port", st)
			}
			if diff := cmp.Diff(tt.want, g); diff != "" {
				t.Errorf("Status at %v (-want +got):\n%s", tt.now, diff)
			}
		})
	}
}
