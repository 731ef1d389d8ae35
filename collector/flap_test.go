package collector

import (
	"encoding/json"
	"math"
	"slices"
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
			name:   "flapping while the oldest of the last 10 cycles is in the window",
			events: every(7, 0, 3*time.Second, 12),
			now:    6*time.Second + 5*time.Minute,
			want:   []PortStatus{{Port: 7, MAC: mac7, MACKnown: true, Cycles: 10, First: t0.Add(-3 * time.Millisecond), Last: t0.Add(33 * time.Second), Flapping: true, FlappingSince: t0.Add(27 * time.Second)}},
		},
		{
			name:   "not once it has left: 9 cycles remain",
			events: every(7, 0, 3*time.Second, 12),
			now:    6*time.Second + 5*time.Minute + time.Millisecond,
			want:   []PortStatus{{Port: 7, MAC: mac7, MACKnown: true, Cycles: 9, First: t0.Add(-3 * time.Millisecond), Last: t0.Add(33 * time.Second)}},
		},
		{
			name:   "idle for longer than W: forgotten",
			events: every(7, 0, 3*time.Second, 12),
			now:    33*time.Second + 5*time.Minute + time.Millisecond,
			want:   []PortStatus{},
		},
		{
			name:   "disabled lines only: seen, no cycles, down",
			events: []Event{disabled(5, 0), disabled(5, time.Second), {Kind: KindHeapMaxed, Time: t0, Heap: "netGPHeap"}},
			now:    2 * time.Second,
			want:   []PortStatus{{Port: 5, First: t0, Last: t0.Add(time.Second), Down: true, DownSince: t0.Add(time.Second)}},
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
	evs = append(evs, every(9, 0, 3*time.Second, 2)...) // idle long before the end
	evs = append(evs, every(3, 0, 3*time.Second, 1618)...)
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
	ft := RestoreFlapTracker(FlapState{Ports: []FlapPortState{{Port: 1, Last: times[49], CycleTimes: times}}})
	snap := ft.Snapshot()
	if snap.Cycles != DefaultFlapCycles || snap.Window != DefaultFlapWindow {
		t.Errorf("defaults not applied: %d %v", snap.Cycles, snap.Window)
	}
	if got := snap.Ports[0].CycleTimes; len(got) != 10 || !got[9].Equal(times[49]) {
		t.Errorf("cycle times: %v", got)
	}
}

// TestFlapTrackerNewMACOnPort: a port id handed to another NIC does not
// pass the old NIC's flaps on to it: an innocent VM would inherit a
// flapping history.
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

// view is what a story checks of one port's status.
type view struct {
	Listed   bool
	Cycles   int
	Flapping bool
	Since    time.Duration // FlappingSince after t0, when set
}

func viewOf(st []PortStatus, port Port) view {
	for _, s := range st {
		if s.Port == port {
			v := view{Listed: true, Cycles: s.Cycles, Flapping: s.Flapping}
			if !s.FlappingSince.IsZero() {
				v.Since = s.FlappingSince.Sub(t0)
			}
			return v
		}
	}
	return view{}
}

// step observes events, then checks port 7 at now.
type step struct {
	observe []Event
	now     time.Duration
	want    view
}

// runSteps plays steps on ft and reports each check that fails.
func runSteps(t *testing.T, ft *FlapTracker, steps []step) {
	t.Helper()
	for i, s := range steps {
		for _, ev := range s.observe {
			ft.Observe(ev)
		}
		if diff := cmp.Diff(s.want, viewOf(ft.Status(t0.Add(s.now)), 7)); diff != "" {
			t.Errorf("step %d, Status at %v (-want +got):\n%s", i, s.now, diff)
		}
	}
}

// cyclesAt returns enabled events of port at the given times, in that order.
func cyclesAt(port Port, at ...time.Duration) []Event {
	var evs []Event
	for _, a := range at {
		evs = append(evs, enabled(port, a))
	}
	return evs
}

