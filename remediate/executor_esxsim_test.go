package remediate

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/heapguard/heapguard/esxsim"
	"github.com/heapguard/heapguard/host"
	"github.com/heapguard/heapguard/policy"
)

// simClock is the simulated host's clock as a test drives it: Sleep
// advances the simulation (guest shutdowns complete, flaps leak, agents
// crash), so minutes of host time take milliseconds. Power-offs sleep on
// it side by side: each Sleep moves the host on by d, so each waiter
// waits at least d of host time.
type simClock struct{ h *esxsim.Host }

func (c simClock) Now() time.Time { return c.h.State().Now }

func (c simClock) Sleep(ctx context.Context, d time.Duration) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return esxsim.Advance(c.h.Root(), d) // not h.Advance: Fatalf is for the test's goroutine
}

// newSimHost lays out a simulated host whose tools are this test binary,
// and a Live executor on it.
func newSimHost(t *testing.T, sc esxsim.Scenario, opts ...esxsim.Option) (*esxsim.Host, *Live) {
	t.Helper()
	h := esxsim.New(t, sc, opts...)
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	h.InstallBinary(exe)
	l := &Live{
		Runner: host.Exec{Root: h.Root()},
		Layout: host.DetectLayout(h.Root()),
		Clock:  simClock{h},
		HeapCheck: func(context.Context) (float64, error) {
			hp := h.State().Heap("netGPHeap")
			return float64(hp.Max-hp.Allocated) * 100 / float64(hp.Max), nil
		},
	}
	return h, l
}

// simActions lists what the simulated host saw change: "tool args… result".
func simActions(h *esxsim.Host) []string {
	var out []string
	for _, a := range h.Actions() {
		out = append(out, strings.Join(append([]string{a.Tool}, a.Argv[1:]...), " ")+" "+a.Result)
	}
	return out
}

func vmByID(t *testing.T, h *esxsim.Host, id int) *esxsim.VM {
	t.Helper()
	vm := h.State().VM(id)
	if vm == nil {
		t.Fatalf("no vm %d", id)
	}
	return vm
}

func TestLiveSimPowerOffWithTools(t *testing.T) {
	h, l := newSimHost(t, esxsim.Incident())
	start := h.State().Now
	o := l.Execute(context.Background(), policy.Action{Kind: policy.ActPowerOff, Target: "DSVA01", VMID: "1"})
	if o.Result != ResultOK {
		t.Fatalf("result %q %q; output:\n%s", o.Result, o.Err, o.Output)
	}
	if vmByID(t, h, 1).PoweredOn {
		t.Error("DSVA01 still powered on")
	}
	// DSVA01 takes 25s to shut down; polls every 5s find it off at 25s.
	cmds := commandsRun(o.Output)
	if slices.Contains(cmds, "vim-cmd vmsvc/power.off 1") {
		t.Errorf("powered off hard although the guest shut down:\n%s", o.Output)
	}
	if d := cmp.Diff([]string{"vim-cmd vmsvc/power.shutdown 1 ok"}, simActions(h)); d != "" {
		t.Errorf("host actions (-want +got):\n%s", d)
	}
	if got := h.State().Now.Sub(start); got != 25*time.Second {
		t.Errorf("took %s of host time, want 25s", got)
	}
	if !strings.Contains(o.Output, "shut down gracefully") {
		t.Errorf("output does not say how:\n%s", o.Output)
	}
}

