package agent

import (
	"bufio"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/heapguard/heapguard/esxsim"
	"github.com/heapguard/heapguard/host"
	"github.com/heapguard/heapguard/policy"
	"github.com/heapguard/heapguard/remediate"
	"github.com/heapguard/heapguard/report"
)

// Acceptance tests: heapguard's watch loop against a simulated ESXi host.
// Each test lays out a scenario, lets simulated time pass to just before
// the interesting part, then runs the agent; the simulated host moves on
// only while the agent waits (esxsim.StepClock), so the tests do not
// depend on how fast or loaded this machine is.

type simRun struct {
	h        *esxsim.Host
	stateDir string
	results  []Result
	before   *esxsim.State
}

func newSim(t *testing.T, scenario string, opts ...esxsim.Option) *esxsim.Host {
	t.Helper()
	sc, err := esxsim.Preset(scenario)
	if err != nil {
		t.Fatal(err)
	}
	return esxsim.New(t, sc, opts...)
}

func agentOptions(h *esxsim.Host, stateDir string, clock host.Clock) Options {
	return Options{
		Root: h.Root(), StateDir: stateDir, Interval: 10 * time.Second,
		// The tools run in this process (esxsim.Runner): a run makes over a
		// thousand calls, and an exec costs tens of ms on a slow machine.
		Policy: policy.DefaultConfig(), Clock: clock, Runner: esxsim.Runner{Root: h.Root()},
		// The simulated guests take 20 s to shut down; polls every 5 s of host time.
		ShutdownTimeout: 2 * time.Minute, CommandTimeout: 10 * time.Second,
	}
}

// watch runs the agent the way cron runs `heapguard check`, one pass per
// 10 s of host time for d, with the simulated clock moving only when the
// agent waits.
func watch(t *testing.T, h *esxsim.Host, d time.Duration, configure func(*Options)) *simRun {
	t.Helper()
	r := &simRun{h: h, stateDir: filepath.Join(t.TempDir(), "state"), before: h.State()}
	clock := esxsim.NewStepClock(h.Root())
	opt := agentOptions(h, r.stateDir, clock)
	if configure != nil {
		configure(&opt)
	}
	w, err := Open(opt)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	ctx := context.Background()
	for end := clock.Now().Add(d); clock.Now().Before(end); {
		if err := clock.Sleep(ctx, opt.Interval); err != nil {
			t.Fatal(err)
		}
		res, err := w.Check(ctx)
		if err != nil {
			t.Fatalf("check at %s: %v", clock.Now(), err)
		}
		r.results = append(r.results, res)
	}
	return r
}

// watchDaemon runs the daemon loop (`heapguard run`) for d of host time,
// the simulated host moving on only while the loop waits.
func watchDaemon(t *testing.T, h *esxsim.Host, d time.Duration, configure func(*Options)) *simRun {
	t.Helper()
	r := &simRun{h: h, stateDir: filepath.Join(t.TempDir(), "state"), before: h.State()}
	opt := agentOptions(h, r.stateDir, esxsim.NewStepClock(h.Root()))
	if configure != nil {
		configure(&opt)
	}
	w, err := Open(opt)
	if err != nil {
		t.Fatal(err)
	}
	err = w.Run(context.Background(), d, func(res Result) { r.results = append(r.results, res) })
	if cerr := w.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		t.Fatalf("agent run: %v", err)
	}
	return r
}

