package remediate

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/heapguard/heapguard/esxsim"
	"github.com/heapguard/heapguard/host"
	"github.com/heapguard/heapguard/policy"
)

func init() {
	// applyplan ROOT DIR applies killPlan on the simulated host at ROOT,
	// with its step clock, keeping the journal and guards in DIR; it waits
	// up to 10 h of host time for each shutdown, so it is still waiting
	// when the test kills it.
	helperCommands["applyplan"] = func(args []string) {
		os.Unsetenv(helperEnv) // the host's tools are this binary too
		root, dir := args[0], args[1]
		clock := esxsim.NewStepClock(root)
		j, err := OpenJournal(dir, clock)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		g, err := OpenHostGuards(dir, "", GuardLimits{})
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		l := &Live{Runner: host.Exec{Root: root}, Layout: host.DetectLayout(root), Clock: clock,
			ShutdownTimeout: 10 * time.Hour, PollInterval: time.Second}
		if _, err := Apply(context.Background(), killPlan(), ApplyOptions{Executor: l, Journal: j, Guards: g, Clock: clock, PlanID: "killed"}); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
	}
}

func killPlan() []policy.Action {
	return []policy.Action{
		{Kind: policy.ActPowerOff, Target: "DSVA01", VMID: "1", Reason: "port flapping"},
		{Kind: policy.ActPowerOff, Target: "DSVA03", VMID: "3", Reason: "port flapping"},
		{Kind: policy.ActPowerOff, Target: "DSVA04", VMID: "4", Reason: "port flapping"},
		{Kind: policy.ActRestartAgent, Target: AgentVpxa, Reason: "after the leak"},
	}
}

// TestApplyKilledDuringShutdowns: heapguard killed (-9) while three
// power-offs run side by side, one ended (DSVA01 shut down in 25 s) and
// two still waiting for guests that ignore the shutdown. The journal and
// guards.json it leaves hold the three starts and the budget they spent;
// the next start resolves exactly the two left open against the host.
// Fails if Unfinished tells the steps of a plan apart by less than their
// VM: interleaved, one step's end would close another.
func TestApplyKilledDuringShutdowns(t *testing.T) {
	h, _ := newSimHost(t, esxsim.Incident())
	h.Mutate(func(st *esxsim.State) {
		st.VM(3).ShutdownTime = esxsim.Duration(2 * time.Hour)
		st.VM(4).ShutdownTime = esxsim.Duration(2 * time.Hour)
	})
	dir := t.TempDir()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(exe)
	cmd.Env = append(os.Environ(), helperEnvVar("applyplan "+h.Root()+" "+dir))
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })

	// Kill it once DSVA01's end and the other two starts are journaled.
	seen := func(entries []Entry) bool {
		n := 0
		for _, e := range entries {
			if e.Target == "DSVA01" && e.Result == ResultOK || e.Target != "DSVA01" && e.Result == ResultStarted {
				n++
			}
		}
		return n == 3
	}
	for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		entries, _ := ReadJournalTail(dir)
		if seen(entries) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the plan did not get there in 60 s; journal: %+v", entries)
		}
	}
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	cmd.Wait()

	entries, err := ReadJournalTail(dir)
	if err != nil {
		t.Fatal(err)
	}
	open := Unfinished(entries)
	var got []string
	for _, e := range open {
		got = append(got, e.Target)
	}
	if d := cmp.Diff([]string{"DSVA03", "DSVA04"}, got); d != "" {
		t.Fatalf("steps left open (-want +got):\n%s", d)
	}
	// The budget was spent before any command ran, and stays spent.
	now := h.State().Now
	g := openGuards(t, dir)
	if st := g.Status(now); st.PowerOffsInWindow != 3 {
		t.Errorf("guards.json holds %d power-offs, want 3", st.PowerOffsInWindow)
	}

	// The next start: resolve against the host, as agent.recover does.
	j, err := OpenJournal(dir, host.NewManualClock(now))
	if err != nil {
		t.Fatal(err)
	}
	defer j.Close()
	done, err := ResolveUnfinished(context.Background(), j, open, host.Exec{Root: h.Root()}, host.DetectLayout(h.Root()), 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range done {
		if e.Result != ResultFailed || !e.Mutated || e.Error != fmt.Sprintf("interrupted; vmid %s is still Powered on", e.VMID) {
			t.Errorf("resolved %s: %q %q mutated %v, want failed, still on, budget kept", e.Target, e.Result, e.Error, e.Mutated)
		}
	}
	after, err := ReadJournalTail(dir)
	if err != nil {
		t.Fatal(err)
	}
	if left := Unfinished(after); len(left) != 0 {
		t.Errorf("still open after resolving: %+v", left)
	}
	if offs, _ := Spent(after, now.Add(-time.Hour)); len(offs) != 3 {
		t.Errorf("the journal says %d power-offs spent, want 3", len(offs))
	}
	if vmByID(t, h, 1).PoweredOn || !vmByID(t, h, 3).PoweredOn || !vmByID(t, h, 4).PoweredOn {
		t.Errorf("host: want DSVA01 off, DSVA03 and DSVA04 still on (their guests ignore the shutdown)")
	}
	for _, a := range h.Actions() {
		if a.Tool == "vpxa" {
			t.Errorf("vpxa restarted although power-offs were still running: %+v", a)
		}
	}
}