func TestLiveSimPowerOffWithoutTools(t *testing.T) {
	h, l := newSimHost(t, esxsim.Incident())
	start := h.State().Now
	o := l.Execute(context.Background(), policy.Action{Kind: policy.ActPowerOff, Target: "db-02", VMID: "9"})
	if o.Result != ResultOK {
		t.Fatalf("result %q %q; output:\n%s", o.Result, o.Err, o.Output)
	}
	want := []string{"vim-cmd vmsvc/power.getstate 9", "vim-cmd vmsvc/power.shutdown 9", "vim-cmd vmsvc/power.off 9", "vim-cmd vmsvc/power.getstate 9"}
	if d := cmp.Diff(want, commandsRun(o.Output)); d != "" {
		t.Errorf("commands (-want +got):\n%s", d)
	}
	if d := cmp.Diff([]string{"vim-cmd vmsvc/power.shutdown 9 ToolsUnavailable", "vim-cmd vmsvc/power.off 9 ok"}, simActions(h)); d != "" {
		t.Errorf("host actions (-want +got):\n%s", d)
	}
	if !strings.Contains(o.Output, "VMware Tools is not running: powering off hard at once") {
		t.Errorf("output does not explain the hard power-off:\n%s", o.Output)
	}
	if h.State().Now != start {
		t.Errorf("waited %s before powering off hard", h.State().Now.Sub(start))
	}
}

func TestLiveSimPowerOffShutdownTimesOut(t *testing.T) {
	h, l := newSimHost(t, esxsim.Incident())
	h.Mutate(func(st *esxsim.State) { st.VM(6).ShutdownTime = esxsim.Duration(10 * time.Minute) })
	l.ShutdownTimeout = 2 * time.Minute
	l.PollInterval = 30 * time.Second // fewer polls: each one is a process
	start := h.State().Now
	o := l.Execute(context.Background(), policy.Action{Kind: policy.ActPowerOff, Target: "vcenter01", VMID: "6"})
	if o.Result != ResultOK {
		t.Fatalf("result %q %q; output:\n%s", o.Result, o.Err, o.Output)
	}
	if d := cmp.Diff([]string{"vim-cmd vmsvc/power.shutdown 6 ok", "vim-cmd vmsvc/power.off 6 ok"}, simActions(h)); d != "" {
		t.Errorf("host actions (-want +got):\n%s", d)
	}
	if got := h.State().Now.Sub(start); got != 2*time.Minute {
		t.Errorf("hard power-off after %s of host time, want 2m", got)
	}
	if o.Elapsed != 2*time.Minute {
		t.Errorf("elapsed %s, want 2m", o.Elapsed)
	}
}

func TestLiveSimPowerOffAlreadyOff(t *testing.T) {
	h, l := newSimHost(t, esxsim.Incident())
	o := l.Execute(context.Background(), policy.Action{Kind: policy.ActPowerOff, Target: "old-build-03", VMID: "11"})
	if o.Result != ResultOK || len(commandsRun(o.Output)) != 1 || len(h.Actions()) != 0 {
		t.Errorf("result %q, output:\n%s\nhost actions %v", o.Result, o.Output, simActions(h))
	}
}

func TestLiveSimPowerOffUnknownVM(t *testing.T) {
	h, l := newSimHost(t, esxsim.Incident())
	o := l.Execute(context.Background(), policy.Action{Kind: policy.ActPowerOff, Target: "gone", VMID: "99"})
	if o.Result != ResultFailed || len(h.Actions()) != 0 {
		t.Errorf("result %q %q, host actions %v", o.Result, o.Err, simActions(h))
	}
}

func TestLiveSimRestartVpxa(t *testing.T) {
	for _, tc := range []struct {
		version string
		want    []string
	}{
		{"5.5", []string{"vpxa restart ok"}},
		{"4.1", []string{"vmware-vpxa stop ok", "vmware-vpxa start ok"}},
		{"8.0", []string{"vpxa restart ok"}},
	} {
		t.Run(tc.version, func(t *testing.T) {
			h, l := newSimHost(t, esxsim.Incident(), esxsim.WithVersion(tc.version))
			h.Mutate(func(st *esxsim.State) { st.Agent("vpxa").Running = false }) // crashed
			o := l.Execute(context.Background(), policy.Action{Kind: policy.ActRestartAgent, Target: AgentVpxa})
			if o.Result != ResultOK {
				t.Fatalf("result %q %q; output:\n%s", o.Result, o.Err, o.Output)
			}
			if d := cmp.Diff(tc.want, simActions(h)); d != "" {
				t.Errorf("host actions (-want +got):\n%s", d)
			}
			if a := h.State().Agent("vpxa"); !a.Running {
				t.Errorf("vpxa not running after the restart: %+v", a)
			}
			if !strings.Contains(o.Output, "is running") {
				t.Errorf("status output missing:\n%s", o.Output)
			}
		})
	}
}

