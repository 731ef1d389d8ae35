package remediate

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/heapguard/heapguard/policy"
)

func openGuards(t *testing.T, dir string) *Guards {
	t.Helper()
	g, err := OpenHostGuards(dir, "", GuardLimits{})
	if err != nil {
		t.Fatal(err)
	}
	return g
}

var (
	powerOff = policy.Action{Kind: policy.ActPowerOff, Target: "dsva-1", VMID: "12"}
	vpxa     = policy.Action{Kind: policy.ActRestartAgent, Target: AgentVpxa}
	hostd    = policy.Action{Kind: policy.ActRestartAgent, Target: AgentHostd}
)

// start spends like Apply does: check, then record the start.
func start(t *testing.T, g *Guards, a policy.Action, now time.Time) {
	t.Helper()
	if err := g.Check(a, now); err != nil {
		t.Fatalf("check %s at %s: %v", a.Kind, now.Format(time.TimeOnly), err)
	}
	if err := g.Record(a, Outcome{Result: ResultStarted}, now); err != nil {
		t.Fatal(err)
	}
}

func TestGuardsPowerOffBudgetRollingHourAcrossRestart(t *testing.T) {
	dir := t.TempDir()
	g := openGuards(t, dir)
	for i := 0; i < DefaultMaxPowerOffs; i++ {
		start(t, g, powerOff, t0.Add(time.Duration(i)*10*time.Minute))
	}
	// A new process: the budget must come back from disk, spent.
	g = openGuards(t, dir)
	at := t0.Add(30 * time.Minute)
	err := g.Check(powerOff, at)
	if !errors.Is(err, ErrBudgetSpent) {
		t.Fatalf("4th power-off: got %v, want ErrBudgetSpent", err)
	}
	for _, want := range []string{"3 power-offs in the last hour (max 3)", "next allowed at 2026-07-26T02:26:46Z"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
	// Alerts and verifications are never budgeted.
	if err := g.Check(policy.Action{Kind: policy.ActVerify}, at); err != nil {
		t.Errorf("verify refused: %v", err)
	}
	if err := g.Check(powerOff, t0.Add(time.Hour-time.Second)); !errors.Is(err, ErrBudgetSpent) {
		t.Errorf("just inside the hour: got %v", err)
	}
	// The oldest leaves the window: one more is allowed, not two.
	start(t, g, powerOff, t0.Add(time.Hour))
	if err := g.Check(powerOff, t0.Add(time.Hour+time.Second)); !errors.Is(err, ErrBudgetSpent) {
		t.Errorf("after spending the freed slot: got %v", err)
	}
}

func TestGuardsBudgetSpentOnStartNotOnResult(t *testing.T) {
	dir := t.TempDir()
	g := openGuards(t, dir)
	for i := 0; i < 3; i++ {
		start(t, g, powerOff, t0)
		// No result recorded: the process "crashed" mid-action.
	}
	if err := openGuards(t, dir).Check(powerOff, t0.Add(time.Minute)); !errors.Is(err, ErrBudgetSpent) {
		t.Fatalf("after 3 started power-offs and a crash: got %v", err)
	}
}

func TestGuardsAgentCooldown(t *testing.T) {
	dir := t.TempDir()
	g := openGuards(t, dir)
	start(t, g, vpxa, t0)
	g = openGuards(t, dir)
	err := g.Check(vpxa, t0.Add(14*time.Minute))
	if !errors.Is(err, ErrCooldown) || !strings.Contains(err.Error(), "next allowed at 2026-07-26T01:41:46Z") {
		t.Fatalf("vpxa after 14m: got %v, want ErrCooldown naming 01:41:46Z", err)
	}
	if err := g.Check(hostd, t0.Add(time.Minute)); err != nil {
		t.Errorf("hostd has its own cooldown: %v", err)
	}
	if err := g.Check(vpxa, t0.Add(15*time.Minute)); err != nil {
		t.Errorf("vpxa after 15m: %v", err)
	}
	// A clock stepped back must not open the way.
	if err := g.Check(vpxa, t0.Add(-time.Hour)); !errors.Is(err, ErrCooldown) {
		t.Errorf("clock stepped back: got %v, want ErrCooldown", err)
	}
}

func TestGuardsBreaker(t *testing.T) {
	dir := t.TempDir()
	g := openGuards(t, dir)
	fail := Outcome{Result: ResultFailed, Err: "run [vim-cmd vmsvc/power.getstate 12]: command timed out"}
	now := t0
	for i := 0; i < DefaultBreakerAfter; i++ {
		if err := g.Check(vpxa, now); err != nil {
			t.Fatalf("failure %d: breaker open too early: %v", i, err)
		}
		if err := g.Record(vpxa, fail, now); err != nil {
			t.Fatal(err)
		}
		now = now.Add(time.Hour)
	}
	// Across a restart it stays open, for every acting kind.
	g = openGuards(t, dir)
	for _, a := range []policy.Action{powerOff, vpxa, hostd} {
		err := g.Check(a, now)
		if !errors.Is(err, ErrBreakerOpen) {
			t.Fatalf("%s after %d failures: got %v, want ErrBreakerOpen", a.Target, DefaultBreakerAfter, err)
		}
		if !strings.Contains(err.Error(), "command timed out") {
			t.Errorf("breaker error %q does not say what failed", err)
		}
	}
	if err := g.Check(policy.Action{Kind: policy.ActAlert}, now); err != nil {
		t.Errorf("alert refused with the breaker open: %v", err)
	}
	if err := g.Reset(now); err != nil {
		t.Fatal(err)
	}
	g = openGuards(t, dir)
	if err := g.Check(powerOff, now); err != nil {
		t.Errorf("after reset: %v", err)
	}
}

func TestGuardsSuccessClosesStreak(t *testing.T) {
	g := openGuards(t, t.TempDir())
	verify := policy.Action{Kind: policy.ActVerify, Target: AgentVpxa}
	seq := []struct {
		a policy.Action
		r string
	}{{powerOff, ResultFailed}, {powerOff, ResultFailed}, {verify, ResultOK}, {powerOff, ResultFailed}, {powerOff, ResultFailed}}
	for _, s := range seq {
		if err := g.Record(s.a, Outcome{Result: s.r}, t0); err != nil {
			t.Fatal(err)
		}
	}
	if err := g.Check(powerOff, t0); err != nil {
		t.Fatalf("2 failures after a success must not open the breaker: %v", err)
	}
	if s := g.Status(t0); s.FailureStreak != 2 || s.BreakerOpen {
		t.Errorf("status %+v, want streak 2, closed", s)
	}
}

func TestGuardsResetKeepsBudget(t *testing.T) {
	g := openGuards(t, t.TempDir())
	for i := 0; i < 3; i++ {
		start(t, g, powerOff, t0)
	}
	g.Reset(t0)
	if err := g.Check(powerOff, t0); !errors.Is(err, ErrBudgetSpent) {
		t.Errorf("reset handed the budget back: %v", err)
	}
}

func TestGuardsCorruptStateRefuses(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, GuardsFile), []byte(`{"power_offs": [`), 0o644)
	if _, err := OpenHostGuards(dir, "", GuardLimits{}); !errors.Is(err, ErrGuardState) {
		t.Fatalf("got %v, want ErrGuardState", err)
	}
}