// TestFlapTrackerWindowEdges pins each boundary on both sides, with 3
// cycles in a 1-minute window: the window ending at R holds R-W and R, a
// port is kept while its last event is at most W before R, a cycle at
// R+skew is kept and one later dropped, and a flap that touches the last
// one continues its run.
func TestFlapTrackerWindowEdges(t *testing.T) {
	const w = time.Minute
	sec := time.Second
	tests := []struct {
		name  string
		steps []step
	}{
		// Fails if the window's lower edge excludes R-W (Observe's judgement
		// or Status's count).
		{"cycles spanning exactly W flap", []step{
			{cyclesAt(7, 0, 30*sec, w), w, view{true, 3, true, w}}}},
		{"cycles spanning just over W do not", []step{
			{cyclesAt(7, 0, 30*sec, w+1), w + 1, view{true, 2, false, 0}}}},
		{"flapping while the oldest cycle is exactly W before R", []step{
			{cyclesAt(7, 0, sec, 2*sec), w, view{true, 3, true, 2 * sec}}}},
		{"not once it is just over W before R", []step{
			{cyclesAt(7, 0, sec, 2*sec), w + 1, view{true, 2, false, 0}}}},
		// Fails if a cycle at R is left out, or one after R counted. Port 8's
		// line sets the last log time, so R is the caller's now.
		{"a cycle exactly at R counts", []step{
			{append(cyclesAt(7, 0, sec, 2*sec), disabled(8, sec)), 2 * sec, view{true, 3, true, 2 * sec}}}},
		{"a cycle just after R does not count yet", []step{
			{append(cyclesAt(7, 0, sec, 2*sec), disabled(8, sec)), 2*sec - 1, view{true, 2, false, 0}}}},
		// Fails if a port is forgotten with its last event exactly W before R,
		// or kept just over.
		{"a port whose last event is exactly W before R is kept", []step{
			{cyclesAt(7, 0, sec, 2*sec), 2*sec + w, view{true, 1, false, 0}}}},
		{"a port whose last event is just over W before R is forgotten", []step{
			{cyclesAt(7, 0, sec, 2*sec), 2*sec + w + 1, view{}}}},
		// Fails if a cycle exactly skew after R is dropped, or one just later
		// kept: port 8's line takes R back, then now brings it forward again.
		{"a cycle exactly skew after R is kept", []step{
			{append(cyclesAt(7, 0, sec, 2*sec), disabled(8, 2*sec-flapSkew)), 2*sec - flapSkew, view{Listed: true}},
			{nil, 2 * sec, view{true, 3, true, 2 * sec}}}},
		{"a cycle just over skew after R is dropped for good", []step{
			{append(cyclesAt(7, 0, sec, 2*sec), disabled(8, 2*sec-flapSkew-1)), 2*sec - flapSkew - 1, view{Listed: true}},
			{nil, 2 * sec, view{true, 2, false, 0}}}},
		// Fails if a flap starting exactly where the last ended (its oldest
		// cycle leaving the window) gets a new FlappingSince, or one starting
		// just later does not.
		{"a flap that touches the last one continues its run", []step{
			{cyclesAt(7, 0, sec, 2*sec, w), w, view{true, 3, true, 2 * sec}}}},
		{"a flap just after the last one ended starts a new run", []step{
			{cyclesAt(7, 0, sec, 2*sec, w+1), w + 1, view{true, 3, true, w + 1}}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			runSteps(t, NewFlapTracker(3, w), tt.steps)
		})
	}
}

// line is a log line and the caller's clock when it is read.
type line struct {
	ev   Event
	read time.Duration
}

// readAt returns evs read at their own times plus lag.
func readAt(lag time.Duration, evs ...Event) []line {
	var out []line
	for _, ev := range evs {
		out = append(out, line{ev, ev.Time.Sub(t0) + lag})
	}
	return out
}

// readAll returns evs all read at now.
func readAll(now time.Duration, evs ...Event) []line {
	var out []line
	for _, ev := range evs {
		out = append(out, line{ev, now})
	}
	return out
}

