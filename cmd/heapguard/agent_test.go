package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/heapguard/heapguard/agent"
	"github.com/heapguard/heapguard/esxsim"
	"github.com/heapguard/heapguard/host"
	"github.com/heapguard/heapguard/policy"
	"github.com/heapguard/heapguard/remediate"
)

// heapguardBin links this test binary as "heapguard" (TestMain runs the
// CLI under that name) and returns its path.
func heapguardBin(t *testing.T) string {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "heapguard")
	if err := os.Symlink(self, p); err != nil {
		t.Fatal(err)
	}
	return p
}

func simHost(t *testing.T, scenario string) *esxsim.Host {
	t.Helper()
	sc, err := esxsim.Preset(scenario)
	if err != nil {
		t.Fatal(err)
	}
	return esxsim.New(t, sc, esxsim.WithBinary(esxsim.BuildBinary(t)))
}

// steppedCommand runs the heapguard binary on a simulated host whose clock
// moves only while heapguard waits (host.SimStepClock).
func steppedCommand(bin string, args ...string) *exec.Cmd {
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), host.TestClockEnv+"=step")
	return cmd
}

func readJournal(t *testing.T, stateDir string) []remediate.Entry {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(stateDir, "journal.jsonl"))
	if err != nil {
		return nil
	}
	entries, _, err := remediate.ReadJournal(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	return entries
}

