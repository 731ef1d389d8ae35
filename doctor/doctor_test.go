package doctor

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/heapguard/heapguard/esxsim"
	"github.com/heapguard/heapguard/policy"
	"github.com/heapguard/heapguard/remediate"
)

// TestDoctorOnEveryVersion runs doctor against a simulated host of each
// ESXi version: every check answers, and only an enforced
// execInstalledOnly (ESXi 8 esx80-eio) is a failure.
func TestDoctorOnEveryVersion(t *testing.T) {
	bin := esxsim.BuildBinary(t)
	for _, tc := range []struct {
		scenario, version string
		want              policy.Level
		wantText          []string
	}{
		{"old-esx41", "", policy.OK, []string{"4.1.0", "/var/log/messages", "format syslog-4x", "/etc/opt/init.d/vmware-vpxa"}},
		{"seed-incident", "5.5", policy.OK, []string{"5.5.0", "/var/log/vmkernel.log", "format iso-5x", "/etc/init.d/vpxa", "netGPHeap"}},
		{"seed-incident", "6.7", policy.OK, []string{"6.7.0 build 8169922", "format iso-5x"}},
		{"seed-incident", "7.0", policy.OK, []string{"7.0.", "format iso-5x"}},
		{"esx80", "", policy.OK, []string{"8.0.", "format esxi-8x", "execInstalledOnly  not enforced"}},
		{"esx80-eio", "", policy.Crit, []string{"enforced", "install heapguard from a VIB"}},
	} {
		t.Run(tc.scenario+tc.version, func(t *testing.T) {
			t.Parallel()
			sc, err := esxsim.Preset(tc.scenario)
			if err != nil {
				t.Fatal(err)
			}
			opts := []esxsim.Option{esxsim.WithBinary(bin)}
			if tc.version != "" {
				opts = append(opts, esxsim.WithVersion(tc.version))
			}
			h := esxsim.New(t, sc, opts...)
			h.Advance(time.Minute)
			d := Run(context.Background(), Options{
				Root: h.Root(), StateDir: filepath.Join(h.Root(), "vmfs/volumes/datastore1/heapguard-state"),
				// A stock build stands in for heapguard: the runtime line must warn.
				SelfExe: bin,
			})
			var out strings.Builder
			d.WriteText(&out)
			want := tc.want
			if want == policy.OK {
				want = policy.Warn
			}
			if d.Status != want {
				t.Errorf("status %s, want %s:\n%s", d.Status, want, out.String())
			}
			for _, f := range d.Findings {
				if f.Level != policy.OK && f.Check != "runtime" && !(tc.want == policy.Crit && f.Check == "execInstalledOnly") {
					t.Errorf("%s: %s %s", f.Check, f.Level, f.Detail)
				}
			}
			for _, s := range tc.wantText {
				if !strings.Contains(out.String(), s) {
					t.Errorf("doctor output lacks %q:\n%s", s, out.String())
				}
			}
		})
	}
}

// TestDoctorStateOnRamdisk: a state folder under /tmp of the host is lost
// at boot, and doctor says so.
func TestDoctorStateOnRamdisk(t *testing.T) {
	h := esxsim.New(t, esxsim.Incident(), esxsim.WithBinary(esxsim.BuildBinary(t)))
	d := Run(context.Background(), Options{Root: h.Root(), StateDir: filepath.Join(h.Root(), "tmp/heapguard")})
	for _, f := range d.Findings {
		if f.Check == "state" {
			if f.Level != policy.Warn || !strings.Contains(f.Detail, "empties at boot") {
				t.Errorf("state finding %+v: want a warning about /tmp", f)
			}
			return
		}
	}
	t.Fatal("no state finding")
}

// TestDoctorPorts: doctor says whether flapping ports can be confirmed
// live (net-stats -l), and what heapguard does when they cannot.
func TestDoctorPorts(t *testing.T) {
	for _, tc := range []struct {
		name  string
		setup func(h *esxsim.Host)
		want  policy.Level
		text  string
	}{
		{"net-stats answers", func(*esxsim.Host) {}, policy.OK, "a flapping port's owner is confirmed live"},
		{"net-stats fails", func(h *esxsim.Host) {
			h.AddFault(esxsim.Fault{Command: "net-stats", ExitCode: 1, Stderr: "net-stats: cannot allocate memory\n"})
		}, policy.Warn, "no flapping port is confirmed and nothing is powered off"},
		{"no net-stats on this host", func(h *esxsim.Host) {
			if err := os.Remove(h.Bin("net-stats")); err != nil {
				t.Fatal(err)
			}
		}, policy.Warn, "no live port list"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := esxsim.New(t, esxsim.Incident())
			tc.setup(h)
			d := Run(context.Background(), Options{Root: h.Root(), StateDir: t.TempDir(), Runner: esxsim.Runner{Root: h.Root()}})
			for _, f := range d.Findings {
				if f.Check == "ports" {
					if f.Level != tc.want || !strings.Contains(f.Detail, tc.text) {
						t.Errorf("ports finding %+v: want %s holding %q", f, tc.want, tc.text)
					}
					return
				}
			}
			t.Fatal("no ports finding")
		})
	}
}

