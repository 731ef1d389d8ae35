package remediate

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/heapguard/heapguard/host"
	"github.com/heapguard/heapguard/policy"
)

// gate is an Executor whose power-offs each wait until `together` of them
// are running at once (or give up after a few seconds of wall time and
// say so): only power-offs run side by side get through. Each target's
// outcome, and which power-off must end before it, is scripted; anything
// else succeeds.
type gate struct {
	together    int
	outcome     map[string]Outcome // of power-offs, by target: Result, Err, Mutated
	verifyFails bool
	endAfter    map[string]string // target: the target that ends before it

	ended map[string]chan struct{}

	mu       sync.Mutex
	running  int
	arrived  chan struct{}
	order    []string // "start X", "end X"
	offsDone int      // power-offs ended when the restart began
}

func newGate(together int) *gate {
	return &gate{together: together, outcome: map[string]Outcome{}, arrived: make(chan struct{}),
		endAfter: map[string]string{}, ended: map[string]chan struct{}{}}
}

// endedCh is closed when target's power-off has ended.
func (g *gate) endedCh(target string) chan struct{} {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.ended[target] == nil {
		g.ended[target] = make(chan struct{})
	}
	return g.ended[target]
}

func (g *gate) log(s string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.order = append(g.order, s)
}

func (g *gate) Execute(_ context.Context, a policy.Action) Outcome {
	o := Outcome{Action: a, Result: ResultOK, Output: "ran " + string(a.Kind)}
	switch a.Kind {
	case policy.ActPowerOff:
		g.log("start " + a.Target)
		g.mu.Lock()
		if g.running++; g.running == g.together {
			close(g.arrived)
		}
		g.mu.Unlock()
		select {
		case <-g.arrived:
		case <-time.After(5 * time.Second):
			o.Result, o.Err = ResultFailed, "ran alone: the other power-offs did not start beside it"
		}
		if before, ok := g.endAfter[a.Target]; ok && o.Result == ResultOK {
			<-g.endedCh(before)
		}
		defer close(g.endedCh(a.Target))
		if s, ok := g.outcome[a.Target]; ok && o.Result == ResultOK {
			o.Result, o.Err, o.Mutated = s.Result, s.Err, s.Mutated
		} else if o.Result == ResultOK {
			o.Mutated = true
		}
		g.log("end " + a.Target)
	case policy.ActRestartAgent:
		g.mu.Lock()
		for _, s := range g.order {
			if strings.HasPrefix(s, "end ") {
				g.offsDone++
			}
		}
		g.mu.Unlock()
		o.Mutated = true
	case policy.ActVerify:
		if g.verifyFails {
			o.Result, o.Err = ResultFailed, "heap still falling"
		}
	}
	return o
}

func threeOffs() []policy.Action {
	heap := &policy.HeapFigures{Name: "netGPHeap", PercentFreeOfMax: 3}
	p := []policy.Action{{Kind: policy.ActAlert, Target: "netGPHeap", Reason: "3% free of max", Heap: heap}}
	for i, name := range []string{"DSVA01", "DSVA03", "DSVA04"} {
		p = append(p, policy.Action{Kind: policy.ActPowerOff, Target: name, VMID: fmt.Sprint([]int{1, 3, 4}[i]), Reason: "flapping", Heap: heap})
	}
	return append(p,
		policy.Action{Kind: policy.ActRestartAgent, Target: AgentVpxa, Reason: "vpxa crashed", Heap: heap},
		policy.Action{Kind: policy.ActVerify, Target: AgentVpxa, Reason: "check recovery", Heap: heap})
}