// TestKillDashNineKeepsBudgets kills heapguard with SIGKILL in the middle
// of a plan and starts it again, with the state folder as the kill left
// it, with state.json damaged, or with guards.json gone: the budget spent
// before the kill is still spent, no action is repeated, and the steps the
// kill left open are resolved in the journal. The journal is what the
// second run trusts.
func TestKillDashNineKeepsBudgets(t *testing.T) {
	for _, tc := range []struct {
		name   string
		damage func(t *testing.T, state, root string)
	}{
		{"as left", func(*testing.T, string, string) {}},
		{"state.json damaged", func(t *testing.T, state, _ string) {
			if err := os.WriteFile(filepath.Join(state, "state.json"), []byte("{\"version\": 1, \"pol"), 0o600); err != nil {
				t.Fatal(err)
			}
		}},
		{"guards.json removed", func(t *testing.T, state, root string) {
			// And the host record, which lives in RAM on ESXi.
			for _, p := range []string{filepath.Join(state, remediate.GuardsFile), host.Path(root, remediate.HostDir+"/"+remediate.GuardsFile)} {
				if err := os.Remove(p); err != nil {
					t.Fatal(err)
				}
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			killAndRestart(t, tc.damage)
		})
	}
}

func killAndRestart(t *testing.T, damage func(t *testing.T, state, root string)) {
	h := simHost(t, "seed-incident")
	h.Advance(105 * time.Minute) // about 11% free: critical within a few minutes
	// The plan's power-offs run side by side, the two the budget allows;
	// both shutdowns hang, so the kill always lands inside both, after
	// their starts were journaled and spent.
	h.AddFault(esxsim.Fault{Command: "vim-cmd", ArgsPrefix: []string{"vmsvc/power.shutdown"}, Hang: true,
		HangFor: esxsim.Duration(20 * time.Second), Times: 2})
	bin := heapguardBin(t)
	state := filepath.Join(t.TempDir(), "state")
	args := []string{"run", "--root", h.Root(), "--state-dir", state, "--power-off-allow", "DSVA*",
		"--max-power-offs", "2", "--interval", "10s", "--hold-polls", "1"}

	first := steppedCommand(bin, args...)
	var firstErr bytes.Buffer
	first.Stderr = &firstErr
	if err := first.Start(); err != nil {
		t.Fatal(err)
	}
	// Kill once both shutdowns hang: their starts are journaled and spent by then.
	deadline := time.Now().Add(90 * time.Second)
	hung := false
	for !hung && time.Now().Before(deadline) {
		n := 0
		for _, a := range h.Actions() {
			if a.Result == "fault: hang" {
				n++
			}
		}
		hung = n == 2
		time.Sleep(20 * time.Millisecond)
	}
	first.Process.Kill() // SIGKILL: no chance to tidy up
	first.Wait()
	if !hung {
		t.Fatalf("the two shutdowns did not start within 90 s; stderr:\n%s", firstErr.String())
	}
	damage(t, state, h.Root())

	// Shorter than the power-off settle time (5m): a VM shut down twice
	// in this run is a step repeated, not a retry after the wait.
	second := steppedCommand(bin, append(args, "--for", "4m")...)
	out, err := second.CombinedOutput()
	if err != nil {
		t.Fatalf("second run: %v\n%s", err, out)
	}

	shutdowns := map[string]int{}
	for _, a := range h.Actions() {
		if a.Tool == "vim-cmd" && len(a.Argv) > 1 && a.Argv[1] == "vmsvc/power.shutdown" {
			shutdowns[a.Target]++
		}
	}
	for id, n := range shutdowns {
		if n > 1 {
			t.Errorf("vmid %s was shut down %d times: an action was repeated after the restart", id, n)
		}
	}
	// The hung shutdowns spent both: the second run powers off no VM
	// more and refuses the third for the budget.
	if len(shutdowns) != 2 {
		t.Errorf("%d VMs shut down with --max-power-offs 2, want 2 (%v)", len(shutdowns), shutdowns)
	}
	entries := readJournal(t, state)
	var refused bool
	for _, e := range entries {
		if e.Action == policy.ActPowerOff && e.Result == remediate.ResultSkipped && strings.Contains(e.Error, "budget") {
			refused = true
		}
	}
	if !refused {
		t.Error("the third DSVA appliance was not refused for the budget in the journal")
	}
	resolved := 0
	for _, e := range entries {
		if strings.HasPrefix(e.Reason, "resolved at start") {
			resolved++
		}
	}
	if resolved != 2 {
		t.Errorf("%d steps resolved at the restart, want the 2 power-offs the kill left open", resolved)
	}
	if open := remediate.Unfinished(entries); len(open) != 0 {
		t.Errorf("steps still open in the journal after the restart: %+v", open)
	}
}

// TestCheckNagios: heapguard check prints one Nagios line and exits with
// its status; --config sets flags, and flags on the command line win.
func TestCheckNagios(t *testing.T) {
	t.Setenv(host.TestClockEnv, "sim") // the simulated host's time, not today's
	h := simHost(t, "flap-no-leak")
	h.Advance(10 * time.Minute)
	state := t.TempDir()
	cfg := filepath.Join(t.TempDir(), "heapguard.conf")
	os.WriteFile(cfg, []byte("# test config\nstate-dir "+state+"\nwarn-below = 99\npower-off-allow DSVA*\n"), 0o644)

	code, out, stderr := runCLI(t, "check", "--root", h.Root(), "--config", cfg, "--warn-below", "20")
	if code != exitWarning {
		t.Errorf("exit %d, want 1 (a port flaps, the heap is fine); stderr %s", code, stderr)
	}
	if lines := strings.Split(strings.TrimSpace(out), "\n"); len(lines) != 1 || !strings.HasPrefix(lines[0], "HEAPGUARD WARNING: ") || !strings.Contains(lines[0], "|") {
		t.Errorf("want one Nagios line with perfdata, got %q", out)
	}
	if _, err := os.Stat(filepath.Join(state, "state.json")); err != nil {
		t.Errorf("--config state-dir not used: %v", err)
	}
	// The config's warn-below 99 loses to the command line's 20; its
	// power-off-allow (not on the command line) is used.
	code, out, stderr = runCLI(t, "check", "--json", "--root", h.Root(), "--config", cfg, "--warn-below", "20", "--dry-run")
	var res struct {
		Plan struct {
			Thresholds struct {
				WarnBelow float64 `json:"warn_below"`
			} `json:"thresholds"`
		} `json:"plan"`
		Nagios string `json:"nagios"`
	}
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatalf("check --json: %v\n%s\n%s", err, out, stderr)
	}
	if res.Plan.Thresholds.WarnBelow != 20 || !strings.HasPrefix(res.Nagios, "HEAPGUARD ") {
		t.Errorf("check --json: warn_below %v (want 20 from the command line), nagios %q", res.Plan.Thresholds.WarnBelow, res.Nagios)
	}

	code, out, stderr = runCLI(t, "check", "--root", h.Root(), "--config", filepath.Join(t.TempDir(), "missing.conf"))
	if code != exitUnknown || !strings.Contains(stderr, "read config") {
		t.Errorf("missing config: exit %d, stderr %q", code, stderr)
	}
	// Nagios shows only stdout: the reason is on the status line.
	if !strings.HasPrefix(out, "HEAPGUARD UNKNOWN: could not start: ") || !strings.Contains(out, "read config") || strings.Count(out, "\n") != 1 {
		t.Errorf("missing config: stdout %q, want one UNKNOWN line with the reason", out)
	}
	lock, err := remediate.AcquireLock(state)
	if err != nil {
		t.Fatal(err)
	}
	code, out, _ = runCLI(t, "check", "--root", h.Root(), "--state-dir", state)
	lock.Release()
	if code != exitUnknown || !strings.HasPrefix(out, "HEAPGUARD UNKNOWN: could not start: refusing to start: ") || !strings.Contains(out, "held by pid") {
		t.Errorf("lock held: exit %d, stdout %q", code, out)
	}
	bad := filepath.Join(t.TempDir(), "bad.conf")
	os.WriteFile(bad, []byte("no-such-setting 1\n"), 0o644)
	code, _, stderr = runCLI(t, "check", "--root", h.Root(), "--config", bad)
	if code != exitUnknown || !strings.Contains(stderr, "unknown setting") {
		t.Errorf("bad config: exit %d, stderr %q", code, stderr)
	}
	code, _, stderr = runCLI(t, "check", "--root", h.Root(), "--state-dir", state, "--power-off-allow", "[")
	if code != exitUnknown || !strings.Contains(stderr, "power-off-allow") {
		t.Errorf("bad glob: exit %d, stderr %q", code, stderr)
	}
}

