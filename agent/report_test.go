package agent

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestReportFileOrder: rotated files given in any order make the same
// report (review finding: a middle file given last cut "last" short).
func TestReportFileOrder(t *testing.T) {
	dir := t.TempDir()
	start := time.Date(2014, 6, 10, 10, 0, 0, 0, time.UTC)
	var files []string
	for i, name := range []string{"vmkernel.1", "vmkernel.0", "vmkernel.log"} {
		var b strings.Builder
		for k := 0; k < 40; k++ {
			at := start.Add(time.Duration(i)*2*time.Minute + time.Duration(k)*3*time.Second)
			fmt.Fprintf(&b, "%s cpu1:2)NetPort: 1: disabled port 0x3000007\n", at.Format("2006-01-02T15:04:05.000Z"))
			fmt.Fprintf(&b, "%s cpu1:2)NetPort: 2: enabled port 0x3000007 with mac 00:50:56:84:5a:b4\n", at.Add(3*time.Millisecond).Format("2006-01-02T15:04:05.000Z"))
		}
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(b.String()), 0o644); err != nil {
			t.Fatal(err)
		}
		files = append(files, p)
	}
	want := BuildReport(ReportOptions{Logs: files})
	for _, order := range [][]int{{0, 2, 1}, {2, 0, 1}, {2, 1, 0}, {1, 2, 0}} {
		var logs []string
		for _, i := range order {
			logs = append(logs, files[i])
		}
		got := BuildReport(ReportOptions{Logs: logs})
		if len(got.Ports) != 1 || len(want.Ports) != 1 {
			t.Fatalf("ports %+v / %+v", got.Ports, want.Ports)
		}
		g, w := got.Ports[0], want.Ports[0]
		if !g.First.Equal(w.First) || !g.Last.Equal(w.Last) || g.Enabled != 120 || g.Enabled != w.Enabled || g.Flapping != w.Flapping {
			t.Errorf("order %v: port %+v, want %+v", order, g, w)
		}
	}
}
