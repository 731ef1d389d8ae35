package remediate

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/heapguard/heapguard/host"
	"github.com/heapguard/heapguard/policy"
)

var (
	layout55 = host.Layout{LogPath: "/var/log/vmkernel.log", VpxaInit: "/etc/init.d/vpxa", HostdInit: "/etc/init.d/hostd"}
	layout41 = host.Layout{LogPath: "/var/log/messages", VpxaInit: "/etc/opt/init.d/vmware-vpxa", HostdInit: "/etc/opt/init.d/mgmt-vmware"}
)

// commandsRun lists the "$ argv" lines of a transcript.
func commandsRun(out string) []string {
	var cmds []string
	for _, l := range strings.Split(out, "\n") {
		if c, ok := strings.CutPrefix(l, "$ "); ok {
			cmds = append(cmds, c)
		}
	}
	return cmds
}

func TestLivePowerOffCommandFailures(t *testing.T) {
	for _, tc := range []struct {
		name, helper string
		timeout      time.Duration
		wantErr      []string
		wantOut      []string
	}{
		{name: "hang", helper: "hang", timeout: 300 * time.Millisecond,
			wantErr: []string{"get power state of vmid 12", "command timed out after 300ms"},
			wantOut: []string{"[exit -1: command timed out after 300ms"}},
		{name: "exit 3", helper: "exit 3",
			wantErr: []string{"exit status 3"}, wantOut: []string{"[exit 3, "}},
		{name: "stderrfail", helper: "stderrfail",
			wantErr: []string{"exit status 1", "some stderr text for vmsvc/power.getstate 12"},
			wantOut: []string{"some stderr text for vmsvc/power.getstate 12\n[exit 1, "}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, run := helperRoot(t, tc.helper)
			l := &Live{Runner: run, Layout: layout55, Clock: host.NewManualClock(t0), Timeout: tc.timeout}
			start := time.Now()
			o := l.Execute(context.Background(), policy.Action{Kind: policy.ActPowerOff, Target: "dsva 1 $(reboot)", VMID: "12"})
			if wall := time.Since(start); wall > 10*time.Second {
				t.Errorf("took %s of wall time", wall)
			}
			if o.Result != ResultFailed {
				t.Fatalf("result %q, want failed; output:\n%s", o.Result, o.Output)
			}
			for _, w := range tc.wantErr {
				if !strings.Contains(o.Err, w) {
					t.Errorf("error %q lacks %q", o.Err, w)
				}
			}
			for _, w := range tc.wantOut {
				if !strings.Contains(o.Output, w) {
					t.Errorf("output lacks %q:\n%s", w, o.Output)
				}
			}
			// Never act blind: without a power state nothing else runs.
			if d := cmp.Diff([]string{"vim-cmd vmsvc/power.getstate 12"}, commandsRun(o.Output)); d != "" {
				t.Errorf("commands run (-want +got):\n%s", d)
			}
		})
	}
}

func TestLivePowerOffBadVMID(t *testing.T) {
	_, run := helperRoot(t, "exit 0")
	l := &Live{Runner: run, Layout: layout55, Clock: host.NewManualClock(t0)}
	for _, id := range []string{"", "-1", "12; reboot", "12 13", "0x12", "1234567890123"} {
		o := l.Execute(context.Background(), policy.Action{Kind: policy.ActPowerOff, Target: "x", VMID: id})
		if o.Result != ResultFailed || len(commandsRun(o.Output)) != 0 {
			t.Errorf("vmid %q: result %q, ran %q", id, o.Result, commandsRun(o.Output))
		}
	}
}

func TestLiveRestartAgent(t *testing.T) {
	for _, tc := range []struct {
		name   string
		layout host.Layout
		target string
		helper string
		want   string
		cmds   []string
	}{
		{"5.5 vpxa", layout55, AgentVpxa, "exit 0", ResultOK,
			[]string{"/etc/init.d/vpxa restart", "/etc/init.d/vpxa status"}},
		{"5.5 hostd", layout55, AgentHostd, "exit 0", ResultOK,
			[]string{"/etc/init.d/hostd restart", "/etc/init.d/hostd status"}},
		{"4.1 vpxa stop then start", layout41, AgentVpxa, "exit 0", ResultOK,
			[]string{"/etc/opt/init.d/vmware-vpxa stop", "/etc/opt/init.d/vmware-vpxa start", "/etc/opt/init.d/vmware-vpxa status"}},
		{"no hostd script", host.Layout{VpxaInit: "/etc/init.d/vpxa"}, AgentHostd, "exit 0", ResultFailed, nil},
		{"unknown agent", layout55, "sshd", "exit 0", ResultFailed, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, run := helperRoot(t, tc.helper, tc.layout.VpxaInit, tc.layout.HostdInit)
			l := &Live{Runner: run, Layout: tc.layout, Clock: host.NewManualClock(t0)}
			o := l.Execute(context.Background(), policy.Action{Kind: policy.ActRestartAgent, Target: tc.target})
			if o.Result != tc.want {
				t.Errorf("result %q (%s), want %q; output:\n%s", o.Result, o.Err, tc.want, o.Output)
			}
			if d := cmp.Diff(tc.cmds, commandsRun(o.Output)); d != "" {
				t.Errorf("commands run (-want +got):\n%s", d)
			}
		})
	}
}

