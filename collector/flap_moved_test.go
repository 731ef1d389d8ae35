package collector

import (
	"encoding/json"
	"testing"
	"time"
)

// TestFlapTrackerDownAndMoved: the simulated unregister of a flapping VM
// (esxsim sim.unregister: one "disabled port" line, no enable after it),
// then its MAC enabled on another port. The flapping port still flaps for
// the window, but Status says it is down and that its MAC came up on the
// other port: a join by MAC alone must not give the flaps to the port's
// new holder.
func TestFlapTrackerDownAndMoved(t *testing.T) {
	tr := NewFlapTracker(10, 5*time.Minute)
	for _, ev := range every(0x11, 0, 3*time.Second, 12) {
		tr.Observe(ev)
	}
	st := tr.Status(t0.Add(34 * time.Second))
	if len(st) != 1 || !st[0].Flapping || st[0].Down || st[0].Moved() {
		t.Fatalf("while flapping: %+v: want flapping, up, not moved", st)
	}
	// Read between the two lines of a cycle: down until the enable comes.
	tr.Observe(disabled(0x11, 36*time.Second-3*time.Millisecond))
	if st := tr.Status(t0.Add(36*time.Second - time.Millisecond)); !st[0].Down {
		t.Errorf("between a cycle's lines: %+v: want down", st[0])
	}
	tr.Observe(enabled(0x11, 36*time.Second))
	if st := tr.Status(t0.Add(37 * time.Second)); st[0].Down {
		t.Errorf("after the cycle's enable: %+v: want up", st[0])
	}

	tr.Observe(disabled(0x11, 40*time.Second)) // unregistered
	st = tr.Status(t0.Add(50 * time.Second))
	if len(st) != 1 || !st[0].Flapping || !st[0].Down || !st[0].DownSince.Equal(t0.Add(40*time.Second)) || st[0].Moved() {
		t.Fatalf("after the last disable: %+v: want flapping, down since 40s, not moved", st)
	}

	moved := enabled(0x12, 45*time.Second)
	moved.MAC = st[0].MAC // the new holder connects with the MAC
	tr.Observe(moved)
	st = tr.Status(t0.Add(50 * time.Second))
	if len(st) != 2 {
		t.Fatalf("status %+v: want both ports", st)
	}
	if old := st[0]; old.Port != 0x11 || !old.Flapping || old.MovedTo != 0x12 || !old.MovedAt.Equal(t0.Add(45*time.Second)) {
		t.Errorf("old port %+v: want flapping, moved to 0x12 at 45s", old)
	}
	if nw := st[1]; nw.Port != 0x12 || nw.Flapping || nw.Down || nw.Moved() {
		t.Errorf("new port %+v: want up, not flapping, not moved", nw)
	}

	// A cron run saves and restores the tracker between polls.
	b, err := json.Marshal(tr.Snapshot())
	if err != nil {
		t.Fatal(err)
	}
	var back FlapState
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	st = RestoreFlapTracker(back).Status(t0.Add(50 * time.Second))
	if len(st) != 2 || !st[0].Down || st[0].MovedTo != 0x12 {
		t.Errorf("restored: %+v: want port 0x11 down and moved to 0x12", st)
	}
}

// TestFlapTrackerSameMACTwoPortsFlapping: two ports flapping with one MAC
// at once each see the other as the newest enable in turn; only the port
// whose newest enable is older is reported moved.
func TestFlapTrackerSameMACTwoPortsFlapping(t *testing.T) {
	tr := NewFlapTracker(10, 5*time.Minute)
	for i := range 12 {
		at := time.Duration(i) * 3 * time.Second
		a := enabled(0x21, at)
		b := enabled(0x22, at+time.Second)
		b.MAC = a.MAC
		tr.Observe(a)
		tr.Observe(b)
	}
	st := tr.Status(t0.Add(40 * time.Second))
	if len(st) != 2 || st[0].MovedTo != 0x22 || st[1].Moved() {
		t.Errorf("status %+v: want 0x21 moved to 0x22 (enabled last), 0x22 not moved", st)
	}
}

// TestRestoreFlapTrackerWithoutEnableTimes: a state saved before the
// newest enable was kept takes the newest cycle time: the port is up.
func TestRestoreFlapTrackerWithoutEnableTimes(t *testing.T) {
	var times []time.Time
	for i := range 10 {
		times = append(times, t0.Add(time.Duration(i)*time.Second))
	}
	tr := RestoreFlapTracker(FlapState{LogTime: times[9], Ports: []FlapPortState{{Port: 1, MACKnown: true, Last: times[9], CycleTimes: times}}})
	st := tr.Status(times[9])
	if len(st) != 1 || !st[0].Flapping || st[0].Down || st[0].Moved() {
		t.Errorf("status %+v: want flapping, up", st)
	}
}

