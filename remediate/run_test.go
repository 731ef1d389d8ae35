package remediate

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/heapguard/heapguard/host"
	"github.com/heapguard/heapguard/policy"
)

// recorder is an Executor that runs nothing and records what it was
// asked; Apply's tests are about order, journal and guards. Power-offs
// run side by side: calls is read only after Apply returns.
type recorder struct {
	mu      sync.Mutex
	calls   []policy.Action
	results map[policy.ActionKind]string
	onExec  func(ctx context.Context)
}

func (r *recorder) Execute(ctx context.Context, a policy.Action) Outcome {
	r.mu.Lock()
	r.calls = append(r.calls, a)
	r.mu.Unlock()
	if r.onExec != nil {
		r.onExec(ctx)
	}
	res := ResultOK
	if r, ok := r.results[a.Kind]; ok {
		res = r
	}
	o := Outcome{Action: a, Result: res, Output: "ran " + string(a.Kind), Elapsed: 1500 * time.Millisecond}
	if res == ResultFailed {
		o.Err = "it broke"
	}
	return o
}

type applyEnv struct {
	dir    string
	clock  *host.ManualClock
	guards *Guards
	j      *Journal
}

func newApplyEnv(t *testing.T) *applyEnv {
	t.Helper()
	e := &applyEnv{dir: t.TempDir(), clock: host.NewManualClock(t0)}
	e.guards = openGuards(t, e.dir)
	var err error
	if e.j, err = OpenJournal(e.dir, e.clock); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.j.Close() })
	return e
}

func (e *applyEnv) opts(x Executor) ApplyOptions {
	return ApplyOptions{Executor: x, Journal: e.j, Guards: e.guards, Clock: e.clock, PlanID: "plan-1", Summary: "netGPHeap 3% free of max"}
}

// journal returns "action result" per entry, checking the common fields.
func (e *applyEnv) journal(t *testing.T, dryRun bool) ([]string, []Entry) {
	t.Helper()
	f, err := os.Open(filepath.Join(e.dir, JournalFile))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	entries, bad, err := ReadJournal(f)
	if err != nil || bad != 0 {
		t.Fatalf("read journal: %v, %d bad lines", err, bad)
	}
	var got []string
	for _, en := range entries {
		got = append(got, string(en.Action)+" "+en.Result)
		if en.PlanID != "plan-1" || en.DryRun != dryRun || en.Time == "" {
			t.Errorf("entry %+v: want plan_id plan-1, dry_run %v, a time", en, dryRun)
		}
	}
	return got, entries
}

func plan() []policy.Action {
	heap := &policy.HeapFigures{Name: "netGPHeap", PercentFreeOfMax: 3}
	return []policy.Action{
		{Kind: policy.ActAlert, Target: "netGPHeap", Reason: "3% free of max", Heap: heap},
		{Kind: policy.ActPowerOff, Target: "other-vm", VMID: "9", Reason: "flapping", Skipped: "not in the allow-list", Heap: heap},
		{Kind: policy.ActPowerOff, Target: "dsva-1", VMID: "12", Port: "0x3000007", MAC: "00:50:56:aa:bb:01", Reason: "flapping", Heap: heap},
		{Kind: policy.ActRestartAgent, Target: AgentVpxa, Reason: "vpxa crashed", Heap: heap},
		{Kind: policy.ActVerify, Target: AgentVpxa, Reason: "check recovery", Heap: heap},
	}
}

func kinds(as []policy.Action) []string {
	var k []string
	for _, a := range as {
		k = append(k, string(a.Kind)+" "+a.Target)
	}
	return k
}

