package agent

import (
	"context"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/heapguard/heapguard/esxsim"
	"github.com/heapguard/heapguard/host"
	"github.com/heapguard/heapguard/policy"
	"github.com/heapguard/heapguard/remediate"
)

// callRecorder records each command with its timeout and how long its
// context had left.
type callRecorder struct {
	host.Runner
	mu    sync.Mutex
	calls []string
}

func (c *callRecorder) Run(ctx context.Context, timeout time.Duration, argv ...string) (host.Result, error) {
	left := time.Duration(-1)
	if dl, ok := ctx.Deadline(); ok {
		left = time.Until(dl)
	}
	c.mu.Lock()
	c.calls = append(c.calls, strings.Join(argv, " ")+" | timeout "+timeout.String())
	c.mu.Unlock()
	// Beyond the budget, or without a deadline: fail the sample.
	if timeout > DefaultStatusBudget || left < 0 || left > DefaultStatusBudget {
		return host.Result{}, &host.CommandError{Argv: argv, ExitCode: -1, Err: host.ErrTimeout}
	}
	return c.Runner.Run(ctx, timeout, argv...)
}

// TestStatusSampleBudget: status's fresh sample is the heap listing and
// one read per watched heap, each command bounded by the status budget
// (not the heap package's 5 s per call) under a context that ends with it.
func TestStatusSampleBudget(t *testing.T) {
	h := newSim(t, "seed-incident")
	h.Advance(100 * time.Minute)
	rec := &callRecorder{Runner: esxsim.Runner{Root: h.Root()}}
	opt := agentOptions(h, t.TempDir(), esxsim.NewStepClock(h.Root()))
	opt.Runner = rec
	s, err := ReadStatus(context.Background(), opt, StatusOptions{})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"vsish -e ls /system/heaps/ | timeout ", "vsish -e cat /system/heaps/netGPHeap-0x410001000000/stats | timeout "}
	if len(rec.calls) != len(want) {
		t.Fatalf("commands %q, want %d", rec.calls, len(want))
	}
	for i, w := range want {
		if !strings.HasPrefix(rec.calls[i], w) {
			t.Errorf("command %d: %q, want %q…", i, rec.calls[i], w)
		}
	}
	if s.HeapErr != "" || len(s.Heaps) != 1 || s.Heaps[0].Level != policy.Warn {
		t.Errorf("status: heap error %q, heaps %+v", s.HeapErr, s.Heaps)
	}
}

// TestStatusHungStateFolder: a state folder whose reads never end (a
// datastore that stopped answering; here a FIFO nobody writes) makes
// status fail with the reason within its budget.
func TestStatusHungStateFolder(t *testing.T) {
	h := newSim(t, "seed-incident")
	state := t.TempDir()
	if err := syscall.Mkfifo(filepath.Join(state, "state.json"), 0o600); err != nil {
		t.Skipf("mkfifo: %v", err)
	}
	opt := agentOptions(h, state, esxsim.NewStepClock(h.Root()))
	start := time.Now()
	s, err := ReadStatus(context.Background(), opt, StatusOptions{Budget: 300 * time.Millisecond})
	took := time.Since(start)
	if err == nil || !strings.Contains(err.Error(), "not read within 300ms") {
		t.Errorf("status %+v, error %v: want the state folder named as not answering", s, err)
	}
	if took > 2*time.Second {
		t.Errorf("status took %s with a 300ms budget", took)
	}
}

// TestPlanView: a plan's steps take their last entry of that plan; a
// step killed after its start says started, one never reached says so.
func TestPlanView(t *testing.T) {
	id := "20260501T100000Z-1a2b3c4d"
	off1 := policy.Action{Kind: policy.ActPowerOff, Target: "DSVA01", VMID: "1"}
	off2 := policy.Action{Kind: policy.ActPowerOff, Target: "DSVA03", VMID: "3"}
	restart := policy.Action{Kind: policy.ActRestartAgent, Target: "vpxa"}
	skipped := policy.Action{Kind: policy.ActPowerOff, Target: "vcenter01", VMID: "6", Skipped: "not in --power-off-allow"}
	d := remediate.Entry{Time: "2026-05-01T10:00:00Z", PlanID: id, Action: remediate.ActDecide, Summary: "HEAPGUARD CRITICAL: netGPHeap 3.0% free of max | 'x'=1",
		Plan: []policy.Action{off1, skipped, off2, restart}}
	after := []remediate.Entry{
		{PlanID: id, Action: policy.ActPowerOff, Target: "DSVA01", VMID: "1", Result: remediate.ResultStarted, Time: "2026-05-01T10:00:01Z"},
		{PlanID: "other", Action: policy.ActPowerOff, Target: "DSVA03", VMID: "3", Result: remediate.ResultOK},
		{PlanID: id, Action: policy.ActPowerOff, Target: "DSVA01", VMID: "1", Result: remediate.ResultOK, Time: "2026-05-01T10:00:30Z"},
		{PlanID: id, Action: policy.ActPowerOff, Target: "vcenter01", VMID: "6", Result: remediate.ResultSkipped, Error: "not in --power-off-allow"},
		{PlanID: id, Action: policy.ActPowerOff, Target: "DSVA03", VMID: "3", Result: remediate.ResultStarted, Time: "2026-05-01T10:00:31Z"},
	}
	pv := planView(d, after)
	got := []string{}
	for _, s := range pv.Steps {
		got = append(got, s.Target+" "+s.Result)
	}
	want := "DSVA01 ok, vcenter01 skipped, DSVA03 started, vpxa not_reached"
	if strings.Join(got, ", ") != want || pv.Status != "CRITICAL" || !pv.Time.Equal(time.Date(2026, 5, 1, 10, 0, 0, 0, time.UTC)) {
		t.Errorf("steps %q status %q time %s, want %q CRITICAL", got, pv.Status, pv.Time, want)
	}
	if ShortPlanID(id) != "1a2b3c4d" || ShortPlanID("") != "-" {
		t.Errorf("ShortPlanID: %q %q", ShortPlanID(id), ShortPlanID(""))
	}
}