// overAnHour is port 7's ten cycles (each after a disabled line) 6.5
// minutes apart, in time order: never ten within 5 minutes.
func overAnHour() [][]Event {
	var pairs [][]Event
	for i := range 10 {
		pairs = append(pairs, every(7, time.Duration(i)*6*time.Minute+time.Duration(i)*30*time.Second, 0, 1))
	}
	return pairs
}

// burst is port 7's ten cycles 25 s apart from 0 to 225 s, in the order
// given (indexes into time order).
func burst(order ...int) []Event {
	var evs []Event
	for _, i := range order {
		evs = append(evs, enabled(7, time.Duration(i)*25*time.Second))
	}
	return evs
}

// TestFlapTrackerLineOrder: cycles count by their own times whatever order
// their lines arrive in. Status is called after every line; a port must
// never flap with fewer cycles than the threshold.
func TestFlapTrackerLineOrder(t *testing.T) {
	hour := overAnHour()
	lastEarly := slices.Concat(hour[9], slices.Concat(hour[:9]...)) // 58.5 min stamp logged first
	firstLate := slices.Concat(slices.Concat(hour[1:]...), hour[0]) // 0 min stamp logged last
	written := func(evs []Event, misplaced int, at time.Duration) []line {
		l := readAt(0, evs...)
		for i := range misplaced {
			l[i].read = at
		}
		return l
	}
	tests := []struct {
		name  string
		lines []line
		// flapsFrom is the first line after which port 7 flaps (to the
		// end); -1 for never.
		flapsFrom int
		final     view
	}{
		// Fails if cycles are kept in arrival order and the flap is judged
		// from the first one pushed: a flap reported with 2 cycles.
		{"ten cycles over an hour, one line 59 minutes early, read as written: never a flap",
			written(lastEarly, 2, 0), -1, view{true, 1, false, 0}},
		{"the same read at once an hour later: never a flap",
			readAll(time.Hour, lastEarly...), -1, view{true, 1, false, 0}},
		{"ten cycles over an hour, one line 59 minutes late: never a flap",
			slices.Concat(readAt(0, firstLate[:18]...), readAll(firstLate[17].Time.Sub(t0), hour[0]...)), -1, view{true, 1, false, 0}},
		{"a burst of ten cycles in 5 minutes, lines shuffled: flaps once all are read",
			readAll(4*time.Minute, burst(3, 7, 0, 9, 5, 1, 8, 2, 6, 4)...), 9, view{true, 10, true, 225 * time.Second}},
		// Fails if a line is placed by arrival: the stray one would push a
		// burst cycle out.
		{"a stray line 10 minutes older after the burst does not push a burst cycle out",
			readAll(4*time.Minute, append(burst(3, 7, 0, 9, 5, 1, 8, 2, 6, 4), enabled(7, -10*time.Minute))...), 9, view{true, 10, true, 225 * time.Second}},
		{"lines read 3 minutes after their stamps flap on their own times",
			readAt(3*time.Minute, every(7, 0, 3*time.Second, 10)...), 19, view{true, 10, true, 27 * time.Second}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ft := NewFlapTracker(10, 5*time.Minute)
			for i, l := range tt.lines {
				ft.Observe(l.ev)
				st := ft.Status(t0.Add(l.read))
				for _, p := range st {
					if p.Cycles > 10 || p.Flapping != (p.Cycles >= 10) {
						t.Errorf("line %d: port %v flapping %t with %d cycles", i, p.Port, p.Flapping, p.Cycles)
					}
				}
				if got, want := viewOf(st, 7).Flapping, tt.flapsFrom >= 0 && i >= tt.flapsFrom; got != want {
					t.Errorf("line %d (%v read at %v): flapping %t, want %t", i, l.ev.Time.Sub(t0), l.read, got, want)
				}
				if i == len(tt.lines)-1 {
					if diff := cmp.Diff(tt.final, viewOf(st, 7)); diff != "" {
						t.Errorf("after the last line (-want +got):\n%s", diff)
					}
				}
			}
		})
	}
}

