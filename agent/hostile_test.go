package agent

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/heapguard/heapguard/esxsim"
	"github.com/heapguard/heapguard/host"
	"github.com/heapguard/heapguard/policy"
	"github.com/heapguard/heapguard/remediate"
)

// Acceptance tests of hostile but ordinary hosts: each setup made an
// earlier heapguard power off the wrong VM, act twice, or miss a real
// leak. The seed incident's flapping ports: DSVA04 ethernet2 0x3000003
// (MAC ...:b1), DSVA01 ethernet2 0x3000005 (...:ba), DSVA03 ethernet2
// 0x3000007 (...:b4).

const (
	macDSVA01 = "00:50:56:84:5a:ba"
	macDSVA03 = "00:50:56:84:5a:b4"
	macDSVA04 = "00:50:56:84:5a:b1"
)

// vmidOf is the vmid of the VM with that display name.
func vmidOf(t *testing.T, h *esxsim.Host, name string) string {
	t.Helper()
	vm := h.State().VMByName(name)
	if vm == nil {
		t.Fatalf("no VM %q", name)
	}
	return itoa(vm.ID)
}

// wantPowerOps checks which VMs got power operations: every VM named in
// off got at least one, every VM in untouched none.
func wantPowerOps(t *testing.T, h *esxsim.Host, before *esxsim.State, off, untouched []string) {
	t.Helper()
	ops := powerOps(h.Actions())
	id := func(name string) string {
		for _, vm := range before.VMs {
			if vm.Name == name {
				return itoa(vm.ID)
			}
		}
		t.Fatalf("no VM %q", name)
		return ""
	}
	for _, n := range off {
		if len(ops[id(n)]) == 0 {
			t.Errorf("%s was not powered off; power operations: %v", n, ops)
		}
	}
	for _, n := range untouched {
		if len(ops[id(n)]) != 0 {
			t.Errorf("%s got %v, want no power operation", n, ops[id(n)])
		}
	}
}

// journalAlertNames reports whether an alert of the journal names every
// one of names.
func journalAlertNames(t *testing.T, r *simRun, names ...string) bool {
	t.Helper()
	for _, e := range r.journal(t) {
		if e.Action != policy.ActAlert {
			continue
		}
		all := true
		for _, n := range names {
			all = all && strings.Contains(e.Reason, n)
		}
		if all {
			return true
		}
	}
	return false
}

func replaceMAC(old, new string) func(string) string {
	return func(text string) string { return strings.ReplaceAll(text, old, new) }
}

// TestHostileVMXEditedClaim: after the flap began, the .vmx files were
// edited so that mon-01 claims DSVA03's flapping MAC and DSVA03's no
// longer does. net-stats still names DSVA03.eth2 as the port's client:
// nobody is confirmed, nobody is powered off for that port, and the alert
// names the claimant.
func TestHostileVMXEditedClaim(t *testing.T) {
	t.Parallel()
	h := newSim(t, "seed-incident")
	h.Advance(108 * time.Minute)
	h.EditVMX("DSVA03", replaceMAC(macDSVA03, "00:50:56:84:5a:99"))
	h.EditVMX("mon-01", replaceMAC("00:50:56:3f:10:01", macDSVA03))
	r := watch(t, h, 5*time.Minute, allow("DSVA*", "mon-01"))
	wantPowerOps(t, h, r.before, []string{"DSVA01", "DSVA04"}, []string{"mon-01", "DSVA03"})
	if !journalAlertNames(t, r, "0x3000007", `"mon-01"`, "DSVA03") {
		t.Error("no alert names port 0x3000007, its claimant mon-01 and net-stats' client DSVA03")
	}
}

// moveDSVA03MACToMon01 unregisters DSVA03 and gives its MAC to mon-01
// while the old port's flaps are in the window, watches 3 minutes with
// mon-01 allowed, and checks that only DSVA01 and DSVA04 were powered off.
func moveDSVA03MACToMon01(t *testing.T, h *esxsim.Host) *simRun {
	t.Helper()
	h.Unregister(3)
	h.Mutate(func(st *esxsim.State) { st.VMByName("mon-01").NICs[0].MAC = macDSVA03 })
	h.RenderVMX("mon-01")
	r := watch(t, h, 3*time.Minute, func(o *Options) {
		o.Policy.PowerOffAllow, o.Policy.HoldPolls = []string{"DSVA*", "mon-01"}, 1
	})
	wantPowerOps(t, h, r.before, []string{"DSVA01", "DSVA04"}, []string{"mon-01"})
	return r
}