// parse4x parses a 4.x /var/log/messages line (whole-second stamps).
func parse4x(t *testing.T, p *Parser, line string) Event {
	t.Helper()
	ev, err := p.Parse([]byte(line))
	if err != nil {
		t.Fatalf("%q: %v", line, err)
	}
	return ev
}

// TestFlapTrackerSameSecond: 4.x stamps have whole seconds, so a port's
// last disable, and its MAC coming up on another port, often share the
// second of its last enable: log order tells them, not time.
func TestFlapTrackerSameSecond(t *testing.T) {
	p := NewParser(2012, time.Time{})
	tr := NewFlapTracker(10, 5*time.Minute)
	base := time.Date(2012, 7, 26, 1, 26, 29, 0, time.UTC)
	var stamp string
	for i := range 12 {
		stamp = base.Add(time.Duration(i*3) * time.Second).Format(time.Stamp)
		tr.Observe(parse4x(t, p, stamp+" vmkernel: 7:21:06:14.107 cpu10:202157)NetPort: 1165: disabled port 0x3000007"))
		tr.Observe(parse4x(t, p, stamp+" vmkernel: 7:21:06:14.110 cpu10:202157)NetPort: 982: enabled port 0x3000007 with mac 00:50:56:84:5a:b4"))
	}
	r := base.Add(40 * time.Second)
	if st := tr.Status(r); st[0].Down || st[0].Moved() {
		t.Fatalf("after a cycle's enable: %+v: want up, not moved", st[0])
	}
	tr.Observe(parse4x(t, p, stamp+" vmkernel: 7:21:06:14.900 cpu10:202157)NetPort: 1165: disabled port 0x3000007"))
	if st := tr.Status(r); !st[0].Down {
		t.Errorf("a disable in the last enable's second, after it in the log: %+v: want down", st[0])
	}
	tr.Observe(parse4x(t, p, stamp+" vmkernel: 7:21:06:14.950 cpu10:202158)NetPort: 982: enabled port 0x3000009 with mac 00:50:56:84:5a:b4"))
	if st := tr.Status(r); st[0].MovedTo != 0x3000009 {
		t.Errorf("the MAC enabled on 0x3000009 in the same second, after the port's lines: %+v: want moved there", st[0])
	}
}

// TestFlapTrackerDownAfterClockStepBack: after the log clock steps back, a newer
// line stamped earlier is still the newest.
func TestFlapTrackerDownAfterClockStepBack(t *testing.T) {
	tr := NewFlapTracker(10, 5*time.Minute)
	for _, ev := range every(0x11, 200*time.Second, 3*time.Second, 12) {
		tr.Observe(ev)
	}
	tr.Status(t0.Add(240 * time.Second))
	for _, ev := range every(0x11, 60*time.Second, 3*time.Second, 12) { // 3 min back
		tr.Observe(ev)
	}
	tr.Observe(disabled(0x11, 100*time.Second))
	if st := tr.Status(t0.Add(101 * time.Second)); !st[0].Down {
		t.Errorf("last line a disable after a clock step back: %+v: want down", st[0])
	}
	moved := enabled(0x12, 101*time.Second)
	moved.MAC = enabled(0x11, 0).MAC
	tr.Observe(moved)
	if st := tr.Status(t0.Add(102 * time.Second)); st[0].MovedTo != 0x12 {
		t.Errorf("MAC enabled on 0x12 after a clock step back: %+v: want moved there", st[0])
	}
}

// TestRestoreFlapTrackerOldStateDown: a state saved before the tracker
// kept log order (no seq, enabled, disabled) whose port's last line was a
// disable: its Last, newer than every enable, says so.
func TestRestoreFlapTrackerOldStateDown(t *testing.T) {
	tr := NewFlapTracker(10, 5*time.Minute)
	for _, ev := range every(0x11, 0, 3*time.Second, 12) {
		tr.Observe(ev)
	}
	tr.Observe(disabled(0x11, 40*time.Second))
	b, err := json.Marshal(tr.Snapshot())
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	delete(m, "seq")
	for _, p := range m["ports"].([]any) {
		for _, k := range []string{"enabled", "enabled_seq", "down", "disabled"} {
			delete(p.(map[string]any), k)
		}
	}
	if b, err = json.Marshal(m); err != nil {
		t.Fatal(err)
	}
	var old FlapState
	if err := json.Unmarshal(b, &old); err != nil {
		t.Fatal(err)
	}
	st := RestoreFlapTracker(old).Status(t0.Add(50 * time.Second))
	if !st[0].Down || !st[0].DownSince.Equal(t0.Add(40*time.Second)) {
		t.Errorf("restored from an old state: %+v: want down since 40s", st[0])
	}
}