// The host clock steps back an hour at stepAt: lines logged after carry
// times an hour earlier, and so does the caller's now.
const stepAt = time.Hour

// flapUntilStep is port 7 flapping every 3 s for the minute up to the step.
func flapUntilStep() step {
	return step{every(7, stepAt-time.Minute, 3*time.Second, 21), stepAt, view{true, 10, true, stepAt - 33*time.Second}}
}

// stoppedAtStep: port 7 stops at the step; port 8's lines, every 10
// minutes after it, are polled until the clock is back at stepAt. Port 7
// is listed with no cycles until a window passes, then forgotten.
func stoppedAtStep() []step {
	steps := []step{flapUntilStep(), {every(8, 10*time.Second, 0, 1), 10 * time.Second, view{Listed: true}}}
	for at := 10*time.Minute + 10*time.Second; at <= stepAt+10*time.Second; at += 10 * time.Minute {
		steps = append(steps, step{every(8, at, 0, 1), at, view{}})
	}
	return steps
}

// flappingThroughStep: port 7 goes on flapping every 3 s after the step,
// polled after each cycle or read in one batch.
func flappingThroughStep(polled bool) []step {
	steps := []step{flapUntilStep()}
	after := every(7, 3*time.Second, 3*time.Second, 10)
	if !polled {
		return append(steps,
			step{after[:18], 27 * time.Second, view{true, 9, false, 0}},
			step{after[18:], 30 * time.Second, view{true, 10, true, 30 * time.Second}})
	}
	for i := range 10 {
		at := time.Duration(i+1) * 3 * time.Second
		want := view{Listed: true, Cycles: i + 1}
		if i == 9 {
			want.Flapping, want.Since = true, at
		}
		steps = append(steps, step{after[2*i : 2*i+2], at, want})
	}
	return steps
}

// TestFlapTrackerClockStepBack: cycles logged before the host clock
// stepped back an hour count neither at once nor when the clock reaches
// their times again (else a VM is powered off long after its flaps
// stopped); a port that goes on flapping flaps again after the threshold
// of new cycles.
func TestFlapTrackerClockStepBack(t *testing.T) {
	tests := []struct {
		name  string
		steps []step
	}{
		// Fails if Status keeps a flap whose cycles are in the clock's future.
		{"a port that stopped at the step does not flap after it, nor an hour later", stoppedAtStep()},
		// Fails if the future cycles stay in the newest ones and keep the new
		// cycles out, or count with them.
		{"a port that goes on flapping, polled after each cycle, flaps again from the 10th", flappingThroughStep(true)},
		{"a port that goes on flapping, read in one batch, flaps again from the 10th", flappingThroughStep(false)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			runSteps(t, NewFlapTracker(10, 5*time.Minute), tt.steps)
		})
	}
}

// TestFlapTrackerQuietLog: when the log falls silent after a flap, the
// caller's clock alone ends it: once the window no longer holds the
// threshold's cycles, and the port is forgotten once its last cycle is
// more than the window old.
func TestFlapTrackerQuietLog(t *testing.T) {
	const w = 5 * time.Minute
	tests := []struct {
		name string
		now  time.Duration
		want view
	}{
		{"flapping just after the burst", 28 * time.Second, view{true, 10, true, 27 * time.Second}},
		{"flapping while its first cycle is exactly W old", w, view{true, 10, true, 27 * time.Second}},
		{"not once it is older", w + time.Millisecond, view{true, 9, false, 0}},
		{"listed while its last cycle is exactly W old", 27*time.Second + w, view{true, 1, false, 0}},
		{"forgotten once that is older", 27*time.Second + w + time.Millisecond, view{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			runSteps(t, NewFlapTracker(10, w), []step{{every(7, 0, 3*time.Second, 10), tt.now, tt.want}})
		})
	}
}

// linesAsSteps makes each line a step, checked by the caller.
func linesAsSteps(lines []line) []step {
	var steps []step
	for _, l := range lines {
		steps = append(steps, step{observe: []Event{l.ev}, now: l.read})
	}
	return steps
}