// A vim-cmd that hangs is killed by its timeout; three such failures in a
// row open the breaker, and the next plan acts no more.
func TestLiveSimHangingVimCmdOpensBreaker(t *testing.T) {
	sc := esxsim.Incident()
	sc.Faults = append(sc.Faults, esxsim.Fault{Command: "vim-cmd", ArgsPrefix: []string{"vmsvc/power.getstate"}, Hang: true, HangFor: esxsim.Duration(time.Minute)})
	h, l := newSimHost(t, sc)
	l.Timeout = time.Second
	dir := t.TempDir()
	guards := openGuards(t, dir)
	j, err := OpenJournal(dir, l.Clock)
	if err != nil {
		t.Fatal(err)
	}
	defer j.Close()
	opt := ApplyOptions{Executor: l, Journal: j, Guards: guards, Clock: l.Clock, PlanID: "hang"}
	for i, id := range []string{"1", "3", "4"} {
		outs, err := Apply(context.Background(), []policy.Action{{Kind: policy.ActPowerOff, Target: "DSVA", VMID: id}}, opt)
		if err != nil {
			t.Fatal(err)
		}
		if outs[0].Result != ResultFailed || !strings.Contains(outs[0].Err, "command timed out after 1s") {
			t.Fatalf("power-off %d: %q %q", i, outs[0].Result, outs[0].Err)
		}
	}
	outs, err := Apply(context.Background(), []policy.Action{{Kind: policy.ActRestartAgent, Target: AgentVpxa}}, opt)
	if err != nil {
		t.Fatal(err)
	}
	if outs[0].Result != ResultSkipped || !strings.Contains(outs[0].Err, "circuit breaker open") {
		t.Errorf("restart with the breaker open: %q %q", outs[0].Result, outs[0].Err)
	}
	if acts := simActions(h); len(acts) != 0 {
		t.Errorf("host changed: %v", acts)
	}
}

// The incident end to end: power off the three flapping appliances,
// restart vpxa, verify; the journal explains every step.
func TestApplySimIncident(t *testing.T) {
	h, l := newSimHost(t, esxsim.Incident())
	h.Advance(30 * time.Minute) // let the leak run
	dir := t.TempDir()
	j, err := OpenJournal(dir, l.Clock)
	if err != nil {
		t.Fatal(err)
	}
	defer j.Close()
	pct, _ := l.HeapCheck(context.Background())
	heap := &policy.HeapFigures{Name: "netGPHeap", PercentFreeOfMax: pct}
	plan := []policy.Action{
		{Kind: policy.ActPowerOff, Target: "DSVA01", VMID: "1", Reason: "port flapping", Heap: heap},
		{Kind: policy.ActPowerOff, Target: "DSVA03", VMID: "3", Reason: "port flapping", Heap: heap},
		{Kind: policy.ActPowerOff, Target: "DSVA04", VMID: "4", Reason: "port flapping", Heap: heap},
		{Kind: policy.ActRestartAgent, Target: AgentVpxa, Reason: "agent restart after the leak", Heap: heap},
		{Kind: policy.ActVerify, Target: AgentVpxa, Reason: "check recovery", Heap: heap},
	}
	outs, err := Apply(context.Background(), plan, ApplyOptions{Executor: l, Journal: j, Guards: openGuards(t, dir), Clock: l.Clock, PlanID: "incident"})
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range outs {
		if o.Result != ResultOK {
			t.Errorf("%s %s: %q %q\n%s", o.Action.Kind, o.Action.Target, o.Result, o.Err, o.Output)
		}
	}
	st := h.State()
	for _, id := range []int{1, 3, 4} {
		if st.VM(id).PoweredOn {
			t.Errorf("vm %d still on", id)
		}
	}
	if !st.VM(6).PoweredOn || !st.Agent("vpxa").Running {
		t.Errorf("vcenter01 on %v, vpxa running %v", st.VM(6).PoweredOn, st.Agent("vpxa").Running)
	}
	f, err := os.Open(filepath.Join(dir, JournalFile))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	entries, bad, err := ReadJournal(f)
	if err != nil || bad != 0 || len(entries) != 1+2*len(plan) {
		t.Fatalf("journal: %d entries, %d bad, %v", len(entries), bad, err)
	}
	if testing.Verbose() {
		b, _ := os.ReadFile(filepath.Join(dir, JournalFile))
		t.Logf("journal:\n%s", b)
	}
	for _, e := range entries[1:] {
		if e.Result == ResultOK && !strings.Contains(e.Output, "$ ") {
			t.Errorf("%s entry without the commands run: %+v", e.Action, e)
		}
	}
}