// TestResetRefusesWhileRunning: reset while an instance holds the lock
// (of the state folder, or the host's) would be undone by it; it refuses
// and says so. Without one it closes the breaker in the state folder and
// the host record, and says what it kept.
func TestResetRefusesWhileRunning(t *testing.T) {
	root := t.TempDir()
	dir := t.TempDir()
	hostDir := host.Path(root, remediate.HostDir)
	os.MkdirAll(hostDir, 0o700)
	g, err := remediate.OpenHostGuards(dir, hostDir, remediate.GuardLimits{BreakerAfter: 1})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	off := policy.Action{Kind: policy.ActPowerOff, Target: "DSVA01", VMID: "1"}
	for i := 0; i < 3; i++ {
		g.Record(off, remediate.Outcome{Result: remediate.ResultStarted}, now)
	}
	g.Record(off, remediate.Outcome{Result: remediate.ResultFailed, Err: "still Powered on", Mutated: true}, now)

	for _, held := range []string{dir, hostDir} {
		lock, err := remediate.AcquireLock(held)
		if err != nil {
			t.Fatal(err)
		}
		code, _, stderr := runCLI(t, "reset", "--state-dir", dir, "--root", root)
		if code != exitUnknown || !strings.Contains(stderr, "stop the running heapguard first") {
			t.Errorf("reset under a held lock in %s: exit %d, stderr %q", held, code, stderr)
		}
		lock.Release()
	}
	code, out, stderr := runCLI(t, "reset", "--state-dir", dir, "--root", root)
	if code != exitOK || !strings.Contains(out, "circuit breaker closed") || !strings.Contains(out, "still Powered on") ||
		!strings.Contains(out, "kept: power-off budget 0 of 3 left, next at ") {
		t.Errorf("reset: exit %d, out %q, stderr %q", code, out, stderr)
	}
	for _, d := range []string{"", hostDir} {
		g, err := remediate.OpenHostGuards(dir, d, remediate.GuardLimits{BreakerAfter: 1})
		if err != nil {
			t.Fatal(err)
		}
		if st := g.Status(now); st.BreakerOpen || st.PowerOffsInWindow != 3 {
			t.Errorf("after reset (host record %q): %+v, want the breaker closed and 3 power-offs kept", d, st)
		}
	}
}