// TestHostileMACMoved: DSVA03 was unregistered (its port went away) and
// its MAC given to mon-01, while the old port's flaps are still in the
// window: mon-01 is never powered off for them.
func TestHostileMACMoved(t *testing.T) {
	t.Parallel()
	h := newSim(t, "seed-incident")
	h.Advance(112 * time.Minute)
	r := moveDSVA03MACToMon01(t, h)
	if !journalAlertNames(t, r, "0x3000007", "does not list port 0x3000007", `"mon-01"`) {
		t.Error("no alert says port 0x3000007 is gone and names mon-01")
	}
}

// TestHostileVmknicFlaps: a VMkernel NIC (vmk1, net-stats type 3) flaps
// and mon-01's .vmx lists its MAC on a NIC that is not present: mon-01 is
// never powered off; the DSVA appliances still are.
func TestHostileVmknicFlaps(t *testing.T) {
	t.Parallel()
	h := newSim(t, "seed-incident")
	h.Advance(108 * time.Minute)
	const vmk1 = "00:50:56:6a:3c:91"
	h.AddFlap(esxsim.FlapSpec{Port: 0x4000002, Period: esxsim.Duration(3 * time.Second)})
	h.EditVMX("mon-01", func(text string) string {
		return text + "ethernet1.present = \"FALSE\"\nethernet1.addressType = \"static\"\nethernet1.address = \"" + vmk1 + "\"\n"
	})
	r := watch(t, h, 5*time.Minute, func(o *Options) {
		o.Policy.PowerOffAllow = []string{"DSVA*", "mon-01"}
		o.Guards.MaxPowerOffs = 10 // the budget must not be what spares mon-01
	})
	wantPowerOps(t, h, r.before, []string{"DSVA01", "DSVA03", "DSVA04"}, []string{"mon-01"})
	if !journalAlertNames(t, r, "0x4000002", "VMkernel NIC", "NIC not present") {
		t.Error("no alert says port 0x4000002 is a VMkernel NIC and names mon-01's absent NIC")
	}
}

// TestHostileStaleClaims: old-build-03 (powered off) holds a stale copy
// of DSVA04's MAC, and backup-proxy an unused static address line with
// DSVA01's. Neither makes the real flappers ambiguous: all three DSVA
// appliances are powered off, and nothing else.
func TestHostileStaleClaims(t *testing.T) {
	t.Parallel()
	h := newSim(t, "seed-incident")
	h.Advance(108 * time.Minute)
	h.EditVMX("old-build-03", replaceMAC("00:50:56:84:44:03", macDSVA04))
	h.EditVMX("backup-proxy", func(text string) string {
		return text + "ethernet0.address = \"" + macDSVA01 + "\"\n"
	})
	r := watch(t, h, 5*time.Minute, allow("*"))
	wantPowerOps(t, h, r.before, []string{"DSVA01", "DSVA03", "DSVA04"},
		[]string{"old-build-03", "backup-proxy", "mon-01", "vcenter01", "db-02", "web 01 (prod); $(x)"})
}

// TestHostileTwoStateFolders: a daemon with one state folder and a cron
// check with another never act at once, and share the host's budget: with
// --max-power-offs 2, two power-offs in all, no VM twice.
func TestHostileTwoStateFolders(t *testing.T) {
	t.Parallel()
	h := newSim(t, "seed-incident")
	h.Advance(108 * time.Minute)
	budget := func(o *Options) {
		o.Policy.PowerOffAllow = []string{"DSVA*"}
		o.Guards.MaxPowerOffs = 2
	}
	a := agentOptions(h, filepath.Join(t.TempDir(), "a"), esxsim.NewStepClock(h.Root()))
	budget(&a)
	wa, err := Open(a)
	if err != nil {
		t.Fatal(err)
	}
	b := a
	b.StateDir = filepath.Join(t.TempDir(), "b")
	if _, err := Open(b); !errors.Is(err, remediate.ErrLocked) || !strings.Contains(err.Error(), a.StateDir) {
		t.Errorf("second instance: %v, want ErrLocked naming %s", err, a.StateDir)
	}
	wa.Close()

	watch(t, h, 8*time.Minute, budget)
	watch(t, h, 8*time.Minute, budget) // another state folder
	shutdowns := map[string]int{}
	for _, act := range h.Actions() {
		if act.Tool == "vim-cmd" && len(act.Argv) > 1 && act.Argv[1] == "vmsvc/power.shutdown" {
			shutdowns[act.Target]++
		}
	}
	if len(shutdowns) != 2 {
		t.Errorf("VMs shut down: %v, want 2 with a host budget of 2", shutdowns)
	}
	for id, n := range shutdowns {
		if n > 1 {
			t.Errorf("vmid %s shut down %d times", id, n)
		}
	}
}