// A shutdown that hangs (the faulty-tools preset) is cut by its timeout,
// and the VM is powered off hard at once.
func TestLiveSimShutdownHangs(t *testing.T) {
	sc, err := esxsim.Preset("faulty-tools")
	if err != nil {
		t.Fatal(err)
	}
	h, l := newSimHost(t, sc)
	// The hung shutdown waits this long on the wall clock; the other
	// commands must finish within it on a loaded machine under -race,
	// where one getstate can take over 2 s.
	l.Timeout = 6 * time.Second
	o := l.Execute(context.Background(), policy.Action{Kind: policy.ActPowerOff, Target: "DSVA01", VMID: "1"})
	if o.Result != ResultOK {
		t.Fatalf("result %q %q; output:\n%s", o.Result, o.Err, o.Output)
	}
	if !strings.Contains(o.Output, "graceful shutdown failed") || !strings.Contains(o.Output, "command timed out after 6s") {
		t.Errorf("output does not explain the hard power-off:\n%s", o.Output)
	}
	if vmByID(t, h, 1).PoweredOn {
		t.Error("DSVA01 still powered on")
	}
	want := []string{"vim-cmd vmsvc/power.getstate 1", "vim-cmd vmsvc/power.shutdown 1", "vim-cmd vmsvc/power.off 1", "vim-cmd vmsvc/power.getstate 1"}
	if d := cmp.Diff(want, commandsRun(o.Output)); d != "" {
		t.Errorf("commands (-want +got):\n%s", d)
	}
}

// frozenClock is a host clock that never moves (a paused simulation, or a
// clock stepped back by NTP at the wrong moment) and whose Sleep returns
// at once.
type frozenClock struct{ t time.Time }

func (c frozenClock) Now() time.Time { return c.t }

func (c frozenClock) Sleep(ctx context.Context, d time.Duration) error { return ctx.Err() }

