package main

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/heapguard/heapguard/internal/testtool"

	"github.com/heapguard/heapguard/esxsim"
	"github.com/heapguard/heapguard/policy"
	"github.com/heapguard/heapguard/remediate"
)

// TestFaultMatrixSignals is the fault matrix's row "SIGTERM and SIGKILL
// at every step of a plan" (agent.TestFaultMatrix has the others): the
// real binary runs the seed incident's plan; a command of one step hangs
// (an esxsim fault), and while it hangs heapguard gets SIGTERM or
// SIGKILL. Started again, it must resolve what was left open, repeat
// nothing, keep the budget spent, and keep the journal whole. A SIGTERM
// must end the run cleanly (exit 0, a stop entry last).
func TestFaultMatrixSignals(t *testing.T) {
	steps := []struct {
		name  string
		setup func(h *esxsim.Host)
		fault esxsim.Fault
		// wantOff end powered off after the restart; the others stay on
		// because the budget their interrupted step spent stays spent.
		wantOff []string
		// termOff, when set, replaces wantOff after a SIGTERM: the step
		// under way finishes (the hard power-off follows the shutdown).
		termOff []string
	}{
		{name: "reading the heaps", wantOff: []string{"DSVA01", "DSVA03", "DSVA04"},
			fault: esxsim.Fault{Command: "vsish", ArgsPrefix: []string{"-e", "ls"}, Times: 1}},
		{name: "guest shutdowns", termOff: []string{"DSVA01", "DSVA03", "DSVA04"},
			fault: esxsim.Fault{Command: "vim-cmd", ArgsPrefix: []string{"vmsvc/power.shutdown"}, Times: 3}},
		{name: "hard power-off", wantOff: []string{"DSVA03", "DSVA04"},
			setup: func(h *esxsim.Host) {
				h.Mutate(func(st *esxsim.State) { st.VM(1).ShutdownTime = esxsim.Duration(10 * time.Hour) })
			},
			fault: esxsim.Fault{Command: "vim-cmd", ArgsPrefix: []string{"vmsvc/power.off", "1"}, Times: 1}},
		{name: "vpxa restart", wantOff: []string{"DSVA01", "DSVA03", "DSVA04"},
			fault: esxsim.Fault{Command: "vpxa", ArgsPrefix: []string{"restart"}, Times: 1}},
	}
	bin := heapguardBin(t)
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGKILL} {
		for _, step := range steps {
			t.Run(sig.String()+"/"+step.name, func(t *testing.T) {
				t.Parallel()
				h := simHost(t, "seed-incident")
				h.Advance(108 * time.Minute) // the first poll acts
				if step.setup != nil {
					step.setup(h)
				}
				f := step.fault
				f.Hang, f.HangFor = true, esxsim.Duration(5*time.Second)
				faultAt := len(h.State().Scenario.Faults)
				h.AddFault(f)
				wantOff := step.wantOff
				if sig == syscall.SIGTERM && step.termOff != nil {
					wantOff = step.termOff
				}
				signalAt(t, h, bin, sig, faultAt, wantOff)
			})
		}
	}
}