// An agent that never comes up is polled for AgentWait of host time, then
// the restart fails.
func TestLiveRestartAgentNeverRuns(t *testing.T) {
	_, run := helperRoot(t, "exit 1", layout55.VpxaInit)
	clock := host.NewManualClock(t0)
	l := &Live{Runner: run, Layout: layout55, Clock: clock, AgentWait: 30 * time.Second, PollInterval: 5 * time.Second}
	o := l.Execute(context.Background(), policy.Action{Kind: policy.ActRestartAgent, Target: AgentVpxa})
	if o.Result != ResultFailed || !strings.Contains(o.Err, "vpxa not running 30s after its restart") {
		t.Fatalf("result %q, error %q", o.Result, o.Err)
	}
	cmds := commandsRun(o.Output)
	statuses := 0
	for _, c := range cmds {
		if c == "/etc/init.d/vpxa status" {
			statuses++
		}
	}
	if statuses != 7 {
		t.Errorf("%d status checks in 30s every 5s, want 7 (t=0,5,…,30)", statuses)
	}
	if got := clock.Now().Sub(t0); got != 30*time.Second {
		t.Errorf("waited %s of host time, want 30s", got)
	}
	if o.Elapsed != 30*time.Second {
		t.Errorf("elapsed %s, want 30s of host time", o.Elapsed)
	}
}

func TestLiveVerify(t *testing.T) {
	heap := &policy.HeapFigures{Name: "netGPHeap", PercentFreeOfMax: 3}
	for _, tc := range []struct {
		name    string
		reads   []float64
		readErr error
		nilHeap bool
		want    string
		wantErr string
	}{
		{name: "recovered", reads: []float64{20, 21}, want: ResultOK},
		{name: "flat above decision", reads: []float64{3, 3}, want: ResultOK},
		{name: "still falling", reads: []float64{20, 19.5}, want: ResultFailed, wantErr: "heap still falling: 20.00% then 19.50%"},
		{name: "below decision", reads: []float64{2, 2}, want: ResultFailed, wantErr: "below the 3.00% the decision was taken on"},
		{name: "read error", readErr: errors.New("vsish: no such heap"), want: ResultFailed, wantErr: "read heap: vsish: no such heap"},
		{name: "no heap reader", nilHeap: true, want: ResultFailed, wantErr: "heap not checked"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, run := helperRoot(t, "exit 0", layout55.VpxaInit)
			clock := host.NewManualClock(t0)
			var readAt []time.Time
			l := &Live{Runner: run, Layout: layout55, Clock: clock, VerifyInterval: 10 * time.Second}
			if !tc.nilHeap {
				l.HeapCheck = func(context.Context) (float64, error) {
					readAt = append(readAt, clock.Now())
					if tc.readErr != nil {
						return 0, tc.readErr
					}
					return tc.reads[len(readAt)-1], nil
				}
			}
			o := l.Execute(context.Background(), policy.Action{Kind: policy.ActVerify, Target: AgentVpxa, Heap: heap})
			if o.Result != tc.want || !strings.Contains(o.Err, tc.wantErr) {
				t.Errorf("got %q %q, want %q %q; output:\n%s", o.Result, o.Err, tc.want, tc.wantErr, o.Output)
			}
			if len(readAt) == 2 && readAt[1].Sub(readAt[0]) != 10*time.Second {
				t.Errorf("reads %s apart, want 10s of host time", readAt[1].Sub(readAt[0]))
			}
			if d := cmp.Diff([]string{"/etc/init.d/vpxa status"}, commandsRun(o.Output)); d != "" {
				t.Errorf("commands run (-want +got):\n%s", d)
			}
		})
	}
}

func TestLiveVerifyAgentDown(t *testing.T) {
	_, run := helperRoot(t, "exit 1", layout55.VpxaInit)
	l := &Live{Runner: run, Layout: layout55, Clock: host.NewManualClock(t0),
		HeapCheck: func(context.Context) (float64, error) { return 50, nil }}
	o := l.Execute(context.Background(), policy.Action{Kind: policy.ActVerify, Target: "netGPHeap"})
	if o.Result != ResultFailed || !strings.Contains(o.Err, "vpxa not running") {
		t.Errorf("got %q %q, want a failure naming vpxa", o.Result, o.Err)
	}
}