func (r *simRun) journal(t *testing.T) []remediate.Entry {
	t.Helper()
	f, err := os.Open(filepath.Join(r.stateDir, "journal.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	entries, bad, err := remediate.ReadJournal(f)
	if err != nil || bad > 0 {
		t.Fatalf("journal: %v, %d bad lines", err, bad)
	}
	return entries
}

// powerOps are the power operations esxsim saw, by vmid.
func powerOps(acts []esxsim.Action) map[string][]string {
	out := map[string][]string{}
	for _, a := range acts {
		if a.Tool == "vim-cmd" && len(a.Argv) > 1 && strings.HasPrefix(a.Argv[1], "vmsvc/power.") {
			out[a.Target] = append(out[a.Target], a.Argv[1])
		}
	}
	return out
}

func agentOps(acts []esxsim.Action) []string {
	var out []string
	for _, a := range acts {
		if a.Tool != "vim-cmd" {
			out = append(out, a.Tool+" "+strings.Join(a.Argv[1:], " "))
		}
	}
	return out
}

// logHas reports whether any of the host's vmkernel logs (live and
// rotated) holds s.
func logHas(t *testing.T, root, s string) bool {
	t.Helper()
	for _, p := range report.HostLogs(root) {
		f, err := os.Open(p)
		if err != nil {
			continue
		}
		var r io.Reader = f
		if strings.HasSuffix(p, ".gz") {
			zr, err := gzip.NewReader(f)
			if err != nil {
				f.Close()
				t.Fatal(err)
			}
			r = zr
		}
		sc := bufio.NewScanner(r)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			if strings.Contains(sc.Text(), s) {
				f.Close()
				return true
			}
		}
		f.Close()
	}
	return false
}

func vmIDs(st *esxsim.State, prefix string) (match, others map[string]bool) {
	match, others = map[string]bool{}, map[string]bool{}
	for _, vm := range st.VMs {
		id := itoa(vm.ID)
		if strings.HasPrefix(vm.Name, prefix) {
			match[id] = true
		} else {
			others[id] = true
		}
	}
	return match, others
}

func itoa(n int) string {
	if n == 0 {
		return "0"
	}
	var b []byte
	for ; n > 0; n /= 10 {
		b = append([]byte{byte('0' + n%10)}, b...)
	}
	return string(b)
}

func agentRunning(st *esxsim.State, name string) bool {
	for _, a := range st.Agents {
		if a.Name == name {
			return a.Running
		}
	}
	return false
}

func allow(globs ...string) func(*Options) {
	return func(o *Options) { o.Policy.PowerOffAllow = globs }
}

// TestAcceptSeedIncident is the incident (../shared/seed/) handled by
// itself: exactly the three DSVA appliances powered off, nothing else
// touched, vpxa restarted and running, and the heap never at its maximum.
func TestAcceptSeedIncident(t *testing.T) {
	for _, tc := range []struct {
		name, scenario string
		agentOps       []string
	}{
		{"5.5", "seed-incident", []string{"vpxa restart"}},
		// 4.x: the incident's own fix, stop then start (the old script has no restart).
		{"4.1", "old-esx41", []string{"vmware-vpxa stop", "vmware-vpxa start"}},
		{"8.0", "esx80", []string{"vpxa restart"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h := newSim(t, tc.scenario)
			// 100 simulated minutes in: about 13% free, 17 minutes from full.
			h.Advance(100 * time.Minute)
			r := watch(t, h, 25*time.Minute, allow("dsva*"))
			after := h.State()
			acts := h.Actions()

			dsva, others := vmIDs(r.before, "DSVA")
			ops := powerOps(acts)
			for id := range dsva {
				if len(ops[id]) == 0 {
					t.Errorf("DSVA vmid %s was not powered off; power operations: %v", id, ops)
				}
			}
			for id := range ops {
				if !dsva[id] {
					t.Errorf("vmid %s is not a DSVA appliance but got %v", id, ops[id])
				}
			}
			for _, vm := range after.VMs {
				id := itoa(vm.ID)
				if dsva[id] && vm.PoweredOn {
					t.Errorf("%s still powered on", vm.Name)
				}
				if others[id] {
					for _, b := range r.before.VMs {
						if b.ID == vm.ID && b.PoweredOn != vm.PoweredOn {
							t.Errorf("%q changed power state", vm.Name)
						}
					}
				}
			}
			if got := agentOps(acts); strings.Join(got, "; ") != strings.Join(tc.agentOps, "; ") {
				t.Errorf("agent operations = %q, want %q", got, tc.agentOps)
			}
			if !agentRunning(after, "vpxa") {
				t.Error("vpxa is not running at the end")
			}
			if logHas(t, h.Root(), "already at its maximum") {
				t.Error("the heap reached its maximum")
			}

			// The journal explains each step, before and after.
			var started, ok int
			for _, e := range r.journal(t) {
				if e.Action == policy.ActPowerOff || e.Action == policy.ActRestartAgent {
					if e.Reason == "" || e.Heap == nil || e.Heap.PercentFreeOfMax <= 0 {
						t.Errorf("journal entry without reason or heap figures: %+v", e)
					}
					if e.DryRun {
						t.Errorf("live action journaled as dry run: %+v", e)
					}
					switch e.Result {
					case remediate.ResultStarted:
						started++
					case remediate.ResultOK:
						ok++
					}
				}
			}
			if started != 4 || ok != 4 {
				t.Errorf("journal: %d started and %d ok power-off/restart entries, want 4 and 4", started, ok)
			}
		})
	}
}

// TestAcceptNoAllowList: without --power-off-allow nothing is powered off
// and the plan says what it would have done and why it did not.
func TestAcceptNoAllowList(t *testing.T) {
	t.Parallel()
	h := newSim(t, "seed-incident")
	h.Advance(100 * time.Minute)
	r := watch(t, h, 10*time.Minute, nil)
	if ops := powerOps(h.Actions()); len(ops) != 0 {
		t.Errorf("power operations without an allow-list: %v", ops)
	}
	var skipped int
	for _, e := range r.journal(t) {
		if e.Action == policy.ActPowerOff {
			if e.Result != remediate.ResultSkipped || !strings.Contains(e.Error+e.Reason, "--power-off-allow") {
				t.Errorf("power-off entry %+v: want skipped, naming --power-off-allow", e)
			}
			skipped++
		}
	}
	if skipped < 3 {
		t.Errorf("%d skipped power-offs journaled, want the 3 DSVA appliances named", skipped)
	}
}

// TestAcceptDryRun: the whole pipeline runs, the plan is journaled with
// dry_run true, and the host is untouched.
func TestAcceptDryRun(t *testing.T) {
	t.Parallel()
	h := newSim(t, "seed-incident")
	h.Advance(100 * time.Minute)
	r := watch(t, h, 10*time.Minute, func(o *Options) {
		o.DryRun = true
		o.Policy.PowerOffAllow = []string{"DSVA*"}
	})
	if acts := h.Actions(); len(acts) != 0 {
		t.Errorf("dry run changed the host: %+v", acts)
	}
	var planned int
	for _, e := range r.journal(t) {
		if !e.DryRun {
			t.Errorf("dry-run journal entry without dry_run: %+v", e)
		}
		if e.Action == policy.ActPowerOff && e.Result == remediate.ResultDryRun {
			planned++
		}
	}
	if planned != 3 {
		t.Errorf("%d power-offs journaled as dry_run, want 3", planned)
	}
	if _, err := os.Stat(filepath.Join(r.stateDir, "state.json")); err == nil {
		t.Error("a dry run wrote the live state")
	}
}

// TestAcceptNoBlameNoPowerOff: a heap falling with no flapping port
// (slow-leak) raises alerts, never a power-off.
func TestAcceptNoBlameNoPowerOff(t *testing.T) {
	t.Parallel()
	h := newSim(t, "slow-leak")
	// Let it get low first: slow-leak takes 350 KB a minute.
	for h.State().Heaps[0].Allocated < h.State().Heaps[0].Max*88/100 {
		h.Advance(10 * time.Minute)
	}
	r := watch(t, h, 5*time.Minute, allow("*"))
	if ops := powerOps(h.Actions()); len(ops) != 0 {
		t.Errorf("power operations with no flapping port: %v", ops)
	}
	var crit bool
	for _, res := range r.results {
		if res.Plan.Status >= policy.Crit {
			crit = true
		}
	}
	if !crit {
		t.Error("the low heap never made a CRITICAL plan")
	}
}

// TestAcceptFlapNoLeak: a port that flaps but leaks nothing is a warning only.
func TestAcceptFlapNoLeak(t *testing.T) {
	t.Parallel()
	h := newSim(t, "flap-no-leak")
	h.Advance(10 * time.Minute)
	r := watch(t, h, 3*time.Minute, allow("*"))
	if acts := h.Actions(); len(acts) != 0 {
		t.Errorf("actions on a flap without a leak: %+v", acts)
	}
	if len(r.results) == 0 {
		t.Fatal("no poll")
	}
	last := r.results[len(r.results)-1].Plan
	if last.Status != policy.Warn || len(last.Flapping) == 0 {
		t.Errorf("last plan: status %s, %d flapping ports; want WARNING with the flapping port", last.Status, len(last.Flapping))
	}
	for _, res := range r.results {
		if acts(res.Plan) {
			t.Errorf("a plan acted: %+v", res.Plan.Actions)
		}
	}
}

// TestAcceptAmbiguousMAC: a second powered-on VM (mon-01) declares the
// flapping MAC of DSVA04's ethernet2 on a present NIC. Where nothing live
// tells the two apart (no port list, or twins of one name and NIC), neither
// is powered off and the plan names both; where net-stats names the port's
// client, that settles it. The other flapping VMs are handled either way.
// Fails if flapping maps a MAC whose owner is Ambiguous.
func TestAcceptAmbiguousMAC(t *testing.T) {
	const flapMAC = "00:50:56:84:5a:b1" // DSVA04's ethernet2, which flaps
	for _, tc := range []struct {
		name string
		// twin changes mon-01 (and the scenario) beyond taking the MAC.
		twin      func(st *esxsim.State, vm *esxsim.VM)
		ambiguous bool
	}{
		{"no net-stats on the host", func(st *esxsim.State, vm *esxsim.VM) {}, true},
		{"twins of one name", func(st *esxsim.State, vm *esxsim.VM) {
			vm.Name, vm.NICs[0].Index = "DSVA04", 2
		}, true},
		{"net-stats names the client", func(*esxsim.State, *esxsim.VM) {}, false},
		// The report: mon-01 declares the MAC as a static address.
		{"static address, no net-stats on the host", func(st *esxsim.State, vm *esxsim.VM) { vm.NICs[0].AddressType = "static" }, true},
		{"static address, net-stats names the client", func(st *esxsim.State, vm *esxsim.VM) { vm.NICs[0].AddressType = "static" }, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h := newSim(t, "seed-incident")
			if strings.HasSuffix(tc.name, "no net-stats on the host") {
				if err := os.Remove(h.Bin("net-stats")); err != nil {
					t.Fatal(err)
				}
			}
			// Just above 10% free: CRITICAL within the first polls.
			h.Advance(108 * time.Minute)
			var dsva04, twin esxsim.VM
			h.Mutate(func(st *esxsim.State) {
				dsva04 = *st.VMByName("DSVA04")
				vm := st.VMByName("mon-01")
				vm.NICs[0].MAC = flapMAC
				tc.twin(st, vm)
				twin = *vm
			})
			// Mutate does not rewrite .vmx files; the inventory reads them.
			st := h.State()
			vmx := h.Path("/vmfs/volumes/" + st.Scenario.DatastoreUUID + "/" + twin.Vmx)
			if err := os.WriteFile(vmx, []byte(esxsim.RenderVmx(st.Ver(), twin)), 0o644); err != nil {
				t.Fatal(err)
			}
			if !dsva04.PoweredOn || !twin.PoweredOn {
				t.Fatalf("DSVA04 and mon-01 must both run: %v, %v", dsva04.PoweredOn, twin.PoweredOn)
			}

			r := watch(t, h, 3*time.Minute, allow("DSVA*", "mon-01"))
			ops := powerOps(h.Actions())
			if len(ops[itoa(twin.ID)]) != 0 {
				t.Errorf("mon-01 (vmid %d), not the port's owner, got %v", twin.ID, ops[itoa(twin.ID)])
			}
			if got := len(ops[itoa(dsva04.ID)]) != 0; got == tc.ambiguous {
				t.Errorf("DSVA04 (vmid %d) powered off: %v, want %v", dsva04.ID, got, !tc.ambiguous)
			}
			// The agent did act on the unambiguous flapping VMs in this time.
			for _, name := range []string{"DSVA01", "DSVA03"} {
				if id := itoa(st.VMByName(name).ID); len(ops[id]) == 0 {
					t.Errorf("%s (vmid %s) was not powered off; power operations: %v", name, id, ops)
				}
			}
			var seen, settled bool
			for _, res := range r.results {
				for _, f := range res.Plan.Flapping {
					if f.MAC != flapMAC {
						continue
					}
					seen = true
					if f.VM != nil && f.VM.ID == itoa(twin.ID) {
						t.Errorf("plan at %s maps %s to mon-01", res.Plan.Time, flapMAC)
					}
					if tc.ambiguous && (f.VM != nil || !f.Ambiguous || len(f.Claimants) != 2) {
						t.Errorf("plan at %s: %s maps to %+v, ambiguous %v, claimants %q; want no VM, ambiguous, both claimants",
							res.Plan.Time, flapMAC, f.VM, f.Ambiguous, f.Claimants)
					}
					if f.VM != nil && f.VM.ID == itoa(dsva04.ID) && f.VM.PoweredOn && strings.Contains(strings.Join(f.Notes, " "), "mon-01") {
						settled = true
					}
				}
			}
			if !seen {
				t.Errorf("no plan listed %s as flapping", flapMAC)
			}
			if !tc.ambiguous && !settled {
				t.Errorf("no plan mapped %s to DSVA04 with a note naming mon-01", flapMAC)
			}
			for _, e := range r.journal(t) {
				if e.Action == policy.ActPowerOff && e.VMID == itoa(twin.ID) ||
					tc.ambiguous && e.Action == policy.ActPowerOff && (e.MAC == flapMAC || e.VMID == itoa(dsva04.ID)) {
					t.Errorf("power-off journaled for the ambiguous MAC: %+v", e)
				}
				if tc.ambiguous && e.Action == policy.ActAlert && e.MAC == flapMAC && !strings.Contains(e.Reason, "ambiguous") {
					t.Errorf("alert for %s does not say it is ambiguous: %s", flapMAC, e.Reason)
				}
			}
			// Said in the journal as ambiguous, naming every claimant.
			if tc.ambiguous && !journalAlertNames(t, r, "ambiguous", fmt.Sprintf("vmid %d", twin.ID), fmt.Sprintf("vmid %d", dsva04.ID)) {
				t.Errorf("no journaled alert says %s is ambiguous and names both claimants (vmids %d and %d)", flapMAC, twin.ID, dsva04.ID)
			}
		})
	}
}