func signalAt(t *testing.T, h *esxsim.Host, bin string, sig syscall.Signal, faultAt int, wantOff []string) {
	state := filepath.Join(t.TempDir(), "state")
	args := []string{"run", "--root", h.Root(), "--state-dir", state, "--power-off-allow", "DSVA*",
		"--interval", "10s", "--hold-polls", "1", "--shutdown-timeout", "30s"}
	first := steppedCommand(bin, args...)
	var firstErr bytes.Buffer
	first.Stderr = &firstErr
	if err := first.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { first.Process.Kill(); first.Wait() })
	// Signal it once the step's command hangs (the fault's first hit).
	hit := func() bool {
		hits := h.State().FaultHits
		return faultAt < len(hits) && hits[faultAt] > 0
	}
	for deadline := time.Now().Add(60 * time.Second); !hit(); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the step's command was not run within 60 s; stderr:\n%s", firstErr.String())
		}
	}
	if err := first.Process.Signal(sig); err != nil {
		t.Fatal(err)
	}
	err := first.Wait()
	var ee *exec.ExitError
	switch {
	case sig == syscall.SIGTERM && err != nil:
		t.Errorf("SIGTERM: %v, want a clean exit; stderr:\n%s", err, firstErr.String())
	case sig == syscall.SIGKILL && !(errors.As(err, &ee) && ee.ProcessState.Sys().(syscall.WaitStatus).Signaled()):
		t.Errorf("SIGKILL: %v, want killed", err)
	}
	killed := readJournal(t, state)
	if sig == syscall.SIGTERM {
		if n := len(killed); n == 0 || killed[n-1].Action != remediate.ActStop || killed[n-1].Result != remediate.ResultOK {
			t.Errorf("journal after SIGTERM does not end with a clean stop entry: %+v", killed)
		}
	}

	second := steppedCommand(bin, append(args, "--for", "3m")...)
	if out, err := second.CombinedOutput(); err != nil {
		t.Fatalf("second run: %v\n%s", err, out)
	}

	entries := journalWhole(t, state)
	if len(entries) < len(killed) {
		t.Errorf("journal went from %d entries to %d", len(killed), len(entries))
	}
	if open := remediate.Unfinished(entries); len(open) != 0 {
		t.Errorf("steps still open after the restart: %+v", open)
	}
	end := h.State()
	for _, e := range entries {
		if e.Action == policy.ActPowerOff && e.Result == remediate.ResultOK && !e.DryRun {
			if n, err := strconv.Atoi(e.VMID); err == nil && end.VM(n) != nil && end.VM(n).PoweredOn {
				t.Errorf("journal says %s (vmid %s) was powered off, yet it runs", e.Target, e.VMID)
			}
		}
	}
	done := map[string]int{}
	offVMs := map[string]bool{}
	for _, a := range h.Actions() {
		if len(a.Argv) < 2 {
			continue
		}
		if a.Tool == "vim-cmd" {
			if !slices.Contains([]string{"1", "3", "4"}, a.Target) || a.Argv[1] == "vmsvc/power.on" {
				t.Errorf("unsafe: %s on vmid %s", a.Argv[1], a.Target)
			}
			offVMs[a.Target] = true
		}
		if a.Exit == 0 && !strings.HasPrefix(a.Result, "fault") {
			done[a.Tool+" "+a.Argv[1]+" "+a.Target]++
		}
	}
	for k, n := range done {
		if n > 1 {
			t.Errorf("done %d times: %s", n, k)
		}
	}
	if len(offVMs) > remediate.DefaultMaxPowerOffs {
		t.Errorf("%d VMs got power operations, budget %d", len(offVMs), remediate.DefaultMaxPowerOffs)
	}
	for _, vm := range end.VMs {
		off := slices.Contains(wantOff, vm.Name)
		switch {
		case off && vm.PoweredOn:
			t.Errorf("%s still on after the restart", vm.Name)
		case !off && !vm.PoweredOn && strings.HasPrefix(vm.Name, "DSVA"):
			t.Errorf("%s powered off after the restart: the budget its interrupted step spent was spent again", vm.Name)
		}
	}
}

// journalWhole reads every line of the journal: none may be torn.
func journalWhole(t *testing.T, stateDir string) []remediate.Entry {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(stateDir, remediate.JournalFile))
	if err != nil {
		t.Fatal(err)
	}
	entries, bad, err := remediate.ReadJournal(bytes.NewReader(b))
	if err != nil || bad > 0 {
		t.Errorf("journal: %v, %d lines that do not parse", err, bad)
	}
	return entries
}