// statuses plays steps on a fresh tracker and returns each step's Status.
// Before step cut's events (never if cut < 0) the tracker is saved as JSON
// and restored from it, as the cron mode does between runs.
func statuses(t *testing.T, steps []step, cut int) [][]PortStatus {
	t.Helper()
	ft := NewFlapTracker(10, 5*time.Minute)
	var out [][]PortStatus
	for i, s := range steps {
		if i == cut {
			b, err := json.Marshal(ft.Snapshot())
			if err != nil {
				t.Fatal(err)
			}
			var st FlapState
			if err := json.Unmarshal(b, &st); err != nil {
				t.Fatal(err)
			}
			ft = RestoreFlapTracker(st)
		}
		for _, ev := range s.observe {
			ft.Observe(ev)
		}
		out = append(out, ft.Status(t0.Add(s.now)))
	}
	return out
}

// TestFlapTrackerSnapshotKeepsDecision: saving and restoring the tracker
// between any two steps of a story changes no Status.
func TestFlapTrackerSnapshotKeepsDecision(t *testing.T) {
	hour := overAnHour()
	tests := []struct {
		name  string
		steps []step
	}{
		{"clock stepped back, the port stopped", stoppedAtStep()},
		{"clock stepped back, the port goes on flapping", flappingThroughStep(false)},
		{"shuffled burst and a stray old line", linesAsSteps(readAll(4*time.Minute, append(burst(3, 7, 0, 9, 5, 1, 8, 2, 6, 4), enabled(7, -10*time.Minute))...))},
		{"an hour of cycles, one line 59 minutes early", linesAsSteps(readAll(time.Hour, slices.Concat(hour[9], slices.Concat(hour[:9]...))...))},
		{"a long flap", linesAsSteps(readAt(time.Second, every(7, 0, 3*time.Second, 40)...))},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			want := statuses(t, tt.steps, -1)
			for cut := range tt.steps {
				if diff := cmp.Diff(want, statuses(t, tt.steps, cut)); diff != "" {
					t.Fatalf("restored before step %d (-want +got):\n%s", cut, diff)
				}
			}
		})
	}
}

// oldFlapState is FlapState as saved before cycle times were sorted: ring
// order, a latest time and each port's last cycle.
type oldFlapState struct {
	Cycles int             `json:"cycles"`
	Window time.Duration   `json:"window_ns"`
	Latest time.Time       `json:"latest,omitzero"`
	Ports  []oldFlapPortSt `json:"ports"`
}

type oldFlapPortSt struct {
	Port          Port        `json:"port"`
	MAC           MAC         `json:"mac"`
	MACKnown      bool        `json:"mac_known"`
	First         time.Time   `json:"first"`
	Last          time.Time   `json:"last"`
	LastCycle     time.Time   `json:"last_cycle,omitzero"`
	FlappingSince time.Time   `json:"flapping_since,omitzero"`
	CycleTimes    []time.Time `json:"cycle_times,omitempty"`
}