// TestLiveWaitsEndOnAFrozenClock: waits are bounded by their number of
// polls too, so a clock that stands still cannot make a power-off or an
// agent restart (same bound, maxPolls) wait forever.
func TestLiveWaitsEndOnAFrozenClock(t *testing.T) {
	h, l := newSimHost(t, esxsim.Incident())
	h.Mutate(func(st *esxsim.State) { st.VM(6).ShutdownTime = esxsim.Duration(10 * time.Minute) })
	l.Clock = frozenClock{h.State().Now}
	l.ShutdownTimeout, l.PollInterval, l.AgentWait = 2*time.Minute, 30*time.Second, 30*time.Second
	done := make(chan Outcome, 1)
	go func() {
		done <- l.Execute(context.Background(), policy.Action{Kind: policy.ActPowerOff, Target: "vcenter01", VMID: "6"})
	}()
	select {
	case o := <-done:
		if d := cmp.Diff([]string{"vim-cmd vmsvc/power.shutdown 6 ok", "vim-cmd vmsvc/power.off 6 ok"}, simActions(h)); d != "" {
			t.Errorf("host actions (-want +got):\n%s\n%s", d, o.Output)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("power-off still waiting on a frozen clock after 30 s")
	}
}

// pausedClock is a simulated host's clock that cannot move: each Sleep
// fails with host.ErrSimPaused.
type pausedClock struct{ t time.Time }

func (c pausedClock) Now() time.Time { return c.t }

func (c pausedClock) Sleep(ctx context.Context, d time.Duration) error { return host.ErrSimPaused }

// TestLivePausedSimulatorNoHardPowerOff: a wait that cannot go on fails
// the power-off with the reason; the guest asked to shut down is not
// powered off hard behind its back.
func TestLivePausedSimulatorNoHardPowerOff(t *testing.T) {
	h, l := newSimHost(t, esxsim.Incident())
	h.Mutate(func(st *esxsim.State) { st.VM(6).ShutdownTime = esxsim.Duration(10 * time.Minute) })
	l.Clock = pausedClock{h.State().Now}
	o := l.Execute(context.Background(), policy.Action{Kind: policy.ActPowerOff, Target: "vcenter01", VMID: "6"})
	if o.Result != ResultFailed || !strings.Contains(o.Err, "paused") || !o.Mutated {
		t.Errorf("result %q %q mutated %v, want failed, paused, mutated (the shutdown was sent)\n%s", o.Result, o.Err, o.Mutated, o.Output)
	}
	if d := cmp.Diff([]string{"vim-cmd vmsvc/power.shutdown 6 ok"}, simActions(h)); d != "" {
		t.Errorf("host actions (-want +got):\n%s", d)
	}
}

// lockstep is a host clock on which several goroutines wait at once as
// on a real host: host time moves (inner.Sleep) only when all `parties`
// are asleep, to the earliest wake-up, so waits that overlap in host time
// overlap here too. (The step clocks move the host on by each Sleep: there
// waits side by side add up, and by how much depends on the scheduler.)
// When fewer are asleep for a second of wall time, time moves anyway, so
// a party that stopped waiting cannot stall the others.
type lockstep struct {
	inner   host.Clock
	parties int

	mu    sync.Mutex
	wakes map[*time.Time]bool
	moved time.Time // wall time of the last move
}

func (c *lockstep) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.inner.Now()
}

func (c *lockstep) Sleep(ctx context.Context, d time.Duration) error {
	c.mu.Lock()
	wake := c.inner.Now().Add(d)
	c.wakes[&wake] = true
	c.mu.Unlock()
	defer func() {
		c.mu.Lock()
		delete(c.wakes, &wake)
		c.mu.Unlock()
	}()
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		c.mu.Lock()
		now := c.inner.Now()
		if !now.Before(wake) {
			c.mu.Unlock()
			return nil
		}
		if len(c.wakes) >= c.parties || time.Since(c.moved) > time.Second {
			next := wake
			for w := range c.wakes {
				if w.Before(next) {
					next = *w
				}
			}
			err := c.inner.Sleep(ctx, next.Sub(now))
			c.moved = time.Now()
			if err != nil {
				c.mu.Unlock()
				return err
			}
		}
		c.mu.Unlock()
		time.Sleep(time.Millisecond)
	}
}