// TestAcceptSecondInstanceRefuses: two agents on one state folder (a cron
// overlap) never act at once.
func TestAcceptSecondInstanceRefuses(t *testing.T) {
	t.Parallel()
	h := newSim(t, "healthy")
	opt := Options{Root: h.Root(), StateDir: t.TempDir(), Policy: policy.DefaultConfig()}
	w, err := Open(opt)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if _, err := Open(opt); !errors.Is(err, remediate.ErrLocked) {
		t.Fatalf("second Open: %v, want ErrLocked", err)
	}
	// A dry run never acts, so it may look while the daemon runs.
	opt.DryRun = true
	d, err := Open(opt)
	if err != nil {
		t.Fatalf("dry run beside a live agent: %v", err)
	}
	d.Close()
}

// TestAcceptHangingTools: vim-cmd power.shutdown hangs (faulty-tools): the
// command times out, the journal says so, hard power-off follows, and
// vsish failing at first is never acted on blind.
func TestAcceptHangingTools(t *testing.T) {
	t.Parallel()
	h := newSim(t, "faulty-tools")
	h.Advance(100 * time.Minute)
	r := watch(t, h, 20*time.Minute, func(o *Options) {
		o.Policy.PowerOffAllow = []string{"DSVA*"}
		o.CommandTimeout = time.Second
	})
	var timedOut bool
	for _, e := range r.journal(t) {
		if e.Action == policy.ActPowerOff && strings.Contains(e.Output+e.Error, "timed out") {
			timedOut = true
		}
	}
	if !timedOut {
		t.Error("no journal entry says a command timed out")
	}
	for _, res := range r.results {
		if res.Plan.HeapErr != "" && len(res.Plan.LiveActions()) > 0 {
			t.Errorf("acted while the heaps could not be read: %+v", res.Plan.Actions)
		}
	}
	if logHas(t, h.Root(), "already at its maximum") {
		t.Error("the heap reached its maximum")
	}
}