func TestApplyOrderSkipAndJournal(t *testing.T) {
	e := newApplyEnv(t)
	rec := &recorder{}
	outs, err := Apply(context.Background(), plan(), e.opts(rec))
	if err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff([]string{"alert netGPHeap", "power_off dsva-1", "restart_agent vpxa", "verify vpxa"}, kinds(rec.calls)); d != "" {
		t.Errorf("executed (-want +got):\n%s", d)
	}
	var results []string
	for _, o := range outs {
		results = append(results, o.Result)
	}
	if d := cmp.Diff([]string{"ok", "skipped", "ok", "ok", "ok"}, results); d != "" {
		t.Errorf("outcomes (-want +got):\n%s", d)
	}
	got, entries := e.journal(t, false)
	want := []string{
		"decide ok",
		"alert started", "alert ok",
		"power_off skipped",
		"power_off started", "power_off ok",
		"restart_agent started", "restart_agent ok",
		"verify started", "verify ok",
	}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("journal (-want +got):\n%s", d)
	}
	if d := cmp.Diff(plan(), entries[0].Plan); d != "" {
		t.Errorf("decision entry's plan (-want +got):\n%s", d)
	}
	if en := entries[3]; en.Error != "not in the allow-list" || en.VMID != "9" {
		t.Errorf("skipped entry %+v", en)
	}
	if en := entries[5]; en.Output != "ran power_off" || en.ElapsedMS != 1500 || en.MAC != "00:50:56:aa:bb:01" || en.Heap == nil {
		t.Errorf("result entry %+v", en)
	}
	st := e.guards.Status(e.clock.Now())
	if st.PowerOffsInWindow != 1 || st.AgentRestarts[AgentVpxa] != t0 {
		t.Errorf("guards %+v: want 1 power-off spent and vpxa's cooldown started", st)
	}
}

// A power-off the budget refuses does not cancel the restart and the
// verification that follow it.
func TestApplyRefusedPowerOffStillRestarts(t *testing.T) {
	e := newApplyEnv(t)
	for i := 0; i < 3; i++ {
		start(t, e.guards, powerOff, t0.Add(-time.Minute))
	}
	rec := &recorder{}
	if _, err := Apply(context.Background(), plan(), e.opts(rec)); err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff([]string{"alert netGPHeap", "restart_agent vpxa", "verify vpxa"}, kinds(rec.calls)); d != "" {
		t.Errorf("executed (-want +got):\n%s", d)
	}
	_, entries := e.journal(t, false)
	if en := entries[4]; en.Result != ResultSkipped || !strings.Contains(en.Error, "power-off budget spent: 3 power-offs in the last hour (max 3)") {
		t.Errorf("refused power-off entry: %+v", en)
	}
	// The restart does not pass for one that follows a power-off.
	const note = "vpxa crashed [1 of 1 planned power-offs did not happen]"
	if got := rec.calls[1].Reason; got != note {
		t.Errorf("restart reason %q, want %q", got, note)
	}
	if en := entries[5]; en.Action != policy.ActRestartAgent || en.Reason != note {
		t.Errorf("restart entry %+v: want reason %q", en, note)
	}
}

// A failed power-off is not counted as done either; a plan whose
// power-offs all ran keeps its reason (TestApplyOrderSkipAndJournal).
func TestApplyFailedPowerOffNoted(t *testing.T) {
	e := newApplyEnv(t)
	rec := &recorder{results: map[policy.ActionKind]string{policy.ActPowerOff: ResultFailed}}
	if _, err := Apply(context.Background(), plan(), e.opts(rec)); err != nil {
		t.Fatal(err)
	}
	if got := rec.calls[2].Reason; got != "vpxa crashed [1 of 1 planned power-offs did not happen]" {
		t.Errorf("restart reason %q", got)
	}
	ok := &recorder{}
	if _, err := Apply(context.Background(), plan(), newApplyEnv(t).opts(ok)); err != nil {
		t.Fatal(err)
	}
	if got := ok.calls[2].Reason; got != "vpxa crashed" {
		t.Errorf("restart reason after the power-off ran: %q", got)
	}
	// Only the power-offs before the restart count.
	p := plan()
	p[2], p[3] = p[3], p[2]
	late := &recorder{results: map[policy.ActionKind]string{policy.ActPowerOff: ResultFailed}}
	if _, err := Apply(context.Background(), p, newApplyEnv(t).opts(late)); err != nil {
		t.Fatal(err)
	}
	if got := late.calls[1]; got.Kind != policy.ActRestartAgent || got.Reason != "vpxa crashed" {
		t.Errorf("restart before the power-off: %+v", got)
	}
}

