package main

import (
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/heapguard/heapguard/agent"
	"github.com/heapguard/heapguard/doctor"
	"github.com/heapguard/heapguard/esxsim"
	"github.com/heapguard/heapguard/host"
	"github.com/heapguard/heapguard/policy"
	"github.com/heapguard/heapguard/remediate"
)

// statusJSON runs status --json and decodes it.
func statusJSON(t *testing.T, args ...string) (int, agent.Status) {
	t.Helper()
	code, out, stderr := runCLI(t, append([]string{"status", "--json"}, args...)...)
	var s agent.Status
	if err := json.Unmarshal([]byte(out), &s); err != nil {
		t.Fatalf("status --json: %v\nstdout %s\nstderr %s", err, out, stderr)
	}
	return code, s
}

// treeSnapshot is every file and folder under the roots: mode, size,
// modification time and a hash of the content. A file created and removed
// again still changes its folder's modification time.
func treeSnapshot(t *testing.T, roots ...string) map[string]string {
	t.Helper()
	snap := map[string]string{}
	for _, root := range roots {
		err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			fi, err := os.Lstat(p)
			if err != nil {
				return err
			}
			v := fmt.Sprintf("%v %d %s", fi.Mode(), fi.Size(), fi.ModTime().Format(time.RFC3339Nano))
			if fi.Mode().IsRegular() {
				b, err := os.ReadFile(p)
				if err != nil {
					return err
				}
				v += fmt.Sprintf(" %x", sha256.Sum256(b))
			}
			snap[p] = v
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	return snap
}

func diffSnapshots(t *testing.T, before, after map[string]string) {
	t.Helper()
	for p, v := range before {
		if w, ok := after[p]; !ok {
			t.Errorf("%s removed", p)
		} else if w != v {
			t.Errorf("%s changed: %s -> %s", p, v, w)
		}
	}
	for p := range after {
		if _, ok := before[p]; !ok {
			t.Errorf("%s created", p)
		}
	}
}

// TestStatusNoSavedState: before any check, status judges the fresh
// sample alone (nothing to hold over), says there is no saved state, and
// does not even create the state folder.
func TestStatusNoSavedState(t *testing.T) {
	t.Setenv(host.TestClockEnv, "sim")
	h := simHost(t, "seed-incident")
	h.Advance(100 * time.Minute) // netGPHeap about 14% free
	state := filepath.Join(t.TempDir(), "state")
	code, out, stderr := runCLI(t, "status", "--root", h.Root(), "--state-dir", state)
	first, long, _ := strings.Cut(out, "\n")
	if code != exitWarning || !strings.HasPrefix(first, "HEAPGUARD WARNING: netGPHeap 14.") || !strings.Contains(first, "no saved state yet") ||
		!strings.Contains(first, " | 'netGPHeap_free'=14.") {
		t.Errorf("exit %d, first line %q, want WARNING from the sample, no saved state, perfdata; stderr %s", code, first, stderr)
	}
	for _, want := range []string{"flapping:  none as of the last check", "budgets:   power-offs 0 of 3 in the last 1h, 3 left",
		"breaker:   closed", "lock:      state folder", "free (no lock file: never taken)", "last plan: none", "state:     no saved state yet"} {
		if !strings.Contains(long, want) {
			t.Errorf("long output lacks %q:\n%s", want, long)
		}
	}
	if _, err := os.Stat(state); !os.IsNotExist(err) {
		t.Errorf("status created the state folder (stat: %v)", err)
	}
}

// threeChecks is the seed incident at 100 simulated minutes (netGPHeap
// about 14 % free, three ports flapping) after three checks a minute
// apart, and their state folder.
func threeChecks(t *testing.T) (*esxsim.Host, string) {
	t.Helper()
	t.Setenv(host.TestClockEnv, "sim")
	h := simHost(t, "seed-incident")
	h.Advance(100 * time.Minute)
	state := t.TempDir()
	for range 3 {
		if code, out, stderr := runCLI(t, "check", "--root", h.Root(), "--state-dir", state); code != exitWarning {
			t.Fatalf("check: exit %d, %s %s", code, out, stderr)
		}
		h.Advance(time.Minute)
	}
	return h, state
}

// TestStatusReadOnly: with a state folder three checks left, status (text
// and JSON) changes nothing, in the state folder or on the host, while it
// judges what check judged.
func TestStatusReadOnly(t *testing.T) {
	h, state := threeChecks(t)
	before := treeSnapshot(t, state, h.Root())
	code, out, stderr := runCLI(t, "status", "--root", h.Root(), "--state-dir", state)
	jcode, s := statusJSON(t, "--root", h.Root(), "--state-dir", state)
	diffSnapshots(t, before, treeSnapshot(t, state, h.Root()))

	if code != exitWarning || jcode != code || !strings.HasPrefix(out, "HEAPGUARD WARNING: netGPHeap 12.") || !strings.Contains(out, "3 ports flapping") {
		t.Errorf("status: exit %d (json %d), out %q, stderr %s", code, jcode, out, stderr)
	}
	if !s.Saved.Found || s.Saved.Stale || s.Saved.AgeSeconds != 60 || len(s.Flapping) != 3 || s.LastPlan == nil ||
		s.LastPlan.Status != "WARNING" || len(s.Heaps) != 1 || s.Heaps[0].Level != policy.Warn {
		t.Errorf("status --json: %+v", s)
	}
}

// TestStatusWhileLocked: an instance holding both locks does not stop
// status from answering, and status names it; the holder keeps its locks.
func TestStatusWhileLocked(t *testing.T) {
	t.Setenv(host.TestClockEnv, "sim")
	h := simHost(t, "flap-no-leak")
	h.Advance(10 * time.Minute)
	state := t.TempDir()
	runCLI(t, "check", "--root", h.Root(), "--state-dir", state) // leaves the host lock's holder file
	hostDir := host.Path(h.Root(), remediate.HostDir)
	var locks []*remediate.Lock
	for _, d := range []string{hostDir, state} {
		l, err := remediate.AcquireLock(d)
		if err != nil {
			t.Fatal(err)
		}
		defer l.Release()
		locks = append(locks, l)
	}
	code, out, stderr := runCLI(t, "status", "--root", h.Root(), "--state-dir", state)
	if code != exitWarning || !strings.HasPrefix(out, "HEAPGUARD WARNING: ") {
		t.Errorf("status under held locks: exit %d, out %q, stderr %s", code, out, stderr)
	}
	held := fmt.Sprintf("held by pid %d since ", os.Getpid())
	for _, want := range []string{"lock:      state folder " + filepath.Join(state, "lock") + ": " + held,
		"lock:      host " + filepath.Join(hostDir, "lock") + ": " + held, "flock listed in /proc/locks), state folder " + state} {
		if !strings.Contains(out, want) {
			t.Errorf("status does not name the holder: want %q in\n%s", want, out)
		}
	}
	for _, l := range locks {
		if err := l.Check(); err != nil {
			t.Errorf("the holder lost its lock to status: %v", err)
		}
	}
	if _, err := remediate.AcquireLock(state); err == nil {
		t.Error("the state folder's lock could be taken while held")
	}
}

// spendBudget runs checks on the seed incident until three power-offs
// (the default budget) are journaled, and returns the host and state.
func spendBudget(t *testing.T, extra ...string) (*esxsim.Host, string) {
	t.Helper()
	t.Setenv(host.TestClockEnv, "step") // guest shutdowns pass in simulated time
	h := simHost(t, "seed-incident")
	h.Advance(105 * time.Minute)
	state := t.TempDir()
	for i := 0; i < 10; i++ {
		args := append([]string{"check", "--root", h.Root(), "--state-dir", state, "--power-off-allow", "DSVA*", "--hold-polls", "1"}, extra...)
		runCLI(t, args...)
		offs := 0
		for _, e := range readJournal(t, state) {
			if e.Action == policy.ActPowerOff && e.Result != remediate.ResultStarted && e.Mutated {
				offs++
			}
		}
		if offs >= 3 {
			return h, state
		}
		h.Advance(time.Minute)
	}
	t.Fatalf("no three power-offs after 10 checks: %+v", readJournal(t, state))
	return nil, ""
}

// TestStatusBudgetSpent: after three power-offs status says none is left
// and when the next is allowed, names the cooldown and the last plan's
// steps; doctor says the same budget is spent.
func TestStatusBudgetSpent(t *testing.T) {
	h, state := spendBudget(t)
	code, out, stderr := runCLI(t, "status", "--root", h.Root(), "--state-dir", state)
	first, _, _ := strings.Cut(out, "\n")
	if code != exitCritical || !strings.Contains(first, "power-off budget spent (0 of 3 left until ") {
		t.Errorf("exit %d, first line %q, stderr %s", code, first, stderr)
	}
	for _, want := range []string{"budgets:   power-offs 3 of 3 in the last 1h, 0 left, next allowed at ",
		"cooldown:  vpxa restarted at ", "power_off DSVA01 (vmid 1): ok", "restart_agent vpxa: ok"} {
		if !strings.Contains(out, want) {
			t.Errorf("status lacks %q:\n%s", want, out)
		}
	}
	_, s := statusJSON(t, "--root", h.Root(), "--state-dir", state)
	if b := s.Budgets; b.PowerOffsLeft != 0 || b.PowerOffsInWindow != 3 || b.MaxPowerOffs != 3 || b.NextPowerOffAt.IsZero() || b.RestartAllowedAt.IsZero() {
		t.Errorf("budgets %+v", b)
	}
	// A folder with its budget spent does not look fine to doctor.
	if f := doctorFinding(t, h.Root(), state, "budgets"); f.Level != policy.Warn ||
		!strings.HasPrefix(f.Detail, "0 of 3 power-offs left in the last hour (3 spent), next allowed at ") {
		t.Errorf("doctor on the spent budget: %+v", f)
	}
}

// doctorFinding runs doctor as the command does, but without its runtime
// self-test (run in-process, that would start this test binary again).
func doctorFinding(t *testing.T, root, state, check string) doctor.Finding {
	t.Helper()
	clock, err := host.ClockFromEnv(os.Getenv, root, host.Exec{Root: root})
	if err != nil {
		t.Fatal(err)
	}
	d := doctor.Run(t.Context(), doctor.Options{Root: root, StateDir: state, Clock: clock})
	for _, f := range d.Findings {
		if f.Check == check {
			return f
		}
	}
	t.Fatalf("doctor has no %s finding: %+v", check, d.Findings)
	return doctor.Finding{}
}

// TestStatusBreakerOpen: a restart that fails opens the breaker
// (--breaker-after 1); status says so on the status line and names the
// failure, and doctor fails on it.
func TestStatusBreakerOpen(t *testing.T) {
	t.Setenv(host.TestClockEnv, "step")
	h := simHost(t, "seed-incident")
	h.Advance(105 * time.Minute)
	// vpxa will not come back: every restart fails its verification.
	h.AddFault(esxsim.Fault{Command: "vpxa", ArgsPrefix: []string{"restart"}, ExitCode: 1, Stderr: "vpxa: restart refused"})
	h.AddFault(esxsim.Fault{Command: "vpxa", ArgsPrefix: []string{"status"}, ExitCode: 3, Stdout: "vpxa is not running\n"})
	state := t.TempDir()
	flags := []string{"--root", h.Root(), "--state-dir", state, "--breaker-after", "1"}
	for i := 0; i < 5; i++ {
		runCLI(t, append([]string{"check", "--power-off-allow", "DSVA*", "--hold-polls", "1"}, flags...)...)
		h.Advance(time.Minute)
	}
	code, out, stderr := runCLI(t, append([]string{"status"}, flags...)...)
	first, _, _ := strings.Cut(out, "\n")
	if code != exitCritical || !strings.Contains(first, "circuit breaker open: heapguard will not act until heapguard reset") {
		t.Errorf("exit %d, first line %q, stderr %s", code, first, stderr)
	}
	if !strings.Contains(out, "breaker:   OPEN since ") || !strings.Contains(out, "restart_agent vpxa") {
		t.Errorf("status does not show the open breaker and why:\n%s", out)
	}
	if f := doctorFinding(t, h.Root(), state, "breaker"); f.Level != policy.Crit || !strings.HasPrefix(f.Detail, "open since ") ||
		!strings.Contains(f.Detail, "heapguard will not act until heapguard reset") {
		t.Errorf("doctor on the open breaker: %+v", f)
	}
}

// TestStatusWarnsWhenNotActing: a healthy host is OK until heapguard
// stops acting: an open breaker, or a saved state no check keeps, is a
// WARNING that says why.
func TestStatusWarnsWhenNotActing(t *testing.T) {
	t.Setenv(host.TestClockEnv, "sim")
	h := simHost(t, "healthy")
	state := t.TempDir()
	if code, out, _ := runCLI(t, "check", "--root", h.Root(), "--state-dir", state); code != exitOK {
		t.Fatalf("check on a healthy host: exit %d, %s", code, out)
	}
	h.Advance(5 * time.Minute)
	if code, out, _ := runCLI(t, "status", "--root", h.Root(), "--state-dir", state); code != exitOK || !strings.HasPrefix(out, "HEAPGUARD OK: ") {
		t.Errorf("healthy, checked 5m ago: exit %d, %q", code, out)
	}
	h.Advance(11 * time.Minute)
	code, out, _ := runCLI(t, "status", "--root", h.Root(), "--state-dir", state)
	if code != exitWarning || !strings.Contains(out, "saved state 16m old: no check or run since ") || !strings.Contains(out, "STALE: older than 15m") {
		t.Errorf("16m after the last check: exit %d, %q", code, out)
	}
	if code, _, _ := runCLI(t, "status", "--root", h.Root(), "--state-dir", state, "--stale-after", "20m"); code != exitOK {
		t.Errorf("--stale-after 20m: exit %d, want OK", code)
	}

	runCLI(t, "check", "--root", h.Root(), "--state-dir", state)
	hostDir := host.Path(h.Root(), remediate.HostDir)
	g, err := remediate.OpenHostGuards(state, hostDir, remediate.GuardLimits{})
	if err != nil {
		t.Fatal(err)
	}
	now := h.State().Now
	g.BeginPlan()
	g.Record(policy.Action{Kind: policy.ActVerify, Target: "vpxa"}, remediate.Outcome{Result: remediate.ResultFailed, Err: "vpxa not running"}, now)
	g.EndPlan()
	for range 2 {
		g.Record(policy.Action{Kind: policy.ActVerify, Target: "vpxa"}, remediate.Outcome{Result: remediate.ResultFailed, Err: "vpxa not running"}, now)
	}
	code, out, _ = runCLI(t, "status", "--root", h.Root(), "--state-dir", state)
	if code != exitWarning || !strings.HasPrefix(out, "HEAPGUARD WARNING: ") || !strings.Contains(out, "circuit breaker open") ||
		!strings.Contains(out, "verify vpxa at ") {
		t.Errorf("breaker open on a healthy host: exit %d, %q", code, out)
	}
}

// TestStatusHungVsish: vsish hangs; status still answers, UNKNOWN with
// the reason (what the state folder's reads left of its 1.2 s budget, not
// the heap package's 5 s), and the rest of what it knows.
func TestStatusHungVsish(t *testing.T) {
	t.Setenv(host.TestClockEnv, "sim")
	h := simHost(t, "seed-incident")
	h.Advance(100 * time.Minute)
	state := t.TempDir()
	runCLI(t, "check", "--root", h.Root(), "--state-dir", state)
	h.AddFault(esxsim.Fault{Command: "vsish", Hang: true, HangFor: esxsim.Duration(30 * time.Second)})
	code, out, _ := runCLI(t, "status", "--root", h.Root(), "--state-dir", state)
	first, _, _ := strings.Cut(out, "\n")
	if code != exitUnknown || !strings.HasPrefix(first, "HEAPGUARD UNKNOWN: heaps could not be read: ") ||
		!regexp.MustCompile(`timed out after 1\.[12]\d*s`).MatchString(first) || !strings.Contains(first, "3 ports flapping") {
		t.Errorf("hung vsish: exit %d, first line %q", code, first)
	}
	if !strings.Contains(out, "budgets:   power-offs 0 of 3") || !strings.Contains(out, "last plan: ") {
		t.Errorf("hung vsish: the rest is missing:\n%s", out)
	}
}

// BenchmarkStatusHungVsish measures a whole status (the binary's run
// function, in-process) against a host whose vsish hangs: the figure to
// hold against NRPE's timeout and the 2 s target.
func BenchmarkStatusHungVsish(b *testing.B) {
	b.Setenv(host.TestClockEnv, "sim")
	sc, err := esxsim.Preset("seed-incident")
	if err != nil {
		b.Fatal(err)
	}
	h := esxsim.New(b, sc, esxsim.WithBinary(esxsim.BuildBinary(b)))
	h.AddFault(esxsim.Fault{Command: "vsish", Hang: true, HangFor: esxsim.Duration(time.Minute)})
	state := b.TempDir()
	for b.Loop() {
		var out, errb strings.Builder
		if code := run(b.Context(), []string{"status", "--root", h.Root(), "--state-dir", state}, strings.NewReader(""), &out, &errb); code != exitUnknown {
			b.Fatalf("exit %d: %s %s", code, out.String(), errb.String())
		}
	}
}