// TestAcceptDaemon runs `heapguard run`'s loop: one poll per interval of
// host time, each after reading the log; the three DSVA appliances end
// powered off and nothing else is.
func TestAcceptDaemon(t *testing.T) {
	t.Parallel()
	h := newSim(t, "seed-incident")
	h.Advance(95 * time.Minute)
	r := watchDaemon(t, h, 20*time.Minute, allow("DSVA*"))
	dsva, _ := vmIDs(r.before, "DSVA")
	ops := powerOps(h.Actions())
	for id := range ops {
		if !dsva[id] {
			t.Errorf("vmid %s is not a DSVA appliance but got %v", id, ops[id])
		}
	}
	for _, vm := range h.State().VMs {
		if dsva[itoa(vm.ID)] && vm.PoweredOn {
			t.Errorf("%s still powered on", vm.Name)
		}
	}
	// One poll per interval of host time, unless the poll before it acted
	// (its waits for the guests and vpxa take host time too).
	for i := 1; i < len(r.results); i++ {
		prev, cur := r.results[i-1], r.results[i]
		gap := cur.Plan.Time.Sub(prev.Plan.Time)
		if gap < 10*time.Second || gap > 10*time.Second && len(prev.Outcomes) == 0 {
			t.Errorf("poll %d came %s after the one before (which ran %d steps), want 10s", i, gap, len(prev.Outcomes))
		}
	}
	if n := len(r.results); n < 100 {
		t.Errorf("%d polls in 20 simulated minutes at a 10 s interval", n)
	}
}