func TestApplyFailuresOpenBreaker(t *testing.T) {
	e := newApplyEnv(t)
	rec := &recorder{results: map[policy.ActionKind]string{policy.ActPowerOff: ResultFailed}}
	p := []policy.Action{{Kind: policy.ActPowerOff, Target: "dsva-1", VMID: "12"}}
	for i := 0; i < DefaultBreakerAfter; i++ {
		if _, err := Apply(context.Background(), p, e.opts(rec)); err != nil {
			t.Fatal(err)
		}
		e.clock.Advance(2 * time.Hour)
	}
	outs, err := Apply(context.Background(), plan(), e.opts(rec))
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range outs {
		if acting(o.Action.Kind) && o.Action.Skipped == "" && (o.Result != ResultSkipped || !strings.Contains(o.Err, "circuit breaker open: 3 failed remediations in a row")) {
			t.Errorf("%s with the breaker open: %q %q", o.Action.Kind, o.Result, o.Err)
		}
	}
}

// A verification after a plan that did nothing only observes: its failure
// must not open the breaker.
func TestApplyVerifyAloneDoesNotFeedBreaker(t *testing.T) {
	e := newApplyEnv(t)
	rec := &recorder{results: map[policy.ActionKind]string{policy.ActVerify: ResultFailed}}
	p := []policy.Action{{Kind: policy.ActVerify, Target: AgentVpxa}}
	for i := 0; i < DefaultBreakerAfter+1; i++ {
		if _, err := Apply(context.Background(), p, e.opts(rec)); err != nil {
			t.Fatal(err)
		}
	}
	if st := e.guards.Status(t0); st.FailureStreak != 0 || st.BreakerOpen {
		t.Errorf("guards %+v after failed verifications alone", st)
	}
	// After an acting step, a failed verification counts.
	if _, err := Apply(context.Background(), []policy.Action{vpxa, {Kind: policy.ActVerify, Target: AgentVpxa}}, e.opts(rec)); err != nil {
		t.Fatal(err)
	}
	if st := e.guards.Status(t0); st.FailureStreak != 1 {
		t.Errorf("streak %d after a restart then a failed verification, want 1", st.FailureStreak)
	}
}

func TestApplyStopsWhenJournalFails(t *testing.T) {
	for _, tc := range []struct {
		name      string
		failAfter int
		failAt    string // the entry whose write fails: "action result"
		wantCalls []string
	}{
		{"decision", 0, "decide ok", nil},
		{"alert result", 2, "alert ok", []string{"alert netGPHeap"}},
		{"skipped power-off", 3, "power_off skipped", []string{"alert netGPHeap"}},
		// Fails if Apply runs the power-off after its "started" entry failed to write.
		{"power-off start", 4, "power_off started", []string{"alert netGPHeap"}},
		{"power-off result", 5, "power_off ok", []string{"alert netGPHeap", "power_off dsva-1"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newApplyEnv(t)
			w := &syncCounter{writeErr: syscall.ENOSPC, failAfter: tc.failAfter}
			opt := e.opts(&recorder{})
			opt.Journal = NewJournal(w, e.clock)
			rec := opt.Executor.(*recorder)
			outs, err := Apply(context.Background(), plan(), opt)
			if !errors.Is(err, ErrJournal) {
				t.Fatalf("got %v, want ErrJournal", err)
			}
			// No step is begun before the decision is in the journal.
			if tc.failAfter == 0 && len(outs) != 0 {
				t.Errorf("the decision was not journaled, yet %d steps were begun: %+v", len(outs), outs)
			}
			if len(w.refused) == 0 {
				t.Fatal("no journal write failed")
			}
			var first Entry
			if err := json.Unmarshal(bytes.TrimSpace([]byte(w.refused[0])), &first); err != nil {
				t.Fatal(err)
			}
			if got := string(first.Action) + " " + first.Result; got != tc.failAt {
				t.Fatalf("the first failed write was %q, want %q", got, tc.failAt)
			}
			if d := cmp.Diff(tc.wantCalls, kinds(rec.calls)); d != "" {
				t.Errorf("executed (-want +got):\n%s", d)
			}
			// Spent only if the power-off started.
			wantSpent := 0
			if len(tc.wantCalls) == 2 {
				wantSpent = 1
			}
			if n := e.guards.Status(t0).PowerOffsInWindow; n != wantSpent {
				t.Errorf("%d power-offs spent, want %d", n, wantSpent)
			}
		})
	}
}