// TestLogLevelKeepsDecisions: a real check at --log-level error still logs
// its decision and actions and nothing below error; at the default level
// the incident's maxed-heap lines are not repeated line after line.
func TestLogLevelKeepsDecisions(t *testing.T) {
	t.Setenv(host.TestClockEnv, "sim")
	h := simHost(t, "seed-incident")
	h.Advance(125 * time.Minute) // hundreds of "already at its maximum size" lines by then
	args := []string{"check", "--dry-run", "--hold-polls", "1", "--power-off-allow", "DSVA*", "--root", h.Root()}

	code, out, stderr := runCLI(t, append(args, "--state-dir", t.TempDir(), "--log-level", "error")...)
	if code != exitCritical {
		t.Fatalf("exit %d, want 2; stdout %s; stderr %s", code, out, stderr)
	}
	msgs := map[string]int{}
	for _, e := range logLines(t, stderr) {
		msgs[e["msg"].(string)]++
		if lv := e["level"]; lv != "error" && e["msg"] != "decision" && e["msg"] != "action" {
			t.Errorf("--log-level error logged a %s line: %v", lv, e)
		}
	}
	if msgs["decision"] != 1 || msgs["action"] < 3 {
		t.Errorf("--log-level error: %d decision and %d action lines, want 1 and 3 or more (a power-off per DSVA); stderr:\n%s", msgs["decision"], msgs["action"], stderr)
	}

	_, _, stderr = runCLI(t, append(args, "--state-dir", t.TempDir())...)
	var prev string
	for _, e := range logLines(t, stderr) {
		delete(e, "ts")
		delete(e, "log_time")
		b, _ := json.Marshal(e)
		if string(b) == prev && e["msg"] != "action" {
			t.Errorf("a line repeated, not counted: %s", b)
		}
		prev = string(b)
	}
}

// logLines decodes the JSON log lines on stderr.
func logLines(t *testing.T, stderr string) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(stderr), "\n") {
		if !strings.HasPrefix(line, "{") {
			continue
		}
		var e map[string]any
		if err := json.Unmarshal([]byte(line), &e); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		out = append(out, e)
	}
	return out
}

// TestRunForOnPausedSimulator: `run --for 1s` following a paused
// simulator's clock used to wait forever (host time never reached 1s); it
// now stops after one wait in which the clock did not move, says why, and
// journals the stop.
func TestRunForOnPausedSimulator(t *testing.T) {
	t.Setenv(host.TestClockEnv, "sim")
	h := simHost(t, "healthy") // laid out, not running: paused
	state := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var stderr strings.Builder
	code := run(ctx, []string{"run", "--root", h.Root(), "--state-dir", state, "--interval", "50ms", "--for", "1s"},
		strings.NewReader(""), io.Discard, &stderr)
	if ctx.Err() != nil {
		t.Fatalf("run --for 1s on a paused simulator still running after 20s; stderr:\n%s", stderr.String())
	}
	if code != exitUnknown || !strings.Contains(stderr.String(), "heapguard run: wait for the next poll: the simulated host is paused: its clock stayed at ") {
		t.Errorf("exit %d, want 3 and the reason; stderr:\n%s", code, stderr.String())
	}
	entries := readJournal(t, state)
	if n := len(entries); n == 0 || entries[n-1].Action != remediate.ActStop || entries[n-1].Result != remediate.ResultFailed ||
		!strings.Contains(entries[n-1].Error, "paused") {
		t.Errorf("journal %+v, want it to end with a failed stop saying the simulator is paused", entries)
	}
}