// TestRestoreFlapTrackerOldFormat: a state saved by the version that kept
// cycles in arrival order restores with its cycles sorted, and its flap
// only if the newest cycles still make one.
func TestRestoreFlapTrackerOldFormat(t *testing.T) {
	at := func(ds ...time.Duration) []time.Time {
		var out []time.Time
		for _, d := range ds {
			out = append(out, t0.Add(d))
		}
		return out
	}
	sec, min := time.Second, time.Minute
	tests := []struct {
		name   string
		times  []time.Duration // in ring order
		since  time.Duration   // old flapping_since; 0 for none
		checks []step
	}{
		{"an unsorted ring of a flap flaps, its start kept",
			[]time.Duration{75 * sec, 175 * sec, 0, 225 * sec, 125 * sec, 25 * sec, 200 * sec, 50 * sec, 150 * sec, 100 * sec}, 225 * sec,
			[]step{{nil, 4 * min, view{true, 10, true, 225 * sec}},
				{cyclesAt(7, 250*sec), 250 * sec, view{true, 10, true, 225 * sec}}}},
		// Fails if the old run alone makes the port flap.
		{"an old run whose cycles make no flap does not flap",
			[]time.Duration{5 * min, 6 * min, 7 * min, 8 * min, 9 * min, 0, min, 2 * min, 3 * min, 4 * min}, 4 * min,
			[]step{{nil, 9 * min, view{true, 6, false, 0}},
				{cyclesAt(7, 9*min+sec, 9*min+2*sec, 9*min+3*sec, 9*min+4*sec, 9*min+5*sec), 9*min + 5*sec, view{true, 10, true, 9*min + 5*sec}}}},
		// Fails if the newest in ring order are kept rather than by time.
		{"more cycle times than cycles: the newest by time are kept",
			[]time.Duration{200 * sec, 225 * sec, 0, 25 * sec, 50 * sec, 75 * sec, 100 * sec, 125 * sec, 150 * sec, 175 * sec, -20 * min, -30 * min}, 0,
			[]step{{nil, 4 * min, view{true, 10, true, 225 * sec}}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			times := at(tt.times...)
			newest := slices.MaxFunc(times, time.Time.Compare)
			old := oldFlapState{Cycles: 10, Window: 5 * min, Latest: newest, Ports: []oldFlapPortSt{{
				Port: 7, MAC: enabled(7, 0).MAC, MACKnown: true, First: slices.MinFunc(times, time.Time.Compare), Last: newest,
				LastCycle: times[len(times)-1], CycleTimes: times}}}
			if tt.since != 0 {
				old.Ports[0].FlappingSince = t0.Add(tt.since)
			}
			b, err := json.Marshal(old)
			if err != nil {
				t.Fatal(err)
			}
			var st FlapState
			if err := json.Unmarshal(b, &st); err != nil {
				t.Fatal(err)
			}
			ft := RestoreFlapTracker(st)
			if got := ft.Snapshot().Ports[0].CycleTimes; !slices.IsSortedFunc(got, time.Time.Compare) || len(got) > 10 {
				t.Errorf("restored cycle times %v: want at most 10, sorted", got)
			}
			runSteps(t, ft, tt.checks)
		})
	}
}

// refFlaps is the flap rule with every cycle kept: the tracker, which keeps
// only a few, must never count more, and on a log in time order exactly as
// many up to the threshold.
type refFlaps struct {
	cycles   int
	window   time.Duration
	logTime  time.Time
	observed int
	ports    map[Port]*refPort
}

type refPort struct {
	mac      MAC
	macKnown bool
	last     time.Time
	times    []time.Time
}

func (m *refFlaps) observe(ev Event) {
	m.logTime = ev.Time
	p := m.ports[ev.Port]
	if p == nil {
		p = &refPort{}
		m.ports[ev.Port] = p
	}
	if ev.Time.After(p.last) {
		p.last = ev.Time
	}
	if ev.Kind == KindPortEnabled {
		if ev.MACKnown {
			if p.macKnown && p.mac != ev.MAC {
				*p = refPort{last: ev.Time}
			}
			p.mac, p.macKnown = ev.MAC, true
		}
		p.times = append(p.times, ev.Time)
	}
	m.observed++
	if m.observed%1024 == 0 {
		m.forget(m.logTime)
	}
}

func (m *refFlaps) forget(r time.Time) {
	for id, p := range m.ports {
		if r.Sub(p.last) > m.window {
			delete(m.ports, id)
		}
	}
}

// count judges the ports at r and returns each one's cycles in the window.
func (m *refFlaps) count(r time.Time) map[Port]int {
	out := map[Port]int{}
	limit := r.Add(flapSkew)
	for id, p := range m.ports {
		if r.Sub(p.last) > m.window {
			delete(m.ports, id)
			continue
		}
		p.times = slices.DeleteFunc(p.times, func(c time.Time) bool { return c.After(limit) })
		if p.last.After(limit) {
			p.last = limit
		}
		out[id] = 0
		for _, c := range p.times {
			if !c.After(r) && r.Sub(c) <= m.window {
				out[id]++
			}
		}
	}
	return out
}