// TestAcceptBreakerTrips: every power operation fails (vim-cmd exits 1):
// each failure is journaled with the command's error, and after
// --breaker-after failed plans in a row (a plan's failures count once)
// heapguard stops acting and says why.
func TestAcceptBreakerTrips(t *testing.T) {
	t.Parallel()
	sc, err := esxsim.ParseScenario([]byte(`{"base": "seed-incident", "name": "broken-vim-cmd",
		"faults": [
			{"command": "vim-cmd", "args_prefix": ["vmsvc/power.shutdown"], "exit_code": 1, "stderr": "vim-cmd: connection refused\n"},
			{"command": "vim-cmd", "args_prefix": ["vmsvc/power.off"], "exit_code": 1, "stderr": "vim-cmd: connection refused\n"}
		]}`))
	if err != nil {
		t.Fatal(err)
	}
	h := esxsim.New(t, sc)
	h.Advance(100 * time.Minute)
	r := watch(t, h, 20*time.Minute, func(o *Options) {
		o.Policy.PowerOffAllow = []string{"DSVA*"}
		o.Guards.BreakerAfter = 2
		o.Guards.MaxPowerOffs = 10 // the budget must not stop it first
	})
	var failed, breaker int
	for _, e := range r.journal(t) {
		if e.Action == policy.ActPowerOff && e.Result == remediate.ResultFailed {
			failed++
			if !strings.Contains(e.Error+e.Output, "connection refused") {
				t.Errorf("failed power-off does not carry the command's error: %+v", e)
			}
		}
		if e.Result == remediate.ResultSkipped && strings.Contains(e.Error, "circuit breaker open") {
			breaker++
		}
	}
	if failed != 6 {
		t.Errorf("%d failed power-offs journaled, want 6 (two plans of 3; the breaker opens after 2 plans)", failed)
	}
	if breaker == 0 {
		t.Error("no action was refused by the open circuit breaker")
	}
	g, err := remediate.OpenHostGuards(r.stateDir, "", remediate.GuardLimits{BreakerAfter: 2})
	if err != nil {
		t.Fatal(err)
	}
	if !g.Status(time.Now()).BreakerOpen {
		t.Error("guards.json does not keep the breaker open")
	}
}