// TestGuardsLooseKeysRefused: a guards file whose keys json.Unmarshal
// would read loosely (another letter case, a key twice) is refused as
// damaged, never read as a smaller spend; a key heapguard does not know
// (a newer version's) is not.
func TestGuardsLooseKeysRefused(t *testing.T) {
	at := func(d time.Duration) string { return `"` + t0.Add(-d).Format(time.RFC3339) + `"` }
	spent := `"power_offs":[` + at(3*time.Minute) + `,` + at(2*time.Minute) + `,` + at(time.Minute) + `]`
	for _, tt := range []struct {
		name, file string
		refused    bool
	}{
		{"as written", `{"version":1,` + spent + `}`, false},
		{"unknown key", `{"version":1,` + spent + `,"new_field":2}`, false},
		{"key in other case", `{"vErsion":1,` + spent + `}`, true},
		{"Kelvin sign for k", `{"version":1,` + spent + `,"brea\u212aer_open":false}`, true},
		{"long s for s", `{"version":1,"power_off\u017f":[]}`, true},
		{"spend given twice", `{"version":1,` + spent + `,"power_offs":[]}`, true},
		{"restart given twice", `{"version":1,` + spent + `,"agent_restarts":{"vpxa":` + at(time.Minute) + `,"vpxa":"2000-01-01T00:00:00Z"}}`, true},
		{"restarts of two agents", `{"version":1,` + spent + `,"agent_restarts":{"vpxa":` + at(time.Minute) + `,"hostd":` + at(time.Minute) + `}}`, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			if err := os.WriteFile(filepath.Join(dir, GuardsFile), []byte(tt.file), 0o600); err != nil {
				t.Fatal(err)
			}
			g, err := OpenHostGuards(dir, "", GuardLimits{})
			if tt.refused {
				if !errors.Is(err, ErrGuardState) {
					t.Fatalf("%s: got %v, want ErrGuardState", tt.file, err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if left := g.Status(t0).PowerOffsLeft(); left != 0 {
				t.Errorf("%d power-offs left after 3 spent at t0, want 0", left)
			}
		})
	}
}

func TestGuardsPersistFailure(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state")
	os.Mkdir(dir, 0o755)
	g := openGuards(t, dir)
	os.RemoveAll(dir)
	if err := g.Record(powerOff, Outcome{Result: ResultStarted}, t0); !errors.Is(err, ErrGuardState) {
		t.Fatalf("got %v, want ErrGuardState", err)
	}
}

func TestGuardsCustomLimits(t *testing.T) {
	g, err := OpenHostGuards(t.TempDir(), "", GuardLimits{MaxPowerOffs: 1, PowerOffWindow: 10 * time.Minute, BreakerAfter: 1})
	if err != nil {
		t.Fatal(err)
	}
	start(t, g, powerOff, t0)
	err = g.Check(powerOff, t0.Add(time.Minute))
	if !errors.Is(err, ErrBudgetSpent) || !strings.Contains(err.Error(), "in the last 10m0s (max 1)") {
		t.Errorf("got %v", err)
	}
	g.Record(vpxa, Outcome{Result: ResultFailed}, t0)
	if err := g.Check(vpxa, t0.Add(time.Hour)); !errors.Is(err, ErrBreakerOpen) {
		t.Errorf("BreakerAfter 1: got %v", err)
	}
}

func TestGuardsDryCopyChangesNothing(t *testing.T) {
	dir := t.TempDir()
	g := openGuards(t, dir)
	c := g.dryCopy()
	for i := 0; i < 5; i++ {
		c.Record(powerOff, Outcome{Result: ResultStarted}, t0)
		c.Record(powerOff, Outcome{Result: ResultFailed}, t0)
	}
	if _, err := os.Stat(filepath.Join(dir, GuardsFile)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("dry copy wrote %s: %v", GuardsFile, err)
	}
	if err := g.Check(powerOff, t0); err != nil {
		t.Errorf("dry copy changed the original: %v", err)
	}
	if err := c.Check(powerOff, t0); !errors.Is(err, ErrBreakerOpen) {
		t.Errorf("dry copy does not track its own state: %v", err)
	}
}

// TestGuardsUnverifiedRemediationsOpenBreaker: plans whose power-off and
// restart "work" but whose verification fails, again and again, are
// failed remediations: the breaker must open (a successful step alone
// must not close the streak).
func TestGuardsUnverifiedRemediationsOpenBreaker(t *testing.T) {
	g := openGuards(t, t.TempDir())
	verify := policy.Action{Kind: policy.ActVerify, Target: AgentVpxa}
	restart := policy.Action{Kind: policy.ActRestartAgent, Target: AgentVpxa}
	for i := 0; i < DefaultBreakerAfter; i++ {
		for _, s := range []struct {
			a policy.Action
			r string
		}{{powerOff, ResultOK}, {restart, ResultOK}, {verify, ResultFailed}} {
			if err := g.Record(s.a, Outcome{Result: s.r}, t0); err != nil {
				t.Fatal(err)
			}
		}
	}
	if s := g.Status(t0); !s.BreakerOpen || s.FailureStreak != DefaultBreakerAfter {
		t.Errorf("status %+v after %d unverified remediations, want the breaker open", s, DefaultBreakerAfter)
	}
}

// TestGuardsClockSteppedBack: entries recorded while the host clock ran a
// year ahead hold the budget and cooldown for one window, not a year.
func TestGuardsClockSteppedBack(t *testing.T) {
	g := openGuards(t, t.TempDir())
	future := t0.AddDate(1, 0, 0)
	restart := policy.Action{Kind: policy.ActRestartAgent, Target: AgentVpxa}
	for i := 0; i < DefaultMaxPowerOffs; i++ {
		start(t, g, powerOff, future)
	}
	start(t, g, restart, future)
	if err := g.Check(powerOff, t0); err == nil {
		t.Error("a budget spent in the future must still count right after the step back")
	}
	if err := g.Check(restart, t0); err == nil {
		t.Error("a cooldown started in the future must still hold right after the step back")
	}
	later := t0.Add(DefaultPowerOffWindow + time.Minute)
	if err := g.Check(powerOff, later); err != nil {
		t.Errorf("a year-ahead budget still held after a window: %v", err)
	}
	if err := g.Check(restart, t0.Add(DefaultAgentCooldown+time.Minute)); err != nil {
		t.Errorf("a year-ahead cooldown still held after a cooldown: %v", err)
	}
}

// TestGuardsHostWide: two instances with different state folders on one
// host share the budget and the breaker through the host record; each
// state folder keeps its own copy for after a reboot.
func TestGuardsHostWide(t *testing.T) {
	hostDir := t.TempDir()
	a, b := t.TempDir(), t.TempDir()
	open := func(dir string) *Guards {
		t.Helper()
		g, err := OpenHostGuards(dir, hostDir, GuardLimits{})
		if err != nil {
			t.Fatal(err)
		}
		return g
	}
	ga := open(a)
	for i := 0; i < DefaultMaxPowerOffs; i++ {
		start(t, ga, powerOff, t0) // three in one second: three charges
	}
	start(t, ga, vpxa, t0)
	gb := open(b)
	if err := gb.Check(powerOff, t0.Add(time.Minute)); !errors.Is(err, ErrBudgetSpent) {
		t.Errorf("second state folder, power-off: %v, want ErrBudgetSpent", err)
	}
	if err := gb.Check(vpxa, t0.Add(time.Minute)); !errors.Is(err, ErrCooldown) {
		t.Errorf("second state folder, vpxa: %v, want ErrCooldown", err)
	}
	// After a reboot the host record is gone (it lives in RAM on ESXi):
	// the state folder's copy still holds the budget.
	os.Remove(filepath.Join(hostDir, GuardsFile))
	if err := open(a).Check(powerOff, t0.Add(time.Minute)); !errors.Is(err, ErrBudgetSpent) {
		t.Errorf("after the host record is lost: %v, want ErrBudgetSpent", err)
	}
	// The breaker, opened through one folder, holds for the other.
	ga = open(a)
	for i := 0; i < DefaultBreakerAfter; i++ {
		ga.Record(vpxa, Outcome{Result: ResultFailed, Mutated: true}, t0)
	}
	if err := open(b).Check(vpxa, t0.Add(time.Hour)); !errors.Is(err, ErrBreakerOpen) {
		t.Errorf("breaker opened through the other folder: %v, want ErrBreakerOpen", err)
	}
}

// TestGuardsRefundWhenNothingRan: a step that fails before any command
// that changes the host (getstate failing) hands its budget back; one
// that ran a power-off keeps it spent. Fails if Record ignores Mutated.
func TestGuardsRefundWhenNothingRan(t *testing.T) {
	g, err := OpenHostGuards(t.TempDir(), "", GuardLimits{BreakerAfter: 100})
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 5; i++ {
		start(t, g, powerOff, t0)
		if err := g.Record(powerOff, Outcome{Result: ResultFailed, Err: "vim-cmd: connection refused"}, t0); err != nil {
			t.Fatal(err)
		}
	}
	if st := g.Status(t0); st.PowerOffsInWindow != 0 {
		t.Errorf("%d power-offs spent by steps that ran nothing, want 0", st.PowerOffsInWindow)
	}
	start(t, g, vpxa, t0)
	g.Record(vpxa, Outcome{Result: ResultFailed, Err: "no init script"}, t0)
	if err := g.Check(vpxa, t0.Add(time.Minute)); err != nil {
		t.Errorf("vpxa restart that ran nothing still cools down: %v", err)
	}
	start(t, g, powerOff, t0)
	g.Record(powerOff, Outcome{Result: ResultFailed, Err: "still on", Mutated: true}, t0)
	if st := g.Status(t0); st.PowerOffsInWindow != 1 {
		t.Errorf("%d power-offs spent after one that ran power.off, want 1", st.PowerOffsInWindow)
	}
}

// TestGuardsPlanFailsOnce: a plan whose three power-offs fail counts one
// failed remediation, and the breaker it opens does not refuse that
// plan's own restart. Fails if every failure of a plan counts.
func TestGuardsPlanFailsOnce(t *testing.T) {
	g, err := OpenHostGuards(t.TempDir(), "", GuardLimits{BreakerAfter: 1})
	if err != nil {
		t.Fatal(err)
	}
	g.BeginPlan()
	for i := 0; i < 3; i++ {
		start(t, g, powerOff, t0)
		g.Record(powerOff, Outcome{Result: ResultFailed, Mutated: true}, t0)
	}
	if err := g.Check(vpxa, t0); err != nil {
		t.Errorf("the plan's restart refused by a breaker its own failures opened: %v", err)
	}
	g.EndPlan()
	if st := g.Status(t0); st.FailureStreak != 1 || !st.BreakerOpen {
		t.Errorf("status %+v, want streak 1 and the breaker open (BreakerAfter 1)", st)
	}
	g.BeginPlan()
	if err := g.Check(vpxa, t0); !errors.Is(err, ErrBreakerOpen) {
		t.Errorf("next plan: %v, want ErrBreakerOpen", err)
	}
	g.EndPlan()
}

func TestGuardsNotAGuardsFile(t *testing.T) {
	for _, body := range []string{`{}`, `{"version": 2, "power_offs": []}`, `[]`} {
		dir := t.TempDir()
		os.WriteFile(filepath.Join(dir, GuardsFile), []byte(body), 0o600)
		if _, err := OpenHostGuards(dir, "", GuardLimits{}); !errors.Is(err, ErrGuardState) {
			t.Errorf("guards.json %s: got %v, want ErrGuardState", body, err)
		}
	}
}

// TestGuardsVerifiedPlanClosesItsBreaker: a plan whose power-off fails
// (opening the breaker at BreakerAfter 1) and whose verification then
// succeeds leaves the breaker closed; a breaker open when the plan began
// stays open. Fails if a verified recovery leaves an open breaker with a
// streak of 0.
func TestGuardsVerifiedPlanClosesItsBreaker(t *testing.T) {
	g, err := OpenHostGuards(t.TempDir(), "", GuardLimits{BreakerAfter: 1})
	if err != nil {
		t.Fatal(err)
	}
	verify := policy.Action{Kind: policy.ActVerify, Target: AgentVpxa}
	g.BeginPlan()
	start(t, g, powerOff, t0)
	g.Record(powerOff, Outcome{Result: ResultFailed, Mutated: true, Err: "still Powered on"}, t0)
	g.Record(verify, Outcome{Result: ResultOK}, t0)
	g.EndPlan()
	if st := g.Status(t0); st.BreakerOpen || st.FailureStreak != 0 {
		t.Errorf("after a verified plan: %+v, want the breaker closed", st)
	}
	g.Record(powerOff, Outcome{Result: ResultFailed, Mutated: true}, t0) // opens it, outside a plan
	g.BeginPlan()
	g.Record(verify, Outcome{Result: ResultOK}, t0)
	g.EndPlan()
	if st := g.Status(t0); !st.BreakerOpen {
		t.Errorf("a breaker open before the plan closed by its verification: %+v", st)
	}
}

// TestGuardsResetHoldsForEveryFolder: a reset through one state folder
// and the host record is not undone by another folder's older copy of
// the open breaker. Fails if merging takes any open breaker.
func TestGuardsResetHoldsForEveryFolder(t *testing.T) {
	hostDir, a, b := t.TempDir(), t.TempDir(), t.TempDir()
	open := func(dir string) *Guards {
		t.Helper()
		g, err := OpenHostGuards(dir, hostDir, GuardLimits{BreakerAfter: 1})
		if err != nil {
			t.Fatal(err)
		}
		return g
	}
	open(b).Record(vpxa, Outcome{Result: ResultFailed, Mutated: true, Err: "vpxa did not start"}, t0)
	if err := open(a).Reset(t0.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	if st := open(b).Status(t0.Add(time.Minute)); st.BreakerOpen || st.FailureStreak != 0 {
		t.Errorf("folder b after a reset through a: %+v, want closed", st)
	}
	// A failure after the reset counts again.
	open(b).Record(vpxa, Outcome{Result: ResultFailed, Mutated: true}, t0.Add(2*time.Minute))
	if st := open(a).Status(t0.Add(2 * time.Minute)); !st.BreakerOpen {
		t.Errorf("a failure after the reset: %+v, want the breaker open", st)
	}
}