// TestDoctorVmknics: on a host without net-stats doctor says whether the
// host's VMkernel NICs are known, and what heapguard does when they are not.
func TestDoctorVmknics(t *testing.T) {
	for _, tc := range []struct {
		name     string
		setup    func(h *esxsim.Host)
		netStats bool // net-stats stays: no vmknics finding
		want     policy.Level
		text     string
	}{
		{"net-stats answers: not needed", func(*esxsim.Host) {}, true, policy.OK, ""},
		{"esxcfg-vmknic answers", func(*esxsim.Host) {}, false, policy.OK, "lists 2 VMkernel NICs (vmk0 00:25:b5:00:0a:1e, vmk1 00:50:56:6a:3c:91)"},
		{"esxcfg-vmknic fails", func(h *esxsim.Host) {
			h.AddFault(esxsim.Fault{Command: "esxcfg-vmknic", ExitCode: 1, Stderr: "Error: Unable to get vmknic list\n"})
		}, false, policy.Warn, "no VM is powered off for a flapping port by its MAC alone"},
		{"no esxcfg-vmknic", func(h *esxsim.Host) {
			if err := os.Remove(h.Bin("esxcfg-vmknic")); err != nil {
				t.Fatal(err)
			}
		}, false, policy.Warn, "no esxcfg-vmknic on this host"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := esxsim.New(t, esxsim.Incident())
			if !tc.netStats {
				if err := os.Remove(h.Bin("net-stats")); err != nil {
					t.Fatal(err)
				}
			}
			tc.setup(h)
			d := Run(context.Background(), Options{Root: h.Root(), StateDir: t.TempDir(), Runner: esxsim.Runner{Root: h.Root()}})
			for _, f := range d.Findings {
				if f.Check == "vmknics" {
					if tc.netStats || f.Level != tc.want || !strings.Contains(f.Detail, tc.text) {
						t.Errorf("vmknics finding %+v: want %s holding %q", f, tc.want, tc.text)
					}
					return
				}
			}
			if !tc.netStats {
				t.Fatal("no vmknics finding")
			}
		})
	}
}

// TestDoctorLocks: doctor says which lock the state folder gets and where
// the host-wide lock is, once an acting run made it.
func TestDoctorLocks(t *testing.T) {
	h := esxsim.New(t, esxsim.Incident())
	run := func() string {
		d := Run(context.Background(), Options{Root: h.Root(), StateDir: t.TempDir(), Runner: esxsim.Runner{Root: h.Root()}})
		for _, f := range d.Findings {
			if f.Check == "lock" {
				if f.Level != policy.OK {
					t.Errorf("lock finding %+v, want OK", f)
				}
				return f.Detail
			}
		}
		t.Fatal("no lock finding")
		return ""
	}
	if got := run(); got != "state folder: flock; host-wide: /var/run/heapguard (created by the first acting run)" {
		t.Errorf("before any run: %q", got)
	}
	if err := os.MkdirAll(h.Path(remediate.HostDir), 0o700); err != nil {
		t.Fatal(err)
	}
	if got := run(); got != "state folder: flock; host-wide: /var/run/heapguard (flock)" {
		t.Errorf("after a run: %q", got)
	}
}