// TestFaultMatrixNoFlock is the fault matrix's row "the state folder on a
// filesystem without flock": the real binary runs under strace, which
// answers EOPNOTSUPP to every flock(2) on heapguard's two lock files
// (and only those: esxsim locks its own files with flock too). heapguard
// must fall back to its pid files and say so, keep a second instance
// out (same state folder or another one: the host lock), act on the
// seed incident once, and leave no lock file behind when it stops.
func TestFaultMatrixNoFlock(t *testing.T) {
	strace := testtool.Need(t, "strace", "strace")
	bin := heapguardBin(t)
	h := simHost(t, "seed-incident")
	h.Advance(108 * time.Minute) // the first poll acts
	state := filepath.Join(t.TempDir(), "state")
	hostDir := filepath.Join(h.Root(), remediate.HostDir)
	noFlock := func(stateDir string, args ...string) *exec.Cmd {
		argv := []string{"-f", "-qq", "-o", "/dev/null",
			"-P", filepath.Join(state, remediate.LockFile), "-P", filepath.Join(hostDir, remediate.LockFile),
			"-e", "trace=flock", "-e", "inject=flock:error=EOPNOTSUPP", "--", bin}
		argv = append(argv, args...)
		argv = append(argv, "--root", h.Root(), "--state-dir", stateDir, "--power-off-allow", "DSVA*",
			"--interval", "10s", "--hold-polls", "1", "--shutdown-timeout", "30s")
		cmd := steppedCommand(strace, argv...)
		return cmd
	}
	first := noFlock(state, "run", "--for", "3m")
	var firstErr bytes.Buffer
	first.Stderr = &firstErr
	if err := first.Start(); err != nil {
		t.Fatal(err)
	}
	firstDone := make(chan error, 1)
	go func() { firstDone <- first.Wait() }()
	t.Cleanup(func() { first.Process.Kill(); <-firstDone })
	pidFile := filepath.Join(state, remediate.LockPIDFile)
	for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if _, err := os.Stat(pidFile); err == nil {
			break
		}
		select {
		case err := <-firstDone:
			firstDone <- err
			t.Fatalf("the run ended (%v) before it took a pid-file lock; stderr:\n%s", err, firstErr.String())
		default:
		}
		if time.Now().After(deadline) {
			first.Process.Kill()
			firstDone <- <-firstDone // stderr is whole once Wait returned
			t.Fatalf("no pid-file lock %s within 60 s; stderr:\n%s", pidFile, firstErr.String())
		}
	}
	// While the first runs, a second is refused whichever state folder
	// it names: the host lock is a pid file too.
	for _, dir := range []string{state, filepath.Join(t.TempDir(), "other")} {
		out, err := noFlock(dir, "run", "--for", "1m").CombinedOutput()
		if err == nil || !strings.Contains(string(out), "is held by") {
			t.Errorf("second instance (state %s) while the first runs: %v, want refused as held\n%s", dir, err, out)
		}
	}
	err := <-firstDone
	firstDone <- err // for the cleanup
	if err != nil {
		t.Fatalf("first run: %v\n%s", err, firstErr.String())
	}
	for _, what := range []string{"host lock", "state lock"} {
		if !strings.Contains(firstErr.String(), "flock is not available") || !strings.Contains(firstErr.String(), what) {
			t.Errorf("the run did not say its %s is a pid file:\n%s", what, firstErr.String())
		}
	}
	for _, p := range []string{pidFile, filepath.Join(hostDir, remediate.LockPIDFile)} {
		if _, err := os.Stat(p); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("pid-file lock %s left after the run stopped: %v", p, err)
		}
	}
	entries := journalWhole(t, state)
	if open := remediate.Unfinished(entries); len(open) != 0 {
		t.Errorf("steps left open: %+v", open)
	}
	done := map[string]int{}
	for _, a := range h.Actions() {
		if a.Tool == "vim-cmd" && len(a.Argv) > 1 && a.Exit == 0 {
			done[a.Argv[1]+" "+a.Target]++
		}
	}
	for k, n := range done {
		if n > 1 {
			t.Errorf("done %d times: %s", n, k)
		}
	}
	for _, vm := range h.State().VMs {
		want := slices.Contains([]string{"DSVA01", "DSVA03", "DSVA04"}, vm.Name)
		if strings.HasPrefix(vm.Name, "DSVA") && want == vm.PoweredOn {
			t.Errorf("%s powered on = %v after the run", vm.Name, vm.PoweredOn)
		}
	}
	// Once it has stopped, the next run takes the pid-file locks again.
	if out, err := noFlock(state, "check").CombinedOutput(); err != nil && strings.Contains(string(out), "is held by") {
		t.Errorf("after the first stopped, a check is refused as held:\n%s", out)
	}
}