// TestAcceptWatchedHeapNotSampled: --heaps that leave out the watched heap
// must not read as "all is well": the plan is UNKNOWN and does nothing.
func TestAcceptWatchedHeapNotSampled(t *testing.T) {
	t.Parallel()
	h := newSim(t, "seed-incident")
	h.Advance(110 * time.Minute)
	r := watch(t, h, time.Minute, func(o *Options) {
		o.Heaps = []string{"vmfs*"}
		o.Policy.PowerOffAllow = []string{"DSVA*"}
	})
	for _, res := range r.results {
		if res.Plan.Status != policy.Unknown || res.Plan.HeapErr == "" || len(res.Plan.LiveActions()) > 0 {
			t.Fatalf("plan %s, heap error %q, %d actions: want UNKNOWN, a heap error, no action",
				res.Plan.Status, res.Plan.HeapErr, len(res.Plan.LiveActions()))
		}
	}
}

// countingRunner counts the commands it runs by their first two words.
type countingRunner struct {
	host.Runner
	mu sync.Mutex
	n  map[string]int
}

func (c *countingRunner) Run(ctx context.Context, timeout time.Duration, argv ...string) (host.Result, error) {
	c.mu.Lock()
	key := argv[0]
	if len(argv) > 1 {
		key += " " + argv[1]
	}
	c.n[key]++
	c.mu.Unlock()
	return c.Runner.Run(ctx, timeout, argv...)
}