// failGetstate fails `vim-cmd vmsvc/power.getstate` while on is set, the
// way a brief vim-cmd fault does.
type failGetstate struct {
	host.Runner
	on bool
}

func (f *failGetstate) Run(ctx context.Context, timeout time.Duration, argv ...string) (host.Result, error) {
	if f.on && len(argv) > 1 && argv[0] == "vim-cmd" && argv[1] == "vmsvc/power.getstate" {
		return host.Result{Argv: argv, ExitCode: 1, Stderr: []byte("vim-cmd: connection refused\n")},
			&host.CommandError{Argv: argv, ExitCode: 1, Stderr: "vim-cmd: connection refused"}
	}
	return f.Runner.Run(ctx, timeout, argv...)
}

// TestHostileGetstateFault: vim-cmd cannot read power states while one
// plan runs. Its three power-offs ran nothing that changes the host:
// they cost no budget, count once toward the breaker, and the plan's
// vpxa restart still runs; once vim-cmd answers, the VMs are powered off.
func TestHostileGetstateFault(t *testing.T) {
	t.Parallel()
	h := newSim(t, "seed-incident")
	h.Advance(108 * time.Minute)
	stateDir := filepath.Join(t.TempDir(), "state")
	clock := esxsim.NewStepClock(h.Root())
	opt := agentOptions(h, stateDir, clock)
	opt.Policy.PowerOffAllow, opt.Policy.HoldPolls = []string{"DSVA*"}, 1
	w, err := Open(opt)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	// The poll confirms the owners through the watcher's runner; the
	// fault hits the executor's, while the first acting plan runs.
	fault := &failGetstate{Runner: opt.Runner, on: true}
	w.exec.(*remediate.Live).Runner = fault
	ctx := context.Background()
	var faulted Result
	for end := clock.Now().Add(10 * time.Minute); clock.Now().Before(end); {
		if err := clock.Sleep(ctx, opt.Interval); err != nil {
			t.Fatal(err)
		}
		res, err := w.Check(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if fault.on && len(res.Outcomes) > 0 {
			faulted, fault.on = res, false
		}
	}
	if faulted.Plan.Time.IsZero() {
		t.Fatal("no plan acted")
	}
	var failed, restarted int
	for _, o := range faulted.Outcomes {
		switch {
		case o.Action.Kind == policy.ActPowerOff && o.Result == remediate.ResultFailed && !o.Mutated:
			failed++
		case o.Action.Kind == policy.ActRestartAgent && o.Result == remediate.ResultOK:
			restarted++
		}
	}
	if failed != 3 || restarted != 1 {
		t.Errorf("faulted plan: %d power-offs failed without running anything, %d restarts; want 3 and 1: %+v", failed, restarted, faulted.Outcomes)
	}
	g := w.guards.Status(clock.Now())
	if g.BreakerOpen || g.FailureStreak > 1 {
		t.Errorf("guards %+v: the faulted plan counted more than once", g)
	}
	wantPowerOps(t, h, h.State(), []string{"DSVA01", "DSVA03", "DSVA04"}, nil)
}

// TestHostileOutOfOrderLines: ten link events of DSVA03's port spread
// over an hour, one line stamped 59 minutes later than its place, with the
// heap critical: not a flap, nothing powered off.
func TestHostileOutOfOrderLines(t *testing.T) {
	t.Parallel()
	h := newSim(t, "healthy")
	h.Advance(2 * time.Hour)
	st := h.State()
	heapMax := st.Heaps[0].Max
	h.Allocate("netGPHeap", st.Heaps[0].Max-st.Heaps[0].Allocated-heapMax*5/100)
	now := h.State().Now
	// Cycles every 6 minutes up to now; the first line is stamped 59
	// minutes later than its place.
	var lines []string
	for i := range 10 {
		at := now.Add(time.Duration(i*6-54) * time.Minute)
		if i == 0 {
			at = at.Add(59 * time.Minute)
		}
		stamp := at.UTC().Format("2006-01-02T15:04:05.000Z")
		lines = append(lines,
			stamp+" cpu3:41832)NetPort: 1632: disabled port 0x3000007",
			stamp+" cpu3:41832)NetPort: 1426: enabled port 0x3000007 with mac "+macDSVA03)
	}
	h.AppendLog(lines...)
	r := watch(t, h, 2*time.Minute, func(o *Options) {
		o.Policy.PowerOffAllow, o.Policy.HoldPolls = []string{"DSVA*"}, 1
	})
	if ops := powerOps(h.Actions()); len(ops) != 0 {
		t.Errorf("power operations on ten events spread over an hour: %v", ops)
	}
	for _, res := range r.results {
		for _, f := range res.Plan.Flapping {
			t.Errorf("plan at %s: %s flapping %d times", res.Plan.Time, f.Port, f.Cycles)
		}
	}
}

// TestHostileClockSteppedBack: the DSVA appliances stop flapping, their
// flaps leave the window, then the host clock steps back an hour and the
// heap runs low: the old flaps now lie in the clock's future and must not
// make the appliances flapping again.
func TestHostileClockSteppedBack(t *testing.T) {
	t.Parallel()
	h := newSim(t, "seed-incident")
	h.Advance(100 * time.Minute)
	for _, vm := range []string{"DSVA01", "DSVA03", "DSVA04"} {
		h.StopFlapping(vm, 2)
	}
	h.Advance(6 * time.Minute)
	h.StepClock(-time.Hour)
	hp := h.State().Heaps[0]
	h.Allocate(hp.Name, hp.Max*95/100-hp.Allocated) // 5 % free
	r := watch(t, h, 10*time.Minute, allow("DSVA*"))
	if ops := powerOps(h.Actions()); len(ops) != 0 {
		t.Errorf("power operations on flaps that ended before the clock stepped back: %v", ops)
	}
	var crit bool
	for _, res := range r.results {
		crit = crit || res.Plan.Status == policy.Crit
		for _, f := range res.Plan.Flapping {
			t.Errorf("plan at %s: %s flapping %d times", res.Plan.Time, f.Port, f.Cycles)
		}
	}
	if !crit {
		t.Error("the low heap never made a CRITICAL plan")
	}
}

// TestHostileBlindWithVpxaDown: vsish cannot be used and vpxa is down:
// CRITICAL, and vpxa is restarted (it needs no heap figure).
func TestHostileBlindWithVpxaDown(t *testing.T) {
	t.Parallel()
	h := newSim(t, "healthy")
	h.Advance(10 * time.Minute)
	h.AddFault(esxsim.Fault{Command: "vsish", ExitCode: 1, Stderr: "VSI_Init failed: Out of memory\n"})
	h.Mutate(func(st *esxsim.State) { st.Agent("vpxa").Running = false })
	r := watch(t, h, time.Minute, nil)
	if got := agentOps(h.Actions()); strings.Join(got, "; ") != "vpxa restart" {
		t.Errorf("agent operations %q, want vpxa restart", got)
	}
	if len(r.results) == 0 || r.results[0].Plan.Status != policy.Crit || r.results[0].Plan.HeapErr == "" {
		t.Fatalf("first plan: %+v, want CRITICAL with the heap error", r.results[0].Plan)
	}
	if !agentRunning(h.State(), "vpxa") {
		t.Error("vpxa is not running at the end")
	}
}

// TestHostileAllocationJump: one +5 MB allocation at about 60 % free, then
// flat, while a port flaps without leaking: a one-off step is not a rate,
// so no exhaustion is predicted and nothing is powered off.
func TestHostileAllocationJump(t *testing.T) {
	t.Parallel()
	h := newSim(t, "flap-no-leak")
	h.Advance(10 * time.Minute)
	st := h.State()
	hp := st.Heaps[0]
	// Down to 65 % free; two polls later one jump of 5 MB, to about 57 %.
	h.Allocate(hp.Name, hp.Max*35/100-hp.Allocated)
	clock := esxsim.NewStepClock(h.Root())
	opt := agentOptions(h, filepath.Join(t.TempDir(), "state"), clock)
	opt.Policy.PowerOffAllow = []string{"*"}
	w, err := Open(opt)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	ctx := context.Background()
	var results []Result
	for i := 0; i < 60; i++ {
		if i == 2 {
			h.Allocate(hp.Name, 5<<20)
		}
		if err := clock.Sleep(ctx, opt.Interval); err != nil {
			t.Fatal(err)
		}
		res, err := w.Check(ctx)
		if err != nil {
			t.Fatal(err)
		}
		results = append(results, res)
	}
	if ops := powerOps(h.Actions()); len(ops) != 0 {
		t.Errorf("power operations after a single allocation jump: %v", ops)
	}
	for _, res := range results {
		for _, v := range res.Plan.Heaps {
			if v.Watched && (v.HasPrediction && v.TimeToExhaustion < 15*time.Minute || v.Level == policy.Crit) {
				t.Errorf("plan at %s: %s %.1f%% free, predicted %v in %s", res.Plan.Time, v.Name, v.PercentFreeOfMax, v.HasPrediction, v.TimeToExhaustion)
			}
		}
	}
}

// TestHostileNetStatsFails: net-stats exists but fails during the
// incident (it times out when the host is short of heap): no port is
// confirmed, so nothing is powered off, and the alert says why. Fails if
// a failing net-stats falls back to the claims alone.
func TestHostileNetStatsFails(t *testing.T) {
	t.Parallel()
	h := newSim(t, "seed-incident")
	h.Advance(108 * time.Minute)
	h.AddFault(esxsim.Fault{Command: "net-stats", ExitCode: 1, Stderr: "net-stats: cannot allocate memory\n"})
	r := watch(t, h, 3*time.Minute, func(o *Options) {
		o.Policy.PowerOffAllow, o.Policy.HoldPolls = []string{"DSVA*"}, 1
	})
	if ops := powerOps(h.Actions()); len(ops) != 0 {
		t.Errorf("power operations with no port list: %v", ops)
	}
	if !journalAlertNames(t, r, "port list could not be read") {
		t.Error("no alert says the port list could not be read")
	}
}

// TestHostileMACMovedSameSecond41 is TestHostileMACMoved on a 4.1 host
// without net-stats, whose syslog stamps have whole seconds: DSVA03 is
// unregistered in the second of its port's last enable, or a later one.
// Log order, not the stamps, says the port went down: mon-01 is never
// powered off.
func TestHostileMACMovedSameSecond41(t *testing.T) {
	t.Parallel()
	for _, sameSecond := range []bool{true, false} {
		t.Run(map[bool]string{true: "same second", false: "later second"}[sameSecond], func(t *testing.T) {
			t.Parallel()
			h := newSim(t, "seed-incident", esxsim.WithVersion("4.1"))
			if p := h.Bin("net-stats"); p != "" {
				os.Remove(p)
			}
			h.Advance(112 * time.Minute)
			found := false
			for range 100 {
				st := h.State()
				var next time.Time
				for _, f := range st.Flappers {
					if f.VMID == 3 {
						next = f.Next
					}
				}
				at := next.Add(10 * time.Millisecond)
				if !sameSecond {
					at = next.Add(1100 * time.Millisecond)
				}
				h.Advance(at.Sub(st.Now))
				if next.Truncate(time.Second).Equal(at.Truncate(time.Second)) == sameSecond {
					found = true
					break
				}
			}
			if !found {
				t.Fatal("no flap of DSVA03 to unregister at")
			}
			moveDSVA03MACToMon01(t, h)
		})
	}
}

// TestHostileMACMovedAfterClockStep: the host's clock steps back 3 min
// (NTP) 40 s before DSVA03 is unregistered and its MAC given to mon-01,
// on a host without net-stats: lines stamped before older ones still
// say the port went down, and mon-01 is never powered off.
func TestHostileMACMovedAfterClockStep(t *testing.T) {
	t.Parallel()
	h := newSim(t, "seed-incident")
	if err := os.Remove(h.Bin("net-stats")); err != nil {
		t.Fatal(err)
	}
	h.Advance(112 * time.Minute)
	h.StepClock(-3 * time.Minute)
	h.Advance(40 * time.Second)
	moveDSVA03MACToMon01(t, h)
}