// FuzzFlapTracker plays random sequences of port events (times moving
// either way, so out of order lines and clock steps), Status calls,
// snapshots and Forget, and checks the tracker against refFlaps and its
// own bounds.
func FuzzFlapTracker(f *testing.F) {
	op := func(kind, port byte, delta time.Duration) []byte {
		for u, unit := range flapFuzzUnits {
			if n := delta / unit; delta%unit == 0 && n >= math.MinInt8 && n <= math.MaxInt8 {
				return []byte{kind, port, byte(int8(n)), byte(u)}
			}
		}
		panic("op: no unit for " + delta.String())
	}
	sec := time.Second
	// burst: port's n cycles 3 s apart, each after a disabled line.
	burst := func(port byte, n int) []byte {
		var b []byte
		for range n {
			b = append(b, op(4, port, sec)...)
			b = append(b, op(0, port, 2*sec)...)
		}
		return b
	}
	// Ops: 0-3 enabled (MAC known for ports 4-7, as port%4), 4-5 disabled,
	// 6 Status, 7 Snapshot and restore (Forget for ports 4-7).
	f.Add(append(burst(1, 12), op(6, 0, 10*sec)...), uint8(10), uint16(300))
	f.Add(slices.Concat(burst(1, 12), op(6, 0, sec), op(4, 2, -time.Hour), op(6, 0, sec), burst(1, 12), op(6, 0, time.Hour), op(6, 0, sec)), uint8(10), uint16(300))
	f.Add(slices.Concat(op(0, 1, 40*sec), op(0, 1, -30*sec), op(0, 1, 20*sec), op(0, 1, -5*sec), op(0, 1, sec), op(6, 0, time.Minute), op(7, 0, 0), op(0, 1, -10*time.Minute), op(6, 0, 0)), uint8(3), uint16(60))
	f.Add(slices.Concat(burst(5, 4), op(0, 5, sec), op(7, 1, 0), op(7, 5, 0), op(6, 0, 0)), uint8(2), uint16(30))
	f.Fuzz(checkFlapSequence)
}

// flapFuzzUnits are the units of the time steps FuzzFlapTracker takes:
// small ones for bursts and disorder, large ones for clock steps.
var flapFuzzUnits = []time.Duration{100 * time.Millisecond, time.Second, 10 * time.Second, time.Minute}

