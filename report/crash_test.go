package report

import (
	"os"
	"strings"
	"testing"

	"github.com/heapguard/heapguard/policy"
)

// TestReportAgentCrashes : a dump named by a thread or helper is
// the agent's crash, said so, and the two lines of one crash count once.
func TestReportAgentCrashes(t *testing.T) {
	tests := []struct {
		name   string
		logs   []string
		status policy.Level
		reason string
	}{
		{"hostd dumped by vix-async-pipe (ESXi 4.1)", []string{"../collector/testdata/vmkernel-41-messages-day-unpadded.log"}, policy.Crit,
			"hostd crashed (core dump by vix-async-pipe, last 2012-10-04T08:02:38Z)"},
		{"hostd: thread and core file, one crash", []string{"../collector/testdata/vmkernel-4x-messages-hostd-dump-day-unpadded.log"}, policy.Crit,
			"hostd crashed (core dumps by hostd-worker, vix-async-pipe, last 2012-04-07T17:41:03Z)"},
		{"both: two hostd crashes", []string{"../collector/testdata/vmkernel-41-messages-day-unpadded.log", "../collector/testdata/vmkernel-4x-messages-hostd-dump-day-unpadded.log"}, policy.Crit,
			"hostd crashed 2 times (core dumps by hostd-worker, vix-async-pipe, last 2012-10-04T08:02:38Z)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := Build(Options{Logs: tt.logs, Year: 2012})
			if r.Status != tt.status || !strings.Contains(strings.Join(r.Reasons, "; "), tt.reason) {
				t.Errorf("status %v reasons %q, want %v with %q", r.Status, r.Reasons, tt.status, tt.reason)
			}
		})
	}
}

// TestReportUnknownProcessNotGuessed: a dump of a process of no known
// agent is listed as itself and does not make the verdict CRITICAL.
func TestReportUnknownProcessNotGuessed(t *testing.T) {
	dir := t.TempDir()
	p := dir + "/vmkernel.log"
	writeTestFile(t, p, "2013-08-20T12:00:00Z cpu1:14258)User: 2432: wantCoreDump : sfcb-vmware_bas -enabled : 1\n"+
		"2013-08-20T12:00:00Z cpu1:14258)UserDump: 1485: Dumping cartel 14235 (from world 14258) to file /var/core/sfcb-vmware_bas-zdump.000 ...\n")
	r := Build(Options{Logs: []string{p}})
	if r.Status != policy.OK || len(r.Dumps) != 1 || r.Dumps[0].Agent != "" || len(r.Crashes) != 1 || r.Crashes[0].Agent != "" {
		t.Errorf("status %v dumps %+v crashes %+v, want OK and one crash of no agent", r.Status, r.Dumps, r.Crashes)
	}
}

func writeTestFile(t *testing.T, p, content string) {
	t.Helper()
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestReportAgentLogs : a vpxa crash recorded only in hostd.log
// and vobd.log (index id 344607061) makes the verdict CRITICAL, once.
func TestReportAgentLogs(t *testing.T) {
	r := Build(Options{Logs: []string{"../collector/testdata/hostd-6x-vpxa-crash-syslog.log", "../collector/testdata/vobd-6x-vpxa-crash-syslog.log",
		"../collector/testdata/vmkernel-5x.log"}})
	want := "vpxa crashed (core dump by vpxa-worker, time unknown)"
	if r.Status != policy.Crit || !strings.Contains(strings.Join(r.Reasons, "; "), want) {
		t.Errorf("status %v reasons %q, want CRITICAL with %q", r.Status, r.Reasons, want)
	}
	if len(r.AgentLogs) != 2 || r.AgentLogs[0].Log != "hostd" || r.AgentLogs[1].Log != "vobd" {
		t.Errorf("agent logs %+v", r.AgentLogs)
	}
	if len(r.Crashes) != 1 || r.Crashes[0].Lines != 3 || len(r.Errors) != 0 {
		t.Errorf("crashes %+v errors %q", r.Crashes, r.Errors)
	}
}