func TestApplyDevFullRunsNothing(t *testing.T) {
	f, err := os.OpenFile("/dev/full", os.O_WRONLY, 0)
	if err != nil {
		t.Skipf("no /dev/full: %v", err)
	}
	defer f.Close()
	e := newApplyEnv(t)
	opt := e.opts(&recorder{})
	opt.Journal = NewJournal(f, e.clock)
	_, err = Apply(context.Background(), plan(), opt)
	if !errors.Is(err, ErrJournal) || !strings.Contains(err.Error(), "taking no action") {
		t.Fatalf("got %v, want ErrJournal saying no action is taken", err)
	}
	if n := len(opt.Executor.(*recorder).calls); n != 0 {
		t.Errorf("%d actions ran with a full disk", n)
	}
}

func TestApplyGuardsNotPersistedRunsNothing(t *testing.T) {
	e := newApplyEnv(t)
	stateDir := filepath.Join(t.TempDir(), "gone")
	os.Mkdir(stateDir, 0o755)
	opt := e.opts(&recorder{})
	opt.Guards = openGuards(t, stateDir)
	os.RemoveAll(stateDir)
	outs, err := Apply(context.Background(), plan()[2:3], opt)
	if !errors.Is(err, ErrGuardState) {
		t.Fatalf("got %v, want ErrGuardState", err)
	}
	if n := len(opt.Executor.(*recorder).calls); n != 0 {
		t.Errorf("power-off ran although its budget could not be persisted")
	}
	got, _ := e.journal(t, false)
	if d := cmp.Diff([]string{"decide ok", "power_off started", "power_off failed"}, got); d != "" {
		t.Errorf("journal (-want +got):\n%s", d)
	}
	if len(outs) != 1 || !strings.Contains(outs[0].Err, "not run") {
		t.Errorf("outcomes %+v", outs)
	}
}

func TestApplyCancelMidAction(t *testing.T) {
	e := newApplyEnv(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	rec := &recorder{}
	rec.onExec = func(actx context.Context) {
		if len(rec.calls) == 2 { // during the power-off
			cancel()
			if actx.Err() != nil {
				t.Errorf("the running action's context was cancelled too")
			}
		}
	}
	outs, err := Apply(ctx, plan(), e.opts(rec))
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("got %v, want context.Canceled", err)
	}
	if d := cmp.Diff([]string{"alert netGPHeap", "power_off dsva-1"}, kinds(rec.calls)); d != "" {
		t.Errorf("executed (-want +got):\n%s", d)
	}
	if len(outs) != 3 || outs[2].Result != ResultOK {
		t.Errorf("outcomes %+v: want the power-off's result last", outs)
	}
	got, entries := e.journal(t, false)
	want := []string{
		"decide ok", "alert started", "alert ok", "power_off skipped",
		"power_off started", "power_off ok",
		"restart_agent skipped", "verify skipped",
	}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("journal (-want +got):\n%s", d)
	}
	if !strings.Contains(entries[len(entries)-1].Error, "heapguard is stopping") {
		t.Errorf("last entry %+v", entries[len(entries)-1])
	}
}

// cancelOnRun cancels a context when the first command starts, then runs
// the command for real.
type cancelOnRun struct {
	host.Runner
	cancel context.CancelFunc
}

func (c cancelOnRun) Run(ctx context.Context, timeout time.Duration, argv ...string) (host.Result, error) {
	c.cancel()
	return c.Runner.Run(ctx, timeout, argv...)
}

// SIGTERM during a hanging vim-cmd: the command is ended by its own
// timeout, not by the signal, and the failure reaches the journal.
func TestApplyCancelDuringHangingCommand(t *testing.T) {
	e := newApplyEnv(t)
	_, run := helperRoot(t, "hang")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	live := &Live{Runner: cancelOnRun{run, cancel}, Layout: layout55, Clock: e.clock, Timeout: 300 * time.Millisecond}
	outs, err := Apply(ctx, plan()[2:], e.opts(live))
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("got %v, want context.Canceled", err)
	}
	if len(outs) != 1 || outs[0].Result != ResultFailed || !strings.Contains(outs[0].Err, "command timed out after 300ms") {
		t.Fatalf("outcomes %+v: want the power-off failed by its timeout", outs)
	}
	got, _ := e.journal(t, false)
	want := []string{"decide ok", "power_off started", "power_off failed", "restart_agent skipped", "verify skipped"}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("journal (-want +got):\n%s", d)
	}
	// The hanging command was the first getstate: nothing changed on the
	// host, so the budget is handed back; the failure still counts.
	if st := e.guards.Status(e.clock.Now()); st.FailureStreak != 1 || st.PowerOffsInWindow != 0 {
		t.Errorf("guards %+v: want the failure recorded and the budget refunded", st)
	}
}