func TestLiveAlertRunsNothing(t *testing.T) {
	l := &Live{Clock: host.NewManualClock(t0)} // no Runner: any command would fail
	o := l.Execute(context.Background(), policy.Action{Kind: policy.ActAlert, Target: "netGPHeap", Reason: "low"})
	if o.Result != ResultOK || len(commandsRun(o.Output)) != 0 {
		t.Errorf("alert: %+v", o)
	}
}

func TestLiveNoRunner(t *testing.T) {
	o := (&Live{}).Execute(context.Background(), policy.Action{Kind: policy.ActPowerOff, Target: "x", VMID: "1"})
	if o.Result != ResultFailed || !strings.Contains(o.Err, "no command runner configured") {
		t.Errorf("got %q %q", o.Result, o.Err)
	}
}

func TestLiveOutputCap(t *testing.T) {
	_, run := helperRoot(t, "stderrfail")
	l := &Live{Runner: run, Layout: layout55, Clock: host.NewManualClock(t0), OutputCap: 40}
	o := l.Execute(context.Background(), policy.Action{Kind: policy.ActPowerOff, Target: "x", VMID: "1"})
	if len(o.Output) > 40+len("\n[output cut]\n") || !strings.HasSuffix(o.Output, "[output cut]\n") {
		t.Errorf("output not capped: %q", o.Output)
	}
}

func TestDryRun(t *testing.T) {
	heap := &policy.HeapFigures{Name: "netGPHeap", PercentFreeOfMax: 3}
	for _, tc := range []struct {
		name   string
		layout host.Layout
		a      policy.Action
		result string
		want   string
	}{
		{"power off", layout55, policy.Action{Kind: policy.ActPowerOff, Target: "dsva $(reboot); 1", VMID: "12"}, ResultDryRun,
			`would run: vim-cmd vmsvc/power.getstate 12  (nothing more when already powered off)
would run: vim-cmd vmsvc/power.shutdown 12  (graceful, needs VMware Tools)
would run: vim-cmd vmsvc/power.getstate 12  (every 5s until Powered off, for up to 2m0s)
would run: vim-cmd vmsvc/power.off 12  (at once if the shutdown fails, or after 2m0s)
would run: vim-cmd vmsvc/power.getstate 12  (must say Powered off)
`},
		{"restart 5.5", layout55, policy.Action{Kind: policy.ActRestartAgent, Target: AgentVpxa}, ResultDryRun,
			`would run: /etc/init.d/vpxa restart
would run: /etc/init.d/vpxa status  (until it exits 0, for up to 30s)
`},
		{"restart 4.1", layout41, policy.Action{Kind: policy.ActRestartAgent, Target: AgentVpxa}, ResultDryRun,
			`would run: /etc/opt/init.d/vmware-vpxa stop
would run: /etc/opt/init.d/vmware-vpxa start
would run: /etc/opt/init.d/vmware-vpxa status  (until it exits 0, for up to 30s)
`},
		{"verify", layout55, policy.Action{Kind: policy.ActVerify, Target: AgentVpxa, Heap: heap}, ResultDryRun,
			`would run: /etc/init.d/vpxa status  (must exit 0)
would read the heap twice, 10s apart: recovered when not below 3.0% free of max (netGPHeap at the decision) nor falling
`},
		{"alert", layout55, policy.Action{Kind: policy.ActAlert}, ResultDryRun, "alert only, nothing would run\n"},
		{"bad vmid", layout55, policy.Action{Kind: policy.ActPowerOff, VMID: "-h"}, ResultFailed, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := (&DryRun{Layout: tc.layout}).Execute(context.Background(), tc.a)
			if o.Result != tc.result {
				t.Errorf("result %q (%s), want %q", o.Result, o.Err, tc.result)
			}
			if d := cmp.Diff(tc.want, o.Output); d != "" {
				t.Errorf("output (-want +got):\n%s", d)
			}
		})
	}
}

func TestFormatArgv(t *testing.T) {
	for in, want := range map[string]string{
		"vim-cmd|vmsvc/power.off|12": "vim-cmd vmsvc/power.off 12",
		"a|b c$(x)|":                 `a "b c$(x)" ""`,
	} {
		if got := FormatArgv(strings.Split(in, "|")); got != want {
			t.Errorf("FormatArgv(%q) = %s, want %s", in, got, want)
		}
	}
}
