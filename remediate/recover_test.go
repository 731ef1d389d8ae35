package remediate

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/heapguard/heapguard/host"
	"github.com/heapguard/heapguard/policy"
)

// scriptRunner answers commands from a table keyed by their words.
type scriptRunner map[string]host.Result

func (r scriptRunner) Run(_ context.Context, _ time.Duration, argv ...string) (host.Result, error) {
	res, ok := r[strings.Join(argv, " ")]
	if !ok {
		return host.Result{Argv: argv, ExitCode: -1}, &host.CommandError{Argv: argv, ExitCode: -1, Err: os.ErrNotExist}
	}
	if res.ExitCode != 0 {
		return res, &host.CommandError{Argv: argv, ExitCode: res.ExitCode}
	}
	return res, nil
}

func entryAt(at time.Time, plan string, a policy.Action, result string) Entry {
	e := entryFor(plan, a, false, result)
	e.Time = at.UTC().Format(time.RFC3339Nano)
	return e
}

// A journal as a heapguard killed mid-plan leaves it: the first power-off
// ended, the second was started, the rest never began.
func killedJournal() []Entry {
	p1 := policy.Action{Kind: policy.ActPowerOff, Target: "DSVA04", VMID: "4"}
	p2 := policy.Action{Kind: policy.ActPowerOff, Target: "DSVA01", VMID: "1"}
	return []Entry{
		{Time: t0.Format(time.RFC3339Nano), PlanID: "plan-1", Action: ActDecide, Target: "plan", Result: ResultOK},
		entryAt(t0, "plan-1", p1, ResultStarted),
		func() Entry { e := entryAt(t0.Add(25*time.Second), "plan-1", p1, ResultOK); e.Mutated = true; return e }(),
		entryAt(t0.Add(25*time.Second), "plan-1", p2, ResultStarted),
	}
}

func TestUnfinished(t *testing.T) {
	got := Unfinished(killedJournal())
	if len(got) != 1 || got[0].VMID != "1" || got[0].Result != ResultStarted {
		t.Fatalf("Unfinished = %+v, want the started power-off of vmid 1", got)
	}
	// Dry-run entries never count: nothing was started.
	dry := killedJournal()
	for i := range dry {
		dry[i].DryRun = true
	}
	if got := Unfinished(dry); len(got) != 0 {
		t.Errorf("dry run: %+v", got)
	}
}

func TestSpentRefundsStepsThatRanNothing(t *testing.T) {
	p3 := policy.Action{Kind: policy.ActPowerOff, Target: "DSVA03", VMID: "3"}
	entries := append(killedJournal(),
		entryAt(t0.Add(time.Minute), "plan-1", p3, ResultStarted),
		entryAt(t0.Add(time.Minute), "plan-1", p3, ResultFailed), // getstate failed: not mutated
		entryAt(t0.Add(time.Minute), "plan-1", policy.Action{Kind: policy.ActRestartAgent, Target: AgentVpxa}, ResultStarted),
	)
	offs, restarts := Spent(entries, t0.Add(-time.Hour))
	if len(offs) != 2 {
		t.Errorf("power-offs spent %v, want the 2 that may have run", offs)
	}
	if !restarts[AgentVpxa].Equal(t0.Add(time.Minute)) {
		t.Errorf("restarts %v", restarts)
	}
	if offs, _ := Spent(entries, t0.Add(time.Second)); len(offs) != 1 {
		t.Errorf("since t0+1s: %v, want 1", offs)
	}
}

// TestResolveUnfinished: the step a kill left open is asked of the host
// and ended in the journal, whichever way it went.
func TestResolveUnfinished(t *testing.T) {
	for _, tc := range []struct {
		name, state string
		exit        int
		result      string
		want        string
	}{
		{"VM off: the power-off worked", "Retrieved runtime info\nPowered off\n", 0, ResultOK, "vmid 1 is Powered off"},
		{"VM on: it did not", "Retrieved runtime info\nPowered on\n", 0, ResultFailed, "still Powered on"},
		{"state unreadable", "", 1, ResultFailed, "cannot be read"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newApplyEnv(t)
			r := scriptRunner{"vim-cmd vmsvc/power.getstate 1": {Stdout: []byte(tc.state), ExitCode: tc.exit}}
			steps := Unfinished(killedJournal())
			done, err := ResolveUnfinished(context.Background(), e.j, steps, r, layout55, time.Second)
			if err != nil {
				t.Fatal(err)
			}
			if len(done) != 1 || done[0].Result != tc.result || !strings.Contains(done[0].Output+done[0].Error, tc.want) ||
				done[0].PlanID != "plan-1" || !strings.HasPrefix(done[0].Reason, "resolved at start") {
				t.Errorf("resolved %+v, want %s holding %q", done, tc.result, tc.want)
			}
			_, entries := e.journal(t, false)
			if len(entries) != 1 || entries[0].Result != tc.result {
				t.Errorf("journal %+v", entries)
			}
			// Whatever became of it, a power-off that may have run stays
			// spent: the journal says so.
			if offs, _ := Spent(append(killedJournal(), done...), t0.Add(-time.Hour)); len(offs) != 2 {
				t.Errorf("spent after resolution: %v, want both started power-offs", offs)
			}
			// Once resolved, nothing is left open.
			if left := Unfinished(append(killedJournal(), done...)); len(left) != 0 {
				t.Errorf("still open: %+v", left)
			}
		})
	}
}

// TestGuardsRecoverFromJournal: a guards file lost after a crash does not
// hand back what the journal says was spent. Fails if Open's recovery
// trusted guards.json alone.
func TestGuardsRecoverFromJournal(t *testing.T) {
	dir := t.TempDir()
	g := openGuards(t, dir)
	start(t, g, powerOff, t0)
	os.Remove(filepath.Join(dir, GuardsFile))
	g = openGuards(t, dir)
	entries := killedJournal() // two power-offs started within the hour
	if err := g.Recover(entries, t0.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	if st := g.Status(t0.Add(time.Minute)); st.PowerOffsInWindow != 2 {
		t.Errorf("%d power-offs in the window after recovery, want 2", st.PowerOffsInWindow)
	}
	// Persisted, and not counted twice when recovered again.
	g = openGuards(t, dir)
	g.Recover(entries, t0.Add(time.Minute))
	if st := g.Status(t0.Add(time.Minute)); st.PowerOffsInWindow != 2 {
		t.Errorf("%d power-offs after a second recovery, want 2", st.PowerOffsInWindow)
	}
}

func TestReadJournalTail(t *testing.T) {
	dir := t.TempDir()
	if got, err := ReadJournalTail(dir); err != nil || got != nil {
		t.Fatalf("no journal: %v, %v", got, err)
	}
	j, err := OpenJournal(dir, host.NewManualClock(t0))
	if err != nil {
		t.Fatal(err)
	}
	big := strings.Repeat("x", 1<<20)
	for i := 0; i < 12; i++ { // 12 MiB: more than the tail
		j.Append(Entry{Action: policy.ActAlert, Target: "t", Result: ResultOK, Output: big, PlanID: string(rune('a' + i))})
	}
	j.Close()
	got, err := ReadJournalTail(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) == 0 || len(got) >= 12 || got[len(got)-1].PlanID != "l" {
		t.Errorf("tail holds %d entries ending with %q, want the last few ending with l", len(got), got[len(got)-1].PlanID)
	}
}