// TestApplyPowerOffsRunSideBySide: the three power-offs of a plan run at
// once, each begun (journaled started, budget spent) in plan order before
// any ends; the restart begins only when all three have ended. Fails if
// Apply runs them one after another (each waits alone at the gate).
func TestApplyPowerOffsRunSideBySide(t *testing.T) {
	e := newApplyEnv(t)
	g := newGate(3)
	g.endAfter["DSVA03"], g.endAfter["DSVA01"] = "DSVA04", "DSVA03" // the last ends first
	outs, err := Apply(context.Background(), threeOffs(), e.opts(g))
	if err != nil {
		t.Fatal(err)
	}
	var results []string
	for _, o := range outs {
		results = append(results, o.Action.Target+" "+o.Result+" "+o.Err)
	}
	want := []string{"netGPHeap ok ", "DSVA01 ok ", "DSVA03 ok ", "DSVA04 ok ", "vpxa ok ", "vpxa ok "}
	if d := cmp.Diff(want, results); d != "" {
		t.Errorf("outcomes, in plan order (-want +got):\n%s", d)
	}
	if g.offsDone != 3 {
		t.Errorf("the restart began when %d of 3 power-offs had ended", g.offsDone)
	}
	got, entries := e.journal(t, false)
	// The three results come as the power-offs end, in any order.
	offs := got[3:9]
	if d := cmp.Diff([]string{"power_off started", "power_off started", "power_off started"}, offs[:3]); d != "" {
		t.Errorf("the power-offs were not all begun before one ended (-want +got):\n%s", d)
	}
	for i, en := range entries[3:6] {
		if want := threeOffs()[1+i].Target; en.Target != want {
			t.Errorf("started entry %d is %s, want %s: begun in plan order", i, en.Target, want)
		}
	}
	ended := map[string]bool{}
	for _, en := range entries[6:9] {
		if en.Action != policy.ActPowerOff || en.Result != ResultOK || !en.Mutated {
			t.Errorf("final entry %+v", en)
		}
		ended[en.Target] = true
	}
	if len(ended) != 3 {
		t.Errorf("final entries for %v, want each power-off once", ended)
	}
	if d := cmp.Diff([]string{"restart_agent started", "restart_agent ok", "verify started", "verify ok"}, got[9:]); d != "" {
		t.Errorf("after the power-offs (-want +got):\n%s", d)
	}
	if st := e.guards.Status(e.clock.Now()); st.PowerOffsInWindow != 3 || st.FailureStreak != 0 {
		t.Errorf("guards %+v: want exactly 3 power-offs spent, no failure", st)
	}
	if left := Unfinished(entries); len(left) != 0 {
		t.Errorf("steps left open: %+v", left)
	}
}

// TestApplyPowerOffsSideBySideGuards: the budget, refunds and the failure
// streak (three failures, one plan: one) stay exact when power-offs end
// out of order. The fourth is
// refused: three were begun before any ended, so the refund of one that
// ran nothing comes too late for it.
func TestApplyPowerOffsSideBySideGuards(t *testing.T) {
	e := newApplyEnv(t)
	g := newGate(3)
	g.outcome["DSVA01"] = Outcome{Result: ResultOK, Mutated: true}
	g.outcome["DSVA03"] = Outcome{Result: ResultFailed, Err: "getstate failed"}                 // ran nothing: refunded
	g.outcome["DSVA04"] = Outcome{Result: ResultFailed, Err: "still Powered on", Mutated: true} // stays spent
	g.verifyFails = true
	g.endAfter["DSVA03"] = "DSVA01" // its refund comes after DSVA01's charge was settled
	p := threeOffs()
	p = append(p[:4], append([]policy.Action{{Kind: policy.ActPowerOff, Target: "DSVA05", VMID: "5", Reason: "flapping"}}, p[4:]...)...)
	outs, err := Apply(context.Background(), p, e.opts(g))
	if err != nil {
		t.Fatal(err)
	}
	if o := outs[4]; o.Result != ResultSkipped || !strings.Contains(o.Err, "power-off budget spent: 3 power-offs in the last hour (max 3)") {
		t.Errorf("fourth power-off: %q %q, want refused by the budget", o.Result, o.Err)
	}
	// Today's rule: the restart runs although power-offs did not happen,
	// and says so.
	if o := outs[5]; o.Result != ResultOK || o.Action.Reason != "vpxa crashed [3 of 4 planned power-offs did not happen]" {
		t.Errorf("restart: %q, reason %q", o.Result, o.Action.Reason)
	}
	st := e.guards.Status(e.clock.Now())
	if st.PowerOffsInWindow != 2 || st.FailureStreak != 1 {
		t.Errorf("guards %+v: want 2 power-offs spent (DSVA03 refunded) and one failure for the plan", st)
	}
	// The file and the journal say the same.
	if st := openGuards(t, e.dir).Status(e.clock.Now()); st.PowerOffsInWindow != 2 {
		t.Errorf("guards.json holds %d power-offs, want 2", st.PowerOffsInWindow)
	}
	_, entries := e.journal(t, false)
	if offs, _ := Spent(entries, t0.Add(-time.Hour)); len(offs) != 2 {
		t.Errorf("the journal says %d power-offs spent, want 2", len(offs))
	}
}

// cancelAt is a journal file that cancels a context once a line holding
// every one of the words is written.
type cancelAt struct {
	*os.File
	words  []string
	cancel context.CancelFunc
}