// checkFlapSequence is FuzzFlapTracker's check of one sequence: 4 bytes an
// operation (kind, port and MAC, a signed step of time and its unit).
func checkFlapSequence(t *testing.T, data []byte, cycles uint8, windowSec uint16) {
	n := int(cycles%20) + 1
	w := time.Duration(windowSec%3600+1) * time.Second
	ft := NewFlapTracker(n, w)
	ref := &refFlaps{cycles: n, window: w, ports: map[Port]*refPort{}}
	now := t0
	inOrder := true // every event so far at or after the one before
	var prev time.Time
	// lastOff: each port's newest line in log order is a disable, whatever
	// the times say (whole-second stamps, a clock stepped back).
	lastOff := map[Port]bool{}
	// lastOn: the place in the log of each port's newest enable; a port
	// whose MAC another listed port enabled later has moved.
	lastOn, lines := map[Port]int{}, 0
	for len(data) >= 4 {
		kind, port := data[0]%8, Port(data[1]%8)
		now = now.Add(time.Duration(int8(data[2])) * flapFuzzUnits[int(data[3])%len(flapFuzzUnits)])
		data = data[4:]
		switch kind {
		case 0, 1, 2, 3, 4, 5:
			ev := Event{Kind: KindPortEnabled, Time: now, Port: port % 4}
			if kind >= 4 {
				ev.Kind = KindPortDisabled
			} else if port >= 4 {
				ev.MAC, ev.MACKnown = MAC{0, 0x50, 0x56, 0, kind, byte(port)}, true
			}
			if ev.Time.Before(prev) {
				inOrder = false
			}
			prev = ev.Time
			lastOff[ev.Port] = ev.Kind == KindPortDisabled
			if lines++; ev.Kind == KindPortEnabled {
				lastOn[ev.Port] = lines
			}
			ft.Observe(ev)
			ref.observe(ev)
		case 6:
			r := now
			if ft.logTime.After(r) {
				r = ft.logTime
			}
			got := ft.Status(now)
			want := ref.count(r)
			if len(got) != len(want) {
				t.Fatalf("Status at %v lists %d ports, the reference %d: %+v", now, len(got), len(want), got)
			}
			newest := map[MAC]int{}
			for _, st := range got {
				if st.MACKnown {
					newest[st.MAC] = max(newest[st.MAC], lastOn[st.Port])
				}
			}
			for i, st := range got {
				if i > 0 && got[i-1].Port >= st.Port {
					t.Fatalf("Status not sorted by port: %+v", got)
				}
				full, ok := want[st.Port]
				switch {
				case !ok:
					t.Fatalf("port %v listed, not in the reference", st.Port)
				case st.Cycles > n || st.Cycles > full:
					t.Fatalf("port %v: %d cycles, threshold %d, %d in the full history", st.Port, st.Cycles, n, full)
				case inOrder && st.Cycles != min(full, n):
					t.Fatalf("port %v, log in order: %d cycles, want %d", st.Port, st.Cycles, min(full, n))
				case st.Flapping != (st.Cycles >= n):
					t.Fatalf("port %v: flapping %t with %d cycles, threshold %d", st.Port, st.Flapping, st.Cycles, n)
				case st.Flapping && (st.FlappingSince.IsZero() || st.FlappingSince.After(r)):
					t.Fatalf("port %v flapping since %v, judged at %v", st.Port, st.FlappingSince, r)
				case st.Down != !st.DownSince.IsZero():
					t.Fatalf("port %v: down %t since %v", st.Port, st.Down, st.DownSince)
				case st.Down != lastOff[st.Port]:
					t.Fatalf("port %v: down %t, its newest line a disable %t", st.Port, st.Down, lastOff[st.Port])
				case st.Moved() && (st.MovedTo == st.Port || !st.MACKnown):
					t.Fatalf("port %v moved to %v (MAC known %t)", st.Port, st.MovedTo, st.MACKnown)
				case st.MACKnown && st.Moved() != (newest[st.MAC] > lastOn[st.Port]):
					t.Fatalf("port %v: moved %t (to %v); its newest enable is line %d, its MAC's newest on a listed port line %d", st.Port, st.Moved(), st.MovedTo, lastOn[st.Port], newest[st.MAC])
				}
				p := ft.ports[st.Port]
				if k := p.after(r); k > n || p.after(r.Add(flapSkew)) != len(p.times) {
					t.Fatalf("port %v after Status at %v keeps %v", st.Port, r, p.times)
				}
			}
		case 7:
			if port >= 4 {
				ft.Forget(port % 4)
				delete(ref.ports, port%4)
				delete(lastOn, port%4)
				break
			}
			b, err := json.Marshal(ft.Snapshot())
			if err != nil {
				t.Fatal(err)
			}
			var st FlapState
			if err := json.Unmarshal(b, &st); err != nil {
				t.Fatal(err)
			}
			ft = RestoreFlapTracker(st)
			ref.forget(ref.logTime)
			ref.observed = 0
		}
		for id, p := range ft.ports {
			if ref.ports[id] == nil {
				t.Fatalf("port %v kept, not in the reference", id)
			}
			if len(p.times) > 2*n || !slices.IsSortedFunc(p.times, time.Time.Compare) {
				t.Fatalf("port %v keeps %d cycle times, sorted %t (threshold %d)", id, len(p.times), slices.IsSortedFunc(p.times, time.Time.Compare), n)
			}
		}
	}
}