// TestApplySimGuestsIgnoreShutdown: three appliances whose guests ignore
// the graceful shutdown are powered off hard after one --shutdown-timeout
// of host time in all, not three: their waits overlap. Each step is
// journaled started then ended, the budget is spent exactly 3 times, and
// vpxa is restarted only after the last power-off.
func TestApplySimGuestsIgnoreShutdown(t *testing.T) {
	h, l := newSimHost(t, esxsim.Incident())
	ids := []int{1, 3, 4}
	h.Mutate(func(st *esxsim.State) {
		for _, id := range ids {
			st.VM(id).ShutdownTime = esxsim.Duration(time.Hour) // ignores it
		}
	})
	const timeout, poll = 2 * time.Minute, 10 * time.Second
	l.ShutdownTimeout, l.PollInterval = timeout, poll
	l.Clock = &lockstep{inner: l.Clock, parties: len(ids), wakes: map[*time.Time]bool{}, moved: time.Now()}
	dir := t.TempDir()
	j, err := OpenJournal(dir, l.Clock)
	if err != nil {
		t.Fatal(err)
	}
	defer j.Close()
	guards := openGuards(t, dir)
	var plan []policy.Action
	for _, id := range ids {
		plan = append(plan, policy.Action{Kind: policy.ActPowerOff, Target: vmByID(t, h, id).Name, VMID: fmt.Sprint(id), Reason: "port flapping"})
	}
	plan = append(plan, policy.Action{Kind: policy.ActRestartAgent, Target: AgentVpxa, Reason: "after the leak"})
	start := h.State().Now
	outs, err := Apply(context.Background(), plan, ApplyOptions{Executor: l, Journal: j, Guards: guards, Clock: l.Clock, PlanID: "ignore"})
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range outs {
		if o.Result != ResultOK {
			t.Errorf("%s %s: %q %q\n%s", o.Action.Kind, o.Action.Target, o.Result, o.Err, o.Output)
		}
		if o.Action.Kind == policy.ActPowerOff && !strings.Contains(o.Output, "still not off 2m0s after the shutdown: powering off hard") {
			t.Errorf("%s not powered off hard after the timeout:\n%s", o.Action.Target, o.Output)
		}
	}
	// Host time: the power-offs' waits overlap and end together, one
	// timeout after they began; one after another they would take three.
	acts := h.Actions()
	var restartAt time.Time
	for _, a := range acts {
		if a.Tool == "vpxa" {
			restartAt = a.Time
		}
	}
	offs := restartAt.Sub(start)
	t.Logf("power-offs took %s of host time (--shutdown-timeout %s); the plan %s", offs, timeout, h.State().Now.Sub(start))
	if offs < timeout || offs > timeout+poll {
		t.Errorf("the power-offs took %s of host time, want one --shutdown-timeout (%s), give or take a poll", offs, timeout)
	}
	want := []string{
		"vim-cmd vmsvc/power.shutdown 1 ok", "vim-cmd vmsvc/power.shutdown 3 ok", "vim-cmd vmsvc/power.shutdown 4 ok",
		"vim-cmd vmsvc/power.off 1 ok", "vim-cmd vmsvc/power.off 3 ok", "vim-cmd vmsvc/power.off 4 ok",
		"vpxa restart ok",
	}
	got := simActions(h)
	if len(got) == len(want) { // the shutdowns, then the power-offs, each in any order
		slices.Sort(got[:3])
		slices.Sort(got[3:6])
	}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("host actions (-want +got):\n%s", d)
	}
	for _, id := range ids {
		if vmByID(t, h, id).PoweredOn {
			t.Errorf("vm %d still on", id)
		}
	}
	entries, err := ReadJournalTail(dir)
	if err != nil {
		t.Fatal(err)
	}
	var shape []string
	for _, e := range entries[1:] {
		shape = append(shape, string(e.Action)+" "+e.Result)
	}
	wantShape := []string{"power_off started", "power_off started", "power_off started", "power_off ok", "power_off ok", "power_off ok", "restart_agent started", "restart_agent ok"}
	if d := cmp.Diff(wantShape, shape); d != "" {
		t.Errorf("journal (-want +got):\n%s", d)
	}
	if left := Unfinished(entries); len(left) != 0 {
		t.Errorf("steps left open: %+v", left)
	}
	if st := guards.Status(h.State().Now); st.PowerOffsInWindow != 3 {
		t.Errorf("%d power-offs spent, want 3", st.PowerOffsInWindow)
	}
	if offs, _ := Spent(entries, start.Add(-time.Hour)); len(offs) != 3 {
		t.Errorf("the journal says %d power-offs spent, want 3", len(offs))
	}
}