func (c cancelAt) Write(p []byte) (int, error) {
	n, err := c.File.Write(p)
	hit := true
	for _, w := range c.words {
		hit = hit && strings.Contains(string(p), w)
	}
	if hit {
		c.cancel()
	}
	return n, err
}

// TestApplyCancelBetweenPowerOffs: SIGTERM after the second power-off was
// begun: the two begun run to their end and are journaled, the third is
// never started, and nothing is left open for the next start to resolve.
func TestApplyCancelBetweenPowerOffs(t *testing.T) {
	e := newApplyEnv(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	f, err := os.OpenFile(filepath.Join(e.dir, JournalFile), os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	opt := e.opts(newGate(2))
	opt.Journal = NewJournal(cancelAt{f, []string{`"target":"DSVA03"`, `"result":"started"`}, cancel}, e.clock)
	outs, err := Apply(ctx, threeOffs(), opt)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("got %v, want context.Canceled", err)
	}
	if len(outs) != 3 || outs[1].Result != ResultOK || outs[2].Result != ResultOK {
		t.Fatalf("outcomes %+v: want the alert and both begun power-offs, ended", outs)
	}
	got, entries := e.journal(t, false)
	if d := cmp.Diff([]string{"power_off skipped", "restart_agent skipped", "verify skipped"}, got[len(got)-3:]); d != "" {
		t.Errorf("journal's end (-want +got):\n%s", d)
	}
	if en := entries[len(entries)-3]; en.Target != "DSVA04" || !strings.Contains(en.Error, "heapguard is stopping") {
		t.Errorf("skipped entry %+v", en)
	}
	if left := Unfinished(entries); len(left) != 0 {
		t.Errorf("steps left open: %+v", left)
	}
	if st := e.guards.Status(e.clock.Now()); st.PowerOffsInWindow != 2 {
		t.Errorf("%d power-offs spent, want the 2 begun", st.PowerOffsInWindow)
	}
}

// slowHost is a host on which every command takes its whole timeout
// (less a millisecond) of host time and then answers: the guest ignores
// the shutdown, the VM is off only after power.off, and the agent never
// reports running.
type slowHost struct {
	clock *host.ManualClock
	mu    sync.Mutex
	off   bool
}

func (h *slowHost) Run(_ context.Context, timeout time.Duration, argv ...string) (host.Result, error) {
	h.clock.Advance(timeout - time.Millisecond)
	h.mu.Lock()
	defer h.mu.Unlock()
	res := host.Result{Argv: argv}
	switch {
	case argv[0] == "vim-cmd" && argv[1] == "vmsvc/power.getstate":
		state := "Powered on"
		if h.off {
			state = "Powered off"
		}
		res.Stdout = []byte("Retrieved runtime info\n" + state + "\n")
	case argv[0] == "vim-cmd" && argv[1] == "vmsvc/power.off":
		h.off = true
	case argv[len(argv)-1] == "status":
		res.ExitCode = 1
		return res, &host.CommandError{Argv: argv, ExitCode: 1}
	}
	return res, nil
}

// TestWorstPlanTimeBoundsASlowHost: on a host where every command runs
// to its timeout, a plan (power-off, restart, verification) stays within
// WorstPlanTime, the figure check's help gives, and comes close to it.
func TestWorstPlanTimeBoundsASlowHost(t *testing.T) {
	e := newApplyEnv(t)
	const heapRead = 10 * time.Second
	l := &Live{Runner: &slowHost{clock: e.clock}, Layout: layout55, Clock: e.clock,
		HeapCheck: func(context.Context) (float64, error) { e.clock.Advance(heapRead); return 50, nil }}
	p := threeOffs()[3:] // one power-off: side by side, more take no longer
	start := e.clock.Now()
	outs, err := Apply(context.Background(), p, e.opts(l))
	if err != nil {
		t.Fatal(err)
	}
	if len(outs) != 3 || outs[0].Result != ResultOK || outs[1].Result != ResultFailed || outs[2].Result != ResultFailed {
		t.Fatalf("outcomes %+v: want the power-off done hard, the restart and verification failed", outs)
	}
	took, bound := e.clock.Now().Sub(start), l.WorstPlanTime(heapRead).Total()
	t.Logf("took %s of host time, bound %s", took, bound)
	if took > bound || took < bound-30*time.Second {
		t.Errorf("a plan on a slow host took %s of host time, want at most %s, and close to it", took, bound)
	}
}
