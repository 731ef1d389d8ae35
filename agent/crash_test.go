package agent

import (
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/heapguard/heapguard/collector"
	"github.com/heapguard/heapguard/host"
)

// TestConsumeVpxaThreadDump : a dump named by a vpxa thread
// (vpxa-worker) is vpxa's crash; a hostd thread's is not, nor one whose
// time cannot be read (a known body behind an unknown header).
func TestConsumeVpxaThreadDump(t *testing.T) {
	now := time.Date(2016, 8, 10, 10, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		line string
		want bool
	}{
		{"2016-08-10T10:11:12.345Z cpu1:34895)UserDump: 1485: Dumping cartel 34890 (from world 34895) to file /var/core/vpxa-worker-zdump.000 ...", true},
		{"2016-08-10T10:11:12.345Z cpu1:34895)User: 2432: wantCoreDump : vpxa -enabled : 1", true},
		{"2016-08-10T10:11:12.345Z cpu1:34895)UserDump: 1485: Dumping cartel 34890 (from world 34895) to file /var/core/hostd-worker-zdump.000 ...", false},
		{"[masked] cpu1:34895)UserDump: 1485: Dumping cartel 34890 (from world 34895) to file /var/core/vpxa-worker-zdump.000 ...", false},
	} {
		w := &Watcher{opt: Options{Clock: host.NewManualClock(now)}, log: zap.NewNop(),
			parser: collector.NewParser(2016, now), tracker: collector.NewFlapTracker(0, 0)}
		w.consume([]byte(tc.line))
		if w.vpxaCrash != tc.want {
			t.Errorf("%q: vpxa crash %v, want %v", tc.line, w.vpxaCrash, tc.want)
		}
	}
}