// TestInventoryReused: while a port flaps for 10 minutes of 10 s polls, the
// MAC -> VM inventory (vim-cmd getallvms through hostd, every .vmx) is
// loaded about once per 5 minutes, not 60 times; power states stay live.
func TestInventoryReused(t *testing.T) {
	t.Parallel()
	h := newSim(t, "flap-no-leak")
	h.Advance(10 * time.Minute)
	counter := &countingRunner{Runner: esxsim.Runner{Root: h.Root()}, n: map[string]int{}}
	r := watch(t, h, 10*time.Minute, func(o *Options) { o.Runner = counter })
	polls := len(r.results)
	t.Logf("%d polls: getallvms %d, power.getstate %d", polls, counter.n["vim-cmd vmsvc/getallvms"], counter.n["vim-cmd vmsvc/power.getstate"])
	if got := counter.n["vim-cmd vmsvc/getallvms"]; got < 1 || got > 3 {
		t.Errorf("getallvms ran %d times in %d polls, want 1 to 3", got, polls)
	}
	if got := counter.n["vim-cmd vmsvc/power.getstate"]; got < polls {
		t.Errorf("power.getstate ran %d times in %d polls: power states must be read every poll", got, polls)
	}
}

// failingWriter refuses every write, as a full or read-only disk does.
type failingWriter struct{}

func (failingWriter) Write([]byte) (int, error) { return 0, errors.New("no space left on device") }

// TestAcceptJournalUnwritable: with the journal unwritable nothing is done
// on the host, and the status line says so instead of "powering off".
func TestAcceptJournalUnwritable(t *testing.T) {
	t.Parallel()
	h := newSim(t, "seed-incident")
	h.Advance(110 * time.Minute)
	clock := esxsim.NewStepClock(h.Root())
	opt := agentOptions(h, filepath.Join(t.TempDir(), "state"), clock)
	opt.Policy.PowerOffAllow, opt.Policy.HoldPolls = []string{"DSVA*"}, 1
	w, err := Open(opt)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	w.journal.Close()
	w.journal = remediate.NewJournal(failingWriter{}, clock)
	res, err := w.Check(context.Background())
	if !errors.Is(err, remediate.ErrJournal) {
		t.Fatalf("check: %v, want ErrJournal", err)
	}
	if !strings.Contains(res.Plan.NagiosLine(), "powering off 3 VMs") {
		t.Fatalf("the plan did not mean to act: %s", res.Plan.NagiosLine())
	}
	if acts := h.Actions(); len(acts) != 0 {
		t.Errorf("acted with the journal unwritable: %+v", acts)
	}
	line := res.Plan.NagiosLineNotActing("journal cannot be written, no action taken")
	if !strings.HasPrefix(line, "HEAPGUARD CRITICAL: journal cannot be written, no action taken, netGPHeap ") || strings.Contains(line, "powering off") {
		t.Errorf("status line %q", line)
	}
}

// cancelAfter cancels a context at the nth heap listing, as a SIGTERM
// arriving in the middle of a poll does.
type cancelAfter struct {
	host.Runner
	n      int
	cancel context.CancelFunc
}

func (c *cancelAfter) Run(ctx context.Context, timeout time.Duration, argv ...string) (host.Result, error) {
	if argv[0] == "vsish" && len(argv) > 2 && argv[2] == "ls" {
		if c.n--; c.n == 0 {
			c.cancel()
		}
	}
	return c.Runner.Run(ctx, timeout, argv...)
}