func TestApplyDryRun(t *testing.T) {
	e := newApplyEnv(t)
	for i := 0; i < 2; i++ {
		start(t, e.guards, powerOff, t0.Add(-time.Minute))
	}
	before, err := os.ReadFile(filepath.Join(e.dir, GuardsFile))
	if err != nil {
		t.Fatal(err)
	}
	p := append(plan(), policy.Action{Kind: policy.ActPowerOff, Target: "dsva-2", VMID: "13", Reason: "flapping"})
	opt := e.opts(&DryRun{Layout: layout55})
	opt.DryRun = true
	outs, err := Apply(context.Background(), p, opt)
	if err != nil {
		t.Fatal(err)
	}
	got, entries := e.journal(t, true)
	want := []string{
		"decide ok",
		"alert started", "alert dry_run",
		"power_off skipped",
		"power_off started", "power_off dry_run",
		"restart_agent started", "restart_agent dry_run",
		"verify started", "verify dry_run",
		"power_off skipped", // the dry run counted dsva-1: the budget would be spent
	}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("journal (-want +got):\n%s", d)
	}
	if !strings.Contains(entries[len(entries)-1].Error, "3 power-offs in the last hour (max 3)") {
		t.Errorf("last entry does not say what the guards would answer: %+v", entries[len(entries)-1])
	}
	if !strings.Contains(outs[2].Output, "would run: vim-cmd vmsvc/power.shutdown 12") {
		t.Errorf("dry-run output %q", outs[2].Output)
	}
	after, _ := os.ReadFile(filepath.Join(e.dir, GuardsFile))
	if !bytes.Equal(before, after) {
		t.Errorf("dry run changed %s:\n%s\n->\n%s", GuardsFile, before, after)
	}
	if st := e.guards.Status(t0); st.PowerOffsInWindow != 2 || len(st.AgentRestarts) != 0 {
		t.Errorf("dry run changed the guards: %+v", st)
	}
}

func TestApplyDryRunRefusesLiveExecutor(t *testing.T) {
	e := newApplyEnv(t)
	opt := e.opts(&Live{})
	opt.DryRun = true
	if _, err := Apply(context.Background(), plan(), opt); err == nil {
		t.Fatal("dry run accepted a live executor")
	}
	if b, _ := os.ReadFile(filepath.Join(e.dir, JournalFile)); len(b) != 0 {
		t.Errorf("journal written: %s", b)
	}
}

// TestApplyBegunNotRunWhenJournalFails: the second power-off's start
// cannot be journaled, so neither power-off runs: the first was begun
// (journaled, budget spent) but its result could not be kept. It ends
// failed with nothing changed, and its budget is given back.
func TestApplyBegunNotRunWhenJournalFails(t *testing.T) {
	e := newApplyEnv(t)
	w := &syncCounter{writeErr: syscall.ENOSPC, failAfter: 2} // decide, first start; the second start fails
	opt := e.opts(&recorder{})
	opt.Journal = NewJournal(w, e.clock)
	heap := &policy.HeapFigures{Name: "netGPHeap", PercentFreeOfMax: 3}
	offs := []policy.Action{
		{Kind: policy.ActPowerOff, Target: "dsva-1", VMID: "12", Reason: "flapping", Heap: heap},
		{Kind: policy.ActPowerOff, Target: "dsva-2", VMID: "13", Reason: "flapping", Heap: heap},
	}
	outs, err := Apply(context.Background(), offs, opt)
	if !errors.Is(err, ErrJournal) {
		t.Fatalf("got %v, want ErrJournal", err)
	}
	if calls := opt.Executor.(*recorder).calls; len(calls) != 0 {
		t.Errorf("ran %v with a journal that cannot be written", kinds(calls))
	}
	if len(outs) == 0 || outs[0].Action.Target != "dsva-1" || outs[0].Result != ResultFailed || !strings.Contains(outs[0].Err, "not run: ") {
		t.Errorf("outcomes %+v, want dsva-1 failed, not run", outs)
	}
	if n := e.guards.Status(t0).PowerOffsInWindow; n != 0 {
		t.Errorf("%d power-offs spent, want 0: nothing ran", n)
	}
}