// TestPowerOffAllowAnyWarns: a --power-off-allow pattern that matches every
// VM name (from the command line or the config file) is used as asked but
// warned about on stderr and in the log; a pattern naming VMs is not.
func TestPowerOffAllowAnyWarns(t *testing.T) {
	t.Setenv(host.TestClockEnv, "sim")
	h := simHost(t, "healthy")
	cfg := filepath.Join(t.TempDir(), "heapguard.conf")
	os.WriteFile(cfg, []byte("power-off-allow ?*\n"), 0o644)
	for _, tc := range []struct {
		args []string
		want string // "" no warning
	}{
		{[]string{"--power-off-allow", "*"}, `--power-off-allow '*' matches every VM name`},
		{[]string{"--power-off-allow", "DSVA*,**"}, `--power-off-allow '**' matches every VM name`},
		{[]string{"--config", cfg}, `--power-off-allow '?*' matches every VM name`},
		{[]string{"--power-off-allow", "DSVA*"}, ""},
	} {
		args := append([]string{"check", "--dry-run", "--root", h.Root(), "--state-dir", t.TempDir(), "--log-level", "error"}, tc.args...)
		code, _, stderr := runCLI(t, args...)
		if code != exitOK {
			t.Errorf("%v: exit %d, want 0 (a healthy host); stderr %s", tc.args, code, stderr)
		}
		warned := strings.Contains(stderr, "heapguard check: warning: --power-off-allow ")
		if tc.want == "" && warned || tc.want != "" && !strings.Contains(stderr, "heapguard check: warning: "+tc.want+": any VM on this host") {
			t.Errorf("%v: stderr %q, want warning %q", tc.args, stderr, tc.want)
		}
	}
}

// TestCheckNotDecidedOrNotActing: a check stopped before it decided says
// UNKNOWN with the reason, never the empty plan's OK; a check that decided
// to act but could not (the lock was lost) says CRITICAL and that
// it is not acting, never "powering off".
func TestCheckNotDecidedOrNotActing(t *testing.T) {
	t.Setenv(host.TestClockEnv, "sim")
	h := simHost(t, "seed-incident")
	h.Advance(109 * time.Minute)

	ctx, cancel := context.WithCancel(context.Background())
	cancel() // SIGTERM before the poll decided
	var out, errb strings.Builder
	code := run(ctx, []string{"check", "--root", h.Root(), "--state-dir", t.TempDir()}, strings.NewReader(""), &out, &errb)
	if code != exitUnknown || !strings.HasPrefix(out.String(), "HEAPGUARD UNKNOWN: ") || !strings.Contains(out.String(), "context canceled") {
		t.Errorf("cancelled check: exit %d, stdout %q, want 3 and the reason", code, out.String())
	}

	// Decided to power off, then the lock was found lost before acting.
	plan := checkPlan(t, h)
	if len(plan.LiveActions()) == 0 {
		t.Fatalf("no plan that acts: %+v", plan)
	}
	_, line, code := checkVerdict(agent.Result{Plan: plan}, errors.New("not acting: lost the lock"))
	if code != exitCritical || !strings.HasPrefix(line, "HEAPGUARD CRITICAL: not acting: lost the lock") || strings.Contains(line, "powering off") {
		t.Errorf("lock lost before acting: exit %d, line %q", code, line)
	}
	_, line, code = checkVerdict(agent.Result{Plan: plan}, nil)
	if code != exitCritical || !strings.Contains(line, "powering off") {
		t.Errorf("the same plan carried out: exit %d, line %q", code, line)
	}
}

// checkPlan is the plan a dry check makes on h.
func checkPlan(t *testing.T, h *esxsim.Host) policy.Plan {
	t.Helper()
	_, out, stderr := runCLI(t, "check", "--json", "--dry-run", "--root", h.Root(), "--state-dir", t.TempDir(), "--power-off-allow", "DSVA*", "--hold-polls", "1")
	var po struct {
		Plan policy.Plan `json:"plan"`
	}
	if err := json.Unmarshal([]byte(out), &po); err != nil {
		t.Fatalf("check --json: %v\n%s\n%s", err, out, stderr)
	}
	return po.Plan
}