// TestDoctorBudgetsAndBreaker: a state folder whose power-off budget is
// spent, whose vpxa restart cools down or whose breaker is open does
// not look fine; limits given as run and check have them are used.
func TestDoctorBudgetsAndBreaker(t *testing.T) {
	sc, err := esxsim.Preset("healthy")
	if err != nil {
		t.Fatal(err)
	}
	h := esxsim.New(t, sc, esxsim.WithBinary(esxsim.BuildBinary(t)))
	state := filepath.Join(h.Root(), "vmfs/volumes/datastore1/heapguard-state")
	hostDir := h.Path(remediate.HostDir)
	os.MkdirAll(hostDir, 0o700)
	now := time.Date(2026, 5, 1, 10, 0, 0, 0, time.UTC)
	clock := fixedClock(now)
	find := func(d *Result, check string) Finding {
		t.Helper()
		for _, f := range d.Findings {
			if f.Check == check {
				return f
			}
		}
		t.Fatalf("no %s finding in %+v", check, d.Findings)
		return Finding{}
	}
	d := Run(context.Background(), Options{Root: h.Root(), StateDir: state, Clock: clock})
	if f := find(d, "budgets"); f.Level != policy.OK || f.Detail != "3 of 3 power-offs left in the last hour (0 spent); vpxa restart allowed" {
		t.Errorf("fresh folder: %+v", f)
	}
	if f := find(d, "breaker"); f.Level != policy.OK || f.Detail != "closed, 0 failed remediations in a row (opens at 3)" {
		t.Errorf("fresh folder: %+v", f)
	}

	g, err := remediate.OpenHostGuards(state, hostDir, remediate.GuardLimits{})
	if err != nil {
		t.Fatal(err)
	}
	off := policy.Action{Kind: policy.ActPowerOff, Target: "DSVA01", VMID: "1"}
	for i := range 3 {
		g.Record(off, remediate.Outcome{Result: remediate.ResultStarted}, now.Add(time.Duration(i-30)*time.Minute))
	}
	g.Record(policy.Action{Kind: policy.ActRestartAgent, Target: "vpxa"}, remediate.Outcome{Result: remediate.ResultStarted}, now.Add(-5*time.Minute))
	for range 3 {
		g.Record(policy.Action{Kind: policy.ActVerify, Target: "vpxa"}, remediate.Outcome{Result: remediate.ResultFailed, Err: "vpxa not running"}, now.Add(-4*time.Minute))
	}
	d = Run(context.Background(), Options{Root: h.Root(), StateDir: state, Clock: clock})
	if f := find(d, "budgets"); f.Level != policy.Warn ||
		f.Detail != "0 of 3 power-offs left in the last hour (3 spent), next allowed at 2026-05-01T10:30:00Z; vpxa restart cooling down until 2026-05-01T10:10:00Z" {
		t.Errorf("spent budget: %+v", f)
	}
	if f := find(d, "breaker"); f.Level != policy.Crit || !strings.HasPrefix(f.Detail, "open since 2026-05-01T09:56:00Z after 3 failed remediations") {
		t.Errorf("open breaker: %+v", f)
	}
	if d.Status != policy.Crit {
		t.Errorf("doctor %s with the breaker open, want CRITICAL", d.Status)
	}
	d = Run(context.Background(), Options{Root: h.Root(), StateDir: state, Clock: clock, Guards: remediate.GuardLimits{MaxPowerOffs: 5}})
	if f := find(d, "budgets"); f.Level != policy.OK || !strings.HasPrefix(f.Detail, "2 of 5 power-offs left") {
		t.Errorf("--max-power-offs 5: %+v", f)
	}
	os.WriteFile(filepath.Join(state, remediate.GuardsFile), []byte("{"), 0o600)
	d = Run(context.Background(), Options{Root: h.Root(), StateDir: state, Clock: clock})
	if f := find(d, "budgets"); f.Level != policy.Crit || !strings.Contains(f.Detail, "heapguard will not act until it is fixed") {
		t.Errorf("damaged guards.json: %+v", f)
	}
}

// fixedClock stands still.
type fixedClock time.Time

func (c fixedClock) Now() time.Time                                   { return time.Time(c) }
func (c fixedClock) Sleep(ctx context.Context, _ time.Duration) error { return ctx.Err() }

// TestPatchedRuntimeNeedsTheFunctionName: only the marker as the pclntab
// holds a function name (between NULs) makes a binary patched; the same
// words in a message, as a stock build of this source could carry them,
// do not.
func TestPatchedRuntimeNeedsTheFunctionName(t *testing.T) {
	dir := t.TempDir()
	for name, c := range map[string]struct {
		content string
		want    bool
	}{
		"function name": {"\x7fELF...\x00runtime.netpoll\x00" + patchMarker + "\x00runtime.main\x00", true},
		"in a message":  {"\x7fELF...built with the stock runtime (no " + patchMarker + "): rebuild", false},
		"prefix only":   {"\x7fELF...\x00" + patchMarker + "Old\x00", false},
		"absent":        {"\x7fELF...\x00runtime.netpoll\x00", false},
	} {
		p := filepath.Join(dir, strings.ReplaceAll(name, " ", "-"))
		if err := os.WriteFile(p, []byte(c.content), 0o755); err != nil {
			t.Fatal(err)
		}
		if got, err := PatchedRuntime(p); err != nil || got != c.want {
			t.Errorf("%s: patched %v (%v), want %v", name, got, err, c.want)
		}
	}
}