// TestAcceptDaemonStopsCleanly: a run stopped by a signal in the middle
// of a poll, or by --for, journals a stop entry saying why, and never an
// UNKNOWN plan made of commands the signal cut short.
func TestAcceptDaemonStopsCleanly(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		forDur time.Duration
		cancel int // cancel at this heap listing; 0: never
		why    string
	}{
		{"signal mid-poll", 0, 3, "stopped by a signal"},
		{"--for reached", time.Minute, 0, "stopped: --for 1m0s reached"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newSim(t, "healthy")
			h.Advance(10 * time.Minute)
			stateDir := filepath.Join(t.TempDir(), "state")
			opt := agentOptions(h, stateDir, esxsim.NewStepClock(h.Root()))
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			opt.Runner = &cancelAfter{Runner: opt.Runner, n: tc.cancel, cancel: cancel}
			w, err := Open(opt)
			if err != nil {
				t.Fatal(err)
			}
			if err := w.Run(ctx, tc.forDur, nil); err != nil {
				t.Fatalf("run: %v", err)
			}
			w.Close()
			entries := (&simRun{stateDir: stateDir}).journal(t)
			if len(entries) == 0 {
				t.Fatal("empty journal")
			}
			last := entries[len(entries)-1]
			if last.Action != remediate.ActStop || last.Result != remediate.ResultOK || !strings.Contains(last.Reason, tc.why) {
				t.Errorf("last entry %+v, want a stop saying %q", last, tc.why)
			}
			for _, e := range entries {
				if e.Action == remediate.ActDecide && strings.Contains(e.Reason, "UNKNOWN") {
					t.Errorf("an UNKNOWN plan was journaled: %s", e.Reason)
				}
			}
		})
	}
}

// TestAcceptHeapRanOutActsAtOnce: the log's own word that the watched heap
// ran out (a line newer than the last sample) makes it CRITICAL at once,
// without the three polls a sampled percentage is held for; the same line
// read again after a later sample is no evidence.
func TestAcceptHeapRanOutActsAtOnce(t *testing.T) {
	t.Parallel()
	h := newSim(t, "seed-incident")
	h.Advance(100 * time.Minute) // about 13 % free, 3 DSVA ports flapping
	clock := esxsim.NewStepClock(h.Root())
	ctx := context.Background()
	check := func(w *Watcher) policy.Plan {
		t.Helper()
		if err := clock.Sleep(ctx, 10*time.Second); err != nil {
			t.Fatal(err)
		}
		res, err := w.Check(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return res.Plan
	}
	open := func() *Watcher {
		opt := agentOptions(h, filepath.Join(t.TempDir(), "state"), clock)
		opt.DryRun, opt.Policy.PowerOffAllow = true, []string{"DSVA*"}
		w, err := Open(opt)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { w.Close() })
		return w
	}
	evidence := func(p policy.Plan) string {
		for _, v := range p.Heaps {
			if v.Base == "netGPHeap" && strings.Contains(v.Why, "the log says") {
				return v.Why
			}
		}
		return ""
	}
	powerOffs := func(p policy.Plan) int {
		n := 0
		for _, a := range p.LiveActions() {
			if a.Kind == policy.ActPowerOff {
				n++
			}
		}
		return n
	}

	w := open()
	if p := check(w); p.Status != policy.Warn || powerOffs(p) != 0 || evidence(p) != "" {
		t.Fatalf("first sample at ~13%% free: %s with %d power-offs, want WARNING (held) and none", p.Headline(), powerOffs(p))
	}
	if err := clock.Sleep(ctx, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	h.Allocate("netGPHeap", 1<<40) // fails: the log gets "already at its maximum size"
	p := check(w)
	if p.Status != policy.Crit || powerOffs(p) != 3 || !strings.Contains(evidence(p), "ran out: 2 lines since the last sample") {
		t.Fatalf("after the heap ran out: %s, %d power-offs, why %q; want CRITICAL at once, 3 power-offs, the log's evidence",
			p.Headline(), powerOffs(p), evidence(p))
	}

	// The line is now older than the last sample: told again (a copy
	// appended), it is not new evidence.
	var maxed string
	for _, l := range strings.Split(readLog(t, h.Root()), "\n") {
		if strings.Contains(l, "already at its maximum size") {
			maxed = l
		}
	}
	if maxed == "" {
		t.Fatal("esxsim wrote no 'already at its maximum size' line")
	}
	h.AppendLog(maxed)
	if p := check(w); evidence(p) != "" {
		t.Errorf("a line older than the last sample was taken as evidence: %q", evidence(p))
	}
}

// readLog is the live vmkernel log of a simulated host.
func readLog(t *testing.T, root string) string {
	t.Helper()
	logs := report.HostLogs(root)
	b, err := os.ReadFile(logs[len(logs)-1])
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
